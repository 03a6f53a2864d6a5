"""Benchmark the default-data generator, and what recording the values to ``decimals`` costs.

Why: tests and benchmarks generate data on every run, so generation must stay a small part of a
test's time (well under a second for the default 4 x 8000 x 3). The baseline, measured in the same
run on the same config, is the generator at full float64 (``decimals=None``), so the printed ratio is
the price of the CPU-independent rounding (capmix/data/synthetic.py, module docstring).

Usage: ``python bench/bench_generate.py [--repeats 5] [--params params.yaml]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from capmix.config import load_params  # noqa: E402
from capmix.data.synthetic import generate  # noqa: E402


def best_of(fn, repeats: int) -> float:
    fn()  # imports, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--params", default=str(REPO_ROOT / "params.yaml"))
    args = ap.parse_args(argv)
    cfg = load_params(args.params).generate.generator()
    full = cfg.model_copy(update={"decimals": None})
    shape = f"{cfg.n_series} x {cfg.length} x {cfg.n_channels}"
    t_full = best_of(lambda: generate(full), args.repeats)
    t_round = best_of(lambda: generate(cfg), args.repeats)
    print(f"generate {shape}, best of {args.repeats}:")
    print(f"  full float64 (baseline)   {t_full * 1e3:8.1f} ms")
    print(f"  decimals={cfg.decimals}                {t_round * 1e3:8.1f} ms   ({t_round / t_full:.2f}x the baseline)")


if __name__ == "__main__":
    main()
