"""How to pick CAPMix's epoch on the UCR anomaly archive without test labels (odd series only).

    OMP_NUM_THREADS=1 python bench/capmix_selection.py --limit 40 --out /tmp/capsel_lr3e-4 \
        --set max_epochs=60 --set patience=1000
    OMP_NUM_THREADS=1 python bench/capmix_selection.py --limit 40 --out /tmp/capsel_lr1e-3 \
        --set lr=0.001 --set max_epochs=60 --set patience=1000
    python bench/capmix_selection.py --analyse /tmp/capsel_lr3e-4 /tmp/capsel_lr1e-3

Run mode: for each of the first ``--limit`` ODD-numbered archive series (honesty rule: knobs are
chosen on odd series, the even ones are never looked at), fit ``CAPMixDetector`` with the ``ucr``
preset of params.yaml plus ``--set key=value`` overrides, monitoring the series after every
epoch, and save one ``NNN.npz`` per series under ``--out`` (reruns skip series already saved).
Train long with a huge patience and the whole trajectory is kept, so every epoch-selection rule
can be evaluated offline from one run (early stopping is simulated exactly: it does not change
the trajectory up to where it stops, and the LR schedule follows the training loss only).

The monitored series is the tail of the training part from the first point whose offset to
``train_end`` is a multiple of ``stride``, followed by the test part: the windows starting at or
after ``train_end`` are exactly the test part's own windows (the archive rule scores those), and
the windows fully inside the training part give a label-free reference score level.

``--period-window``: window = clamp(2 * period rounded to a multiple of 8, 32, 256) and
stride = window // 4, with the period estimated on the training part (``estimate_period``;
no period -> the preset's window/stride).

Analyse mode prints UCR archive-rule accuracy (hits / series) for several epoch-selection rules;
only the row marked "oracle" uses test labels to choose.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/datasets/ucr/all_250")


# ----------------------------------------------------------------------------- run
def parse_sets(items: list[str]) -> dict:
    """``key=value`` pairs; values parsed as YAML scalars/lists (0.001, 60, [0, 3], true)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected key=value")
        out[key.strip()] = yaml.safe_load(value)
    return out


def period_window(period: int | None, default: tuple[int, int]) -> tuple[int, int]:
    if period is None:
        return default
    w = int(min(256, max(32, 8 * round(2 * period / 8))))
    return w, w // 4


def odd_files(limit: int | None) -> list[Path]:
    from capmix.data.loaders import ucr_files

    files = [f for f in ucr_files(DATA) if int(f.name[:3]) % 2 == 1]
    return files[:limit] if limit else files


def run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from capmix.config import detector_config, read_params_file
    from capmix.data.loaders import load_ucr_file
    from capmix.detectors.capmix.detector import CAPMixDetector
    from capmix.detectors.period import estimate_period

    overrides = parse_sets(args.set)
    params = read_params_file(ROOT / "params.yaml")
    base = detector_config(params, "ucr", **overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"overrides": overrides, "period_window": args.period_window, "config": base.model_dump(mode="json")}
    meta_path = out / "meta.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old["overrides"] != overrides or old["period_window"] != args.period_window:
            raise SystemExit(f"{out} was made with other settings ({old['overrides']}, "
                             f"period_window={old['period_window']}); use another --out")
    else:
        meta_path.write_text(json.dumps(meta, indent=1))

    t_run = time.perf_counter()
    for f in odd_files(args.limit):
        dest = out / f"{f.name[:3]}.npz"
        if dest.exists():
            continue
        s = load_ucr_file(f)
        x_tr, _ = s.train
        x_te, y_te = s.test
        period = estimate_period(x_tr)
        window, stride = base.window, base.stride
        if args.period_window:
            window, stride = period_window(period, (window, stride))
        cfg = base.replace(window=window, stride=stride)
        # monitor = training tail aligned on the stride grid + the test part
        lead = s.train_end % stride
        mon = s.values[lead:]
        first_test = (s.train_end - lead) // stride  # index of the first test window in the monitor
        t0 = time.perf_counter()
        det = CAPMixDetector(cfg).fit(x_tr, monitor=mon)
        fit_s = time.perf_counter() - t0
        hist = det.history_
        scores = det.monitor_scores_.astype(np.float32)
        n_train_ref = max(0, (s.train_end - lead - window) // stride + 1)  # windows fully in the training part
        tmp = dest.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            name=np.array(s.name),
            test_scores=scores[:, first_test:],
            train_scores=scores[:, :n_train_ref],
            val_auc=np.array([e.val_auc for e in hist]),
            val_loss=np.array([e.val_loss for e in hist]),
            train_loss=np.array([e.train_loss for e in hist]),
            lr=np.array([e.lr for e in hist]),
            epoch_seconds=np.array([e.seconds for e in hist]),
            best_epoch=det.best_epoch_,
            test_labels=np.asarray(y_te, np.int8),
            window=window,
            stride=stride,
            period=-1 if period is None else period,
            fit_seconds=fit_s,
            n_train=s.train_end,
            n_test=x_te.shape[0],
            n_points=s.values.shape[0],
        )
        os.replace(tmp, dest)
        print(f"{s.name}: n={s.values.shape[0]} W={window} s={stride} period={period} "
              f"epochs={len(hist)} best={det.best_epoch_} fit={fit_s:.1f}s "
              f"({fit_s / max(1, len(hist)):.2f} s/epoch) total={time.perf_counter() - t_run:.0f}s", flush=True)


# ----------------------------------------------------------------------------- analyse
def early_stop(signal: np.ndarray, patience: int, min_epochs: int, min_delta: float = 1e-4) -> tuple[int, int]:
    """(epoch kept, epochs trained), 1-based, of the library's early stopping; ``signal``: higher is better."""
    best, best_ep, bad, ep = -math.inf, 1, 0, 0
    for i, v in enumerate(signal):
        ep = i + 1
        if v > best + min_delta:
            best, best_ep, bad = v, ep, 0
        else:
            bad += 1
            if bad >= patience and ep >= min_epochs:
                break
    return best_ep, ep


def trailing_mean(x: np.ndarray, k: int) -> np.ndarray:
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(1, len(x) + 1)
    lo = np.maximum(0, i - k)
    return (c[i] - c[lo]) / (i - lo)


def centred_mean(x: np.ndarray, k: int) -> np.ndarray:
    h = k // 2
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(len(x))
    lo, hi = np.maximum(0, i - h), np.minimum(len(x), i + h + 1)
    return (c[hi] - c[lo]) / (hi - lo)


def ema(x: np.ndarray, a: float) -> np.ndarray:
    out, m = np.empty_like(x), x[0]
    for i, v in enumerate(x):
        m = a * v + (1 - a) * m
        out[i] = m
    return out


def argmax_from(x: np.ndarray, m: int) -> int:
    """1-based epoch of the maximum of x over epochs >= m (first maximum); all epochs if fewer."""
    x = np.where(np.isfinite(x), x, -np.inf)
    lo = min(m - 1, len(x) - 1)
    return lo + int(np.argmax(x[lo:])) + 1


class SeriesRun:
    """One saved series: per-epoch hit and confidence, and the selection rules over them."""

    def __init__(self, path: Path):
        from capmix.detectors.confidence import peak_confidence
        from capmix.evaluation.thresholds import ucr_archive_hit
        from capmix.windows import point_scores

        z = np.load(path)
        self.name = str(z["name"])
        self.test = z["test_scores"]
        self.train = z["train_scores"]
        self.val_auc, self.val_loss = z["val_auc"], z["val_loss"]
        self.best_epoch = int(z["best_epoch"])
        self.labels = z["test_labels"]
        self.window, self.stride = int(z["window"]), int(z["stride"])
        self.period = int(z["period"])
        self.fit_seconds = float(z["fit_seconds"])
        self.n_test = int(z["n_test"])
        self.epochs = self.test.shape[0]
        # exclusion from the library's current period estimate, so runs made before a change of
        # estimate_period are analysed alike (the saved ``period`` is the one the run used)
        from capmix.data.loaders import load_ucr_file
        from capmix.detectors.period import estimate_period

        src = next(DATA.glob(f"{path.stem}_*"))
        self.period_now = estimate_period(load_ucr_file(src).train[0]) or 0
        self.excl = max(self.window, self.period_now)
        self._ps = lambda w: point_scores(w, self.n_test, self.window, self.stride)
        self._hit = lambda w: ucr_archive_hit(self._ps(w), self.labels)
        res = [self._hit(self.test[e]) for e in range(self.epochs)]
        self.hits = np.array([r.hit for r in res])
        self.no_pred = np.array([r.location is None for r in res])
        self.conf = np.array([peak_confidence(self._ps(self.test[e]), self.excl) for e in range(self.epochs)])
        ref = self.train if self.train.shape[1] else None
        self.conf_ref = np.array([
            peak_confidence(self._ps(self.test[e]), self.excl, None if ref is None else ref[e])
            for e in range(self.epochs)])

    def hit_at(self, epoch: int) -> bool:
        return bool(self.hits[min(epoch, self.epochs) - 1])

    def hit_scores(self, w: np.ndarray) -> bool:
        return bool(self._hit(w).hit)

    def rules(self) -> dict[str, bool]:
        E, auc = self.epochs, np.nan_to_num(self.val_auc, nan=-np.inf)
        r: dict[str, bool] = {}
        self.trained: dict[str, int] = {}
        self.picked_conf: dict[str, float] = {}
        stops = {"a  preset stopping: max 40, p=10, m=5": early_stop(auc[:40], 10, 5)}
        for p in (5, 10, 20):
            for m in (5, 20):
                stops[f"a  early stop val_auc p={p} m={m}"] = early_stop(auc, p, m)
        stops["a  best val_auc over the first 40 epochs"] = early_stop(auc[:40], 1000, 1)
        for key, (kept, trained) in stops.items():
            r[key] = self.hit_at(kept)
            self.trained[key] = trained
            self.picked_conf[key] = float(self.conf[kept - 1])
        r[f"a  best val_auc, all {E} epochs (detector best_epoch_)"] = self.hit_at(self.best_epoch)
        self.picked_conf["best_epoch_"] = float(self.conf[self.best_epoch - 1])
        r["a  best val_loss, all epochs"] = self.hit_at(int(np.argmin(self.val_loss)) + 1)
        r["b  last epoch"] = self.hit_at(E)
        for k in (3, 5):
            r[f"c  best trailing mean-{k} val_auc"] = self.hit_at(argmax_from(trailing_mean(auc, k), 1))
            r[f"c  best centred mean-{k} val_auc"] = self.hit_at(argmax_from(centred_mean(auc, k), 1))
        r["c  best EMA(0.3) val_auc"] = self.hit_at(argmax_from(ema(auc, 0.3), 1))
        r["c  best EMA(0.3) val_auc, ep>=10"] = self.hit_at(argmax_from(ema(auc, 0.3), 10))
        for m in (1, 5, 10, 20, 30):
            r[f"d  max peak conf, ep>={m}"] = self.hit_at(argmax_from(self.conf, m))
        for m in (1, 10, 20):
            r[f"d  max peak conf w/ train ref, ep>={m}"] = self.hit_at(argmax_from(self.conf_ref, m))
        for k in (5, 10, 15, 20, 30, 40, 50, 60):
            if k <= E:
                r[f"e  fixed epoch {k}"] = self.hit_at(k)
        # snapshot ensembles: mean window score over a span of epochs (one score, no choice)
        for lo in (10, 20, 30):
            if lo <= E:
                r[f"g  mean score over epochs {lo}..{E}"] = self.hit_scores(self.test[lo - 1:].mean(0))
        if E >= 20:
            r[f"g  mean rank score over epochs 20..{E}"] = self.hit_scores(
                np.mean([np.argsort(np.argsort(s)) for s in self.test[19:]], axis=0))
        r["f  ORACLE best epoch on test labels (not deployable)"] = bool(self.hits.any())
        return r


def analyse(dirs: list[str]) -> None:
    table: dict[str, dict[str, str]] = {}
    for d in dirs:
        paths = sorted(p for p in Path(d).glob("[0-9][0-9][0-9].npz"))
        if not paths:
            print(f"{d}: no series")
            continue
        runs = [SeriesRun(p) for p in paths]
        n = len(runs)
        rules = [r.rules() for r in runs]
        meta = json.loads((Path(d) / "meta.json").read_text())
        fit = sum(r.fit_seconds for r in runs)
        print(f"\n== {d}  overrides={meta['overrides']} period_window={meta['period_window']}  "
              f"series={n}  fit total={fit / 60:.1f} min")
        for key in rules[0]:
            h = sum(r.get(key, False) for r in rules)
            table.setdefault(key, {})[d] = f"{h}/{n}"
            print(f"  {key:58s} {h:3d}/{n}  ({h / n:.0%})")
        for key in runs[0].trained:
            print(f"  mean epochs trained, {key[3:]:40s} {np.mean([r.trained[key] for r in runs]):5.1f}")
        for key in ("a  early stop val_auc p=20 m=20", "best_epoch_"):
            c = np.array([r.picked_conf[key] for r in runs])
            h = np.array([rl[key] if key in rl else r.hit_at(r.best_epoch) for r, rl in zip(runs, rules)])
            for lo, hi in ((-np.inf, 0.3), (0.3, np.inf)):
                sel = (c >= lo) & (c < hi)
                print(f"  epoch of {key.strip()[:34]:34s} peak conf in [{lo}, {hi}): "
                      f"{int(h[sel].sum())}/{int(sel.sum())} hit")
        print("  no-prediction (ties) epochs, share:", f"{np.mean(np.concatenate([r.no_pred for r in runs])):.1%}")
        print("  per series: name, W, period, hit epochs (1-based), best_epoch_, argmax conf")
        for r in runs:
            ep = "".join("x" if h else "." for h in r.hits)
            print(f"    {r.name[:34]:34s} W={r.window:3d} P={r.period:5d} {ep}  be={r.best_epoch:2d} "
                  f"conf={argmax_from(r.conf, 1):2d}")
    if len(dirs) > 1:
        print("\n== summary (hits / series)")
        print(f"  {'rule':58s} " + " ".join(f"{Path(d).name[-16:]:>16s}" for d in dirs))
        for key, row in table.items():
            print(f"  {key:58s} " + " ".join(f"{row.get(d, '-'):>16s}" for d in dirs))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="output folder (run mode)")
    ap.add_argument("--limit", type=int, default=None, help="first N odd series")
    ap.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    ap.add_argument("--period-window", action="store_true", help="window = clamp(2*period, 32, 256), stride = W/4")
    ap.add_argument("--analyse", nargs="+", help="analyse these output folders")
    args = ap.parse_args(argv)
    if args.analyse:
        analyse(args.analyse)
    elif args.out:
        run(args)
    else:
        ap.error("give --out (run) or --analyse DIR...")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
