"""Pipeline stages as plain functions: what a DVC stage (through the CLI) and a Prefect task call.

load -> validate -> window -> inject -> revise -> train -> score -> threshold -> evaluate.
Nothing here knows about Prefect, MLflow or DVC; the stages take typed configs and paths and
return values, so both orchestrators wrap the very same code.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capmix.atomic import atomic_file, write_json
from capmix.data.canonical import Series, read_dataset
from capmix.detectors.base import BaseDetector
from capmix.detectors.registry import load_detector
from capmix.evaluation.evaluate import SeriesResult, aggregate, evaluate_series
from capmix.detectors.capmix.training import EpochLog


# the sections' models live with the other params models (capmix/params.py); re-exported here
from capmix.params import DatasetConfig, EvaluateConfig  # noqa: E402


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Atomic CSV write of a list of flat dicts (DVC plots read these)."""
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return Path(path)


# --------------------------------------------------------------------------- stages
def load_series(cfg: DatasetConfig) -> list[Series]:
    """Read the dataset in its canonical Parquet form (``capmix ingest`` writes it)."""
    series = read_dataset(cfg.path)
    return series[: cfg.subset] if cfg.subset else series


@dataclass
class TrainedSeries:
    series: str
    model_dir: Path
    detector: Any  #: any fitted detector (params ``detector``)

    def summary(self) -> dict[str, Any]:
        d = self.detector
        report = d.fit_report()
        history = getattr(d, "history_", None) or []  # per-epoch logs of the trained detectors
        return {
            "series": self.series,
            "threshold": d.threshold_,
            "best_epoch": report.get("best_epoch"),
            "epochs": report.get("epochs"),
            "final_val_auc": history[-1].val_auc if history else None,
            **{f"aug_{k}": v for k, v in (report.get("augmentation") or {}).items()},
        }


def train_series(
    series: Series,
    detector: Any,
    models_dir: str | Path,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> TrainedSeries:
    """Fit an unfitted ``detector`` (``capmix.build_detector``) on the training period of ``series``
    and save it under ``models_dir/<name>``."""
    x, y = series.train
    det = detector.fit(x, y, on_epoch=on_epoch)
    det.channels_ = series.channels  # saved with the model: scoring checks channels by name
    out = det.save(Path(models_dir) / series.name)
    return TrainedSeries(series.name, out, det)


def evaluate_one(
    detector: BaseDetector, series: Series, cfg: EvaluateConfig
) -> tuple[SeriesResult, np.ndarray]:
    """Score the test period and compute every metric; returns the result and the point scores."""
    x, y = series.test
    if y is None:
        raise ValueError(f"series {series.name} has no test labels; evaluation needs labelled test data")
    scores = detector.decision_function(x)
    window, stride = detector.segments  # e.g. CoAD is judged on the dataset's CAPMix segments
    res = evaluate_series(
        series.name,
        scores,
        y,
        detector.threshold_,
        window,
        stride,
        ucr_widen=cfg.ucr_widen,
    )
    return res, scores


def evaluate_saved(
    series: Series, models_dir: str | Path, cfg: EvaluateConfig, plots_dir: str | Path | None = None
) -> tuple[SeriesResult, float, np.ndarray]:
    """Load ``models_dir/<series>``, evaluate it on the test period, optionally plot.

    Returns the result, the model's threshold and the point scores.
    """
    from capmix.evaluation.plots import plot_series_scores

    det = load_detector(Path(models_dir) / series.name)
    res, scores = evaluate_one(det, series, cfg)
    if plots_dir is not None:
        plot_series_scores(
            series.name, series.test[0], scores, series.test[1], det.threshold_,
            Path(plots_dir) / f"scores_{series.name}.png",
        )
    return res, det.threshold_, scores


def write_evaluation(
    results: Sequence[SeriesResult],
    cfg: EvaluateConfig,
    out_dir: str | Path,
    scores: Sequence[np.ndarray] | None = None,
    labels: Sequence[np.ndarray] | None = None,
    thresholds: Sequence[float] | None = None,
    plots_dir: str | Path | None = None,
) -> dict[str, float]:
    """metrics.json (headline + all aggregates), per_series.csv and the pooled score histogram."""
    from capmix.evaluation.plots import plot_score_histograms

    if scores and labels and plots_dir is not None:
        plot_score_histograms(
            np.concatenate(scores), np.concatenate(labels), float(np.mean(thresholds or [0.5])),
            Path(plots_dir) / "score_hist.png",
        )
    metrics = summarise(results, cfg)
    # metrics.json: the headline (what `dvc metrics show/diff` prints); metrics_all.json: everything
    write_json({k: v for k, v in metrics.items() if "/" not in k}, Path(out_dir) / "metrics.json")
    write_json(metrics, Path(out_dir) / "metrics_all.json")
    write_csv([{"series": r.series, **r.flat()} for r in results], Path(out_dir) / "per_series.csv")
    return metrics


def summarise(results: Sequence[SeriesResult], cfg: EvaluateConfig) -> dict[str, float]:
    """Headline numbers (flat names, the configured granularity) first, then every aggregate."""
    agg = aggregate(results)
    g = cfg.granularity
    head = {
        f"{p}_rpa_f1": agg.get(f"{g}/{p}/rpa_f1_eq13", float("nan")) for p in ("validation", "oracle")
    }
    head["auc_pr"] = agg.get(f"{g}/auc_pr_mean", float("nan"))
    head["auc_roc"] = agg.get(f"{g}/auc_roc_mean", float("nan"))
    if "ucr/accuracy" in agg:
        head["ucr_accuracy"] = agg["ucr/accuracy"]
    return {**head, **agg}
