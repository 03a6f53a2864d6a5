"""Plots people would rather look at than numbers: signal + score + threshold, score and DTW histograms."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI, servers, Prefect workers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from capmix.atomic import atomic_file  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> Path:
    """Write a PNG atomically and close the figure."""
    try:
        with atomic_file(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100)  # constrained layout instead of bbox_inches="tight": one draw, not two
    finally:
        plt.close(fig)
    return Path(path)


def _spans(labels: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], labels.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def plot_series_scores(
    name: str,
    values: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray | None,
    threshold: float,
    path: str | Path,
    max_channels: int = 4,
) -> Path:
    """The test signal (first channels), its anomaly score, the threshold and the true anomalies."""
    values = values.reshape(values.shape[0], -1)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 5), sharex=True, height_ratios=[2, 1], layout="constrained")
    t = np.arange(values.shape[0])
    for c in range(min(max_channels, values.shape[1])):
        ax1.plot(t, values[:, c], lw=0.6, label=f"ch{c}")
    ax2.plot(t, scores, lw=0.7, color="k", label="score")
    ax2.axhline(threshold, color="tab:red", ls="--", lw=1, label="threshold (validation)")
    if labels is not None:
        for a, b in _spans(labels):
            for ax in (ax1, ax2):
                ax.axvspan(a, b, color="tab:orange", alpha=0.3, lw=0)
    ax1.set_title(f"{name}: test period (orange = true anomalies)")
    ax2.set_ylabel("p(anomaly)")
    ax2.legend(loc="upper right", fontsize=8)
    ax2.set_xlabel("point")
    return _save(fig, path)


def plot_score_histograms(scores: np.ndarray, labels: np.ndarray, threshold: float, path: str | Path) -> Path:
    """Score distributions of normal and anomalous points (all series pooled)."""
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    bins = np.linspace(0, 1, 51)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, density=True, label="normal")
    if (labels == 1).any():
        ax.hist(scores[labels == 1], bins=bins, alpha=0.6, density=True, label="anomalous")
    ax.axvline(threshold, color="tab:red", ls="--", lw=1, label="mean threshold")
    ax.set_yscale("log")
    ax.set_xlabel("score")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_dtw_histogram(distances: np.ndarray, cutoff: float, path: str | Path) -> Path:
    """DTW distances of injected windows to the normal centre; left of the cutoff = soft label."""
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.hist(distances, bins=50, color="tab:blue", alpha=0.8)
    ax.axvline(cutoff, color="tab:red", ls="--", label="mu - gamma*sigma")
    ax.set_xlabel("DTW distance to normal centre")
    ax.set_ylabel("injected windows")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_training_curves(histories: dict[str, list[dict]], path: str | Path) -> Path:
    """Validation AUC and training loss per epoch, one line per series, in one figure."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
    for name, history in histories.items():
        ep = [h["epoch"] for h in history]
        ax1.plot(ep, [h["val_auc"] for h in history], label=name, lw=1)
        ax2.plot(ep, [h["train_loss"] for h in history], label=name, lw=1)
    ax1.set_title("validation AUC (real vs injected windows)")
    ax2.set_title("training loss")
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
    if len(histories) <= 10:
        ax1.legend(fontsize=7)
    return _save(fig, path)


def plot_study_lines(rows, path: str | Path, x_of, line_key: str, panels, xlabel: str, title: str,
                     logx: bool = False) -> Path:
    """One panel per metric, one line per ``line_key`` value, x from the study point (Fig. 5 style).

    The legend carries each line's mean over all x, as the paper's figure does.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), layout="constrained", squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for name in sorted({r[line_key] for r in rows}):
            pts = sorted((x_of(r["study"]), r.get(f"{key}/mean", np.nan), r.get(f"{key}/std", np.nan))
                         for r in rows if r[line_key] == name)
            x, y, e = (np.array(v, dtype=float) for v in zip(*pts))
            ax.errorbar(x, y, yerr=np.nan_to_num(e), marker="o", capsize=3,
                        label=f"{name} (mean {np.nanmean(y):.3f})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        if logx:
            ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def plot_sensitivity(rows, path: str | Path, title: str, point_of: Callable[[str], dict[str, float]],
                     key: str = "window/oracle/rpa_f1_eq13") -> Path:
    """RPA-F1 against alpha, one line per gamma, one panel per dataset (Fig. 8 style); ``point_of``
    reads the ``{gamma, alpha}`` of a row's ``study`` label."""
    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), layout="constrained", squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        pts = [(point_of(r["study"]), r.get(f"{key}/mean", np.nan)) for r in rows if r["dataset"] == ds]
        for g in sorted({p["gamma"] for p, _ in pts}):
            line = sorted((p["alpha"], v) for p, v in pts if p["gamma"] == g)
            ax.plot([a for a, _ in line], [v for _, v in line], marker="o", label=f"γ={g:g}")
        alphas = sorted({p["alpha"] for p, _ in pts})
        ax.set_xscale("log")
        ax.set_xticks(alphas, [f"{a:g}" for a in alphas])
        ax.minorticks_off()
        ax.set_xlabel("α (mixup Beta parameter)")
        ax.set_ylabel("RPA-F1 (oracle)")
        ax.set_title(ds)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def plot_ucr_accuracy(rows, path: str | Path, paper: dict[str, float] | None = None) -> Path:
    """UCR-protocol accuracy per method: the final model, the best epoch on test, the paper's number.

    ``rows`` are benchmark summary rows of the UCR dataset; ``paper`` maps method -> the paper's
    UCR RPA-F1 in % (one prediction per series, so it reads as an accuracy).
    """
    rows = [r for r in rows if np.isfinite(r.get("ucr/accuracy/mean", np.nan))]
    rows = sorted(rows, key=lambda r: r["ucr/accuracy/mean"])
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.4), layout="constrained")
    ax.barh(y, [100 * r["ucr/accuracy/mean"] for r in rows], height=0.6, color="tab:blue",
            label="deployable (no test labels)")
    best = [100 * r.get("ucr_best_epoch/accuracy/mean", np.nan) for r in rows]
    if np.isfinite(best).any():
        ax.scatter(best, y, marker="D", color="tab:orange", zorder=3,
                   label="epoch chosen on test labels (reference code)")
    if paper:
        pv = [paper.get(r["method"], np.nan) for r in rows]
        if np.isfinite(pv).any():
            ax.scatter(pv, y, marker="|", s=300, color="black", zorder=3, label="paper (Table III/IV)")
    ax.set_yticks(y, [f"{r['method']} ({r['n_series']})" for r in rows])
    ax.set_xlabel("UCR accuracy, % of series (archive rule: top location within [start-100, end+100])")
    ax.set_xlim(0, 100)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)
