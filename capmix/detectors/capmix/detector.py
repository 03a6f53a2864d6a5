"""``CAPMixDetector``: the PyOD-style estimator tying windows, injection, revision and the TCN together.

``__init__`` only stores the config; ``fit`` learns and returns ``self``; learned state
ends in ``_``; ``decision_function`` gives one score per point, higher = more anomalous.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from capmix.config import DetectorConfig
from capmix.detectors.capmix.network import TCN, fuse_for_inference
from capmix.modelfiles import ModelFileError, read_model_dir, versions, write_model_dir
from capmix.modelfiles import sha256_file as _sha256_file  # noqa: F401  (kept for callers)
from capmix.detectors.capmix.training import (
    AugmentedData,
    EpochLog,
    build_training_data,
    predict_proba,
    resolve_device,
    seed_everything,
    train_model,
)
from capmix.windows import StandardScaler, point_scores, sliding_windows

#: 2: TCN blocks stored as 1 x k Conv2d weights (format 1 held Conv1d weights)
FORMAT_VERSION = 2


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


def data_digest(X: np.ndarray, y: np.ndarray | None) -> str:
    """SHA-256 of the training data, so a saved model says exactly what it was trained on."""
    h = hashlib.sha256(np.ascontiguousarray(X).tobytes())
    h.update(str(X.shape).encode())
    if y is not None:
        h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()




def _input_windows(X: Any, scaler: StandardScaler, n_channels: int, cfg: DetectorConfig,
                   name: str = "X") -> tuple[np.ndarray, int]:
    """Check data to score against the training channels and window length; standardise and window it."""
    X = as_series(X, name)
    if X.shape[1] != n_channels:
        raise ValueError(
            f"{name} has {X.shape[1]} channels but the model was trained on {n_channels}; "
            "score data with the same channels, in the same order, as the training data"
        )
    if X.shape[0] < cfg.window:
        raise ValueError(
            f"{name} has {X.shape[0]} points, fewer than one window ({cfg.window}); "
            "score at least one full window"
        )
    return sliding_windows(scaler.transform(X), cfg.window, cfg.stride), X.shape[0]


class CAPMixDetector:
    """CAPMix anomaly detector for one (univariate or multivariate) series.

    Parameters
    ----------
    config:
        A :class:`DetectorConfig`; keyword overrides are applied on top of it.
    """

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any):
        base = config if config is not None else DetectorConfig()
        self.config = base.replace(**overrides) if overrides else base

    # ----------------------------------------------------------------- fit
    def fit(
        self,
        X: Any,
        y: Any | None = None,
        on_epoch: Callable[[EpochLog], None] | None = None,
        checkpoint: str | Path | None = None,
        monitor: Any | None = None,
    ) -> CAPMixDetector:
        """Train on the training period ``X`` (T, C); ``y`` optional point labels of known anomalies.

        ``checkpoint``: a file written after every epoch; a later fit on the same data and config
        resumes from it and ends with exactly the model an uninterrupted fit gives.
        ``monitor``: a series (T', C) whose window scores are recorded after every epoch in
        ``monitor_scores_`` (epochs x windows); the fitted model does not depend on it.
        """
        return self.fit_prepared(self.prepare(X, y), on_epoch=on_epoch, checkpoint=checkpoint, monitor=monitor)

    def prepare(self, X: Any, y: Any | None = None) -> AugmentedData:
        """Check the input, fit the scaler, window, inject CutAddPaste copies and revise labels.

        The first half of ``fit``; a pipeline runs it as its own (cached, logged) step and
        hands the result to :meth:`fit_prepared`.
        """
        cfg = self.config
        X = as_series(X)
        labels = as_labels(y, X.shape[0]) if y is not None else None
        if X.shape[0] < cfg.window:
            raise ValueError(
                f"X has {X.shape[0]} points, fewer than one window ({cfg.window}); "
                "use a longer training series or a smaller window"
            )
        constant = np.flatnonzero(X.std(axis=0) == 0)
        if constant.size == X.shape[1]:
            raise ValueError("every channel of X is constant: there is nothing to learn; check the input")
        if constant.size:
            warnings.warn(
                f"channels {constant.tolist()} are constant in the training data; they are scaled to 0",
                stacklevel=3,
            )
        if labels is not None and labels.all():
            raise ValueError("every training point is labelled anomalous; CAPMix needs normal data to learn from")

        rng = seed_everything(cfg.seed)
        scaler = StandardScaler().fit(X)
        data = build_training_data(scaler.transform(X), labels, cfg, rng)
        data.scaler_mean, data.scaler_std = scaler.mean_, scaler.std_
        data.train_digest = data_digest(X, labels)
        return data

    def fit_prepared(
        self,
        data: AugmentedData,
        on_epoch: Callable[[EpochLog], None] | None = None,
        checkpoint: str | Path | None = None,
        monitor: Any | None = None,
    ) -> CAPMixDetector:
        """Train the network on prepared (augmented, revised) windows; the second half of ``fit``."""
        cfg = self.config
        scaler = StandardScaler(np.asarray(data.scaler_mean), np.asarray(data.scaler_std))
        monitor_windows = None
        if monitor is not None:  # checked and windowed as scoring input is, before any training
            monitor_windows, _ = _input_windows(monitor, scaler, data.n_channels, cfg, name="monitor")
        result = train_model(data, cfg, on_epoch=on_epoch, checkpoint=checkpoint, monitor=monitor_windows)
        self.resumed_from_epoch_ = result.resumed_from
        self.scaler_ = scaler
        self.model_ = result.model
        if monitor_windows is not None:
            self.monitor_scores_ = np.stack(result.monitor_scores) if result.monitor_scores else \
                np.zeros((0, monitor_windows.shape[0]), np.float32)
        self.n_channels_ = data.n_channels
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.augmentation_ = data.report()
        self.dtw_distances_ = data.revision.distances if data.revision is not None else None
        val_scores = self._score(data.x_val[: data.n_val_real])
        self.val_scores_ = val_scores
        self.threshold_ = float(val_scores.mean() + cfg.threshold_z * val_scores.std())
        self.train_digest_ = data.train_digest
        return self

    # ----------------------------------------------------------------- score
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this CAPMixDetector is not fitted; call fit(X) or CAPMixDetector.load(dir)")

    def _windows(self, X: Any) -> tuple[np.ndarray, int]:
        self._check_fitted()
        return _input_windows(X, self.scaler_, self.n_channels_, self.config)

    def _scorer(self) -> TCN:
        """The BatchNorm-folded copy of the network used for all scoring (built once)."""
        if getattr(self, "_fused", None) is None or self._fused_of is not self.model_:
            self._fused, self._fused_of = fuse_for_inference(self.model_), self.model_
        return self._fused

    def _score(self, windows: np.ndarray) -> np.ndarray:
        device = next(self.model_.parameters()).device
        return predict_proba(self._scorer(), windows, self.config.score_batch_size, device, self.config.amp)

    def score_windows(self, X: Any) -> np.ndarray:
        """One score per window (window i starts at point ``i * stride``)."""
        windows, _ = self._windows(X)
        return self._score(windows)

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score of every point of ``X`` (higher = more anomalous)."""
        windows, n_points = self._windows(X)
        return point_scores(self._score(windows), n_points, self.config.window, self.config.stride)

    def predict(self, X: Any) -> np.ndarray:
        """0/1 per point using ``threshold_`` fixed from training-period validation data."""
        return (self.decision_function(X) > self.threshold_).astype(np.int8)

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write weights, config and state to ``path`` atomically (``capmix.modelfiles``)."""
        self._check_fitted()
        state = {
            "format_version": FORMAT_VERSION,
            "n_channels": self.n_channels_,
            "scaler_mean": self.scaler_.mean_.tolist(),
            "scaler_std": self.scaler_.std_.tolist(),
            "threshold": self.threshold_,
            "best_epoch": self.best_epoch_,
            "augmentation": self.augmentation_,
            "train_digest": self.train_digest_,
            # channel names when known (pipeline.train_series sets them): scoring checks them by name
            "channels": list(getattr(self, "channels_", None) or []) or None,
            "versions": versions(),
        }
        return write_model_dir(path, self.config.model_dump_json(indent=2), state, self.model_.state_dict())

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> CAPMixDetector:
        """Load a saved detector; checksums are verified and no arbitrary object is unpickled."""
        files = read_model_dir(path, "capmix", FORMAT_VERSION)
        path, state = files.path, files.state
        try:
            config = DetectorConfig.model_validate_json(files.config_json)
        except ValueError as exc:
            raise ModelFileError(f"{path}/config.json is not a valid CAPMix config ({exc}). Fix: re-train or restore it") from exc
        if device is not None:
            config = config.replace(device=device)
        det = cls(config)
        dev = resolve_device(config.device)
        try:
            model = TCN(int(state["n_channels"]), config.window, config.kernel, config.features, config.dropout)
            model.load_state_dict(files.weights)
            det.n_channels_ = int(state["n_channels"])
            det.scaler_ = StandardScaler(np.asarray(state["scaler_mean"], dtype=np.float64),
                                         np.asarray(state["scaler_std"], dtype=np.float64))
            det.threshold_ = float(state["threshold"])
            det.best_epoch_ = int(state["best_epoch"])
            det.augmentation_ = state["augmentation"]
            det.train_digest_ = state["train_digest"]
            det.versions_ = state["versions"]
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{path} cannot be loaded ({type(exc).__name__}: {exc}). Fix: re-train or restore it") from exc
        if det.scaler_.mean_.shape != (det.n_channels_,) or det.scaler_.std_.shape != (det.n_channels_,):
            raise ModelFileError(f"{path}/state.json: scaler does not match {det.n_channels_} channels. Fix: re-train it")
        if state.get("channels"):
            det.channels_ = tuple(state["channels"])
        det.model_ = model.to(dev).eval()
        det.history_ = []
        return det
