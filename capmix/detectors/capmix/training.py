"""Training set construction (inject -> revise) and the training loop (METHOD.md sections 2-5)."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from sklearn.metrics import roc_auc_score

from capmix.atomic import atomic_file
from capmix.detectors.capmix.augment import cut_add_paste
from capmix.config import DetectorConfig
from capmix.detectors.capmix.network import TCN, soft_cross_entropy
from capmix.detectors.capmix.revision import Revision, normal_centre, revise
from capmix.windows import sliding_windows, window_labels


@dataclass
class AugmentedData:
    """Real + injected windows of the training and validation parts, with their labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_val_real: int  #: the first n_val_real rows of x_val are real windows (for the threshold)
    centre: np.ndarray
    revision: Revision | None
    n_injected: int
    #: set by the detector: what the windows were standardised with and what they came from
    scaler_mean: np.ndarray | None = None
    scaler_std: np.ndarray | None = None
    train_digest: str = ""

    @property
    def n_channels(self) -> int:
        return int(self.x_train.shape[2])

    @property
    def n_train_real(self) -> int:
        """The first n_train_real rows of x_train are real windows (the rest are injected copies)."""
        n_val_injected = self.x_val.shape[0] - self.n_val_real
        return int(self.x_train.shape[0] - (self.n_injected - n_val_injected))

    def save(self, path: str | Path) -> Path:
        """Write as a plain ``.npz`` (no pickle) atomically, so a pipeline task can hand it on."""
        path = Path(path)
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "revision"}
        arrays["train_digest"] = np.array(self.train_digest)
        if self.revision is not None:
            for f in fields(self.revision):
                arrays[f"revision_{f.name}"] = np.asarray(getattr(self.revision, f.name))
        with atomic_file(path, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> AugmentedData:
        with np.load(path, allow_pickle=False) as z:
            rev = None
            if "revision_labels" in z:
                rev = Revision(
                    labels=z["revision_labels"],
                    distances=z["revision_distances"],
                    mu=float(z["revision_mu"]),
                    sigma=float(z["revision_sigma"]),
                    cutoff=float(z["revision_cutoff"]),
                )
            return cls(
                x_train=z["x_train"],
                y_train=z["y_train"],
                x_val=z["x_val"],
                y_val=z["y_val"],
                n_val_real=int(z["n_val_real"]),
                centre=z["centre"],
                revision=rev,
                n_injected=int(z["n_injected"]),
                scaler_mean=z["scaler_mean"],
                scaler_std=z["scaler_std"],
                train_digest=str(z["train_digest"]),
            )

    def report(self) -> dict[str, float | int]:
        """What augmentation made, for logging."""
        rep: dict[str, float | int] = {
            "n_train_windows": int(self.x_train.shape[0]),
            "n_val_windows": int(self.x_val.shape[0]),
            "n_injected": self.n_injected,
        }
        if self.revision is not None:
            rep.update(
                n_soft=self.revision.n_soft,
                dtw_mu=self.revision.mu,
                dtw_sigma=self.revision.sigma,
                dtw_cutoff=self.revision.cutoff,
            )
        return rep


#: Weight initialisation uses torch's global generator; the lock makes seed + init atomic when
#: several series train in threads of one process.
_INIT_LOCK = threading.Lock()

#: Independent random streams of one seed: augmentation and training never share a generator,
#: so augmenting in one pipeline task and training in another gives the same model as ``fit``.
AUGMENT_STREAM = 0
TRAIN_STREAM = 1


def seed_everything(seed: int, stream: int = AUGMENT_STREAM) -> np.random.Generator:
    """Seed python and numpy; return the numpy generator of the given stream.

    capmix itself draws only from explicit generators (this one, and torch generators seeded
    from it); torch's global generator is seeded together with weight initialisation in
    :func:`build_model`, under a lock, so concurrent fits in threads stay deterministic.
    """
    with _INIT_LOCK:
        random.seed(seed)
        np.random.seed(seed % 2**32)
    return np.random.default_rng([seed, stream])


def chronological_split(n: int, cfg: DetectorConfig) -> tuple[slice, slice]:
    """Train / validation window ranges: the last ``val_fraction`` of windows validate.

    A gap of ``ceil(W/s) - 1`` windows keeps validation windows from sharing points with
    training windows when ``s < W``.
    """
    gap = math.ceil(cfg.window / cfg.stride) - 1
    n_val = max(1, int(round(cfg.val_fraction * n)))
    n_train = n - n_val - gap
    if n_train < 2:
        need = cfg.window + (2 + gap + n_val) * cfg.stride
        raise ValueError(
            f"training part gives {n} windows, too few for a train/validation split "
            f"(W={cfg.window}, s={cfg.stride}); use a training series of at least ~{need} points "
            "or a smaller window/stride"
        )
    return slice(0, n_train), slice(n_train + gap, n)


def build_training_data(
    values: np.ndarray, labels: np.ndarray | None, cfg: DetectorConfig, rng: np.random.Generator
) -> AugmentedData:
    """Window the standardised training part, inject CutAddPaste copies and revise their labels."""
    windows = sliding_windows(values, cfg.window, cfg.stride)
    n = windows.shape[0]
    wl = (
        window_labels(labels, cfg.window, cfg.stride).astype(np.float32)
        if labels is not None
        else np.zeros(n, np.float32)
    )
    tr, va = chronological_split(n, cfg)
    parts = []
    for sl in (tr, va):
        # donors come from the same part, so validation never sees training patches
        inj, _ = cut_add_paste(
            windows[sl], rng, rate=cfg.rate, min_patch=cfg.min_patch, rho=cfg.rho, dims=cfg.dims
        )
        parts.append(inj)
    centre = normal_centre(windows[tr], wl[tr])
    injected = np.concatenate(parts)
    if cfg.use_revision:
        rev = revise(injected, centre, cfg.gamma, cfg.dtw_band)
        inj_labels = rev.labels
    else:
        rev = None
        inj_labels = np.ones(injected.shape[0], np.float32)
    if not cfg.soft_labels:
        # ablation: the reference code's int64 cast turns every soft label into 0
        inj_labels = np.floor(inj_labels)
    n_tr_inj = parts[0].shape[0]
    return AugmentedData(
        x_train=np.concatenate([windows[tr], parts[0]]),
        y_train=np.concatenate([wl[tr], inj_labels[:n_tr_inj]]),
        x_val=np.concatenate([windows[va], parts[1]]),
        y_val=np.concatenate([wl[va], inj_labels[n_tr_inj:]]),
        n_val_real=va.stop - va.start,
        centre=centre,
        revision=rev,
        n_injected=int(injected.shape[0]),
    )


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device: auto or cpu")
    return dev


def amp_enabled(cfg: DetectorConfig, device: torch.device) -> bool:
    """Mixed precision only where it pays and is supported as tested: CUDA.

    On a CPU device ``amp: true`` is a no-op with a warning, so one params.yaml serves the GPU
    worker and the CPU machines (CI, laptops); the CPU model is then exactly the float32 one.
    """
    if not cfg.amp:
        return False
    if device.type != "cuda":
        warnings.warn(f"amp: true has no effect on device {device}; training and scoring in float32",
                      RuntimeWarning, stacklevel=3)
        return False
    return True


def build_model(n_channels: int, cfg: DetectorConfig) -> TCN:
    """A freshly initialised TCN; the same seed always gives the same weights."""
    with _INIT_LOCK:
        torch.manual_seed(cfg.seed)
        return TCN(n_channels, cfg.window, cfg.kernel, cfg.features, cfg.dropout)


@dataclass
class EpochLog:
    epoch: int
    train_loss: float
    val_loss: float
    val_auc: float
    lr: float
    seconds: float  #: the whole epoch, validation included
    train_seconds: float = 0.0  #: the pass over the training windows
    network_seconds: float = 0.0  #: forward + backward + optimiser step inside that pass


@dataclass
class TrainResult:
    model: TCN
    history: list[EpochLog] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    resumed_from: int | None = None  #: first epoch trained after resuming from a checkpoint
    #: window scores of the ``monitor`` windows after each epoch trained in this call
    monitor_scores: list[np.ndarray] = field(default_factory=list)


def predict_proba(model: TCN, x: np.ndarray | torch.Tensor, batch_size: int, device: torch.device,
                  amp: bool = False) -> np.ndarray:
    """Window scores ``p = softmax(logits)[:, 1]`` in evaluation mode (no mixup, no dropout).

    ``amp`` runs the network under float16 autocast (CUDA only; the softmax is taken in float32).
    """
    return map_windows(lambda xb: torch.softmax(model(xb).float(), dim=1)[:, 1], model, x, batch_size, device, amp)


def map_windows(fn: Callable[[torch.Tensor], torch.Tensor], model: TCN, x: np.ndarray | torch.Tensor,
                batch_size: int, device: torch.device, amp: bool = False) -> np.ndarray:
    """``fn`` (one network pass per batch) over ``x`` in batches of ``batch_size``, evaluation mode."""
    model.eval()
    out = []
    amp = amp and device.type == "cuda"
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=amp), \
            warnings.catch_warnings():
        # read-only input (window views, memory maps, pandas' copy-on-write values) is never written
        # here; copying it instead would move batches in memory and change float32 results in the
        # last digits between callers, so torch's warning about it is silenced
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        for start in range(0, x.shape[0], batch_size):
            xb = torch.as_tensor(np.ascontiguousarray(x[start : start + batch_size])).to(device)
            out.append(fn(xb).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def _validate(model: TCN, x: torch.Tensor, y: torch.Tensor, batch_size: int, amp: bool = False) -> tuple[float, float]:
    """Validation loss and ROC-AUC of real (y = 0) vs injected/anomalous (y > 0) windows.

    The AUC is the default early-stopping signal: injected windows that look normal keep the
    loss high even while the ranking, which is what the detector is used for, improves.
    """
    model.eval()
    logits = []
    with torch.inference_mode():
        with torch.autocast(x.device.type, dtype=torch.float16, enabled=amp):
            for start in range(0, x.shape[0], batch_size):
                logits.append(model(x[start : start + batch_size]))
        out = torch.cat(logits).float()
        loss = float(soft_cross_entropy(out, y))
        p = torch.softmax(out, dim=1)[:, 1].cpu().numpy()
    pos = (y > 0).cpu().numpy()
    auc = float(roc_auc_score(pos, p)) if 0 < pos.sum() < pos.size else float("nan")
    return loss, auc


#: config keys that do not change what training computes (a checkpoint stays valid across them)
_RUNTIME_KEYS = ("device", "score_batch_size")


def checkpoint_fingerprint(data: AugmentedData, cfg: DetectorConfig) -> str:
    """What a checkpoint belongs to: the config, the training data and the augmented windows' shapes."""
    h = hashlib.sha256(json.dumps(cfg.model_dump(mode="json", exclude=set(_RUNTIME_KEYS)), sort_keys=True).encode())
    h.update(data.train_digest.encode())
    h.update(repr((data.x_train.shape, data.x_val.shape, data.n_injected)).encode())
    return h.hexdigest()


def _load_checkpoint(path: Path, fingerprint: str) -> dict | None:
    """The checkpoint at ``path`` when it belongs to this training, else None (a fresh start)."""
    if not path.is_file():
        return None
    try:
        # weights_only: tensors, numbers, strings and containers; nothing else is unpickled
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unreadable checkpoint only costs the epochs it held
        warnings.warn(f"ignoring unreadable checkpoint {path} ({exc}); training from epoch 1", RuntimeWarning,
                      stacklevel=3)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        warnings.warn(f"checkpoint {path} belongs to other data or settings; training from epoch 1",
                      RuntimeWarning, stacklevel=3)
        return None
    return state


class _Run:
    """Everything one training run mutates: network, optimiser, schedules, generators, early stopping.

    Kept together so a checkpoint is one ``state()`` and a resume one ``restore()``.
    """

    def __init__(self, data: AugmentedData, cfg: DetectorConfig):
        self.cfg = cfg
        self.rng = seed_everything(cfg.seed, TRAIN_STREAM)
        self.device = device = resolve_device(cfg.device)
        self.model = build_model(data.n_channels, cfg).to(device)
        # the fused kernel updates all parameters in one pass (the per-tensor ops were ~7 % of an epoch)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.99),
                                    weight_decay=cfg.weight_decay, fused=True)
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, factor=cfg.lr_factor,
                                                                patience=cfg.lr_patience)
        self.amp = amp_enabled(cfg, device)
        # disabled, the scaler is the identity and step() is a plain opt.step(): the float32 path is unchanged
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp)
        self.x_tr = torch.from_numpy(np.ascontiguousarray(data.x_train, dtype=np.float32)).to(device)
        self.y_tr = torch.from_numpy(data.y_train.astype(np.float32)).to(device)
        self.x_va = torch.from_numpy(np.ascontiguousarray(data.x_val, dtype=np.float32)).to(device)
        self.y_va = torch.from_numpy(data.y_val.astype(np.float32)).to(device)
        self.gen = torch.Generator().manual_seed(int(self.rng.integers(2**31)))
        self.model_gen = torch.Generator(device=device).manual_seed(int(self.rng.integers(2**31)))
        self.model.set_generator(self.model_gen)
        self.layers = list(cfg.mixup_layers) if cfg.use_mixup else []
        self.result = TrainResult(model=self.model)
        self.best, self.best_state, self.bad_epochs = math.inf, None, 0

    _PARTS = ("model", "opt", "sched", "scaler")

    def state(self, fingerprint: str, epoch: int) -> dict[str, Any]:
        r = self.result
        return {"fingerprint": fingerprint, "epoch": epoch,
                **{k: getattr(self, k).state_dict() for k in self._PARTS},
                "np_rng": self.rng.bit_generator.state, "gen": self.gen.get_state(),
                "model_gen": self.model_gen.get_state(), "best": self.best, "best_state": self.best_state,
                "bad_epochs": self.bad_epochs, "best_epoch": r.best_epoch, "stopped_early": r.stopped_early,
                "history": [dict(e.__dict__) for e in r.history]}

    def restore(self, saved: dict[str, Any]) -> int:
        """Resume from a checkpoint; returns the first epoch still to train."""
        for k in self._PARTS:
            getattr(self, k).load_state_dict(saved[k])
        self.rng.bit_generator.state = saved["np_rng"]
        self.gen.set_state(saved["gen"])
        self.model_gen.set_state(saved["model_gen"])
        self.best, self.best_state, self.bad_epochs = saved["best"], saved["best_state"], saved["bad_epochs"]
        r = self.result
        r.best_epoch, r.stopped_early = saved["best_epoch"], saved["stopped_early"]
        r.history = [EpochLog(**e) for e in saved["history"]]
        r.resumed_from = saved["epoch"] + 1
        return self.cfg.max_epochs + 1 if r.stopped_early else r.resumed_from  # finished: nothing left

    def train_epoch(self) -> tuple[float, float]:
        """One pass over the shuffled training windows; returns (mean loss, seconds in the network)."""
        cfg, model, rng, device = self.cfg, self.model, self.rng, self.device
        model.train()
        n = self.x_tr.shape[0]
        order = torch.randperm(n, generator=self.gen).to(device)
        total, seen, t_net = 0.0, 0, 0.0
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            if idx.shape[0] < 2:  # BatchNorm needs two samples in training mode
                continue
            xb, yb = self.x_tr[idx], self.y_tr[idx]
            mix = None
            if self.layers:
                layer = self.layers[int(rng.integers(len(self.layers)))]
                lam = float(rng.beta(cfg.alpha, cfg.alpha))
                perm = torch.randperm(idx.shape[0], generator=self.gen).to(device)
                mix = (layer, lam, perm)
                yb = lam * yb + (1.0 - lam) * yb[perm]
            t_b = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.float16, enabled=self.amp):
                logits = model(xb, mix)
            loss = soft_cross_entropy(logits.float(), yb)
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
            t_net += time.perf_counter() - t_b
            total += float(loss.detach()) * idx.shape[0]
            seen += idx.shape[0]
        return total / max(1, seen), t_net

    def select(self, epoch: int, val_loss: float, val_auc: float) -> None:
        """Early stopping: keep the best weights so far; stop after ``patience`` epochs without gain."""
        cfg = self.cfg
        # lower is better for both signals
        signal = val_loss if cfg.early_stopping == "val_loss" or math.isnan(val_auc) else -val_auc
        if signal < self.best - cfg.min_delta:
            self.best, self.bad_epochs, self.result.best_epoch = signal, 0, epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.bad_epochs += 1
            # BatchNorm running statistics need a few epochs before eval-mode losses mean much
            if self.bad_epochs >= cfg.patience and epoch >= cfg.min_epochs:
                self.result.stopped_early = True


def train_model(
    data: AugmentedData,
    cfg: DetectorConfig,
    on_epoch: Callable[[EpochLog], None] | None = None,
    checkpoint: str | Path | None = None,
    monitor: np.ndarray | None = None,
) -> TrainResult:
    """Adam + ReduceLROnPlateau (training loss) + early stopping on a validation signal.

    ``monitor``: windows scored after every epoch (``result.monitor_scores``), for studies of
    how the model evolves (the benchmark's best-epoch-on-test protocol). Scoring draws no
    random numbers, so the trained model is the same with or without it.

    ``checkpoint``: after every epoch the whole training state (weights, optimiser, scheduler,
    gradient scaler, every random generator, early-stopping state and history) is written there
    atomically; a call with an existing checkpoint of the same data and config resumes after its
    epoch and ends with exactly the model of an uninterrupted run.
    """
    run = _Run(data, cfg)
    result, first_epoch = run.result, 1
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    fingerprint = checkpoint_fingerprint(data, cfg) if ckpt_path is not None else ""
    saved = _load_checkpoint(ckpt_path, fingerprint) if ckpt_path is not None else None
    if saved is not None:
        first_epoch = run.restore(saved)

    for epoch in range(first_epoch, cfg.max_epochs + 1):
        t0 = time.perf_counter()
        train_loss, t_net = run.train_epoch()
        t_train = time.perf_counter() - t0
        run.sched.step(train_loss)
        val_loss, val_auc = _validate(run.model, run.x_va, run.y_va, cfg.score_batch_size, run.amp)
        log = EpochLog(epoch, train_loss, val_loss, val_auc, run.opt.param_groups[0]["lr"],
                       time.perf_counter() - t0, t_train, t_net)
        result.history.append(log)
        if monitor is not None:
            result.monitor_scores.append(predict_proba(run.model, monitor, cfg.score_batch_size, run.device, run.amp))
        if on_epoch is not None:
            on_epoch(log)
        run.select(epoch, val_loss, val_auc)
        if ckpt_path is not None:
            with atomic_file(ckpt_path, suffix=".pt") as tmp:
                torch.save(run.state(fingerprint, epoch), tmp)
        if result.stopped_early:
            break
    if run.best_state is not None:
        run.model.load_state_dict(run.best_state)
    run.model.eval()
    return result
