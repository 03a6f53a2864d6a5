"""Probe anomalies: known anomalies placed into an unlabelled slice, so two detectors can be compared on it.

When the newest day has no labels, the nightly flow still has to decide whether the challenger is
better than the champion. It places a few anomalies of simple, generic kinds (spike, level shift,
noise burst, flat line) at random places of the newest slice, labels exactly those points, and
compares the two on how well they rank them (the same metric as with real labels). The kinds are
deliberately not CutAddPaste's, so a CAPMix model is not judged on the anomalies it was trained on.
What it measures is sensitivity to clear deviations on the current data; it cannot tell which
detector finds the *real* anomalies of the day (they stay in the slice, labelled 0). The criterion
and its agreement with real labels are measured in docs/results.md ("Nightly retraining"): weak
(56 % of decisions as real labels would make them), so a labelled day always takes precedence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PROBE_KINDS", "ProbeConfig", "inject_probe"]

PROBE_KINDS = ("spike", "level", "noise", "flat")


@dataclass(frozen=True)
class ProbeConfig:
    """How many probe anomalies per series, how long, how strong (in robust stds of the training part)."""

    n: int = 4
    min_length: int = 8
    max_length: int = 48
    strength: tuple[float, float] = (3.0, 6.0)
    seed: int = 0


def _robust_std(x: np.ndarray) -> np.ndarray:
    med = np.median(x, axis=0)
    mad = np.median(np.abs(x - med), axis=0) * 1.4826
    return np.where(mad > 1e-12, mad, np.maximum(x.std(axis=0), 1e-12))


def inject_probe(values: np.ndarray, reference: np.ndarray, cfg: ProbeConfig,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``values`` ``(T, C)`` with ``cfg.n`` probe anomalies placed without overlap; returns (values, labels).

    ``reference`` (the training part) sets each channel's scale. Segments keep a gap of one segment
    length between them; fewer fit into a short slice, never overlapping ones."""
    x = np.array(values, dtype=np.float64, copy=True)
    if x.ndim == 1:
        x = x[:, None]
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    scale = _robust_std(ref)
    t, c = x.shape
    labels = np.zeros(t, dtype=np.int8)
    taken = np.zeros(t, dtype=bool)
    for i in range(cfg.n):
        kind = PROBE_KINDS[i % len(PROBE_KINDS)]
        length = 1 + int(rng.integers(0, 3)) if kind == "spike" else int(rng.integers(cfg.min_length, cfg.max_length + 1))
        length = min(length, max(t // (2 * cfg.n), 1))
        # a start is free when nothing is taken in [s - length, s + 2 * length): one pass of cumulative sums
        used = np.concatenate([[0], np.cumsum(taken)])
        starts = np.arange(0, t - length + 1)
        free = starts[used[np.minimum(starts + 2 * length, t)] == used[np.maximum(starts - length, 0)]]
        if not free.size:
            break
        s = int(rng.choice(free))
        seg = slice(s, s + length)
        chans = rng.choice(c, size=max(1, int(rng.integers(1, c + 1)) // 2 or 1), replace=False)
        k = float(rng.uniform(*cfg.strength)) * rng.choice([-1.0, 1.0])
        for ch in chans:
            if kind in ("spike", "level"):
                x[seg, ch] += k * scale[ch]
            elif kind == "noise":
                x[seg, ch] += rng.normal(0.0, abs(k) * scale[ch] / 2, length)
            else:  # flat: the signal stops moving
                x[seg, ch] = x[s, ch]
        labels[seg] = 1
        taken[seg] = True
    return (x if values.ndim > 1 else x[:, 0]), labels
