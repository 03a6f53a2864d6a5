r"""The GPU check of issue 13, as one prepared script: CAPMix training and scoring on CUDA, and
stumpy's GPU join, on the archive's longest UCR series, with the same steps on CPU to compare.

    python bench/gpu_check.py --series 240_UCR_Anomaly_....txt.xz --json out.json           # every device here
    python bench/gpu_check.py --series FILE --devices cpu --json cpu.json                   # the CPU baseline

What it measures (each step on its own, so one failure does not lose the rest; a step that
raises is recorded with its error):

* ``capmix``: training windows/s (median over epochs after the first, which carries CUDA's warm-up),
  ``fit_prepared`` and ``decision_function`` wall time, per device and precision (CUDA: float32 and
  AMP). The windows are prepared once (injection, DTW revision: CPU work) and shared, so every
  device trains on the same data.
* ``same_weights``: the CUDA-trained model's scores on CUDA against the same weights loaded on the
  CPU (max |difference| relative to the score range; the tests accept 1e-4 in float32).
* ``stumpy``: the test part's AB-join against the training part, at the ensemble's down-sampling
  (``capmix.detectors.classic``: about 32 points per period, at most 40,000 points) and at full
  resolution. The CPU runs at full resolution only on a prefix (``--cpu-join-points``, quadratic);
  rates are given in distance-profile cells per second so that the two compare.

A CUDA machine without package or data access (this workplace's: Python 3.12 with torch and numba,
no pydantic or stumpy) gets what it lacks from ``make gpu-bundle`` (the pinned wheels and series 240
into ``.gpu/``, git-ignored), and runs, with ``.gpu`` carried (under 8 minutes):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .gpu/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && \
    python3 bench/gpu_check.py --series .gpu/240_*.txt.xz --json $OUT/gpu.json --budget-s 420; \
    python3 -m pytest -q --noconftest -p no:cacheprovider tests/scale/test_amp.py

The CPU figures to compare with come from this 2-core machine: ``--devices cpu`` on the same file.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capmix.data.loaders import load_ucr_file  # noqa: E402
from capmix.detectors.capmix.detector import CAPMixDetector  # noqa: E402
from capmix.detectors.classic import _factor, aggregate, candidate_scores  # noqa: E402
from capmix.detectors.period import estimate_period  # noqa: E402

#: the ensemble's join down-sampling, as ``candidate_scores`` defaults it
_JOIN = {k: inspect.signature(candidate_scores).parameters[k].default
         for k in ("points_per_period", "max_len", "default_period")}


def _step(report: dict, name: str, fn: Callable[[], Any]) -> Any:
    """Run one measurement; record its result (or its error) under ``report[name]``."""
    t0 = time.perf_counter()
    try:
        out = fn()
        report[name] = out if isinstance(out, dict) else {"value": out}
    except Exception as exc:  # noqa: BLE001 - a failed step is a result too; the others still run
        report[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=4)}
        out = None
    report[name]["step_seconds"] = round(time.perf_counter() - t0, 2)
    print(f"{name}: {json.dumps({k: v for k, v in report[name].items() if k != 'trace'})}", flush=True)
    return out


def environment() -> dict:
    import torch

    info = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available()}
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import numba
        import stumpy
        from numba import cuda

        info["stumpy"] = stumpy.__version__
        info["numba_threads"] = numba.get_num_threads()  # the CPU join's parallelism
        info["numba_cuda"] = bool(cuda.is_available())
    except Exception as exc:  # noqa: BLE001 - reported, the CAPMix steps do not need stumpy
        info["stumpy"] = f"unavailable: {exc}"
    return info


def prepare(train: np.ndarray, seed: int, held: dict) -> dict:
    """Injection and DTW revision (CPU work), done once and shared by every device: ``held["data"]``."""
    held["data"] = CAPMixDetector(seed=seed).prepare(train[:, None])
    return {"train_windows": int(held["data"].x_train.shape[0])}


def train_capmix(data, device: str, amp: bool, epochs: int, test: np.ndarray, seed: int,
                 held: dict, name: str) -> dict:
    """Train ``epochs`` epochs (no early stop) on prepared windows; time training and scoring.
    The fitted model is kept as ``held[name]`` for the same-weights check."""
    det = CAPMixDetector(device=device, amp=amp, max_epochs=epochs, min_epochs=epochs, patience=epochs,
                         seed=seed)
    t0 = time.perf_counter()
    det.fit_prepared(data)
    fit_s = time.perf_counter() - t0
    n = data.x_train.shape[0]
    rates = [n / e.train_seconds for e in det.history_ if e.train_seconds > 0]
    steady = rates[1:] or rates
    t0 = time.perf_counter()
    scores = det.decision_function(test)
    score_s = time.perf_counter() - t0
    held[name] = det
    return {"device": device, "amp": amp, "epochs": len(det.history_), "train_windows": n,
            "train_windows_per_s": round(statistics.median(steady), 1),
            "first_epoch_windows_per_s": round(rates[0], 1) if rates else None,
            "fit_prepared_s": round(fit_s, 2), "score_s": round(score_s, 3),
            "score_points_per_s": round(test.shape[0] / score_s, 1),
            "top_location": int(np.argmax(scores))}


def same_weights(det: CAPMixDetector, test: np.ndarray) -> dict:
    """Scores of one model on its own device and after loading the same weights on the CPU."""
    from capmix.detectors.registry import load_detector

    on_device = det.decision_function(test)
    with tempfile.TemporaryDirectory() as tmp:
        det.save(Path(tmp) / "m")
        cpu = load_detector(Path(tmp) / "m", device="cpu")
        on_cpu = cpu.decision_function(test)
    spread = float(np.ptp(on_cpu)) or 1.0
    return {"max_abs_diff_rel": float(np.max(np.abs(on_device - on_cpu)) / spread),
            "top_location_equal": int(np.argmax(on_device)) == int(np.argmax(on_cpu))}


_COMPILED: set[bool] = set()


def join(train: np.ndarray, test: np.ndarray, m: int, gpu: bool) -> dict:
    """The AB-join (test subsequences against train) as ``mp_novelty`` runs it; cells/s."""
    import stumpy

    fn = stumpy.gpu_stump if gpu else stumpy.stump
    compile_s = 0.0
    if gpu not in _COMPILED:  # numba compiles on the first call: time it apart from the join
        t0 = time.perf_counter()
        fn(np.random.default_rng(0).standard_normal(256), 16, T_B=np.random.default_rng(1).standard_normal(256),
           ignore_trivial=False)
        compile_s = time.perf_counter() - t0
        _COMPILED.add(gpu)
    a = np.concatenate([train[-m:], test]).astype(np.float64)
    b = np.asarray(train, dtype=np.float64)
    t0 = time.perf_counter()
    fn(a, m, T_B=b, ignore_trivial=False)
    s = time.perf_counter() - t0
    cells = float(a.shape[0] - m + 1) * float(b.shape[0] - m + 1)
    return {"gpu": gpu, "m": m, "a_points": int(a.shape[0]), "b_points": int(b.shape[0]),
            "seconds": round(s, 3), "cells_per_s": round(cells / s, 1), "compile_seconds": round(compile_s, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=Path, required=True, help="a UCR archive file (the longest: 240 or 241)")
    ap.add_argument("--devices", nargs="+", default=None,
                    help="cpu and/or cuda (default: cuda where present, and cpu)")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs per device (throughput only)")
    ap.add_argument("--train-points", type=int, default=None,
                    help="use only the last N training points (the DTW revision is CPU work)")
    ap.add_argument("--cpu-join-points", type=int, default=20_000,
                    help="prefix of train and test for the full-resolution CPU join (quadratic)")
    ap.add_argument("--no-join", action="store_true", help="skip the stumpy steps")
    ap.add_argument("--budget-s", type=float, default=420.0,
                    help="device seconds this run may take: the full GPU join runs only if it fits")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write the report here")
    args = ap.parse_args(argv)

    import torch

    start = time.perf_counter()
    devices = args.devices or (["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"])
    s = load_ucr_file(args.series)
    train = s.values[: s.train_end, 0].astype(np.float64)
    test = s.values[s.train_end:, 0].astype(np.float64)
    if args.train_points:
        train = train[-args.train_points:]
    report: dict[str, Any] = {"series": s.name, "train_points": int(train.shape[0]),
                              "test_points": int(test.shape[0]), "devices": devices}
    _step(report, "environment", environment)

    held: dict = {}  # the prepared windows and the fitted models, for the steps that reuse them
    _step(report, "prepare", lambda: prepare(train, args.seed, held))
    if "data" in held:
        runs = [(d, False) for d in devices] + [("cuda", True)] * ("cuda" in devices)
        for device, amp in runs:
            name = f"capmix_{device}{'_amp' if amp else ''}"
            _step(report, name, lambda d=device, a=amp, n=name: train_capmix(
                held["data"], d, a, args.epochs, test[:, None], args.seed, held, n))
        if "capmix_cuda" in held:
            _step(report, "same_weights_cuda_vs_cpu", lambda: same_weights(held["capmix_cuda"], test[:, None]))

    if not args.no_join:
        m = int(estimate_period(train) or _JOIN["default_period"])  # the one-period join window
        factor = _factor(m, train.shape[0] + test.shape[0], _JOIN["points_per_period"], _JOIN["max_len"])
        report["join_setup"] = {"period": m, "downsample": int(factor)}
        tr, te, md = aggregate(train, factor), aggregate(test, factor), max(4, int(round(m / factor)))
        for gpu in [False] + [True] * ("cuda" in devices):
            tag = "gpu" if gpu else "cpu"
            _step(report, f"join_downsampled_{tag}", lambda gpu=gpu: join(tr, te, md, gpu))
        k = args.cpu_join_points
        _step(report, "join_full_cpu_prefix", lambda: join(train[:k], test[:k], m, False))
        if "cuda" in devices:
            probe = _step(report, "join_full_gpu_prefix", lambda: join(train[:k], test[:k], m, True))
            cells = float(test.shape[0] + 1) * float(train.shape[0] - m + 1)
            left = args.budget_s - (time.perf_counter() - start)
            if probe is not None and cells / probe["cells_per_s"] < left / 2:
                _step(report, "join_full_gpu", lambda: join(train, test, m, True))
            else:  # the quadratic join would not fit the device time that is left: say so
                report["join_full_gpu"] = {"skipped": f"predicted over half of the {left:.0f} s left"}

    cpu, gpu = report.get("capmix_cpu", {}), report.get("capmix_cuda", {})
    if "train_windows_per_s" in cpu and "train_windows_per_s" in gpu:
        report["ratio_train_cuda_over_cpu"] = round(gpu["train_windows_per_s"] / cpu["train_windows_per_s"], 1)
    jc, jg = report.get("join_full_cpu_prefix", {}), report.get("join_full_gpu_prefix", {})
    if "cells_per_s" in jc and "cells_per_s" in jg:
        report["ratio_join_gpu_over_cpu"] = round(jg["cells_per_s"] / jc["cells_per_s"], 1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
