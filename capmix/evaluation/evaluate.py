"""Evaluate point scores of one series and aggregate a dataset (METHOD.md sections 6-7).

Every series is scored under both threshold protocols (``validation``: the model's stored
threshold, deployable; ``oracle``: the paper's best-tau sweep on test labels) and both
granularities (``window``: one label per stride segment, as in the paper; ``point``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, field

import numpy as np

from capmix.evaluation.metrics import Counts, EventCounts, auc_scores, micro_prf, n_events, score_counts, weighted_f1
from capmix.evaluation.thresholds import UCRResult, oracle_threshold, ucr_archive_hit, ucr_protocol
from capmix.windows import n_windows, point_scores, window_labels

KINDS = ("rpa", "pa", "pw")


@dataclass
class SeriesResult:
    """All metrics of one series; ``flat()`` gives MLflow/DVC-friendly names."""

    series: str
    n_events: dict[str, int] = field(default_factory=dict)  # per granularity
    counts: dict[str, EventCounts] = field(default_factory=dict)  # "granularity/protocol"
    oracle_tau: dict[str, float] = field(default_factory=dict)
    auc: dict[str, tuple[float, float]] = field(default_factory=dict)  # granularity -> (pr, roc)
    #: the UCR archive's rule (the headline); the reference code's looser rule and its RPA-F1 beside it
    ucr_hit: bool | None = None
    ucr_ref_hit: bool | None = None
    ucr_rpa_f1: float | None = None
    #: UCR protocol at the epoch whose test prediction scores best: the model selection of the
    #: authors' reference code (it picks the epoch with the test labels; not deployable)
    ucr_epoch_hit: bool | None = None
    ucr_epoch_ref_hit: bool | None = None
    ucr_epoch_rpa_f1: float | None = None
    ucr_epoch: int | None = None

    def flat(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, counts in self.counts.items():
            for kind, (p, r, f1) in counts.scores().items():
                out[f"{key}/{kind}_precision"] = p
                out[f"{key}/{kind}_recall"] = r
                out[f"{key}/{kind}_f1"] = f1
        for g, (pr, roc) in self.auc.items():
            out[f"{g}/auc_pr"] = pr
            out[f"{g}/auc_roc"] = roc
        for prefix, hit, ref, f1 in (("ucr", self.ucr_hit, self.ucr_ref_hit, self.ucr_rpa_f1),
                                     ("ucr_best_epoch", self.ucr_epoch_hit, self.ucr_epoch_ref_hit,
                                      self.ucr_epoch_rpa_f1)):
            if hit is not None:
                out[f"{prefix}/hit"] = float(hit)
                out[f"{prefix}/hit_reference_rule"] = float(bool(ref))
                out[f"{prefix}/rpa_f1"] = float(f1 or 0.0)
        return out

    def to_dict(self) -> dict:
        """JSON-ready form (counts kept, so results of many runs can be re-aggregated later)."""
        return {
            "series": self.series,
            "n_events": dict(self.n_events),
            "counts": {k: {kind: list(astuple(c.get(kind))) for kind in KINDS} for k, c in self.counts.items()},
            "oracle_tau": dict(self.oracle_tau),
            "auc": {g: list(v) for g, v in self.auc.items()},
            "ucr_hit": self.ucr_hit,
            "ucr_ref_hit": self.ucr_ref_hit,
            "ucr_rpa_f1": self.ucr_rpa_f1,
            "ucr_epoch_hit": self.ucr_epoch_hit,
            "ucr_epoch_ref_hit": self.ucr_epoch_ref_hit,
            "ucr_epoch_rpa_f1": self.ucr_epoch_rpa_f1,
            "ucr_epoch": self.ucr_epoch,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SeriesResult:
        counts = {k: EventCounts(**{kind: Counts(*v[kind]) for kind in KINDS}) for k, v in d["counts"].items()}
        return cls(
            series=d["series"],
            n_events={k: int(v) for k, v in d["n_events"].items()},
            counts=counts,
            oracle_tau={k: float(v) for k, v in d["oracle_tau"].items()},
            auc={g: (float(v[0]), float(v[1])) for g, v in d["auc"].items()},
            ucr_hit=d.get("ucr_hit"),
            ucr_ref_hit=d.get("ucr_ref_hit"),
            ucr_rpa_f1=d.get("ucr_rpa_f1"),
            ucr_epoch_hit=d.get("ucr_epoch_hit"),
            ucr_epoch_ref_hit=d.get("ucr_epoch_ref_hit"),
            ucr_epoch_rpa_f1=d.get("ucr_epoch_rpa_f1"),
            ucr_epoch=d.get("ucr_epoch"),
        )


def evaluate_series(
    name: str,
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    window: int,
    stride: int,
    ucr_widen: int | None = None,
    epoch_window_scores: Sequence[np.ndarray] | np.ndarray | None = None,
) -> SeriesResult:
    """Metrics of one series from its point scores (as ``decision_function`` returns them).

    ``threshold`` is the model's validation-protocol threshold in raw score units.
    ``ucr_widen`` (points) turns on the UCR protocols (one anomaly per series): the archive's rule on
    the point scores (the headline) and the reference code's rule, which widens labels by ``ucr_widen``.
    ``epoch_window_scores`` (epochs x windows, the test windows scored after each training epoch)
    adds the UCR protocol at the best epoch on the test labels (:func:`ucr_best_epoch`).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape:
        raise ValueError(f"{name}: {scores.shape[0]} scores but {labels.shape[0]} labels")
    n = n_windows(scores.shape[0], window, stride)
    # one score and one label per stride segment: window i's score sits at point i*stride
    views = {
        "window": (scores[np.arange(n) * stride], window_labels(labels, window, stride)),
        "point": (scores, labels.astype(np.int8)),
    }
    res = SeriesResult(series=name)
    for g, (s, y) in views.items():
        res.n_events[g] = n_events(y)
        res.auc[g] = auc_scores(y, s)
        res.counts[f"{g}/validation"] = score_counts(y, (s > threshold).astype(np.int8))
        oracle = oracle_threshold(s, y, metric="rpa")
        res.counts[f"{g}/oracle"] = score_counts(y, oracle.predictions)
        res.oracle_tau[g] = oracle.tau
    if ucr_widen is not None:
        ucr = ucr_protocol(views["window"][0], labels, window, stride, widen=ucr_widen)
        res.ucr_hit = ucr_archive_hit(scores, labels).hit
        res.ucr_ref_hit, res.ucr_rpa_f1 = ucr.hit, ucr.rpa_f1
        if epoch_window_scores is not None and len(epoch_window_scores):
            epoch, best = ucr_best_epoch(epoch_window_scores, labels, window, stride, ucr_widen)
            best_points = point_scores(np.asarray(epoch_window_scores[epoch - 1]), len(labels), window, stride)
            res.ucr_epoch, res.ucr_epoch_ref_hit, res.ucr_epoch_rpa_f1 = epoch, best.hit, best.rpa_f1
            res.ucr_epoch_hit = ucr_archive_hit(best_points, labels).hit
    return res


def ucr_best_epoch(epoch_window_scores: Sequence[np.ndarray] | np.ndarray, labels: np.ndarray, window: int,
                   stride: int, widen: int) -> tuple[int, UCRResult]:
    """The UCR protocol of every epoch's test scores; the first epoch with the best RPA-F1 wins.

    This is how the authors' reference code selects its UCR model (early stopping on the test
    RPA-F1 of the one-anomaly prediction), so its accuracy is what the paper's UCR column
    reports. It chooses with the test labels: an upper bound, like the oracle threshold.
    Returns the 1-based epoch and its result.
    """
    best_epoch, best = 0, None
    for i, s in enumerate(epoch_window_scores, start=1):
        r = ucr_protocol(s, labels, window, stride, widen=widen)
        if best is None or r.rpa_f1 > best.rpa_f1:
            best_epoch, best = i, r
    if best is None:
        raise ValueError("epoch_window_scores is empty: no epoch to choose from")
    return best_epoch, best


def aggregate(results: Sequence[SeriesResult]) -> dict[str, float]:
    """Dataset-level numbers: paper Eq. 13 (event-weighted F1) and micro F1 from summed counts."""
    out: dict[str, float] = {"n_series": float(len(results))}
    if not results:
        return out
    for key in results[0].counts:
        g = key.split("/")[0]
        counts = [r.counts[key] for r in results]
        events = [r.n_events[g] for r in results]
        for kind in KINDS:
            f1s = [c.get(kind).prf()[2] for c in counts]
            out[f"{key}/{kind}_f1_eq13"] = weighted_f1(f1s, events)
            p, r, f1 = micro_prf(counts, kind)
            out[f"{key}/{kind}_f1_micro"] = f1
            out[f"{key}/{kind}_precision_micro"] = p
            out[f"{key}/{kind}_recall_micro"] = r
    for g in results[0].auc:
        for i, name in enumerate(("auc_pr", "auc_roc")):
            vals = np.array([r.auc[g][i] for r in results], dtype=np.float64)
            out[f"{g}/{name}_mean"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    ucr = [r for r in results if r.ucr_hit is not None]
    if ucr:
        out["ucr/accuracy"] = float(np.mean([r.ucr_hit for r in ucr]))
        out["ucr/accuracy_reference_rule"] = float(np.mean([bool(r.ucr_ref_hit) for r in ucr]))
        out["ucr/rpa_f1_mean"] = float(np.mean([r.ucr_rpa_f1 for r in ucr]))
    best = [r for r in results if r.ucr_epoch_hit is not None]
    if best:
        out["ucr_best_epoch/accuracy"] = float(np.mean([r.ucr_epoch_hit for r in best]))
        out["ucr_best_epoch/accuracy_reference_rule"] = float(np.mean([bool(r.ucr_epoch_ref_hit) for r in best]))
        out["ucr_best_epoch/rpa_f1_mean"] = float(np.mean([r.ucr_epoch_rpa_f1 for r in best]))
    return out
