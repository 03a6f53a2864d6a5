"""Prefect tasks: each wraps one capmix stage function and adds retries, caching and logging.

Nothing is computed here that capmix does not already compute; the tasks only move
paths and small dicts between stages (large arrays go through files).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from capmix.config import DetectorConfig
from capmix.data.canonical import read_dataset, write_dataset
from capmix.detectors.capmix.detector import CAPMixDetector
from capmix.pipeline import DatasetConfig, EvaluateConfig, evaluate_saved
from capmix.detectors.capmix.training import AugmentedData

#: Re-runs skip a task whose inputs (paths, digests, params) and code are unchanged.
CACHED = INPUTS + TASK_SOURCE
IO_RETRIES = dict(retries=2, retry_delay_seconds=2)


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@task(name="ingest", **IO_RETRIES)
def ingest(dataset: dict[str, Any], generate: dict[str, Any]) -> dict[str, str]:
    """Bring the configured dataset into its canonical Parquet form; returns its path and digest."""
    log = get_run_logger()
    cfg = DatasetConfig.model_validate(dataset)
    path = Path(cfg.path)
    if cfg.name == "default":
        if not path.exists():
            from capmix.data.synthetic import GeneratorConfig, generate_dataset

            gen = {k: v for k, v in generate.items() if k != "out"}
            generate_dataset(GeneratorConfig.model_validate(gen), path)
            log.info("generated the embedded default dataset at %s", path)
    elif cfg.name == "ucr":
        from capmix.data.loaders import load_ucr

        write_dataset(load_ucr(cfg.root, subset=cfg.subset), path, metadata={"name": "ucr"})
        log.info("read UCR from %s into %s", cfg.root, path)
    elif not path.exists():
        raise FileNotFoundError(
            f"dataset {cfg.name!r}: canonical file {path} not found; write it with capmix or point dataset.path at it"
        )
    return {"path": str(path), "digest": file_digest(path)}


@task(name="validate", **IO_RETRIES)
def validate(data: dict[str, str], validate_cfg: dict[str, Any], window: int, channels: list[str] | None = None,
             mode: str = "train") -> dict[str, Any]:
    """Great Expectations suite on the canonical frame; raises (stopping the flow) on failure."""
    from capmix.data.validation import ValidationConfig, validate_frame

    import pandas as pd

    from capmix.data.canonical import RESERVED_COLUMNS

    # GX looks at the file as it is, before capmix's own reader could reject it without a report
    frame = pd.read_parquet(data["path"])
    n_channels = len([c for c in frame.columns if c not in RESERVED_COLUMNS])
    kind = "univariate" if n_channels == 1 else "multivariate"
    out = validate_cfg.get("out", "reports/validation")
    cfg = ValidationConfig(
        kind=kind,
        channels=channels,
        window=window,
        max_anomaly_ratio=validate_cfg.get("max_anomaly_ratio", 0.25),
        min_anomaly_ratio=validate_cfg.get("min_anomaly_ratio", 0.0),
        max_irregular_ratio=validate_cfg.get("max_irregular_ratio", 0.0),
        impute=validate_cfg.get("impute", "none"),
        require_labels=(mode == "train"),
        mode=mode,
    )
    report = validate_frame(frame, cfg, out)
    report.raise_for_failures()
    log = get_run_logger()
    log.info("validation passed (%s): %s", kind, report.statistics)
    checked = dict(data)
    if report.imputed:
        # downstream stages train on what was validated: the imputed data, as its own file
        from capmix.data.canonical import from_frame

        path = Path(data["path"]).with_suffix(".imputed.parquet")
        write_dataset(from_frame(report.frame), path)
        checked = {"path": str(path), "digest": file_digest(path)}
        log.warning("imputed %d NaN/inf values (%s); training on %s", report.imputed, cfg.impute, path)
    return {**checked, "validation": {"json": str(report.json_path), "docs": str(report.data_docs_path),
                                      "imputed": report.imputed}}


def augment_path(work_dir: str | Path, series: str, data: dict[str, str]) -> Path:
    """Where a series' augmented windows go: named by series and data digest."""
    return Path(work_dir) / f"{series}-{data['digest'][:12]}.npz"


@task(name="augment", cache_policy=CACHED, persist_result=True)
def augment(data: dict[str, str], series: str, cfg: dict[str, Any], work_dir: str) -> dict[str, Any]:
    """CutAddPaste + DTW label revision for one series; the windows go to an .npz file."""
    s = next(x for x in read_dataset(data["path"]) if x.name == series)
    det = CAPMixDetector(DetectorConfig.model_validate(cfg))
    prepared = det.prepare(*s.train)
    path = prepared.save(augment_path(work_dir, series, data))
    report = prepared.report()
    get_run_logger().info("augmented %s: %s", series, report)
    dist = prepared.revision.distances.tolist() if prepared.revision is not None else []
    return {"series": series, "path": str(path), "report": report, "distances": dist}


def checkpoint_path(augmented_path: str | Path) -> Path:
    """The training checkpoint of one series: next to its augmented windows, named after them."""
    return Path(augmented_path).with_suffix(".ckpt.pt")


@task(name="train", cache_policy=CACHED, persist_result=True)
def train(augmented: dict[str, Any], cfg: dict[str, Any], models_dir: str) -> dict[str, Any]:
    """Train one series' detector from its augmented windows; saved under models_dir/<series>."""
    log = get_run_logger()
    series = augmented["series"]

    def on_epoch(e):
        log.info("%s epoch %d: train_loss %.4f val_loss %.4f val_auc %.4f", series, e.epoch,
                 e.train_loss, e.val_loss, e.val_auc)

    det = CAPMixDetector(DetectorConfig.model_validate(cfg))
    # per-epoch checkpoint beside the augmented windows: a killed run resumes where it stopped
    ckpt = checkpoint_path(augmented["path"])
    det.fit_prepared(AugmentedData.load(augmented["path"]), on_epoch=on_epoch, checkpoint=ckpt)
    if det.resumed_from_epoch_ is not None:
        log.warning("%s: resumed from checkpoint %s at epoch %d", series, ckpt, det.resumed_from_epoch_)
    out = det.save(Path(models_dir) / series)
    ckpt.unlink(missing_ok=True)  # the model is saved: the checkpoint has served its purpose
    return {
        "series": series,
        "model_dir": str(out),
        "threshold": det.threshold_,
        "best_epoch": det.best_epoch_,
        "history": [e.__dict__ for e in det.history_],
    }


@task(name="train-coad", cache_policy=CACHED, persist_result=True)
def train_coad(data: dict[str, str], series: str, cfg: dict[str, Any], models_dir: str) -> dict[str, Any]:
    """Train one series' CoAD detector (params ``detector: coad``): it makes its own pseudo-anomalies
    per batch, so there is no augment stage; saved under models_dir/<series>."""
    from capmix.detectors.coad import CoADConfig, CoADDetector

    log = get_run_logger()
    s = next(x for x in read_dataset(data["path"]) if x.name == series)

    def on_epoch(e):
        log.info("%s epoch %d: train_loss %.4f val_loss %.4f val_auc %.4f", series, e.epoch,
                 e.train_loss, e.val_loss, e.val_auc)

    det = CoADDetector(CoADConfig.model_validate(cfg)).fit(*s.train, on_epoch=on_epoch)
    out = det.save(Path(models_dir) / series)
    return {
        "series": series,
        "model_dir": str(out),
        "threshold": det.threshold_,
        "best_epoch": det.best_epoch_,
        "window": det.window_,
        "history": [e.__dict__ for e in det.history_],
    }


@task(name="anomaly-shift")
def anomaly_shift(data: dict[str, str], trained: dict[str, Any], plot_path: str | None) -> dict[str, Any]:
    """Paper Eq. 10 measured for one series: distances of CAP's and CAPMix's synthetic anomalies to the
    real test anomalies and to normal windows, in the trained encoder's feature space (capmix.evaluation.shift)."""
    from capmix.detectors.registry import load_detector
    from capmix.evaluation.shift import anomaly_shift as measure
    from capmix.evaluation.shift import numbers, plot_shift_umap

    s = next(x for x in read_dataset(data["path"]) if x.name == trained["series"])
    r = measure(load_detector(trained["model_dir"]), s, keep_features=plot_path is not None)
    if plot_path is not None:
        plot_shift_umap(r, plot_path, title=f"{s.name}: anomaly shift (paper Fig. 7)")
    return {"series": s.name, "numbers": numbers(r), "plot": plot_path}


@task(name="evaluate")
def evaluate(data: dict[str, str], trained: dict[str, Any], eval_cfg: dict[str, Any], plots_dir: str | None):
    """Score one series' test period and compute every metric (both protocols, both granularities)."""
    s = next(x for x in read_dataset(data["path"]) if x.name == trained["series"])
    res, threshold, scores = evaluate_saved(
        s, Path(trained["model_dir"]).parent, EvaluateConfig.model_validate(eval_cfg), plots_dir
    )
    return {"result": res, "threshold": threshold, "scores": scores, "labels": s.test[1]}
