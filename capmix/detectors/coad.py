"""``CoADDetector``: the cooperative classification + reconstruction peer (METHOD.md section 10).

A classification module, trained on synthetic anomalies (outlier exposure) at patch
granularity, predicts per-patch anomaly probabilities; these become soft masks of a masked
reconstruction module; the final score is the mean of the two streams. Same interface as
:class:`~capmix.detectors.capmix.detector.CAPMixDetector`: ``__init__`` stores the config only, ``fit`` returns
``self``, learned state ends in ``_``, ``decision_function`` gives one score per point (higher =
more anomalous), ``threshold_`` is the deployable threshold, ``save``/``load`` are weights-only
and checksummed.

Choices where METHOD.md section 10 is silent (all configurable in :class:`CoADConfig`):

* **Channel independence**: every channel of a (T, C) series is a univariate sample for one set
  of shared weights; a point's score is the **max over channels** (an anomaly in one channel is
  an anomaly of the point) and the **mean over the windows covering it** (windows overlap by
  ``window - score_stride``).
* **Window**: ``period_factor`` (4) x the dominant period of the standardised training data
  (FFT peak refined on the autocorrelation, median over channels), rounded to a multiple of
  ``patch`` and clamped to [``min_window``, ``max_window``]; ``window`` fixes it instead.
* **Reconstruction target**: the clean window (before pseudo-anomaly injection), so masking an
  injected patch (p -> 1) helps the reconstruction loss and not masking a normal one does too:
  the reconstruction loss reaches the classifier through ``p`` (not detached), which is the
  "reconstruction corrects the classifier" coupling of the paper.
* **Reconstruction stream**: the per-patch squared error ``e`` is squashed to [0, 1) as
  ``e / (e + q)``, ``q`` = 99th percentile of the errors on the fit part of the training period,
  so it is on the classifier's probability scale before the two are averaged.
* **Mirror flip** reflects the span about its own mean (upside down); **scale** multiplies the
  span's deviation from its mean by a factor away from 1; **constant** holds a random level;
  **uniform** draws uniform noise over the window's range; **jitter** adds Gaussian noise.
* **Evaluation segments**: ``eval_window``/``eval_stride`` are the dataset's CAPMix window and
  stride; point scores are max-pooled over each aligned ``eval_stride`` segment so a
  window-granularity evaluation (one score per segment, read at its first point) sees the
  segment's worst patch, and both detectors are judged on the same segments.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from capmix.detectors.base import BaseDetector, as_labels, as_series, data_digest
from capmix.detectors.capmix.training import _INIT_LOCK, EpochLog, resolve_device
from capmix.windows import StandardScaler

FORMAT_VERSION = 1
#: pseudo-anomaly kinds (METHOD.md section 10), in the order their ids are drawn
KINDS = ("constant", "uniform", "scale", "jitter", "flip")


class CoADConfig(BaseModel):
    """All knobs of one CoAD detector; params.yaml ``coad`` (+ ``coad_presets.<preset>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: Literal["coad"] = "coad"  #: saved config.json says which detector it holds

    # -- windows and patches
    window: int | None = Field(None, ge=8, description="fixed window; None = period_factor x dominant period")
    period_factor: float = Field(4.0, gt=0.0)
    min_window: int = Field(32, ge=8)
    max_window: int = Field(256, ge=8)
    patch: int = Field(8, ge=4, description="points per patch (classification granularity)")
    n_fft: int = Field(4, ge=2, description="STFT size of the frequency branch (within a patch)")
    score_stride: int | None = Field(None, ge=1, description="None = window // 2")

    # -- network
    hidden: int = Field(32, ge=2, description="GRU hidden size per direction")
    layers: int = Field(2, ge=1, le=4, description="GRU layers (classifier encoder and decoder)")

    # -- pseudo-anomalies
    anomaly_prob: float = Field(0.5, gt=0.0, le=1.0, description="fraction of windows given one")
    max_anomaly_fraction: float = Field(0.3, gt=0.0, le=1.0, description="longest span / window")

    # -- loss, optimisation
    pos_weight: float = Field(2.0, gt=0.0, description="BCE weight of anomalous patches")
    recon_weight: float = Field(10.0, ge=0.0, description="weight of the reconstruction MSE")
    score_weight: float = Field(0.5, ge=0.0, le=1.0, description="classifier share of the final score")
    lr: float = Field(2e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(128, ge=2)
    epochs: int = Field(6, ge=1)
    windows_per_epoch: int = Field(4096, ge=2, description="random (channel, start) windows drawn per epoch")

    # -- decision (same rule as CAPMix: mean + z * std of held-out training-period scores)
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    threshold_z: float = 3.0
    eval_window: int = Field(64, ge=1, description="the dataset's CAPMix window (evaluation segments)")
    eval_stride: int = Field(16, ge=1, description="the dataset's CAPMix stride (evaluation segments)")
    segment_pool: bool = Field(True, description="max-pool point scores over each eval_stride segment")

    # -- runtime
    seed: int = 0
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    score_batch_size: int = Field(1024, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> CoADConfig:
        if self.n_fft > self.patch:
            raise ValueError(f"n_fft ({self.n_fft}) must be <= patch ({self.patch})")
        for name in ("min_window", "max_window") + (("window",) if self.window is not None else ()):
            v = getattr(self, name)
            if v % self.patch or v < 2 * self.patch:
                raise ValueError(f"{name} ({v}) must be a multiple of patch ({self.patch}) and hold >= 2 patches")
        if self.min_window > self.max_window:
            raise ValueError(f"min_window ({self.min_window}) > max_window ({self.max_window})")
        return self

    def replace(self, **changes: Any) -> CoADConfig:
        return CoADConfig.model_validate({**self.model_dump(), **changes})


# =========================================================================== pure functions
def dominant_period(x: np.ndarray, min_period: int = 2, max_period: int | None = None) -> int | None:
    """Dominant period (points) of a (T,) or (T, C) series: FFT peak refined on the ACF.

    Per channel: the strongest rFFT bin with a period in [min_period, max_period] (default T/2),
    then the autocorrelation maximum within +-20 % of that period; the median over channels with
    a finite estimate. ``None`` when no channel has one (constant data, too short).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    T = x.shape[0]
    max_period = min(max_period or T // 2, T // 2)
    if T < 2 * min_period + 2 or max_period < min_period:
        return None
    periods = []
    for c in range(x.shape[1]):
        v = x[:, c] - x[:, c].mean()
        if not np.any(v):
            continue
        spec = np.abs(np.fft.rfft(v)) ** 2
        k = np.arange(spec.shape[0])
        with np.errstate(divide="ignore"):
            per = np.where(k > 0, T / np.maximum(k, 1), np.inf)
        ok = (per >= min_period) & (per <= max_period)
        if not ok.any():
            continue
        k0 = int(np.flatnonzero(ok)[np.argmax(spec[ok])])
        p0 = T / k0
        # autocorrelation via FFT (zero-padded), refine within +-20 % of the FFT estimate
        f = np.fft.rfft(v, 2 * T)
        acf = np.fft.irfft(f * np.conj(f))[:T]
        lo, hi = max(min_period, int(math.floor(0.8 * p0))), min(max_period, int(math.ceil(1.2 * p0)))
        p = lo + int(np.argmax(acf[lo : hi + 1])) if hi >= lo else int(round(p0))
        periods.append(p)
    return int(round(float(np.median(periods)))) if periods else None


def coad_window(period: int | None, cfg: CoADConfig) -> int:
    """``period_factor`` x period rounded to a multiple of the patch, clamped to [min, max]."""
    if cfg.window is not None:
        return cfg.window
    if period is None:
        return cfg.min_window
    w = int(round(cfg.period_factor * period / cfg.patch)) * cfg.patch
    return int(min(max(w, cfg.min_window), cfg.max_window))


def inject_pseudo_anomalies(
    x: np.ndarray, rng: np.random.Generator, patch: int, prob: float = 0.5,
    max_fraction: float = 0.3, kinds: tuple[str, ...] = KINDS, min_len: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inject one random span anomaly into a ``prob`` share of univariate windows ``(B, W)``.

    Returns ``(x_aug, point_mask (B, W) bool, patch_labels (B, W // patch) float32, kind ids (B,)
    with -1 for untouched windows)``. A patch is labelled 1 when any of its points was replaced.
    Vectorised: every kind is computed for the whole batch and selected per window.
    """
    x = np.asarray(x, dtype=np.float32)
    B, W = x.shape
    if W % patch:
        raise ValueError(f"window {W} is not a multiple of patch {patch}")
    hit = rng.random(B) < prob
    # spans of at least half a patch: shorter ones are mostly invisible, i.e. label noise
    min_len = max(1, patch // 2) if min_len is None else min_len
    max_len = max(min_len, int(max_fraction * W))
    length = rng.integers(min_len, max_len + 1, size=B)
    start = rng.integers(0, W - length + 1)
    kind = rng.integers(len(kinds), size=B)
    t = np.arange(W)
    span = (t >= start[:, None]) & (t < (start + length)[:, None]) & hit[:, None]
    n = np.maximum(span.sum(1, keepdims=True), 1)
    span_mean = (x * span).sum(1, keepdims=True) / n
    lo, hi = x.min(1, keepdims=True), x.max(1, keepdims=True)
    sd = x.std(1, keepdims=True) + 0.1
    rng_range = np.maximum(hi - lo, 0.5)
    u = rng.random((B, 1)).astype(np.float32)
    # factor away from 1: half the windows shrink (0.1-0.5), half grow (2-4)
    factor = np.where(rng.random((B, 1)) < 0.5, 0.1 + 0.4 * u, 2.0 + 2.0 * u)
    candidates = {
        "constant": np.broadcast_to(lo - 0.25 * rng_range + 1.5 * rng_range * u, (B, W)),
        "uniform": lo + rng_range * rng.random((B, W)),
        "scale": span_mean + (x - span_mean) * factor,
        "jitter": x + (0.3 + 0.7 * u) * sd * rng.standard_normal((B, W)),
        "flip": 2.0 * span_mean - x,
    }
    out = x.copy()
    kind_ids = np.full(B, -1, np.int64)
    for i, name in enumerate(kinds):
        sel = span & (kind == i)[:, None]
        out[sel] = candidates[name].astype(np.float32)[sel]
        kind_ids[hit & (kind == i)] = KINDS.index(name)
    labels = span.reshape(B, W // patch, patch).any(-1).astype(np.float32)
    return out, span, labels, kind_ids


def mix_mask(emb: torch.Tensor, mask_token: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Soft masking: ``p * mask + (1 - p) * emb`` per patch (``emb (B, N, D)``, ``p (B, N)``)."""
    p = p.unsqueeze(-1)
    return p * mask_token + (1.0 - p) * emb


def patch_spectrum(patches: torch.Tensor, n_fft: int) -> torch.Tensor:
    """STFT magnitudes of every patch, flattened: ``(B, N, P) -> (B, N, bins * frames)``."""
    B, N, P = patches.shape
    hop = max(1, n_fft // 2)
    spec = torch.stft(patches.reshape(B * N, P), n_fft=n_fft, hop_length=hop, win_length=n_fft,
                      window=torch.hann_window(n_fft, device=patches.device), center=False,
                      return_complex=True)
    return spec.abs().reshape(B, N, -1)


def spectrum_size(patch: int, n_fft: int) -> int:
    hop = max(1, n_fft // 2)
    return (n_fft // 2 + 1) * ((patch - n_fft) // hop + 1)


def _embed(n_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.LayerNorm(hidden))


class CoADNet(nn.Module):
    """Classifier (time + STFT branches over one shared 2-layer BiGRU, max-fused) + masked reconstructor."""

    def __init__(self, patch: int, n_fft: int, hidden: int, layers: int):
        super().__init__()
        self.patch, self.n_fft = patch, n_fft
        # LayerNorm after each patch embedding (our choice, not in METHOD.md): with the bare linear
        # embedding the classifier learned ~4x slower on a noisy sine (0.65 vs 0.95 patch AUC, 8 epochs)
        self.time_embed = _embed(patch, hidden)
        self.freq_embed = _embed(spectrum_size(patch, n_fft), hidden)
        self.encoder = nn.GRU(hidden, hidden, layers, batch_first=True, bidirectional=True)
        self.time_head = nn.Linear(2 * hidden, 1)
        self.freq_head = nn.Linear(2 * hidden, 1)
        self.rec_embed = _embed(patch, hidden)
        self.mask_token = nn.Parameter(0.02 * torch.randn(hidden))
        self.decoder = nn.GRU(hidden, hidden, layers, batch_first=True, bidirectional=True)
        self.rec_head = nn.Linear(2 * hidden, patch)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1, self.patch)

    def classify(self, patches: torch.Tensor) -> torch.Tensor:
        """Patch logits ``(B, N)``: both branches through the shared encoder, fused by max."""
        B = patches.shape[0]
        emb = torch.cat([self.time_embed(patches), self.freq_embed(patch_spectrum(patches, self.n_fft))])
        h, _ = self.encoder(emb)
        lt = self.time_head(h[:B]).squeeze(-1)
        lf = self.freq_head(h[B:]).squeeze(-1)
        return torch.maximum(lt, lf)

    def reconstruct(self, patches: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        h, _ = self.decoder(mix_mask(self.rec_embed(patches), self.mask_token, p))
        return self.rec_head(h)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, W)`` -> (patch logits ``(B, N)``, reconstruction ``(B, N, P)``)."""
        patches = self.patches(x)
        logits = self.classify(patches)
        return logits, self.reconstruct(patches, torch.sigmoid(logits))


def _univariate_windows(Z: np.ndarray, window: int, stride: int, tail: bool) -> tuple[np.ndarray, np.ndarray]:
    """Channel-independent windows ``(n_starts * C, W)`` (start-major) and their starts.

    ``tail`` adds a window ending at the last point so every point is covered.
    """
    T = Z.shape[0]
    starts = np.arange(0, T - window + 1, stride)
    if tail and starts[-1] != T - window:
        starts = np.append(starts, T - window)
    idx = starts[:, None] + np.arange(window)
    w = Z[idx]  # (S, W, C)
    return np.ascontiguousarray(w.transpose(0, 2, 1).reshape(-1, window)), starts


# =========================================================================== the detector
class CoADDetector(BaseDetector):
    """CoAD anomaly detector for one (univariate or multivariate) series; see the module docstring."""

    kind = "coad"
    format_version = FORMAT_VERSION

    @property
    def n_epochs(self) -> int:
        return self.config.epochs

    def __init__(self, config: CoADConfig | None = None, **overrides: Any):
        base = config if config is not None else CoADConfig()
        self.config = base.replace(**overrides) if overrides else base

    # ----------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any | None = None, on_epoch: Callable[[EpochLog], None] | None = None) -> CoADDetector:
        """Train on the training period ``X`` (T, C). ``y`` is checked but unused (outlier exposure
        learns from synthetic anomalies only)."""
        cfg = self.config
        X = as_series(X)
        labels = as_labels(y, X.shape[0]) if y is not None else None
        if X.std(axis=0).max() == 0:
            raise ValueError("every channel of X is constant: there is nothing to learn; check the input")
        self.scaler_ = StandardScaler().fit(X)
        Z = self.scaler_.transform(X)
        self.period_ = dominant_period(Z, min_period=2, max_period=max(2, cfg.max_window))
        W = coad_window(self.period_, cfg)
        if X.shape[0] < 2 * W:
            raise ValueError(f"X has {X.shape[0]} points; CoAD needs at least two windows ({2 * W}) to fit "
                             "and set a threshold; use a longer series or a smaller window")
        self.window_ = W
        self.n_channels_ = X.shape[1]
        self.train_digest_ = data_digest(X, labels)
        split = int(round(Z.shape[0] * (1.0 - cfg.val_fraction)))
        split = min(max(split, W), Z.shape[0] - W)
        # validation: fixed windows over the held-out tail; training draws random windows (see _train)
        val_w, _ = _univariate_windows(Z[split:], W, max(1, W // 4), tail=True)

        self.device_ = resolve_device(cfg.device)
        with _INIT_LOCK:  # seed + init atomic when several fits share a process
            torch.manual_seed(cfg.seed)
            model = CoADNet(cfg.patch, cfg.n_fft, cfg.hidden, cfg.layers)
        model = model.to(self.device_)
        self._train(model, Z[:split], val_w, on_epoch)
        self.model_ = model.eval()
        fit_w, _ = _univariate_windows(Z[:split], W, max(1, W // 2), tail=True)
        errs = self._stream_parts(fit_w[:8192])[1]
        self.rec_scale_ = float(max(np.quantile(errs, 0.99), 1e-8))
        self._set_threshold(self._point_scores(Z[split:]), cfg.threshold_z)
        return self

    def _loss(self, model: CoADNet, clean: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
              bce: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        logits, rec = model(x)
        loss = bce(logits, y) + self.config.recon_weight * torch.mean((rec - model.patches(clean)) ** 2)
        return loss, logits

    def _train(self, model: CoADNet, Zf: np.ndarray, val_w: np.ndarray,
               on_epoch: Callable[[EpochLog], None] | None) -> None:
        """Each epoch draws ``windows_per_epoch`` random (channel, start) windows of the fit part, so
        the number of steps does not depend on the series' length or number of channels."""
        from sklearn.metrics import roc_auc_score

        cfg, dev = self.config, self.device_
        rng = np.random.default_rng([cfg.seed, 2])
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        bce = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(cfg.pos_weight, device=dev))
        # a fixed injected validation set (its own stream): comparable from epoch to epoch
        vx, _, vy, _ = inject_pseudo_anomalies(val_w, np.random.default_rng([cfg.seed, 3]), cfg.patch,
                                               cfg.anomaly_prob, cfg.max_anomaly_fraction)
        vclean, vx_t, vy_t = (torch.from_numpy(a).to(dev) for a in (val_w.astype(np.float32), vx, vy))
        W, offsets = self.window_, np.arange(self.window_)
        self.history_: list[EpochLog] = []
        best, best_state, self.best_epoch_ = -math.inf, None, cfg.epochs
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            total, seen = 0.0, 0
            for s in range(0, cfg.windows_per_epoch, cfg.batch_size):
                n = min(cfg.batch_size, cfg.windows_per_epoch - s)
                starts = rng.integers(0, Zf.shape[0] - W + 1, n)
                chans = rng.integers(0, Zf.shape[1], n)
                clean = np.ascontiguousarray(Zf[starts[:, None] + offsets, chans[:, None]], dtype=np.float32)
                xa, _, ya, _ = inject_pseudo_anomalies(clean, rng, cfg.patch, cfg.anomaly_prob,
                                                       cfg.max_anomaly_fraction)
                loss, _ = self._loss(model, torch.from_numpy(clean).to(dev), torch.from_numpy(xa).to(dev),
                                     torch.from_numpy(ya).to(dev), bce)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * clean.shape[0]
                seen += clean.shape[0]
            t_train = time.perf_counter() - t0
            model.eval()
            with torch.inference_mode():
                losses, logits = [], []
                for s in range(0, vx_t.shape[0], cfg.score_batch_size):
                    sl = slice(s, s + cfg.score_batch_size)
                    lo, lg = self._loss(model, vclean[sl], vx_t[sl], vy_t[sl], bce)
                    losses.append(float(lo) * lg.shape[0])
                    logits.append(lg.flatten().cpu())
            val_loss = sum(losses) / max(1, vx_t.shape[0])
            yv = vy_t.flatten().cpu().numpy()
            val_auc = float(roc_auc_score(yv, torch.cat(logits).numpy())) if 0 < yv.sum() < yv.size else float("nan")
            log = EpochLog(epoch, total / max(1, seen), val_loss, val_auc, cfg.lr,
                           time.perf_counter() - t0, t_train, t_train)
            self.history_.append(log)
            if on_epoch is not None:
                on_epoch(log)
            signal = -val_loss if math.isnan(val_auc) else val_auc
            if signal > best:
                best, best_state, self.best_epoch_ = signal, copy.deepcopy(model.state_dict()), epoch
        if best_state is not None:
            model.load_state_dict(best_state)

    # ----------------------------------------------------------------- score
    @property
    def segments(self) -> tuple[int, int]:
        """CoAD is judged on the dataset's CAPMix segments (``eval_window``, ``eval_stride``)."""
        return self.config.eval_window, self.config.eval_stride

    def _stream_parts(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-patch classifier probability and reconstruction MSE of univariate windows ``(n, W)``."""
        dev = next(self.model_.parameters()).device
        probs, errs = [], []
        self.model_.eval()
        with torch.inference_mode():
            for s in range(0, windows.shape[0], self.config.score_batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(windows[s : s + self.config.score_batch_size],
                                                           dtype=np.float32)).to(dev)
                logits, rec = self.model_(xb)
                probs.append(torch.sigmoid(logits).cpu())
                errs.append(((rec - self.model_.patches(xb)) ** 2).mean(-1).cpu())
        return torch.cat(probs).numpy(), torch.cat(errs).numpy()

    def patch_scores(self, windows: np.ndarray) -> np.ndarray:
        """Final per-patch score: ``w * p + (1 - w) * e / (e + q)`` (w = ``score_weight`` = 0.5: the mean)."""
        p, e = self._stream_parts(windows)
        w = self.config.score_weight
        return w * p + (1.0 - w) * e / (e + self.rec_scale_)

    def _point_scores(self, Z: np.ndarray) -> np.ndarray:
        """Scaled (T, C) -> one score per point (mean over covering windows, max over channels)."""
        cfg, W, C, T = self.config, self.window_, Z.shape[1], Z.shape[0]
        windows, starts = _univariate_windows(Z, W, cfg.score_stride or max(1, W // 2), tail=True)
        ps = self.patch_scores(windows)  # (S * C, N)
        pts = np.repeat(ps, cfg.patch, axis=1).reshape(len(starts), C, W)
        acc = np.zeros((T, C))
        cnt = np.zeros(T)
        idx = (starts[:, None] + np.arange(W)).ravel()
        np.add.at(acc, idx, pts.transpose(0, 2, 1).reshape(-1, C))
        np.add.at(cnt, idx, 1.0)
        out = (acc / cnt[:, None]).max(axis=1)
        if cfg.segment_pool:
            s = cfg.eval_stride
            n_full = T // s * s
            pooled = np.repeat(out[:n_full].reshape(-1, s).max(1), s)
            out = np.concatenate([pooled, np.full(T - n_full, out[n_full:].max())]) if T > n_full else pooled
        return out

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score of every point of ``X`` (higher = more anomalous)."""
        self._check_fitted()  # before reading window_, which fit resolves
        return self._point_scores(self.scaler_.transform(self._check_input(X, self.window_)))

    def fit_report(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch_, "epochs": len(self.history_), "window": self.window_}

    # ----------------------------------------------------------------- persistence
    def _saved_params(self) -> dict[str, Any]:
        # the window fit resolved, so readers of config.window (registry, batch scoring) see it
        return self.config.replace(window=self.window_).model_dump(mode="json")

    def _state(self) -> dict[str, Any]:
        return {"window": self.window_, "period": self.period_, "rec_scale": self.rec_scale_,
                "scaler_mean": self.scaler_.mean_.tolist(), "scaler_std": self.scaler_.std_.tolist(),
                "best_epoch": self.best_epoch_}

    def _weights(self) -> dict[str, Any]:
        return self.model_.state_dict()

    def _restore(self, state: dict[str, Any], weights: dict[str, Any], device: str | None) -> None:
        cfg = self.config
        model = CoADNet(cfg.patch, cfg.n_fft, cfg.hidden, cfg.layers)
        model.load_state_dict(weights)
        self.window_ = int(state["window"])
        self.period_ = state["period"]
        self.rec_scale_ = float(state["rec_scale"])
        self.scaler_ = StandardScaler(np.asarray(state["scaler_mean"]), np.asarray(state["scaler_std"]))
        self.best_epoch_ = int(state["best_epoch"])
        self.device_ = resolve_device(cfg.device)
        self.model_ = model.to(self.device_).eval()
        self.history_ = []
