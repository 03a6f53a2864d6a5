"""Label-free classic detector on the UCR anomaly archive (KDD Cup 2021 rule), one JSON per series.

    NUMBA_NUM_THREADS=1 python bench/ucr_label_free.py --half odd --limit 40 --out /tmp/ucr_lf

Per series: estimate the period on the training prefix, score the test part with every
period-tied candidate of ``capmix.detectors.classic.candidate_scores``, pick the candidate with the
highest ``peak_confidence``, and score it with the archive rule. The JSON keeps, per candidate,
its hit, confidence and top peaks, so selection rules can be studied offline without rerunning.
Labels are read from the file name only to score; the detector never sees them. Reruns skip
series whose JSON exists (resume); ``--force`` recomputes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import lzma
import resource
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path("/work/shared/datasets/ucr/all_250")
TOLERANCE = 100  # points either side of the anomaly that still count (archive rule)


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from capmix.detectors import classic, confidence, sweep  # noqa: E402
from capmix.detectors import period as period_mod  # noqa: E402


def parse_name(path: Path) -> dict:
    """Index, name, train end and 1-based inclusive anomaly span from an archive file name."""
    parts = path.name.split(".")[0].split("_")
    return {
        "index": int(parts[0]),
        "name": "_".join(parts[3:-3]),
        "train_end": int(parts[-3]),
        "start": int(parts[-2]),
        "end": int(parts[-1]),
    }


def archive_location(test_scores: np.ndarray) -> int | None:
    """0-based test index the archive rule reads off ``test_scores``, or None (a miss).

    The top value's contiguous runs: more than 10 separate runs is a miss, else the centre of
    the first run. Non-finite scores never count as the top.
    """
    s = np.where(np.isfinite(test_scores), test_scores, -np.inf)
    top = s.max()
    if not np.isfinite(top):
        return None
    at = np.flatnonzero(s == top)
    breaks = np.flatnonzero(np.diff(at) > 1)
    if breaks.size + 1 > 10:
        return None
    first_end = at[breaks[0]] if breaks.size else at[-1]
    return int((at[0] + first_end) // 2)


def ucr_archive_hit(test_scores: np.ndarray, train_end: int, start: int, end: int) -> bool:
    """KDD Cup 2021 rule: the top location (1-based, whole series) within [start-100, end+100]."""
    loc = archive_location(test_scores)
    if loc is None:
        return False
    pos = train_end + loc + 1
    return start - TOLERANCE <= pos <= end + TOLERANCE


def _smoothed(gen, mults):
    """Each candidate, then its moving mean over ``m * window`` for every ``m`` in ``mults``
    (kind suffixed ``_sm<m>``; the training scores smoothed alike)."""
    for kind, window, scores, ref in gen:
        yield kind, window, scores, ref
        for m in mults:
            w = max(2, int(round(m * window)))
            yield f"{kind}_sm{m:g}", window, classic.moving_mean(scores, w), classic.moving_mean(ref, w)


def run_series(path: Path, args) -> dict:
    """Score one series with every candidate; the record written to its JSON."""
    meta = parse_name(path)
    t0 = time.perf_counter()
    x = np.loadtxt(lzma.open(path))
    n = meta["train_end"]
    train, test = x[:n], x[n:]
    period = period_mod.estimate_period(train, max_period=min(n // 3, args.max_period))
    t_period = time.perf_counter() - t0
    records = []  # no score arrays kept: memory stays flat
    gen = classic.candidate_scores(
        train,
        test,
        period,
        points_per_period=args.ppp,
        max_len=args.max_len,
        mp_mults=tuple(args.mp_mults),
        roll_mults=tuple(args.roll_mults),
        roll_kinds=tuple(args.roll_kinds),
        mp_kinds=tuple(args.mp_kinds),
        flat_kinds=tuple(args.flat_kinds),
        flat_mults=tuple(args.flat_mults),
        mp_smooth=args.mp_smooth,
    )
    if args.scheme == "sweep":
        return _run_sweep(meta, x, train, test, period, t0, t_period, args)
    tk = time.perf_counter()
    for kind, window, scores, ref in _smoothed(gen, args.smooth):
        excl = max(int(window), TOLERANCE)
        finite = scores[np.isfinite(scores)]
        med = float(np.median(finite)) if finite.size else 0.0
        rq = np.quantile(ref[np.isfinite(ref)], [0.99, 0.999, 1.0]) if np.isfinite(ref).any() else [0, 0, 0]
        records.append(
            {
                "kind": kind,
                "window": int(window),
                "hit": ucr_archive_hit(scores, n, meta["start"], meta["end"]),
                "conf": confidence.peak_confidence(scores, excl, ref),
                "conf_test": confidence.peak_confidence(scores, excl),
                "train_q": [float(v) for v in rq],
                "peaks": [[n + i + 1, v] for i, v in confidence.top_peaks(scores, excl, 5)],
                "median": med,
                "mad": float(np.median(np.abs(finite - med))) if finite.size else 0.0,
                "seconds": round(time.perf_counter() - tk, 3),
            }
        )
        tk = time.perf_counter()
    best = int(np.argmax([r["conf"] for r in records]))
    meta.update(
        length=int(x.shape[0]),
        period=period,
        seconds_period=round(t_period, 3),
        seconds=round(time.perf_counter() - t0, 2),
        selected=best,
        hit=records[best]["hit"],
        any_hit=any(r["hit"] for r in records),
        maxrss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        settings={k: v for k, v in vars(args).items() if k not in ("out", "half", "limit", "force")},
        candidates=records,
    )
    return meta


def _run_sweep(meta, x, train, test, period, t0, t_period, args) -> dict:
    """The whole-series family (capmix.detectors.sweep) selected by ``peak_ratio``; each candidate
    keeps the ratio at two exclusions (the window, and max(window, 100 points))."""
    n = train.shape[0]
    windows = sweep.sweep_windows(args.sweep_min, args.sweep_max, args.sweep_growth)
    records, tk = [], time.perf_counter()
    gen = sweep.sweep_candidates(train, test, windows, tuple(args.sweep_kinds), min_train_windows=args.min_train_windows,
                                 max_join_points=args.max_len)
    for kind, window, scores, ref in gen:
        records.append({
            "kind": kind, "window": int(window),
            "hit": ucr_archive_hit(scores, n, meta["start"], meta["end"]),
            "conf": sweep.candidate_ratio(kind, window, scores, ref),
            "conf100": sweep.candidate_ratio(kind, max(int(window), TOLERANCE), scores, ref),
            "peaks": [[n + i + 1, v] for i, v in confidence.top_peaks(scores, max(int(window), TOLERANCE), 3)],
            "train_max": float(np.max(ref)) if ref.size else 0.0,
            "seconds": round(time.perf_counter() - tk, 3),
        })
        tk = time.perf_counter()
    best = int(np.argmax([r["conf"] for r in records])) if records else 0
    meta.update(
        length=int(x.shape[0]), period=period, seconds_period=round(t_period, 3),
        seconds=round(time.perf_counter() - t0, 2), selected=best,
        hit=bool(records and records[best]["hit"]), any_hit=any(r["hit"] for r in records),
        maxrss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        settings={k: v for k, v in vars(args).items() if k not in ("out", "half", "limit", "force")},
        candidates=records or [{"kind": "none", "window": 0, "hit": False, "conf": 0.0}],
    )
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--half", choices=["odd", "even", "all"], default="odd")
    ap.add_argument("--limit", type=int, default=None, help="first N series of the half")
    ap.add_argument("--only", type=int, nargs="*", default=None, help="series indices to run")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--force", action="store_true", help="recompute series whose JSON exists")
    ap.add_argument("--ppp", type=int, default=32, help="join resolution: points per period")
    ap.add_argument("--max-len", type=int, default=40_000, help="join length cap (points)")
    ap.add_argument("--max-period", type=int, default=4000)
    ap.add_argument("--mp-mults", type=float, nargs="+", default=[1.0, 2.0])
    ap.add_argument("--roll-mults", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--roll-kinds", nargs="*", default=["std_diff", "ptp_diff"])
    ap.add_argument("--mp-kinds", nargs="*", default=["mp_novelty", "mp_discord", "mp_raw_novelty", "mp_raw_discord"])
    ap.add_argument("--flat-kinds", nargs="*", default=[], help="inverse rolling kinds (std_inv, std_diff_inv, ...)")
    ap.add_argument("--flat-mults", type=float, nargs="+", default=[2.0, 4.0])
    ap.add_argument("--mp-smooth", type=float, default=0.0, help="join scores smoothed over this many windows")
    ap.add_argument("--smooth", type=float, nargs="*", default=[], help="also each candidate's moving mean over these window multiples")
    ap.add_argument("--scheme", choices=["period", "sweep"], default="period",
                    help="period-tied robust-z candidates + peak_confidence, or the whole-series sweep + peak_ratio")
    ap.add_argument("--sweep-min", type=int, default=50)
    ap.add_argument("--sweep-max", type=int, default=800)
    ap.add_argument("--sweep-growth", type=float, default=1.2)
    ap.add_argument("--sweep-kinds", nargs="+", default=list(sweep.ROLL_KINDS + sweep.JOIN_KINDS))
    ap.add_argument("--min-train-windows", type=int, default=10)
    args = ap.parse_args(argv)
    files = sorted(DATA.glob("*.txt.xz"))
    if args.half != "all":
        files = [f for f in files if parse_name(f)["index"] % 2 == (1 if args.half == "odd" else 0)]
    if args.only:
        files = [f for f in files if parse_name(f)["index"] in set(args.only)]
    files = files[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    hits, t_all = [], time.perf_counter()
    for f in files:
        target = args.out / (f.name.split(".")[0] + ".json")
        if target.exists() and not args.force:
            rec = json.loads(target.read_text())
        else:
            rec = run_series(f, args)
            target.write_text(json.dumps(rec))
        hits.append(rec["hit"])
        sel = rec["candidates"][rec["selected"]]
        print(
            f"{rec['index']:03d} {'HIT ' if rec['hit'] else 'miss'} {rec['seconds']:7.1f}s "
            f"n={rec['length']:7d} p={rec['period']} sel={sel['kind']}/{sel['window']} "
            f"conf={sel['conf']:.2f} any={int(rec['any_hit'])} {rec['name']}",
            flush=True,
        )
    print(
        f"accuracy {np.mean(hits):.3f} ({sum(hits)}/{len(hits)}) "
        f"wall {time.perf_counter() - t_all:.0f}s (resumed series count 0s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
