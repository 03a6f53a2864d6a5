"""Label revision by DTW distance to the normal centre (METHOD.md section 3, paper Eq. 5-6)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capmix.detectors.capmix.dtw import dtw_to_reference


@dataclass(frozen=True)
class Revision:
    """Revised labels of the injected windows and what produced them."""

    labels: np.ndarray  #: float32, 1 or 1/gamma
    distances: np.ndarray  #: DTW distance of each injected window to the centre
    mu: float
    sigma: float
    cutoff: float  #: mu - gamma * sigma; distances below it get the soft label

    @property
    def n_soft(self) -> int:
        return int((self.labels < 1).sum())


def normal_centre(windows: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """Element-wise mean of the real windows whose window label is 0 (all windows if none is 0)."""
    if labels is not None and (labels == 0).any():
        windows = windows[labels == 0]
    return windows.mean(axis=0, dtype=np.float64)


def soft_labels(distances: np.ndarray, gamma: float) -> tuple[np.ndarray, float, float, float]:
    """The revision rule: ``1/gamma`` where ``d < mu - gamma*sigma`` (near-normal tail), else 1."""
    if gamma <= 1:
        raise ValueError(f"gamma must be > 1 for 1/gamma to be a soft label, got {gamma}")
    mu = float(distances.mean()) if distances.size else 0.0
    sigma = float(distances.std()) if distances.size else 0.0
    cutoff = mu - gamma * sigma
    labels = np.where(distances < cutoff, 1.0 / gamma, 1.0).astype(np.float32)
    return labels, mu, sigma, cutoff


def revise(
    injected: np.ndarray, centre: np.ndarray, gamma: float, band: int | None = None
) -> Revision:
    """DTW every injected window to the normal centre and give near-normal ones a soft label."""
    distances = dtw_to_reference(injected, centre, band=band)
    labels, mu, sigma, cutoff = soft_labels(distances, gamma)
    return Revision(labels, distances, mu, sigma, cutoff)
