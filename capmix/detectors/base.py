"""The one interface every detector shares (PyOD / scikit-learn conventions).

* ``__init__`` only stores hyperparameters; ``get_params`` / ``set_params`` read and change them.
* ``fit(X, y=None)`` learns from the training period only and returns ``self``; learned state
  ends in ``_``.
* ``decision_function(X)`` gives one score per point, higher = more anomalous.
* ``predict(X)`` compares those scores with ``threshold_``, fixed on training-period data by the
  validation rule of :func:`capmix.evaluation.thresholds.validation_threshold` (METHOD.md 6).
* ``save(path)`` / ``load(path)`` write and read a checksummed model folder
  (:mod:`capmix.modelfiles`) that names its detector, so :func:`capmix.load_detector` can
  dispatch on it; library versions are recorded with it.

Two kinds of hyperparameter storage meet here: CAPMix and CoAD keep theirs in a frozen pydantic
config (``self.config``), the classic detectors as plain attributes named like their ``__init__``
arguments (scikit-learn's convention). ``get_params`` and ``set_params`` hide the difference.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from capmix.evaluation.thresholds import validation_threshold
from capmix.threads import limited_threads


def _with_thread_limit(method: Any) -> Any:
    """Run ``method`` under :func:`capmix.threads.limited_threads` (free cores, not all of them)."""
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with limited_threads():
            return method(self, *args, **kwargs)
    wrapper.__thread_limited__ = True
    return wrapper


class NotFittedError(RuntimeError):
    """The detector was used before ``fit`` or ``load``."""


def as_series(X: Any, name: str = "X") -> np.ndarray:
    """Check and convert user input to a finite float64 ``(T, C)`` array, naming what is wrong."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric (T,) or (T, C) data: {exc}") from exc
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (T,) or (T, C), got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise ValueError(
            f"{name} has {bad.sum()} NaN/inf values (first at point {rows[0]}, channel {cols[0]}); "
            "impute or drop them before fitting/scoring"
        )
    return arr


def as_labels(y: Any, n_points: int) -> np.ndarray:
    """Check point labels: shape ``(T,)`` and values in {0, 1}."""
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n_points:
        raise ValueError(f"y must have shape ({n_points},) to match X, got {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("y has NaN/inf labels; labels must be 0 (normal) or 1 (anomalous)")
    values = np.unique(arr)
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"y has labels {values[~np.isin(values, (0, 1))][:5].tolist()}; only 0 and 1 are allowed")
    return arr.astype(np.int8)


def check_scoring_input(X: Any, n_channels: int, min_points: int, name: str = "X") -> np.ndarray:
    """Data to score, checked against the training channels and the shortest scorable length."""
    X = as_series(X, name)
    if X.shape[1] != n_channels:
        raise ValueError(
            f"{name} has {X.shape[1]} channels but the model was trained on {n_channels}; "
            "score data with the same channels, in the same order, as the training data"
        )
    if X.shape[0] < min_points:
        raise ValueError(f"{name} has {X.shape[0]} points, fewer than one window ({min_points}); "
                         "score at least one full window")
    return X


def data_digest(X: np.ndarray, y: np.ndarray | None) -> str:
    """SHA-256 of the training data, so a saved model says exactly what it was trained on."""
    h = hashlib.sha256(np.ascontiguousarray(X).tobytes())
    h.update(str(X.shape).encode())
    if y is not None:
        h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


class Prepared:
    """Checked training data, ready for ``fit_prepared``: the first half of ``fit`` as its own stage.

    Detectors that build their training set up front (CAPMix: CutAddPaste + DTW revision) return
    richer objects with the same ``save`` / ``report`` / ``revision`` surface.
    """

    revision = None  #: no label revision here (CAPMix's AugmentedData carries one)

    def __init__(self, x: np.ndarray, y: np.ndarray | None):
        self.x, self.y = x, y

    def report(self) -> dict[str, Any]:
        return {"n_train_points": int(self.x.shape[0])}

    def save(self, path: str | Path) -> Path:
        from capmix.atomic import atomic_file

        path = Path(path)
        with atomic_file(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, x=self.x, **({"y": self.y} if self.y is not None else {}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Prepared:
        with np.load(path) as z:
            return cls(z["x"], z["y"] if "y" in z.files else None)


class BaseDetector:
    """Base of every detector; subclasses implement ``fit``, ``decision_function`` and the state hooks."""

    #: registry name of the detector family, written into every saved model folder
    kind: ClassVar[str] = ""
    #: bumped when the saved state or weights change meaning
    format_version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # every detector's own fit / scoring runs with the machine's free cores (capmix/threads.py)
        super().__init_subclass__(**kwargs)
        for name in ("fit", "decision_function", "fit_prepared"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "__thread_limited__", False):
                setattr(cls, name, _with_thread_limit(method))

    # ------------------------------------------------------------------ hyperparameters
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as plain values: ``type(self)(**det.get_params())`` builds an equal detector."""
        config = getattr(self, "config", None)
        if config is not None:
            return config.model_dump(mode="json")
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names if hasattr(self, n)}

    def set_params(self, **params: Any) -> BaseDetector:
        """Change hyperparameters (validated); returns ``self``. Refit afterwards."""
        unknown = sorted(set(params) - set(self.get_params()))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no hyperparameter(s) {unknown}; "
                             f"valid: {sorted(self.get_params())}")
        config = getattr(self, "config", None)
        if config is not None:
            self.config = config.replace(**params)
        else:
            for k, v in params.items():
                setattr(self, k, v)
        return self

    def clone(self) -> BaseDetector:
        """An unfitted detector with the same hyperparameters (scikit-learn's ``clone``)."""
        return type(self)(**self.get_params())

    @property
    def n_epochs(self) -> int:
        """Most epochs ``fit`` may run (progress bars); 1 for detectors that do not train in epochs."""
        return 1

    @property
    def segments(self) -> tuple[int, int]:
        """(window, stride) of the window-granularity evaluation: the segments a score is judged on."""
        p = self.get_params()
        return int(p["window"]), int(p["stride"])

    # ------------------------------------------------------------------ fitting and scoring
    def fit(self, X: Any, y: Any | None = None, on_epoch: Any = None) -> BaseDetector:  # pragma: no cover
        """Learn from the training period ``X`` (T, C); ``y``: optional labels of known anomalies;
        ``on_epoch``: called with each epoch's log by detectors that train in epochs."""
        raise NotImplementedError

    def decision_function(self, X: Any) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def prepare(self, X: Any, y: Any | None = None) -> Prepared:
        """Check the training data (and, for CAPMix, build the augmented windows): the first half of
        ``fit``, which a pipeline runs as its own cached stage before ``fit_prepared``."""
        X = as_series(X)
        return Prepared(X, as_labels(y, X.shape[0]) if y is not None else None)

    def load_prepared(self, path: str | Path) -> Prepared:
        """Read back what ``prepare(...).save(path)`` wrote."""
        return Prepared.load(path)

    def fit_prepared(self, prepared: Prepared, on_epoch: Any = None, checkpoint: Any = None) -> BaseDetector:
        """The second half of ``fit``; ``checkpoint`` is used by detectors that can resume."""
        return self.fit(prepared.x, prepared.y, on_epoch=on_epoch)

    def fit_report(self) -> dict[str, Any]:
        """What training did, for logs and benchmark cells (epochs, augmentation, ...); {} if nothing."""
        return {}

    def predict(self, X: Any) -> np.ndarray:
        """0/1 per point using ``threshold_`` fixed from training-period data."""
        return (self.decision_function(X) > self.threshold_).astype(np.int8)

    def score_chunks(self, chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Point scores of the concatenation of ``chunks``, emitted chunk by chunk.

        This default scores the whole series at once (same numbers as ``decision_function``);
        detectors on a fixed window grid override it to score in bounded memory.
        """
        yield np.asarray(self.decision_function(np.concatenate(list(chunks))), dtype=np.float32)

    def _set_threshold(self, val_scores: np.ndarray, z: float) -> None:
        """The deployable threshold from held-out training-period scores (one rule for every detector)."""
        self.val_scores_ = np.asarray(val_scores)
        self.threshold_ = validation_threshold(self.val_scores_, z)

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted; call fit(X) or "
                                 f"{type(self).__name__}.load(dir)")

    def _check_input(self, X: Any, min_points: int, name: str = "X") -> np.ndarray:
        """Scoring input checked against the training channels and the shortest scorable length."""
        self._check_fitted()
        return check_scoring_input(X, self.n_channels_, min_points, name)

    # ------------------------------------------------------------------ persistence
    def _saved_params(self) -> dict[str, Any]:
        """The hyperparameters written to config.json (subclass hook: e.g. a window resolved by fit)."""
        return self.get_params()

    def _state(self) -> dict[str, Any]:
        """JSON-able learned state beyond the common fields (subclass hook)."""
        return {}

    def _weights(self) -> dict[str, Any]:
        """Arrays / tensors of the learned state (subclass hook); stored weights-only."""
        return {}

    def _restore(self, state: dict[str, Any], weights: dict[str, Any], device: str | None) -> None:
        """Rebuild the learned state from ``_state()`` and ``_weights()`` (subclass hook)."""

    def save(self, path: str | Path) -> Path:
        """Write the model folder atomically: config, state, weights, checksums and versions."""
        import torch

        from capmix.modelfiles import versions, write_model_dir

        self._check_fitted()
        state = {
            "format_version": self.format_version, "detector": self.kind,
            "n_channels": int(self.n_channels_), "threshold": float(self.threshold_),
            "train_digest": getattr(self, "train_digest_", None),
            # channel names when known (the pipeline sets them): scoring checks them by name
            "channels": list(getattr(self, "channels_", None) or []) or None,
            "versions": versions(), **self._state(),
        }
        weights = {k: v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))
                   for k, v in self._weights().items()}
        return write_model_dir(path, json.dumps(self._saved_params(), indent=2), state, weights)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> BaseDetector:
        """Load a model folder written by ``save``; checksums verified, nothing unpickled but tensors."""
        from capmix.modelfiles import ModelFileError, read_model_dir

        files = read_model_dir(path, cls.kind, cls.format_version)
        path, state = files.path, files.state
        try:
            params = json.loads(files.config_json)
            if device is not None and "device" in params:
                params["device"] = device
            det = cls(**params)
        except (ValueError, TypeError) as exc:
            raise ModelFileError(f"{path}/config.json is not a valid {cls.__name__} config ({exc}). "
                                 "Fix: re-train or restore it") from exc
        try:
            det.n_channels_ = int(state["n_channels"])
            det.threshold_ = float(state["threshold"])
            det.train_digest_ = state.get("train_digest")
            det.versions_ = state["versions"]
            det._restore(state, files.weights, device)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{path} cannot be loaded ({type(exc).__name__}: {exc}). "
                                 "Fix: re-train or restore it") from exc
        if state.get("channels"):
            det.channels_ = tuple(state["channels"])
        return det
