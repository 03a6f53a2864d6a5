"""Gaussian density of learned features: the ``window_score: gde`` option of CAPMix.

CutPaste (Li et al., 2021), from which CutAddPaste descends, scores a test sample not by its
self-supervised classifier's output but by how unlikely its learned representation is under a
Gaussian fitted to the representations of normal training data. Here the representation is the
TCN's penultimate layer (the projector's hidden units) and the score the squared Mahalanobis
distance to the normal training windows' mean: higher = more anomalous.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.covariance import LedoitWolf


@dataclass
class GaussianDensity:
    """Mean and precision of normal features; ``score`` gives squared Mahalanobis distances."""

    mean: np.ndarray  #: (D,)
    precision: np.ndarray  #: (D, D), symmetric positive definite

    @classmethod
    def fit(cls, features: np.ndarray) -> GaussianDensity:
        """Fit on normal features ``(N, D)`` with Ledoit-Wolf shrinkage, as CutPaste does.

        With a few hundred windows and hundreds of feature dimensions the sample covariance is
        singular; Ledoit-Wolf picks the shrinkage towards a scaled identity from the data itself,
        so short and long training series need no tuned ridge.
        """
        f = np.asarray(features, np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"need at least 2 normal feature vectors to fit a Gaussian, got shape {f.shape}")
        lw = LedoitWolf().fit(f)
        cov = lw.covariance_
        # a floor keeps the all-constant case (every unit dead on every window) invertible
        cov[np.diag_indices_from(cov)] += np.finfo(np.float32).eps * max(1.0, float(np.trace(cov)) / cov.shape[0])
        precision = np.linalg.inv(cov)
        return cls(mean=lw.location_.astype(np.float32), precision=((precision + precision.T) / 2).astype(np.float32))

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distance of each row of ``features`` (B, D) to the mean."""
        mean = torch.as_tensor(self.mean, device=features.device)
        precision = torch.as_tensor(self.precision, device=features.device)
        # float32 even under AMP autocast: float16 overflows on distances past 65504
        with torch.autocast(features.device.type, enabled=False):
            d = features.float() - mean
            return ((d @ precision) * d).sum(dim=1)
