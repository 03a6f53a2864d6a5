"""A CAPMix fit on a busy machine: the libraries' default threads against capmix's thread policy.

    python bench/bench_threads.py [--busy 2] [--warmup 60] [--repeats 2]

Starts ``--busy`` CPU-bound processes (other people's jobs), waits ``--warmup`` seconds so the
1-minute load average sees them, then times the same small CAPMix fit (synthetic sine, fixed
epochs) in fresh processes under ``CAPMIX_THREADS=all`` (torch/BLAS/numba defaults: one thread per
core) and ``CAPMIX_THREADS=auto`` (capmix/threads.py: cores minus the load average), alternating.
Prints the median wall time of each and their ratio, measured in this run on this machine; then
the same pair with the machine idle.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time

FIT = r"""
import time, numpy as np
from capmix.detectors.capmix.detector import CAPMixDetector
from capmix.threads import pick_threads
rng = np.random.default_rng(0)
t = np.arange(6000)
x = (np.sin(2 * np.pi * t / 50) + 0.1 * rng.standard_normal(t.size))[:, None]
det = CAPMixDetector(window=64, stride=16, max_epochs=3, min_epochs=3, seed=0)
t0 = time.perf_counter(); det.fit(x); det.decision_function(x)
print(pick_threads(), time.perf_counter() - t0)
"""


def _spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def _time(policy: str) -> tuple[str, float]:
    env = {**os.environ, "CAPMIX_THREADS": policy}
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env.pop(k, None)  # the libraries' own defaults, as a user's shell has them
    out = subprocess.run([sys.executable, "-c", FIT], env=env, capture_output=True, text=True, check=True)
    threads, seconds = out.stdout.strip().splitlines()[-1].split()
    return threads, float(seconds)


def _pair(repeats: int) -> dict[str, list[float]]:
    res: dict[str, list[float]] = {"all": [], "auto": []}
    for _ in range(repeats):
        for policy in ("all", "auto"):
            threads, s = _time(policy)
            res[policy].append(s)
            print(f"  CAPMIX_THREADS={policy:4s} threads={threads:>4s} load={os.getloadavg()[0]:.2f} {s:6.1f}s", flush=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--busy", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--warmup", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    stop = mp.Event()
    procs = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.busy)]
    for p in procs:
        p.start()
    print(f"{args.busy} busy processes; waiting {args.warmup:.0f}s for the load average", flush=True)
    time.sleep(args.warmup)
    busy = _pair(args.repeats)
    stop.set()
    for p in procs:
        p.join()
    print("idle (waiting for the load average to fall)", flush=True)
    time.sleep(args.warmup)
    idle = _pair(args.repeats)
    for name, res in (("busy", busy), ("idle", idle)):
        a, b = statistics.median(res["all"]), statistics.median(res["auto"])
        print(f"{name}: default threads {a:.1f}s, capmix policy {b:.1f}s, ratio default/policy {a / b:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
