"""Pipeline stages as plain functions: what a DVC stage (through the CLI) and a Prefect task call.

load -> validate -> window -> inject -> revise -> train -> score -> threshold -> evaluate.
Nothing here knows about Prefect, MLflow or DVC; the stages take typed configs and paths and
return values, so both orchestrators wrap the very same code.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from capmix.atomic import atomic_file
from capmix.config import DetectorConfig
from capmix.data.canonical import Series, read_dataset
from capmix.detectors.capmix.detector import CAPMixDetector
from capmix.detectors.registry import eval_segments, load_detector, make_detector
from capmix.evaluation.evaluate import SeriesResult, aggregate, evaluate_series
from capmix.detectors.capmix.training import EpochLog


class DatasetConfig(BaseModel):
    """Which data the pipeline runs on (params.yaml ``dataset``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = "default"
    path: str = "data/default/series.parquet"
    root: str = "../shared/datasets"
    subset: int | None = Field(None, ge=1)


class EvaluateConfig(BaseModel):
    """params.yaml ``evaluate``."""

    model_config = ConfigDict(extra="forbid")
    granularity: str = Field("window", pattern="^(window|point)$")
    protocols: list[str] = ["validation", "oracle"]
    ucr_widen: int | None = Field(None, ge=0, description="set: also report the UCR protocol")
    max_plots: int = Field(4, ge=0)


def write_json(obj: Any, path: str | Path) -> Path:
    """Atomic JSON write: readers never see half a file."""
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=float)
        f.write("\n")
    return Path(path)


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
    detector: Any  #: a CAPMixDetector or a CoADDetector (params ``detector``)

    def summary(self) -> dict[str, Any]:
        d = self.detector
        last = d.history_[-1] if d.history_ else None
        return {
            "series": self.series,
            "threshold": d.threshold_,
            "best_epoch": d.best_epoch_,
            "epochs": len(d.history_),
            "final_val_auc": last.val_auc if last else None,
            **{f"aug_{k}": v for k, v in getattr(d, "augmentation_", {}).items()},
        }


def train_series(
    series: Series,
    cfg: DetectorConfig | Any,
    models_dir: str | Path,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> TrainedSeries:
    """Fit one detector on the training period of ``series`` and save it under ``models_dir/<name>``.

    ``cfg`` picks the detector: a ``DetectorConfig`` (CAPMix) or a ``CoADConfig`` (CoAD).
    """
    x, y = series.train
    det = make_detector(cfg).fit(x, y, on_epoch=on_epoch)
    det.channels_ = series.channels  # saved with the model: scoring checks channels by name
    out = det.save(Path(models_dir) / series.name)
    return TrainedSeries(series.name, out, det)


def score_series(detector: CAPMixDetector, series: Series) -> np.ndarray:
    """Point scores of the test period."""
    return detector.decision_function(series.test[0])


def evaluate_one(
    detector: CAPMixDetector, series: Series, cfg: EvaluateConfig
) -> tuple[SeriesResult, np.ndarray]:
    """Score the test period and compute every metric; returns the result and the point scores."""
    x, y = series.test
    if y is None:
        raise ValueError(f"series {series.name} has no test labels; evaluation needs labelled test data")
    scores = detector.decision_function(x)
    window, stride = eval_segments(detector)  # CoAD is judged on the dataset's CAPMix segments
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
