"""Benchmark capmix.detectors.capmix.dtw.dtw_to_reference against fastdtw and a tslearn loop.

Why: label revision (METHOD.md §3) computes DTW of every injected window to the
normal centre; tens of thousands of windows must revise in seconds. This script
measures, in one run and on the same seeded data:

(a) ``dtw_to_reference`` on all N windows after warm-up (best of ``--repeats``);
(b) ``fastdtw.fastdtw`` per pair on a sample, extrapolated to N
    (note: fastdtw is approximate and sums non-squared distances: a speed
    reference only, not the same quantity);
(c) a Python loop of ``tslearn.metrics.dtw`` (after its numba warm-up) on a
    sample, extrapolated to N — the exact reference we match — both as
    commonly called (``dtw(x, y)``: backend inferred per call, which costs more
    than the DP itself) and with ``be="numpy"`` (its fastest per-pair form);
(d) the cold first call in fresh subprocesses: with the default cache, with an
    empty ``NUMBA_CACHE_DIR`` (real compile) and again with that now-filled
    directory (load from cache).

Usage: ``python bench/bench_dtw.py [--n 100000] [--window 64] [--channels 1] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from capmix.detectors.capmix.dtw import dtw_to_reference, warmup  # noqa: E402

DEFAULT_N = 100_000
DEFAULT_WINDOW = 64
DEFAULT_CHANNELS = 1
DEFAULT_SEED = 0
DEFAULT_REPEATS = 3
DEFAULT_FASTDTW_SAMPLE = 100
DEFAULT_TSLEARN_SAMPLE = 2_000
# Windows averaged into the reference: mimics the "normal centre" C_n.
REFERENCE_POOL = 1_000
# fastdtw's own p-norm between points (p=2: Euclidean), the cheapest
# Euclidean-style cost it offers (scipy's euclidean adds per-call overhead).
FASTDTW_P_NORM = 2

# results key -> tslearn `be` argument (None: as commonly called, inferred per call)
TSLEARN_VARIANTS: dict[str, str | None] = {"tslearn": None, "tslearn_numpy": "numpy"}

CONSOLE_MIN_WIDTH = 120  # keep the table on one line per row when piped

TARGET_OURS_S = 2.0
TARGET_VS_FASTDTW = 1_000.0
TARGET_VS_TSLEARN = 50.0

_COLD_SNIPPET = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from capmix.detectors.capmix.dtw import dtw_to_reference
t1 = time.perf_counter()
dtw_to_reference(np.zeros((2, {window}, {channels})), np.ones(({window}, {channels})))
t2 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "first_call_s": t2 - t1}}))
"""


def make_data(
    n: int, window: int, channels: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-window z-normalised random walks and their mean as the reference."""
    rng = np.random.default_rng(seed)
    windows = np.cumsum(rng.standard_normal((n, window, channels)), axis=1)
    windows -= windows.mean(axis=1, keepdims=True)
    windows /= windows.std(axis=1, keepdims=True) + np.finfo(np.float64).eps
    reference = windows[: min(n, REFERENCE_POOL)].mean(axis=0)
    return windows, reference


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """Best wall time of ``repeats`` calls: the least noisy estimate on a shared box."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return float(best)


def time_fastdtw(windows: np.ndarray, reference: np.ndarray, sample: int) -> float:
    """Seconds per pair for fastdtw (defaults: radius=1) with a Euclidean point cost."""
    from fastdtw import fastdtw

    start = time.perf_counter()
    for window in windows[:sample]:
        fastdtw(window, reference, dist=FASTDTW_P_NORM)
    return (time.perf_counter() - start) / sample


def time_tslearn(
    windows: np.ndarray,
    reference: np.ndarray,
    sample: int,
    band: int | None,
    backend: str | None,
) -> tuple[float, float]:
    """Seconds per pair for a tslearn loop, and its max abs deviation from ours."""
    from tslearn.metrics import dtw

    kwargs: dict[str, Any] = {} if backend is None else {"be": backend}
    if band is not None:
        kwargs |= {"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": band}
    dtw(windows[0], reference, **kwargs)  # pay tslearn's numba compile outside the timing
    subset = windows[:sample]
    start = time.perf_counter()
    theirs = np.array([dtw(window, reference, **kwargs) for window in subset])
    per_pair = (time.perf_counter() - start) / len(subset)
    max_abs_diff = float(np.abs(theirs - dtw_to_reference(subset, reference, band=band)).max())
    return per_pair, max_abs_diff


def time_cold(window: int, channels: int, cache_dir: str | None) -> dict[str, float]:
    """Import + first-call time of capmix.detectors.capmix.dtw in a fresh interpreter."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    code = _COLD_SNIPPET.format(window=window, channels=channels)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": _threading_layer(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
    }


def _threading_layer() -> str:
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return "unknown"


def run(args: argparse.Namespace) -> dict[str, Any]:
    windows, reference = make_data(args.n, args.window, args.channels, args.seed)
    warmup()
    dtw_to_reference(windows[:REFERENCE_POOL], reference, band=args.band)
    def ours() -> np.ndarray:
        return dtw_to_reference(windows, reference, band=args.band)

    ours_total = best_of(ours, args.repeats)
    ours_pair = ours_total / args.n
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # per-core throughput: shows the parallel scaling
    try:
        ours_1t = best_of(ours, args.repeats)
    finally:
        numba.set_num_threads(threads)

    results: dict[str, Any] = {
        "config": {
            "n": args.n,
            "window": args.window,
            "channels": args.channels,
            "band": args.band,
            "seed": args.seed,
            "repeats": args.repeats,
        },
        "machine": machine_info(),
        "ours": {"total_s": ours_total, "per_pair_s": ours_pair, "pairs_timed": args.n},
        "ours_1_thread": {
            "total_s": ours_1t,
            "per_pair_s": ours_1t / args.n,
            "pairs_timed": args.n,
            "ns_per_dp_cell": ours_1t / (args.n * args.window * args.window) * 1e9,
        },
    }
    fast_sample = min(args.fastdtw_sample, args.n)
    if fast_sample > 0:
        fast_pair = time_fastdtw(windows, reference, fast_sample)
        results["fastdtw"] = {
            "per_pair_s": fast_pair,
            "total_s_extrapolated": fast_pair * args.n,
            "pairs_timed": fast_sample,
            "speedup_ours": fast_pair / ours_pair,
        }
    tsl_sample = min(args.tslearn_sample, args.n)
    for key, backend in TSLEARN_VARIANTS.items():
        if tsl_sample <= 0:
            break
        tsl_pair, max_diff = time_tslearn(windows, reference, tsl_sample, args.band, backend)
        results[key] = {
            "per_pair_s": tsl_pair,
            "total_s_extrapolated": tsl_pair * args.n,
            "pairs_timed": tsl_sample,
            "speedup_ours": tsl_pair / ours_pair,
            "max_abs_diff_vs_ours": max_diff,
        }
    if not args.no_cold:
        with tempfile.TemporaryDirectory(prefix="capmix-numba-cache-") as fresh:
            results["cold"] = {
                "default_cache": time_cold(args.window, args.channels, None),
                "empty_cache_compile": time_cold(args.window, args.channels, fresh),
                "filled_cache_load": time_cold(args.window, args.channels, fresh),
            }
    results["targets"] = {
        "ours_total_lt_s": TARGET_OURS_S,
        "vs_fastdtw_ge": TARGET_VS_FASTDTW,
        "vs_tslearn_ge": TARGET_VS_TSLEARN,
        "ours_ok": ours_total < TARGET_OURS_S,
        "fastdtw_ok": results.get("fastdtw", {}).get("speedup_ours", np.inf) >= TARGET_VS_FASTDTW,
        "tslearn_ok": results.get("tslearn", {}).get("speedup_ours", np.inf) >= TARGET_VS_TSLEARN,
        "tslearn_numpy_ok": results.get("tslearn_numpy", {}).get("speedup_ours", np.inf)
        >= TARGET_VS_TSLEARN,
    }
    results["machine"]["numba_threading_layer"] = _threading_layer()
    return results


def _fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f} µs"


def render(results: dict[str, Any]) -> None:
    """Print the results as a rich table when rich is installed, else plain text."""
    cfg, machine = results["config"], results["machine"]
    header = [
        f"DTW to one reference: N={cfg['n']:,} W={cfg['window']} C={cfg['channels']} "
        f"band={cfg['band']} seed={cfg['seed']} (ours: best of {cfg['repeats']})",
        f"machine: {machine['cpu_count']} CPUs, {machine['numba_threads']} numba threads "
        f"({machine['numba_threading_layer']}), {machine['processor']}, {machine['platform']}, "
        f"python {machine['python']}, numpy {machine['numpy']}, numba {machine['numba']}",
    ]
    ours, ours_1t = results["ours"], results["ours_1_thread"]
    rows = [
        (
            f"capmix dtw_to_reference ({machine['numba_threads']} thr)",
            f"{ours['pairs_timed']:,}",
            _fmt_us(ours["per_pair_s"]),
            f"{ours['total_s']:.3f} s",
            "1x",
        ),
        (
            "capmix dtw_to_reference (1 thr)",
            f"{ours_1t['pairs_timed']:,}",
            _fmt_us(ours_1t["per_pair_s"]),
            f"{ours_1t['total_s']:.3f} s",
            f"{ours_1t['total_s'] / ours['total_s']:.1f}x slower",
        ),
    ]
    labels = {
        "fastdtw": "fastdtw (radius=1, p=2)",
        "tslearn": "tslearn dtw(x, y) loop",
        "tslearn_numpy": "tslearn dtw(.., be='numpy') loop",
    }
    for key, label in labels.items():
        if key in results:
            r = results[key]
            rows.append(
                (
                    label,
                    f"{r['pairs_timed']:,}",
                    _fmt_us(r["per_pair_s"]),
                    f"{r['total_s_extrapolated']:,.1f} s (extrap.)",
                    f"{r['speedup_ours']:,.0f}x slower",
                )
            )
    columns = ("method", "pairs timed", "per pair", f"total for N={cfg['n']:,}", "vs ours")
    footer = [
        f"ours, 1 thread: {ours_1t['ns_per_dp_cell']:.3f} ns per DP cell (W*W cells per pair)"
    ]
    for key in ("tslearn", "tslearn_numpy"):
        if key in results:
            footer.append(
                f"max |ours - {labels[key]}| on its sample: "
                f"{results[key]['max_abs_diff_vs_ours']:.2e}"
            )
    for name, c in results.get("cold", {}).items():
        footer.append(
            f"fresh process, {name.replace('_', ' ')}: import capmix.detectors.capmix.dtw {c['import_s']:.2f} s, "
            f"first call {c['first_call_s']:.2f} s"
        )
    t = results["targets"]

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    footer.append(
        f"targets: ours < {t['ours_total_lt_s']} s {verdict(t['ours_ok'])}; "
        f">= {t['vs_fastdtw_ge']:.0f}x fastdtw {verdict(t['fastdtw_ok'])}; "
        f">= {t['vs_tslearn_ge']:.0f}x tslearn loop {verdict(t['tslearn_ok'])} "
        f"(be='numpy' loop: {verdict(t['tslearn_numpy_ok'])})"
    )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print("\n".join(header))
        widths = [max(len(str(row[i])) for row in (columns, *rows)) for i in range(len(columns))]
        for row in (columns, *rows):
            print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
        print("\n".join(footer))
        return
    console = Console(width=max(Console().width, CONSOLE_MIN_WIDTH))
    for line in header:
        console.print(line, markup=False, highlight=False)
    table = Table(*columns)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for line in footer:
        console.print(line, markup=False, highlight=False)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="windows to score")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="window length W")
    parser.add_argument("--channels", type=int, default=DEFAULT_CHANNELS, help="channels C")
    parser.add_argument("--band", type=int, default=None, help="Sakoe-Chiba radius (default none)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--fastdtw-sample", type=int, default=DEFAULT_FASTDTW_SAMPLE)
    parser.add_argument("--tslearn-sample", type=int, default=DEFAULT_TSLEARN_SAMPLE)
    parser.add_argument("--no-cold", action="store_true", help="skip the fresh-process timings")
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args(argv)
    if min(args.n, args.window, args.channels, args.repeats) < 1:
        parser.error("--n, --window, --channels and --repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    render(results)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
