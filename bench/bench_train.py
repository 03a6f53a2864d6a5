"""Training and scoring throughput of capmix vs the same network written plainly in eager PyTorch.

Both run in this process, interleaved, on the same windows (UCR preset: W=64, s=16, k=8, F=64,
batch 512, float32), so the printed ratios compare like with like on this machine.

    python bench/bench_train.py [--windows 8192] [--epochs 3] [--repeats 3] [--json out.json]

Also measured: the share of an epoch spent outside the network (augmentation, revision,
batching, mixup) and a whole ``fit`` on one UCR-like series against the plain path (fastdtw
revision, a DataLoader over a TensorDataset, the eager model).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch
from torch import nn

from capmix.config import DetectorConfig, detector_config, load_params
from capmix.detectors.capmix.detector import CAPMixDetector
from capmix.detectors.capmix.network import fuse_for_inference, soft_cross_entropy
from capmix.detectors.capmix.training import AugmentedData, predict_proba, train_model


class PlainTCN(nn.Module):
    """METHOD.md section 4's network as one would first write it (the baseline)."""

    def __init__(self, c: int, w: int, k: int, f: int, L: int):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv1d(c, 32, k, padding=k // 2, bias=False), nn.BatchNorm1d(32), nn.ReLU(),
            nn.MaxPool1d(2, 2, 1), nn.Dropout(0.45),
            nn.Conv1d(32, 64, 8, padding=4, bias=False), nn.BatchNorm1d(64), nn.ReLU(), nn.MaxPool1d(2, 2, 1),
            nn.Conv1d(64, f, 8, padding=4, bias=False), nn.BatchNorm1d(f), nn.ReLU(), nn.MaxPool1d(2, 2, 1),
        )
        self.g = nn.Sequential(nn.Linear(f * L, f * L // 2), nn.BatchNorm1d(f * L // 2), nn.ReLU(),
                               nn.Linear(f * L // 2, 2))

    def forward(self, x):
        h = self.f(x.transpose(1, 2))
        return self.g(h.transpose(1, 2).flatten(1))


def plain_epoch(model, opt, x, y, batch):
    model.train()
    perm = torch.randperm(x.shape[0])
    for s in range(0, x.shape[0], batch):
        idx = perm[s : s + batch]
        if idx.numel() < 2:
            continue
        loss = soft_cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def plain_scores(model, x, batch):
    model.eval()
    with torch.no_grad():
        return torch.cat([torch.softmax(model(x[s : s + batch]), 1)[:, 1] for s in range(0, x.shape[0], batch)])


def synthetic_series(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (np.sin(2 * np.pi * t / 90) + 0.3 * np.sin(2 * np.pi * t / 23) + 0.1 * rng.standard_normal(n))[:, None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=8192, help="training windows per epoch")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fit-points", type=int, default=20000, help="training points of the whole-fit comparison")
    ap.add_argument("--fit-epochs", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    cfg = detector_config(load_params("params.yaml"), preset="ucr", device="cpu")
    cfg = cfg.replace(max_epochs=args.epochs, min_epochs=args.epochs, patience=args.epochs)
    from capmix.detectors.capmix.network import feature_length

    L = feature_length(cfg.window, cfg.kernel)
    rng = np.random.default_rng(0)
    n, w = args.windows, cfg.window
    x = rng.standard_normal((n, w, 1)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    nval = max(64, n // 5)
    data = AugmentedData(x_train=x, y_train=y, x_val=x[:nval], y_val=y[:nval], n_val_real=nval,
                         centre=x[0], revision=None, n_injected=0,
                         scaler_mean=np.zeros(1), scaler_std=np.ones(1))

    rows = {}
    plain_times, ours_times, plain_inf, ours_inf = [], [], [], []
    for _ in range(args.repeats):
        torch.manual_seed(0)
        pm = PlainTCN(1, w, cfg.kernel, cfg.features, L)
        popt = torch.optim.Adam(pm.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
        t0 = time.perf_counter()
        for _ in range(args.epochs):
            plain_epoch(pm, popt, xt, yt, cfg.batch_size)
        plain_times.append((time.perf_counter() - t0) / args.epochs)

        res = train_model(data, cfg)
        # the training time of an epoch, without its validation pass (the plain loop has none)
        ours_times.append(float(np.median([e.train_seconds for e in res.history])))

        t0 = time.perf_counter()
        plain_scores(pm, xt, cfg.batch_size)
        plain_inf.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        predict_proba(fuse_for_inference(res.model), x, cfg.score_batch_size, torch.device("cpu"))
        ours_inf.append(time.perf_counter() - t0)

    rows["train_windows_per_s_plain"] = n / min(plain_times)
    rows["train_windows_per_s_capmix"] = n / min(ours_times)
    rows["train_ratio"] = rows["train_windows_per_s_capmix"] / rows["train_windows_per_s_plain"]
    rows["score_windows_per_s_plain"] = n / min(plain_inf)
    rows["score_windows_per_s_capmix"] = n / min(ours_inf)
    rows["score_ratio"] = rows["score_windows_per_s_capmix"] / rows["score_windows_per_s_plain"]

    # share of a real fit spent outside the network: augmentation + revision vs the training loop
    series = synthetic_series(args.fit_points)
    fit_cfg = cfg.replace(max_epochs=args.fit_epochs, min_epochs=args.fit_epochs, patience=args.fit_epochs)
    det = CAPMixDetector(fit_cfg)
    det.prepare(series[:1000])  # compile/load the DTW kernel outside the timing
    t0 = time.perf_counter()
    prepared = det.prepare(series)
    t_prep = time.perf_counter() - t0
    t0 = time.perf_counter()
    det.fit_prepared(prepared)
    t_train = time.perf_counter() - t0
    rows["fit_seconds_capmix"] = t_prep + t_train
    rows["outside_network_share_of_epoch"] = (
        t_prep / args.fit_epochs + sum(e.seconds - e.train_seconds for e in det.history_) / args.fit_epochs
    ) / (t_train / args.fit_epochs)

    # the plain whole fit: fastdtw revision, DataLoader over TensorDataset, eager model
    rows["fit_seconds_plain"] = plain_fit(prepared, fit_cfg, L)
    rows["fit_ratio"] = rows["fit_seconds_plain"] / rows["fit_seconds_capmix"]

    rows["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    for k, v in rows.items():
        print(f"{k:36s} {v:.3f}" if isinstance(v, float) else f"{k:36s} {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


def plain_fit(prepared: AugmentedData, cfg: DetectorConfig, L: int) -> float:
    """The plain path on the same windows: fastdtw per injected window, DataLoader, eager loop."""
    from fastdtw import fastdtw
    from torch.utils.data import DataLoader, TensorDataset

    t0 = time.perf_counter()
    n_inj = prepared.n_injected
    injected = np.concatenate([prepared.x_train[-n_inj // 2 :], prepared.x_val[prepared.n_val_real :]])
    centre = prepared.centre
    for win in injected:
        fastdtw(win, centre, dist=lambda a, b: float(np.sum((a - b) ** 2)))
    ds = TensorDataset(torch.from_numpy(prepared.x_train), torch.from_numpy(prepared.y_train))
    dl = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True)
    torch.manual_seed(0)
    model = PlainTCN(prepared.n_channels, cfg.window, cfg.kernel, cfg.features, L)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    for _ in range(cfg.max_epochs):
        model.train()
        for xb, yb in dl:
            if xb.shape[0] < 2:
                continue
            loss = soft_cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        plain_scores(model, torch.from_numpy(prepared.x_val), cfg.batch_size)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
