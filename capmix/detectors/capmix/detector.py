"""``CAPMixDetector``: the PyOD-style estimator tying windows, injection, revision and the TCN together.

``__init__`` only stores the config; ``fit`` learns and returns ``self``; learned state
ends in ``_``; ``decision_function`` gives one score per point, higher = more anomalous.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from capmix.config import DetectorConfig
from capmix.detectors.base import BaseDetector, as_labels, as_series, check_scoring_input, data_digest
from capmix.detectors.capmix.density import GaussianDensity
from capmix.detectors.capmix.network import TCN, fuse_for_inference
from capmix.detectors.capmix.training import (
    AugmentedData,
    EpochLog,
    build_training_data,
    map_windows,
    predict_proba,
    resolve_device,
    seed_everything,
    train_model,
)
from capmix.windows import StandardScaler, point_scores, sliding_windows

#: 2: TCN blocks stored as 1 x k Conv2d weights (format 1 held Conv1d weights)
FORMAT_VERSION = 2
#: weights-file keys of the ``window_score: gde`` density (beside the network's state dict)
_DENSITY_MEAN, _DENSITY_PRECISION = "density.mean", "density.precision"


def _input_windows(X: Any, scaler: StandardScaler, n_channels: int, cfg: DetectorConfig,
                   name: str = "X") -> tuple[np.ndarray, int]:
    """Check data to score against the training channels and window length; standardise and window it."""
    X = check_scoring_input(X, n_channels, cfg.window, name)
    return sliding_windows(scaler.transform(X), cfg.window, cfg.stride), X.shape[0]


class CAPMixDetector(BaseDetector):
    """CAPMix anomaly detector for one (univariate or multivariate) series.

    Parameters
    ----------
    config:
        A :class:`DetectorConfig`; keyword overrides are applied on top of it.
    """

    def __init__(self, config: DetectorConfig | None = None, **overrides: Any):
        base = config if config is not None else DetectorConfig()
        self.config = base.replace(**overrides) if overrides else base

    kind = "capmix"
    format_version = FORMAT_VERSION

    @property
    def n_epochs(self) -> int:
        return self.config.max_epochs

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
        ``monitor_scores_`` (epochs x windows: the classifier's p, whatever ``window_score`` is, since
        the density is fitted once after training); the fitted model does not depend on it.
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

    def load_prepared(self, path: str | Path) -> AugmentedData:
        return AugmentedData.load(path)

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
        self.density_ = self._fit_density(data) if cfg.window_score == "gde" else None
        self._set_threshold(self._score(data.x_val[: data.n_val_real]), cfg.threshold_z)
        self.train_digest_ = data.train_digest
        return self

    # ----------------------------------------------------------------- score
    def _windows(self, X: Any) -> tuple[np.ndarray, int]:
        X = self._check_input(X, self.config.window)
        return sliding_windows(self.scaler_.transform(X), self.config.window, self.config.stride), X.shape[0]

    def _scorer(self) -> TCN:
        """The BatchNorm-folded copy of the network used for all scoring (built once)."""
        if getattr(self, "_fused", None) is None or self._fused_of is not self.model_:
            self._fused, self._fused_of = fuse_for_inference(self.model_), self.model_
        return self._fused

    def _fit_density(self, data: AugmentedData) -> GaussianDensity:
        """The Gaussian of the penultimate features of the real, unlabelled training windows.

        Fitted on the training split only, so the validation windows that set ``threshold_`` are
        scored out of sample, as test windows are.
        """
        real = data.x_train[: data.n_train_real]
        normal = real[data.y_train[: data.n_train_real] == 0]
        if normal.shape[0] < 2:
            raise ValueError(
                f"window_score 'gde' needs at least 2 normal training windows, found {normal.shape[0]}; "
                "use a longer training series or window_score 'classifier'"
            )
        model = self._scorer()
        device = next(model.parameters()).device
        feats = map_windows(model.embed, model, normal, self.config.score_batch_size, device, self.config.amp)
        return GaussianDensity.fit(feats)

    def _score(self, windows: np.ndarray) -> np.ndarray:
        model = self._scorer()
        device = next(model.parameters()).device
        cfg = self.config
        if getattr(self, "density_", None) is not None:
            density = self.density_
            return map_windows(lambda xb: density.score(model.embed(xb)), model, windows,
                               cfg.score_batch_size, device, cfg.amp)
        return predict_proba(model, windows, cfg.score_batch_size, device, cfg.amp)

    def score_windows(self, X: Any) -> np.ndarray:
        """One score per window (window i starts at point ``i * stride``)."""
        windows, _ = self._windows(X)
        return self._score(windows)

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score of every point of ``X`` (higher = more anomalous)."""
        windows, n_points = self._windows(X)
        return point_scores(self._score(windows), n_points, self.config.window, self.config.stride)

    def score_chunks(self, chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Streaming scores in bounded memory (``capmix.stream``): windows on the global grid.

        Bit-identical to ``decision_function`` on the whole series: windows are scored in the same
        batches of ``score_batch_size`` windows (counted from the series' first window), so even the
        floating-point reductions inside the network see the same batches.
        """
        self._check_fitted()
        W, s, B = self.config.window, self.config.stride, self.config.score_batch_size
        buf = np.zeros((0, self.n_channels_))  # raw points from the start of the next window to score
        last, n_read = None, 0  # score of the last window scored (the tail gets it)

        def emit(n: int) -> np.ndarray:
            scores = self._score(sliding_windows(self.scaler_.transform(buf[: (n - 1) * s + W]), W, s))
            return np.repeat(scores, s)  # window i scores points [i*s, (i+1)*s) of the buffer

        for x in chunks:
            n_read += x.shape[0]
            buf = np.concatenate([buf, x]) if buf.size else x
            n = _complete(buf.shape[0], W, s) // B * B  # whole batches only; the rest waits for more points
            if n:
                out = emit(n)
                last, buf = out[-1], buf[n * s:]
                yield out
        n = _complete(buf.shape[0], W, s)
        if n:
            out = emit(n)
            last, buf = out[-1], buf[n * s:]
            yield out
        if last is None:
            raise ValueError(f"the series has {n_read} points, fewer than one window ({W}). "
                             "Fix: score at least one full window of points")
        if buf.shape[0]:
            yield np.full(buf.shape[0], last, dtype=np.float32)

    def fit_report(self) -> dict[str, Any]:
        report = {"best_epoch": self.best_epoch_, "epochs": len(self.history_)}
        if getattr(self, "resumed_from_epoch_", None) is not None:
            report["resumed_from_epoch"] = self.resumed_from_epoch_
        if getattr(self, "augmentation_", None):
            report["augmentation"] = self.augmentation_  # e.g. how many injected windows the revision softened
        return report

    # ----------------------------------------------------------------- persistence
    def _state(self) -> dict[str, Any]:
        return {"scaler_mean": self.scaler_.mean_.tolist(), "scaler_std": self.scaler_.std_.tolist(),
                "best_epoch": self.best_epoch_, "augmentation": self.augmentation_,
                "window_score": self.config.window_score}

    def _weights(self) -> dict[str, Any]:
        weights = dict(self.model_.state_dict())
        if getattr(self, "density_", None) is not None:
            weights[_DENSITY_MEAN] = torch.from_numpy(self.density_.mean)
            weights[_DENSITY_PRECISION] = torch.from_numpy(self.density_.precision)
        return weights

    def _restore(self, state: dict[str, Any], weights: dict[str, Any], device: str | None) -> None:
        if "window_score" not in state:  # saved before the option existed: scored by the classifier
            self.config = self.config.replace(window_score="classifier")
        cfg = self.config
        model = TCN(self.n_channels_, cfg.window, cfg.kernel, cfg.features, cfg.dropout)
        weights = dict(weights)
        mean, precision = weights.pop(_DENSITY_MEAN, None), weights.pop(_DENSITY_PRECISION, None)
        if (cfg.window_score == "gde") != (mean is not None and precision is not None):
            raise ValueError(f"window_score is {cfg.window_score!r} but the weights "
                             f"{'lack' if cfg.window_score == 'gde' else 'hold'} the feature density")
        model.load_state_dict(weights)
        self.density_ = GaussianDensity(mean.numpy(), precision.numpy()) if mean is not None else None
        self.scaler_ = StandardScaler(np.asarray(state["scaler_mean"], dtype=np.float64),
                                      np.asarray(state["scaler_std"], dtype=np.float64))
        if self.scaler_.mean_.shape != (self.n_channels_,) or self.scaler_.std_.shape != (self.n_channels_,):
            raise ValueError(f"state.json: scaler does not match {self.n_channels_} channels")
        self.best_epoch_ = int(state["best_epoch"])
        self.augmentation_ = state["augmentation"]
        self.model_ = model.to(resolve_device(cfg.device)).eval()
        self.history_ = []


def _complete(n_points: int, window: int, stride: int) -> int:
    """Number of complete windows in ``n_points`` points."""
    return (n_points - window) // stride + 1 if n_points >= window else 0
