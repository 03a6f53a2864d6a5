"""bench/gpu_check.py, the prepared GPU script of issue 13, on its CPU path (CI has no GPU).

The script must work the first time it meets a GPU machine, so its CPU path is kept honest here:
a small UCR-format series through every step, and a step that fails (CUDA asked for where there is
none) is recorded while the others still run.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # two short trainings and a numba compile: about a minute


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(3000)
    x = np.sin(2 * np.pi * t / 50) + 0.05 * rng.standard_normal(t.shape[0])
    x[2400:2420] += 2.0
    path = tmp_path_factory.mktemp("ucr") / "001_UCR_Anomaly_sine_1500_2400_2420.txt"
    path.write_text("\n".join(f"{v:.6f}" for v in x))
    return path


def _run(gpu_check, series: Path, out: Path, *extra: str) -> dict:
    assert gpu_check.main(["--series", str(series), "--epochs", "2", "--cpu-join-points", "800",
                           "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_cpu_path_measures_every_step(gpu_check, series, tmp_path):
    r = _run(gpu_check, series, tmp_path / "r.json", "--devices", "cpu")
    assert r["train_points"] == 1500 and r["test_points"] == 1500
    assert r["prepare"]["train_windows"] > 0
    cpu = r["capmix_cpu"]
    assert "error" not in cpu, cpu
    assert cpu["epochs"] == 2 and cpu["train_windows_per_s"] > 0 and cpu["score_points_per_s"] > 0
    assert r["join_setup"]["period"] == 50  # the join window is the estimated period
    for step in ("join_downsampled_cpu", "join_full_cpu_prefix"):
        assert "error" not in r[step], r[step]
        assert r[step]["cells_per_s"] > 0
    assert r["join_full_cpu_prefix"]["a_points"] == 800 + 50  # one window of training context
    assert "capmix_cuda" not in r and "ratio_train_cuda_over_cpu" not in r


def test_a_failing_step_is_recorded_and_the_rest_still_run(gpu_check, series, tmp_path, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the cuda steps would not fail")
    r = _run(gpu_check, series, tmp_path / "r.json", "--devices", "cuda", "cpu", "--no-join")
    assert "error" in r["capmix_cuda"] and "error" in r["capmix_cuda_amp"]
    assert "error" not in r["capmix_cpu"] and r["capmix_cpu"]["train_windows_per_s"] > 0
    assert "join_setup" not in r
