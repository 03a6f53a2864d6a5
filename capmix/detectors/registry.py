"""Which detector the pipeline runs: params.yaml ``detector: capmix | coad``, and loading either.

``run_config(params)`` gives the typed config of the chosen detector (CAPMix: ``train`` +
``presets.<preset>``; CoAD: ``coad`` + ``coad_presets.<preset>`` over the dataset's CAPMix window,
stride and threshold rule, via the method registry), ``make_detector(cfg)`` an unfitted detector
for a config, and ``load_detector(path)`` loads a saved model directory of either kind (its
``config.json`` names the detector; CAPMix models predate the field and have none).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from capmix.config import DetectorConfig, detector_config

DETECTORS = ("capmix", "coad")


def detector_name(params: dict[str, Any]) -> str:
    """params.yaml top-level ``detector`` (default ``capmix``), validated."""
    name = str(params.get("detector") or "capmix")
    if name not in DETECTORS:
        raise ValueError(f"params.yaml detector: {name!r} unknown; choose one of {list(DETECTORS)}")
    return name


def preset_name(params: dict[str, Any], preset: str | None = None) -> str:
    return preset or (params.get("train") or {}).get("preset") or "default"


def run_config(params: dict[str, Any], preset: str | None = None, **capmix_overrides: Any) -> Any:
    """The chosen detector's config (``DetectorConfig`` or ``CoADConfig``) from the params dict.

    ``capmix_overrides`` (tuned gamma/alpha, seeds) apply to the CAPMix config; for CoAD only the
    keys CoAD shares with it (``seed``) or its own keys are passed on.
    """
    from capmix.detectors.methods import build_detector

    name = detector_name(params)
    if name == "capmix":
        return detector_config(params, preset=preset, **capmix_overrides)
    from capmix.detectors.coad import CoADConfig

    own = {k: v for k, v in capmix_overrides.items() if k in CoADConfig.model_fields and k != "seed"}
    seed = capmix_overrides.get("seed")
    base = detector_config(params, preset=preset, **({"seed": seed} if seed is not None else {}))
    det = build_detector("coad", base, params, base.seed, overrides=own, preset=preset_name(params, preset))
    return det.config


def make_detector(cfg: Any) -> Any:
    """An unfitted detector for a ``DetectorConfig`` or a ``CoADConfig``."""
    if isinstance(cfg, DetectorConfig):
        from capmix.detectors.capmix.detector import CAPMixDetector

        return CAPMixDetector(cfg)
    from capmix.detectors.coad import CoADConfig, CoADDetector

    if isinstance(cfg, CoADConfig):
        return CoADDetector(cfg)
    raise TypeError(f"no detector for a {type(cfg).__name__}")


def config_from_dict(d: dict[str, Any]) -> Any:
    """Rebuild a config from its ``model_dump()`` (what Prefect tasks pass around)."""
    if d.get("detector") == "coad":
        from capmix.detectors.coad import CoADConfig

        return CoADConfig.model_validate(d)
    return DetectorConfig.model_validate(d)


def saved_kind(path: str | Path) -> str:
    """Which detector a saved model directory holds (checksums are verified by its ``load``)."""
    from capmix.detectors.capmix.detector import ModelFileError

    cfg = Path(path) / "config.json"
    try:
        kind = json.loads(cfg.read_text()).get("detector", "capmix")
    except FileNotFoundError as exc:
        raise ModelFileError(f"model directory {path} is incomplete: missing config.json") from exc
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ModelFileError(f"{cfg} is corrupt: {exc}") from exc
    if kind not in DETECTORS:
        raise ModelFileError(f"{cfg} names an unknown detector {kind!r}")
    return kind


def load_detector(path: str | Path, device: str | None = None) -> Any:
    """Load a saved CAPMix or CoAD detector, whichever ``path`` holds."""
    if saved_kind(path) == "coad":
        from capmix.detectors.coad import CoADDetector

        return CoADDetector.load(path, device=device)
    from capmix.detectors.capmix.detector import CAPMixDetector

    return CAPMixDetector.load(path, device=device)


def eval_segments(det: Any) -> tuple[int, int]:
    """Window and stride of the window-granularity evaluation: the dataset's CAPMix segments."""
    c = det.config
    if getattr(c, "detector", None) == "coad":
        return c.eval_window, c.eval_stride
    return c.window, c.stride
