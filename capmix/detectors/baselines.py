"""Reference detectors under the same interface as ``CAPMixDetector``.

``fit(X, y=None)`` returns self, ``decision_function(X)`` gives one score per point (higher =
more anomalous) and ``threshold_`` is the deployable (validation-protocol) threshold in the
same units. The models themselves come from maintained libraries: scikit-learn (Isolation
Forest, OC-SVM), PyOD (Deep SVDD) and stumpy (matrix-profile discords, the idea behind
DAMP); the point z-score needs nothing beyond the scaler. Only the windowing and thresholding
glue lives here, shared by all of them.

The deployable threshold follows CAPMix's rule exactly: the detector is fitted on the first
``1 - val_fraction`` of the training period and the threshold is mean + z * std of the
scores of the held-out tail, so every method is judged by the same protocol.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from capmix.detectors.base import BaseDetector, as_series
from capmix.detectors.matrix_profile import stump
from capmix.windows import StandardScaler, point_scores, sliding_windows


class WindowBaseline(BaseDetector):
    """Glue shared by the window-based baselines: scaling, windowing, split, threshold.

    Subclasses implement ``_fit_windows(w)`` and ``_score_windows(w)`` on ``(N, W*C)``
    flattened, standardised windows, or override ``_fit_points``/``_score_points``.
    """

    def __init__(self, window: int = 64, stride: int = 16, threshold_z: float = 3.0,
                 val_fraction: float = 0.2, seed: int = 0):
        self.window = window
        self.stride = stride
        self.threshold_z = threshold_z
        self.val_fraction = val_fraction
        self.seed = seed

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        # the subclass's own arguments plus the shared ones, which subclasses pass on as **kw
        names = [*inspect.signature(WindowBaseline.__init__).parameters,
                 *inspect.signature(type(self).__init__).parameters]
        return {n: getattr(self, n) for n in dict.fromkeys(names) if n not in ("self", "kw")}

    # -- per-method hooks
    def _fit_windows(self, w: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score_windows(self, w: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _flat(self, X: np.ndarray) -> np.ndarray:
        w = sliding_windows(X, self.window, self.stride)
        return w.reshape(w.shape[0], -1)

    def _fit_points(self, X: np.ndarray) -> None:
        self._fit_windows(self._flat(X))

    def _score_points(self, X: np.ndarray) -> np.ndarray:
        return point_scores(self._score_windows(self._flat(X)), X.shape[0], self.window, self.stride)

    # -- public API
    def fit(self, X: Any, y: Any | None = None, on_epoch: Any = None) -> WindowBaseline:
        """Fit on the training period; ``y`` and ``on_epoch`` are accepted for the common interface and unused."""
        X = as_series(X)
        if X.shape[0] < 2 * self.window:
            raise ValueError(f"X has {X.shape[0]} points; {type(self).__name__} needs at least two windows "
                             f"({2 * self.window}) to fit and set a threshold")
        self.scaler_ = StandardScaler().fit(X)
        Z = self.scaler_.transform(X)
        split = int(round(Z.shape[0] * (1.0 - self.val_fraction)))
        split = min(max(split, self.window), Z.shape[0] - self.window)
        self._fit_points(Z[:split])
        self._set_threshold(self._score_points(Z[split:]), self.threshold_z)
        self.n_channels_ = X.shape[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        X = self._check_input(X, self.window)
        return self._score_points(self.scaler_.transform(X))

    # -- persistence: the scaler here, the library model in each subclass's _model_* hooks
    def _state(self) -> dict[str, Any]:
        return {"scaler_mean": self.scaler_.mean_.tolist(), "scaler_std": self.scaler_.std_.tolist(),
                **self._model_state()}

    def _weights(self) -> dict[str, Any]:
        return self._model_weights()

    def _restore(self, state: dict[str, Any], weights: dict[str, Any], device: str | None) -> None:
        self.scaler_ = StandardScaler(np.asarray(state["scaler_mean"]), np.asarray(state["scaler_std"]))
        self._model_restore(state, {k: v.numpy() if hasattr(v, "numpy") else v for k, v in weights.items()})

    def _model_state(self) -> dict[str, Any]:
        return {}

    def _model_weights(self) -> dict[str, Any]:
        return {}

    def _model_restore(self, state: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
        pass


def _subsample(w: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """At most ``limit`` rows, drawn without replacement (kernel methods are O(n^2))."""
    if limit is None or w.shape[0] <= limit:
        return w
    idx = np.sort(np.random.default_rng(seed).choice(w.shape[0], limit, replace=False))
    return w[idx]


def _skops_bytes(model: Any) -> np.ndarray:
    """A scikit-learn model as bytes in skops' format (no pickle), for the weights file."""
    import skops.io as sio

    return np.frombuffer(sio.dumps(model), dtype=np.uint8).copy()  # writable: stored as a tensor


def _skops_model(blob: np.ndarray) -> Any:
    """Read back ``_skops_bytes``; only scikit-learn and NumPy types are trusted."""
    import skops.io as sio

    data = np.asarray(blob, dtype=np.uint8).tobytes()
    untrusted = sio.get_untrusted_types(data=data)
    foreign = [t for t in untrusted if not t.startswith(("sklearn.", "numpy."))]
    if foreign:
        raise ValueError(f"the stored model holds types outside scikit-learn/NumPy: {foreign}")
    return sio.loads(data, trusted=untrusted)


class _SkopsModel:
    """Persistence of a fitted scikit-learn ``model_`` (mixin for the baselines below)."""

    def _model_weights(self) -> dict[str, Any]:
        return {"model": _skops_bytes(self.model_)}

    def _model_restore(self, state: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
        self.model_ = _skops_model(weights["model"])


class RandomScorer(WindowBaseline):
    """Uniform random point scores (seeded): the paper's RAS floor."""

    kind = "random"

    def _model_restore(self, state: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
        self.rng_ = np.random.default_rng(self.seed)

    def _fit_points(self, X: np.ndarray) -> None:
        self.rng_ = np.random.default_rng(self.seed)

    def _score_points(self, X: np.ndarray) -> np.ndarray:
        return self.rng_.random(X.shape[0])


class PointZScore(WindowBaseline):
    """How far each point lies from the training mean, in training standard deviations.

    The score is the root mean square over channels of the standardised values, i.e. a diagonal
    Gaussian's Mahalanobis distance divided by sqrt(C): no model, no window, nothing to tune. It is
    the floor every learned detector has to clear: simple distances of this kind match or beat
    deep detectors on multivariate benchmarks such as SMD (Sarfraz et al., "Position: Quo Vadis,
    Unsupervised Time Series Anomaly Detection?", ICML 2024). A channel constant in training keeps
    std 1 (the scaler's rule), so any movement there counts in its own units.
    """

    kind = "zscore"

    def _fit_points(self, X: np.ndarray) -> None:
        pass  # the scaler fitted in ``fit`` is the whole model

    def _score_points(self, X: np.ndarray) -> np.ndarray:
        return np.sqrt(np.mean(np.square(X, dtype=np.float64), axis=1))


class WindowIForest(_SkopsModel, WindowBaseline):
    """Isolation Forest (scikit-learn) on flattened standardised windows."""

    kind = "iforest"

    def __init__(self, window: int = 64, stride: int = 16, n_estimators: int = 100,
                 max_train_windows: int | None = None, **kw: Any):
        super().__init__(window, stride, **kw)
        self.n_estimators = n_estimators
        self.max_train_windows = max_train_windows

    def _fit_windows(self, w: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest

        w = _subsample(w, self.max_train_windows, self.seed)
        self.model_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(w)

    def _score_windows(self, w: np.ndarray) -> np.ndarray:
        # sklearn: higher score_samples = more normal; negate so higher = more anomalous
        return -self.model_.score_samples(w)


class WindowOCSVM(_SkopsModel, WindowBaseline):
    """One-class SVM (scikit-learn, RBF kernel) on flattened standardised windows."""

    kind = "ocsvm"

    def __init__(self, window: int = 64, stride: int = 16, nu: float = 0.05,
                 max_train_windows: int | None = 4000, **kw: Any):
        super().__init__(window, stride, **kw)
        self.nu = nu
        self.max_train_windows = max_train_windows

    def _fit_windows(self, w: np.ndarray) -> None:
        from sklearn.svm import OneClassSVM

        self.model_ = OneClassSVM(nu=self.nu, gamma="scale").fit(_subsample(w, self.max_train_windows, self.seed))

    def _score_windows(self, w: np.ndarray) -> np.ndarray:
        return -self.model_.score_samples(w)


class WindowDeepSVDD(WindowBaseline):
    """Deep SVDD (PyOD's torch implementation) on flattened standardised windows."""

    kind = "deepsvdd"

    def __init__(self, window: int = 64, stride: int = 16, epochs: int = 20, batch_size: int = 256,
                 max_train_windows: int | None = 20000, **kw: Any):
        super().__init__(window, stride, **kw)
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_train_windows = max_train_windows

    def _fit_windows(self, w: np.ndarray) -> None:
        from pyod.models.deep_svdd import DeepSVDD

        w = _subsample(w, self.max_train_windows, self.seed)
        self.model_ = DeepSVDD(n_features=w.shape[1], epochs=self.epochs, batch_size=self.batch_size,
                               random_state=self.seed, verbose=0).fit(w)

    def _score_windows(self, w: np.ndarray) -> np.ndarray:
        return self.model_.decision_function(w)

    # PyOD's detector holds a torch network: stored as its state dict, centre and input scaler
    def _model_state(self) -> dict[str, Any]:
        m = self.model_
        return {"n_features": int(m.n_features_), "preprocessing": bool(m.preprocessing)}

    def _model_weights(self) -> dict[str, Any]:
        m = self.model_
        out = {f"net.{k}": v for k, v in m.model_.state_dict().items()}
        out["c"] = m.c_.detach().cpu()
        if m.preprocessing:
            out["scaler_mean"], out["scaler_scale"] = m.scaler_.mean_, m.scaler_.scale_
        return out

    def _model_restore(self, state: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
        import torch
        from pyod.models.deep_svdd import DeepSVDD, InnerDeepSVDD
        from sklearn.preprocessing import StandardScaler as SkScaler

        n = int(state["n_features"])
        m = DeepSVDD(n_features=n, epochs=self.epochs, batch_size=self.batch_size, random_state=self.seed, verbose=0)
        m.model_ = InnerDeepSVDD(n, use_ae=m.use_ae, hidden_neurons=m.hidden_neurons,
                                 hidden_activation=m.hidden_activation, output_activation=m.output_activation,
                                 dropout_rate=m.dropout_rate, l2_regularizer=m.l2_regularizer)
        m.model_.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in weights.items() if k.startswith("net.")})
        m.c_ = torch.from_numpy(weights["c"])
        m.n_features_ = n
        if state["preprocessing"]:
            m.scaler_ = SkScaler()
            m.scaler_.mean_, m.scaler_.scale_ = weights["scaler_mean"], weights["scaler_scale"]
        self.model_ = m


class MatrixProfileDiscord(WindowBaseline):
    """Matrix-profile discords (stumpy): distance of each subsequence to its nearest normal one.

    The score of a subsequence is its z-normalised Euclidean distance to the closest
    subsequence of the training period (an AB-join), which is what DAMP approximates
    online. Multivariate input is scored per channel and averaged. ``max_reference`` caps
    the reference to the last points of the training period: the join is
    O(n_test * n_reference).
    """

    kind = "mp"

    def __init__(self, window: int = 64, stride: int = 16, max_reference: int | None = 20000, **kw: Any):
        super().__init__(window, stride, **kw)
        self.max_reference = max_reference

    def _fit_points(self, X: np.ndarray) -> None:
        ref = X if self.max_reference is None else X[-self.max_reference:]
        # constant reference windows make the z-normalised distance undefined; jitter nothing,
        # stumpy handles them, but a fully constant channel carries no information
        self.reference_ = np.ascontiguousarray(ref, dtype=np.float64)

    def _model_weights(self) -> dict[str, Any]:
        return {"reference": self.reference_}

    def _model_restore(self, state: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
        self.reference_ = np.ascontiguousarray(weights["reference"], dtype=np.float64)

    def _score_points(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)  # stumpy wants float64; the scaler gives float32
        m = self.window
        if X.shape[0] < m:
            raise ValueError(f"series of {X.shape[0]} points is shorter than one window ({m})")
        prof = np.zeros(X.shape[0] - m + 1)
        for c in range(X.shape[1]):
            mp = stump(X[:, c], m, self.reference_[:, c])
            d = np.asarray(mp[:, 0], dtype=np.float64)
            prof += np.where(np.isfinite(d), d, 0.0)
        prof /= X.shape[1]
        # subsequence i covers points i..i+m-1; a point takes the max over the windows covering it
        starts = np.arange(0, prof.shape[0], self.stride)
        return point_scores(prof[starts], X.shape[0], m, self.stride)
