"""Load test of streaming batch scoring (``capmix score``): points/s and peak memory.

    python bench/bench_score_load.py            # 10 M x 1 and 1 M x 38, default model settings

Each case: train a detector with the default window/stride/network (params.yaml train section,
3 epochs on 20,000 points: training time is not what is measured), write the input Parquet file,
then score it in a FRESH subprocess that only loads the model and streams the file
(capmix.stream.score_file, 100,000-row chunks); that subprocess reports its wall time and its peak
RSS (ru_maxrss), so the figure is the scorer's own footprint, not the generator's.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CASES = [("10M x 1", 10_000_000, 1), ("1M x 38", 1_000_000, 38)]
ROWS_PER_GROUP = 1 << 20


def _signal(n: int, c: int, start: int = 0, rng: np.random.Generator | None = None) -> np.ndarray:
    t = np.arange(start, start + n, dtype=np.float64)[:, None]
    phase = np.arange(c, dtype=np.float64)[None, :]
    x = np.sin(t / (20 + 3 * phase) + phase) + 0.3 * np.sin(t / (97 + phase))
    if rng is not None:
        x += 0.05 * rng.standard_normal(x.shape)
    return x


def _write_input(path: Path, n: int, c: int) -> None:
    rng = np.random.default_rng(1)
    writer = None
    for start in range(0, n, ROWS_PER_GROUP):
        m = min(ROWS_PER_GROUP, n - start)
        x = _signal(m, c, start, rng)
        cols = {"timestamp": pa.array(np.arange(start, start + m, dtype=np.int64))}
        cols.update({f"ch{j}": pa.array(x[:, j]) for j in range(c)})
        table = pa.table(cols)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def _score_child(model: str, src: str, out: str) -> None:
    from capmix.detectors.capmix.detector import CAPMixDetector
    from capmix.stream import score_file

    t0 = time.perf_counter()
    det = CAPMixDetector.load(model, device="cpu")
    summary = score_file(det, src, out)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb, "n_points": summary["n_points"]}))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _score_child(*sys.argv[2:])
        return
    from capmix.config import detector_config, load_params
    from capmix.detectors.capmix.detector import CAPMixDetector

    root = Path(__file__).resolve().parents[1]
    cfg = detector_config(load_params(root / "params.yaml")).replace(max_epochs=3, min_epochs=1, device="cpu")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {__import__('torch').get_num_threads()}")
    print(f"model: window {cfg.window}, stride {cfg.stride}, features {cfg.features}, kernel {cfg.kernel}")
    with tempfile.TemporaryDirectory(prefix="capmix-load-") as tmp:
        for label, n, c in CASES:
            d = Path(tmp) / label.replace(" ", "")
            d.mkdir()
            det = CAPMixDetector(cfg).fit(_signal(20_000, c, rng=np.random.default_rng(0)))
            det.save(d / "model")
            _write_input(d / "in.parquet", n, c)
            size = (d / "in.parquet").stat().st_size / 2**20
            done = subprocess.run([sys.executable, __file__, "--child", str(d / "model"), str(d / "in.parquet"),
                                   str(d / "scores.parquet")], capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            assert r["n_points"] == n
            print(f"{label}: {n:,} points ({size:.0f} MiB Parquet) in {r['seconds']:.1f} s = "
                  f"{n / r['seconds']:,.0f} points/s; peak RSS {r['peak_rss_mb']:.0f} MiB "
                  f"(raw values alone: {n * c * 8 / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
