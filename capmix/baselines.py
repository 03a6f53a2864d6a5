"""Reference detectors under the same interface as ``CAPMixDetector`` (fit / decision_function).

They exist to put CAPMix's numbers in context: the random scorer (RAS in the paper) is the
floor every detector must clear, and Isolation Forest over windows is the classic baseline.
Model code comes from scikit-learn; only the windowing glue lives here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest

from capmix.detector import as_series
from capmix.windows import StandardScaler, point_scores, sliding_windows


class RandomScorer:
    """Uniform random point scores (seeded): the paper's RAS floor."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, X: Any, y: Any | None = None) -> RandomScorer:
        self.n_channels_ = as_series(X).shape[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        return np.random.default_rng(self.seed).random(as_series(X).shape[0])


class WindowIForest:
    """Isolation Forest (scikit-learn) on flattened standardised windows."""

    def __init__(self, window: int = 64, stride: int = 16, n_estimators: int = 100, seed: int = 0):
        self.window = window
        self.stride = stride
        self.n_estimators = n_estimators
        self.seed = seed

    def _flat(self, X: np.ndarray) -> np.ndarray:
        w = sliding_windows(self.scaler_.transform(X), self.window, self.stride)
        return w.reshape(w.shape[0], -1)

    def fit(self, X: Any, y: Any | None = None) -> WindowIForest:
        X = as_series(X)
        self.scaler_ = StandardScaler().fit(X)
        self.model_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(self._flat(X))
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        X = as_series(X)
        # sklearn: higher score_samples = more normal; negate so higher = more anomalous
        s = -self.model_.score_samples(self._flat(X))
        return point_scores(s, X.shape[0], self.window, self.stride)
