"""Every detector the project can run, by name, built from params.yaml.

The benchmark harness, the studies and the pipeline ask this module for a detector and
get an estimator with ``fit(X, y=None)``, ``decision_function(X)`` (higher = more anomalous)
and ``threshold_`` (the deployable threshold). Hyperparameters come from params.yaml:
the CAPMix variants from ``train`` (+ the dataset preset), the baselines from
``baselines.<name>``. Window and stride always come from the dataset's CAPMix preset, so
every method is evaluated on the same segments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from capmix.config import VARIANTS, DetectorConfig

#: builder(cfg, method_params, seed) -> unfitted detector
Builder = Callable[[DetectorConfig, dict[str, Any], int], Any]


def _capmix(variant: str) -> Builder:
    def build(cfg: DetectorConfig, kw: dict[str, Any], seed: int):
        from capmix.detectors.capmix.detector import CAPMixDetector

        return CAPMixDetector(cfg.replace(variant=variant, seed=seed, **kw))

    return build


def _baseline(cls_name: str) -> Builder:
    def build(cfg: DetectorConfig, kw: dict[str, Any], seed: int):
        from capmix.detectors import baselines

        cls = getattr(baselines, cls_name)
        return cls(window=cfg.window, stride=cfg.stride, threshold_z=cfg.threshold_z,
                   val_fraction=cfg.val_fraction, seed=seed, **kw)

    return build


#: name -> (kind, builder). kind: "capmix" (the method and its Table IV ablations),
#: "baseline" (library models, paper Table III), "peer" (other synthetic-anomaly detectors).
METHODS: dict[str, tuple[str, Builder]] = {
    **{v: ("capmix", _capmix(v)) for v in VARIANTS},
    "random": ("baseline", _baseline("RandomScorer")),
    "iforest": ("baseline", _baseline("WindowIForest")),
    "ocsvm": ("baseline", _baseline("WindowOCSVM")),
    "deepsvdd": ("baseline", _baseline("WindowDeepSVDD")),
    "mp": ("baseline", _baseline("MatrixProfileDiscord")),
}


def register_method(name: str, kind: str, builder: Builder) -> None:
    """Add a detector under ``name`` (used by peers such as CoAD)."""
    METHODS[name] = (kind, builder)


def method_names() -> list[str]:
    return list(METHODS)


def check_methods(names: list[str]) -> None:
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")


def method_params(method: str, params: dict[str, Any], preset: str | None = None) -> dict[str, Any]:
    """The method's own hyperparameters from params.yaml.

    Baselines: ``baselines.<name>``. Peers: the ``<name>`` section, with
    ``<name>_presets.<preset>`` applied over it (per-dataset presets live in params).
    CAPMix variants take theirs from ``cfg`` (``train`` + ``presets``), so nothing here.
    """
    kind = METHODS[method][0]
    if kind == "baseline":
        return dict((params.get("baselines") or {}).get(method) or {})
    if kind == "peer":
        kw = dict(params.get(method) or {})
        if preset:
            kw.update((params.get(f"{method}_presets") or {}).get(preset) or {})
        return kw
    return {}


def build_detector(method: str, cfg: DetectorConfig, params: dict[str, Any], seed: int,
                   overrides: dict[str, Any] | None = None, preset: str | None = None) -> Any:
    """An unfitted detector for ``method``.

    ``cfg`` is the dataset's CAPMix config (window, stride, threshold rule); ``params`` the
    whole params.yaml; ``preset`` the dataset preset name; ``overrides`` replace the method's
    own hyperparameters (e.g. a gamma/alpha grid point for a CAPMix variant).
    """
    check_methods([method])
    kw = method_params(method, params, preset)
    kw.update(overrides or {})
    return METHODS[method][1](cfg, kw, seed)


def _coad(cfg: DetectorConfig, kw: dict[str, Any], seed: int):
    from capmix.detectors.coad import build_coad  # torch-heavy: imported only when CoAD is built

    return build_coad(cfg, kw, seed)


register_method("coad", "peer", _coad)
