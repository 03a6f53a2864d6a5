"""Prefect tasks: each wraps one capmix stage function and adds retries, caching and logging.

Nothing is computed here that capmix does not already compute; the tasks only move
paths and small dicts between stages (large arrays go through files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from capmix.data.canonical import read_dataset, write_dataset
from capmix.modelfiles import sha256_file
from capmix.detectors.registry import build_detector
from capmix.pipeline import DatasetConfig, EvaluateConfig, evaluate_saved
from flows.errors import retry_unless_user_error

#: Re-runs skip a task whose inputs (paths, digests, params) and code are unchanged.
CACHED = INPUTS + TASK_SOURCE
#: I/O may fail for a moment (a busy file system); a user error (bad data or params) never retries.
IO_RETRIES = dict(retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_user_error)


@task(name="ingest", **IO_RETRIES)
def ingest(dataset: dict[str, Any], generate: dict[str, Any]) -> dict[str, str]:
    """Bring the configured dataset into its canonical Parquet form; returns its path and digest.

    ``dataset``, ``generate``: params sections (``Params.dataset/generate.model_dump()``)."""
    log = get_run_logger()
    cfg = DatasetConfig.model_validate(dataset)
    path = Path(cfg.path)
    if cfg.name == "default":
        if not path.exists():
            from capmix.data.synthetic import generate_dataset
            from capmix.params import GenerateParams

            generate_dataset(GenerateParams.model_validate(generate).generator(), path)
            log.info("generated the embedded default dataset at %s", path)
    elif cfg.name == "ucr":
        from capmix.data.loaders import load_ucr

        write_dataset(load_ucr(cfg.root, subset=cfg.subset), path, metadata={"name": "ucr"})
        log.info("read UCR from %s into %s", cfg.root, path)
    elif not path.exists():
        raise FileNotFoundError(
            f"dataset {cfg.name!r}: canonical file {path} not found; write it with capmix or point dataset.path at it"
        )
    return {"path": str(path), "digest": sha256_file(path)}


@task(name="validate", **IO_RETRIES)
def validate(data: dict[str, str], validate_cfg: dict[str, Any], window: int, channels: list[str] | None = None,
             mode: str = "train") -> dict[str, Any]:
    """Great Expectations suite on the canonical frame; raises (stopping the flow) on failure.

    ``validate_cfg``: params ``validate`` (``Params.validate.model_dump()``)."""
    from capmix.data.validation import validate_frame
    from capmix.params import ValidateParams

    import pandas as pd

    from capmix.data.canonical import RESERVED_COLUMNS

    # GX looks at the file as it is, before capmix's own reader could reject it without a report
    frame = pd.read_parquet(data["path"])
    n_channels = len([c for c in frame.columns if c not in RESERVED_COLUMNS])
    kind = "univariate" if n_channels == 1 else "multivariate"
    v = ValidateParams.model_validate(validate_cfg)
    cfg = v.config(kind=kind, channels=channels, window=window, require_labels=(mode == "train"), mode=mode)
    report = validate_frame(frame, cfg, v.out)
    report.raise_for_failures()
    log = get_run_logger()
    log.info("validation passed (%s): %s", kind, report.statistics)
    checked = dict(data)
    if report.imputed:
        # downstream stages train on what was validated: the imputed data, as its own file
        from capmix.data.canonical import from_frame

        path = Path(data["path"]).with_suffix(".imputed.parquet")
        write_dataset(from_frame(report.frame), path)
        checked = {"path": str(path), "digest": sha256_file(path)}
        log.warning("imputed %d NaN/inf values (%s); training on %s", report.imputed, cfg.impute, path)
    return {**checked, "validation": {"json": str(report.json_path), "docs": str(report.data_docs_path),
                                      "imputed": report.imputed}}


def detector_spec(det: Any, name: str) -> dict[str, Any]:
    """What the tasks pass around to rebuild an unfitted detector: its registry name and hyperparameters."""
    return {"name": name, "params": det.get_params()}


def _build(spec: dict[str, Any]) -> Any:
    return build_detector(spec["name"], **spec["params"])


def prepared_path(work_dir: str | Path, series: str, data: dict[str, str]) -> Path:
    """Where a series' prepared training data go: named by series and data digest."""
    return Path(work_dir) / f"{series}-{data['digest'][:12]}.npz"


@task(name="prepare", cache_policy=CACHED, persist_result=True)
def prepare(data: dict[str, str], series: str, spec: dict[str, Any], work_dir: str) -> dict[str, Any]:
    """The detector's training set for one series (CAPMix: CutAddPaste + DTW label revision); to an .npz file."""
    s = next(x for x in read_dataset(data["path"]) if x.name == series)
    prepared = _build(spec).prepare(*s.train)
    path = prepared.save(prepared_path(work_dir, series, data))
    report = prepared.report()
    get_run_logger().info("prepared %s: %s", series, report)
    dist = prepared.revision.distances.tolist() if prepared.revision is not None else []
    return {"series": series, "path": str(path), "report": report, "distances": dist}


def checkpoint_path(prepared: str | Path) -> Path:
    """The training checkpoint of one series: next to its prepared data, named after them."""
    return Path(prepared).with_suffix(".ckpt.pt")


@task(name="train", cache_policy=CACHED, persist_result=True)
def train(prepared: dict[str, Any], spec: dict[str, Any], models_dir: str) -> dict[str, Any]:
    """Train one series' detector from its prepared data; saved under models_dir/<series>."""
    log = get_run_logger()
    series = prepared["series"]

    def on_epoch(e):
        log.info("%s epoch %d: train_loss %.4f val_loss %.4f val_auc %.4f", series, e.epoch,
                 e.train_loss, e.val_loss, e.val_auc)

    det = _build(spec)
    # per-epoch checkpoint beside the prepared data: a killed run resumes where it stopped
    ckpt = checkpoint_path(prepared["path"])
    det.fit_prepared(det.load_prepared(prepared["path"]), on_epoch=on_epoch, checkpoint=ckpt)
    report = det.fit_report()
    if report.get("resumed_from_epoch") is not None:
        log.warning("%s: resumed from checkpoint %s at epoch %d", series, ckpt, report["resumed_from_epoch"])
    out = det.save(Path(models_dir) / series)
    ckpt.unlink(missing_ok=True)  # the model is saved: the checkpoint has served its purpose
    return {
        "series": series,
        "model_dir": str(out),
        "threshold": det.threshold_,
        "report": {k: v for k, v in report.items() if k != "augmentation"},
        "history": [e.__dict__ for e in getattr(det, "history_", None) or []],
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
