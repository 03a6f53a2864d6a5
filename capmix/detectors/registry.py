"""The one registry from a detector's name to its class, and the one way to build or load one.

``build_detector(name, **overrides)`` gives an unfitted detector with the class defaults;
``build_detector(name, params, preset=...)`` takes its hyperparameters from params.yaml:

* the CAPMix variants (``capmix``, ``cap``, ``cap-gamma``, ``cap-mix``) from ``train`` and
  ``presets.<preset>`` (a variant only flips the revision and mixup switches);
* every other detector from its own section (``coad``, ``baselines.<name>``, ``ensemble``) and
  ``<section>_presets.<preset>`` where that exists, on the dataset's CAPMix window, stride and
  threshold rule (``train`` + preset), so every detector is judged on the same segments.

``load_detector(path)`` reads which detector a saved model folder holds (``state.json``) and
loads it with that class. Nothing outside this module asks what kind a detector is.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capmix.config import VARIANTS, detector_config


@dataclass(frozen=True)
class Entry:
    """How to build one named detector."""

    target: str  #: "module:Class", imported on first use (torch-heavy modules stay unloaded)
    family: str  #: "capmix" (the method and its Table IV ablations) | "peer" | "baseline" | "ensemble"
    fixed: dict[str, Any] = field(default_factory=dict)  #: hyperparameters the name itself fixes
    section: str | None = None  #: params.yaml section of its hyperparameters (dotted for baselines)
    #: keys it takes from the dataset's CAPMix config (name here -> DetectorConfig field)
    shared: dict[str, str] = field(default_factory=dict)

    def cls(self) -> type:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)


_CAPMIX = "capmix.detectors.capmix.detector:CAPMixDetector"
_SEGMENTS = {"window": "window", "stride": "stride", "threshold_z": "threshold_z", "val_fraction": "val_fraction"}


def _baseline(cls: str, name: str) -> Entry:
    return Entry(f"capmix.detectors.baselines:{cls}", "baseline", section=f"baselines.{name}", shared=_SEGMENTS)


REGISTRY: dict[str, Entry] = {
    **{v: Entry(_CAPMIX, "capmix", fixed={"variant": v}) for v in VARIANTS},
    "coad": Entry("capmix.detectors.coad:CoADDetector", "peer", section="coad",
                  shared={"eval_window": "window", "eval_stride": "stride", "threshold_z": "threshold_z",
                          "val_fraction": "val_fraction", "device": "device",
                          "score_batch_size": "score_batch_size"}),
    "iforest": _baseline("WindowIForest", "iforest"),
    "ocsvm": _baseline("WindowOCSVM", "ocsvm"),
    "deepsvdd": _baseline("WindowDeepSVDD", "deepsvdd"),
    "mp": _baseline("MatrixProfileDiscord", "mp"),
    "random": _baseline("RandomScorer", "random"),
    "zscore": _baseline("PointZScore", "zscore"),
    "ensemble": Entry("capmix.detectors.ensemble:EnsembleDetector", "ensemble", section="ensemble",
                      shared=_SEGMENTS),
}


def detector_names() -> list[str]:
    """Every name ``build_detector`` accepts."""
    return list(REGISTRY)


def entry(name: str) -> Entry:
    """The registry entry of ``name``, or a ValueError listing the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(name), REGISTRY, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown detector {name!r}{hint} Choose one of {detector_names()}") from None


def family(name: str) -> str:
    """"capmix" | "peer" | "baseline" | "ensemble" (e.g. only the CAPMix family tunes gamma/alpha)."""
    return entry(name).family


def _section(params: dict[str, Any], dotted: str) -> dict[str, Any]:
    node: Any = params
    for part in dotted.split("."):
        node = (node or {}).get(part) if isinstance(node, dict) else None
    return dict(node or {})


def own_params(name: str, params: dict[str, Any], preset: str | None = None) -> dict[str, Any]:
    """The detector's own section of params.yaml with its ``<section>_presets.<preset>`` applied
    (empty for the CAPMix family, whose hyperparameters are ``train`` + ``presets``)."""
    e = entry(name)
    if e.section is None:
        return {}
    out = _section(params, e.section)
    if preset and "." not in e.section:
        out.update(_section(params, f"{e.section}_presets.{preset}"))
    return out


def hyperparameters(name: str, params: dict[str, Any], preset: str | None = None,
                    seed: int | None = None) -> dict[str, Any]:
    """The hyperparameters params.yaml gives detector ``name`` (dataset preset applied)."""
    e = entry(name)
    cfg = detector_config(params, preset=preset)
    if e.family == "capmix":
        out = cfg.model_dump()
    else:
        out = {k: getattr(cfg, v) for k, v in e.shared.items()}
        out.update(own_params(name, params, preset))
        out["seed"] = cfg.seed
    if seed is not None:
        out["seed"] = seed
    if e.family == "ensemble":  # its learned members take their own params.yaml sections
        members = out["members"] if "members" in out else e.cls()().get_params()["members"]
        out["member_params"] = {m: hyperparameters(m, params, preset, out["seed"]) for m in members}
    return {**out, **e.fixed}


def build_detector(name: str, params: Any = None, *, preset: str | None = None, seed: int | None = None,
                   **overrides: Any) -> Any:
    """An unfitted detector ``name``: class defaults, or params.yaml's values when ``params`` is given,
    then ``overrides`` (e.g. tuned gamma/alpha, a grid point, a seed)."""
    e = entry(name)
    if hasattr(params, "model_dump"):  # the typed params object
        params = params.model_dump()
    kw = hyperparameters(name, params, preset, seed) if params is not None else dict(e.fixed)
    if params is None and seed is not None:
        kw["seed"] = seed
    kw.update(overrides)
    return e.cls()(**kw)


def pipeline_detector(params: Any, preset: str | None = None, tuned: dict[str, Any] | None = None) -> Any:
    """The unfitted detector the pipeline trains: params.yaml ``detector`` (default ``capmix``).

    ``tuned`` (the Optuna search's gamma/alpha) applies to the CAPMix family only: the search is
    over CAPMix's hyperparameters.
    """
    if hasattr(params, "model_dump"):
        params = params.model_dump()
    name = str(params.get("detector") or "capmix")
    over = dict(tuned or {}) if family(name) == "capmix" else {}
    return build_detector(name, params, preset=preset, **over)


def saved_kind(path: str | Path) -> str:
    """Which detector a saved model folder holds (its ``load`` then verifies every checksum)."""
    from capmix.modelfiles import ModelFileError, check_complete

    state = check_complete(path) / "state.json"
    try:
        kind = json.loads(state.read_text()).get("detector", "capmix")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ModelFileError(f"{state} is corrupt ({exc}). Fix: re-train or restore it") from exc
    if kind not in {e.cls().kind for e in REGISTRY.values()}:
        raise ModelFileError(f"{state} names an unknown detector {kind!r}. Fix: load it with the capmix "
                             "version that wrote it, or re-train it")
    return kind


def detector_class(kind: str) -> type:
    """The class whose saved folders say ``detector: kind``."""
    for e in REGISTRY.values():
        if e.cls().kind == kind:
            return e.cls()
    raise ValueError(f"no detector class saves kind {kind!r}")


def load_detector(path: str | Path, device: str | None = None) -> Any:
    """Load a saved detector of any kind, as its folder says."""
    return detector_class(saved_kind(path)).load(path, device=device)
