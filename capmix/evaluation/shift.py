"""Anomaly shift, measured (paper section III-B, Eq. 1 and Eq. 10; Fig. 7 only draws it).

The paper claims ``Dist(D_real, D_syn_hat) < Dist(D_real, D_syn)``: after DTW label revision and
dual-space mixup (CAPMix) the synthetic anomalies sit closer to the real ones than CutAddPaste's
raw injections (CAP). :func:`anomaly_shift` measures both sides of that claim in the feature space
of one trained TCN encoder (the flattened block-3 output, i.e. what the classifier head sees), so
every distance is taken in the same space:

* **normal** / **real**: test-period windows without / with an anomalous point (Fig. 7's blue and
  red dots);
* **CAP**: the training-period CutAddPaste windows, each with weight 1 (hard labels, no mixup);
* **CAPMix**: the same injected windows with their revised labels (1 or 1/gamma) together with the
  real training windows (label 0), mixed the way training mixes them: a partner drawn at random,
  ``lam ~ Beta(alpha, alpha)``, the mixing layer drawn from ``mixup_layers``; a sample mixed at
  layer 0 is embedded from the mixed input, one mixed at layer l >= 1 is the mix of the two
  hidden states at block l carried on through the remaining blocks. Each mixed sample enters the
  synthetic-anomaly distribution with weight = its mixed (soft) label, i.e. D_syn_hat is the
  label-weighted distribution the classifier is told is anomalous.

Distances: the energy distance (``sqrt(2E|X-Y| - E|X-X'| - E|Y-Y'|)``, scipy's definition, with
sample weights) and the squared MMD with an RBF kernel, bandwidth by the median heuristic on the
pooled sample; both are V-statistics (biased: the i = j terms are included), which keeps them
well defined for weighted samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

#: at most this many windows per distribution (the distances are O(n^2) in memory and time)
MAX_PER_SET = 1500


# ============================================================================== distances
def _weights(w: np.ndarray | None, n: int) -> np.ndarray:
    w = np.full(n, 1.0 / n) if w is None else np.asarray(w, dtype=np.float64)
    if w.shape != (n,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {n} non-negative numbers with a positive sum")
    return w / w.sum()


def _as_2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def _cdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import cdist

    return cdist(a, b)


def energy_distance(a: np.ndarray, b: np.ndarray, wa: np.ndarray | None = None,
                    wb: np.ndarray | None = None) -> float:
    """Energy distance ``sqrt(2E|X-Y| - E|X-X'| - E|Y-Y'|)`` of two (weighted) samples ``(n, d)``.

    The empirical (V-statistic) form; equals ``scipy.stats.energy_distance`` for 1-D samples.
    """
    a, b = _as_2d(a), _as_2d(b)
    pa, pb = _weights(wa, a.shape[0]), _weights(wb, b.shape[0])
    e = 2 * pa @ _cdist(a, b) @ pb - pa @ _cdist(a, a) @ pa - pb @ _cdist(b, b) @ pb
    return float(np.sqrt(max(e, 0.0)))


def median_bandwidth(a: np.ndarray, b: np.ndarray) -> float:
    """Median of the pairwise distances of the pooled sample (the median heuristic)."""
    z = np.concatenate([_as_2d(a), _as_2d(b)])
    d = _cdist(z, z)[np.triu_indices(z.shape[0], 1)]
    med = float(np.median(d)) if d.size else 1.0
    return med if med > 0 else 1.0


def mmd_rbf(a: np.ndarray, b: np.ndarray, bandwidth: float | None = None,
            wa: np.ndarray | None = None, wb: np.ndarray | None = None) -> float:
    """Squared MMD, biased (V-statistic), kernel ``exp(-|x-y|^2 / (2 bandwidth^2))``.

    ``bandwidth`` None = the median heuristic (:func:`median_bandwidth`).
    """
    a, b = _as_2d(a), _as_2d(b)
    s = median_bandwidth(a, b) if bandwidth is None else float(bandwidth)
    pa, pb = _weights(wa, a.shape[0]), _weights(wb, b.shape[0])

    def k(x, y):
        return np.exp(-(_cdist(x, y) ** 2) / (2 * s * s))

    return float(pa @ k(a, a) @ pa + pb @ k(b, b) @ pb - 2 * pa @ k(a, b) @ pb)


# ============================================================================== embeddings
def _to_hidden(model: Any, x: np.ndarray) -> torch.Tensor:
    """Windows (n, W, C) -> the network's (n, C, 1, W) input layout."""
    dev = next(model.parameters()).device
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev).transpose(1, 2).unsqueeze(2)


def _run_blocks(model: Any, h: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    for block in list(model.blocks)[start:stop]:
        h = block(h)
    return h


def _flat(h: torch.Tensor) -> np.ndarray:
    return h.squeeze(2).transpose(1, 2).flatten(1).cpu().numpy()  # time-major, as the head sees it


def embed(model: Any, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Encoder features (flattened block-3 output) of windows ``(n, W, C)``, evaluation mode."""
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, x.shape[0], batch):
            out.append(_flat(_run_blocks(model, _to_hidden(model, x[s : s + batch]), 0, 3)))
    return np.concatenate(out) if out else np.zeros((0, 0))


def embed_mixed(model: Any, xi: np.ndarray, xj: np.ndarray, lam: np.ndarray, layers: np.ndarray,
                batch: int = 1024) -> np.ndarray:
    """Features of mixup samples: pair (xi, xj) mixed with weight ``lam`` at layer ``layers``
    (0 = input space, l = output of block l), then carried through the remaining blocks."""
    model.eval()
    out = np.zeros((xi.shape[0], 0))
    parts, order = [], []
    with torch.inference_mode():
        for layer in np.unique(layers):
            idx = np.flatnonzero(layers == layer)
            for s in range(0, idx.size, batch):
                sel = idx[s : s + batch]
                hi = _run_blocks(model, _to_hidden(model, xi[sel]), 0, int(layer))
                hj = _run_blocks(model, _to_hidden(model, xj[sel]), 0, int(layer))
                lm = torch.as_tensor(lam[sel], dtype=hi.dtype, device=hi.device).view(-1, 1, 1, 1)
                parts.append(_flat(_run_blocks(model, lm * hi + (1 - lm) * hj, int(layer), 3)))
                order.append(sel)
    if parts:
        out = np.empty((xi.shape[0], parts[0].shape[1]))
        out[np.concatenate(order)] = np.concatenate(parts)
    return out


# ============================================================================== the measurement
def _cap(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= limit else np.sort(rng.choice(n, limit, replace=False))


def synthetic_sets(detector: Any, series: Any, rng: np.random.Generator,
                   limit: int = MAX_PER_SET) -> dict[str, Any]:
    """The training-period synthetic anomalies as CAP and as CAPMix see them (windows, not features).

    Augmentation is re-run from the detector's config with the same seed: the injected windows are
    the ones its training used. Training labels are left out so that only injected windows count
    as synthetic anomalies.
    """
    from capmix.detectors.capmix.detector import CAPMixDetector

    cfg = detector.config
    x_train = series.train[0]
    cap = CAPMixDetector(cfg.replace(variant="cap")).prepare(x_train)
    rev = CAPMixDetector(cfg.replace(variant="capmix")).prepare(x_train)
    n_inj_val = rev.x_val.shape[0] - rev.n_val_real
    n_inj_train = rev.n_injected - n_inj_val
    n_real = rev.x_train.shape[0] - n_inj_train
    cap_x = cap.x_train[n_real:]
    # CAPMix: revised labels on the injected windows, real windows at 0, then mixup as in training
    x_all, y_all = rev.x_train, rev.y_train.astype(np.float64)
    n = x_all.shape[0]
    partner = rng.integers(0, n, n)
    lam = rng.beta(cfg.alpha, cfg.alpha, n)
    layers = np.asarray(cfg.mixup_layers or (0,))[rng.integers(0, max(1, len(cfg.mixup_layers)), n)]
    y_mix = lam * y_all + (1 - lam) * y_all[partner]
    keep = np.flatnonzero(y_mix > 0)
    keep = keep[_cap(keep.size, limit, rng)]
    ci = _cap(cap_x.shape[0], limit, rng)
    return {
        "cap_x": cap_x[ci],
        "mix_i": x_all[keep], "mix_j": x_all[partner[keep]], "mix_lam": lam[keep], "mix_layer": layers[keep],
        "mix_weight": y_mix[keep],
        "revised_labels": rev.y_train[n_real:],
        "n_injected": int(n_inj_train),
    }


def real_sets(detector: Any, series: Any, rng: np.random.Generator,
              limit: int = MAX_PER_SET) -> tuple[np.ndarray, np.ndarray]:
    """Test-period windows (the detector's W and s, its scaler) without / with an anomalous point."""
    from capmix.windows import sliding_windows

    x, y = series.test
    if y is None:
        raise ValueError(f"series {series.name} has no test labels: the real anomalies are unknown")
    cfg = detector.config
    w = sliding_windows(detector.scaler_.transform(x), cfg.window, cfg.stride)
    starts = np.arange(w.shape[0]) * cfg.stride
    csum = np.concatenate([[0], np.cumsum(np.asarray(y) != 0)])
    anom = csum[starts + cfg.window] - csum[starts] > 0
    normal, real = np.flatnonzero(~anom), np.flatnonzero(anom)
    return w[normal[_cap(normal.size, limit, rng)]], w[real[_cap(real.size, limit, rng)]]


def anomaly_shift(detector: Any, series: Any, seed: int = 0, limit: int = MAX_PER_SET,
                  keep_features: bool = False) -> dict[str, Any]:
    """Distances between the synthetic anomalies (CAP, CAPMix) and the real anomalies / normal windows.

    ``detector`` is a fitted ``CAPMixDetector`` (its encoder defines the feature space). Returns a
    flat dict of numbers (``energy/cap_real``, ``mmd/capmix_normal``, ...), the set sizes,
    ``eq10_energy`` / ``eq10_mmd`` (True when CAPMix's synthetic anomalies are closer to the real
    ones than CAP's) and, with ``keep_features``, the features under ``features`` for plotting.
    """
    rng = np.random.default_rng(seed)
    model = detector.model_
    normal_w, real_w = real_sets(detector, series, rng, limit)
    if real_w.shape[0] < 2:
        raise ValueError(f"series {series.name}: fewer than two anomalous test windows; nothing to compare")
    syn = synthetic_sets(detector, series, rng, limit)
    f = {
        "normal": embed(model, normal_w),
        "real": embed(model, real_w),
        "cap": embed(model, syn["cap_x"]),
        "capmix": embed_mixed(model, syn["mix_i"], syn["mix_j"], syn["mix_lam"], syn["mix_layer"]),
    }
    w = {"capmix": syn["mix_weight"]}
    out: dict[str, Any] = {"series": series.name, "n_normal": len(f["normal"]), "n_real": len(f["real"]),
                           "n_cap": len(f["cap"]), "n_capmix": len(f["capmix"]),
                           "n_soft": int((syn["revised_labels"] < 1).sum()),
                           "capmix_mean_weight": float(np.mean(w["capmix"]))}
    # one bandwidth for every MMD of this series, so the MMD values are comparable with each other
    pool = np.concatenate([f["normal"], f["real"]])
    bw = median_bandwidth(pool[: min(len(pool), 2000)], pool[:0])
    out["mmd_bandwidth"] = bw
    for syn_name in ("cap", "capmix"):
        for ref in ("real", "normal"):
            out[f"energy/{syn_name}_{ref}"] = energy_distance(f[syn_name], f[ref], w.get(syn_name))
            out[f"mmd/{syn_name}_{ref}"] = mmd_rbf(f[syn_name], f[ref], bw, w.get(syn_name))
    out["energy/normal_real"] = energy_distance(f["normal"], f["real"])
    out["mmd/normal_real"] = mmd_rbf(f["normal"], f["real"], bw)
    out["eq10_energy"] = out["energy/capmix_real"] < out["energy/cap_real"]
    out["eq10_mmd"] = out["mmd/capmix_real"] < out["mmd/cap_real"]
    if keep_features:
        out["features"] = f
        out["weights"] = w
    return out


def numbers(result: dict[str, Any]) -> dict[str, float]:
    """The numeric part of an :func:`anomaly_shift` result (for CSV, JSON and MLflow)."""
    return {k: float(v) for k, v in result.items() if isinstance(v, (int, float, bool, np.floating))}


# ============================================================================== the picture
def plot_shift_umap(result: dict[str, Any], path: str | Path, title: str = "", seed: int = 0,
                    max_points: int = 600) -> Path:
    """UMAP of normal / real-anomalous / synthetic windows, CAP and CAPMix side by side (Fig. 7).

    One UMAP is fitted on all four sets together, so both panels share the same map; CAPMix's
    mixed samples are drawn with opacity proportional to their (soft) label.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import umap

    from capmix.atomic import atomic_file

    f, w = result["features"], result["weights"]
    rng = np.random.default_rng(seed)
    sel = {k: _cap(len(v), max_points, rng) for k, v in f.items()}
    names = ("normal", "real", "cap", "capmix")
    stacked = np.concatenate([f[k][sel[k]] for k in names])
    emb = umap.UMAP(n_components=2, random_state=seed, n_neighbors=15, min_dist=0.1).fit_transform(stacked)
    bounds = np.cumsum([0] + [len(sel[k]) for k in names])
    xy = {k: emb[bounds[i] : bounds[i + 1]] for i, k in enumerate(names)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharex=True, sharey=True, layout="constrained")
    for ax, syn, label in ((axes[0], "cap", "CAP (CutAddPaste)"), (axes[1], "capmix", "CAPMix (revised + mixup)")):
        ax.scatter(*xy["normal"].T, s=6, c="tab:blue", alpha=0.4, label="normal (test)")
        ax.scatter(*xy["real"].T, s=10, c="tab:red", alpha=0.7, label="anomalous (test)")
        if syn == "capmix":
            a = np.clip(w["capmix"][sel["capmix"]], 0.05, 1.0)
            colors = np.zeros((len(a), 4))
            colors[:] = matplotlib.colors.to_rgba("tab:orange")
            colors[:, 3] = 0.8 * a
            ax.scatter(*xy[syn].T, s=14, c=colors, marker="*", label="synthetic (weight = soft label)")
        else:
            ax.scatter(*xy[syn].T, s=10, c="tab:purple", alpha=0.6, marker="x", label="synthetic")
        e = result[f"energy/{syn}_real"]
        m = result[f"mmd/{syn}_real"]
        ax.set_title(f"{label}\nenergy to real {e:.3f}, MMD² to real {m:.4f}", fontsize=10)
        leg = ax.legend(fontsize=8, loc="best", markerscale=1.5)
        for h in leg.legend_handles:  # the CAPMix marker's opacity is its first sample's weight
            h.set_alpha(1.0)
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
