"""Mixed precision (``train.amp``): autocast + GradScaler on CUDA only.

On a CPU device ``amp: true`` is a no-op with a warning: the model is bit-identical to the float32
one, so one params.yaml serves GPU workers and CPU machines. The CUDA checks run where a GPU is.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import yaml

from capmix import CAPMixDetector
from capmix.config import detector_config

CFG = dict(window=32, stride=8, kernel=4, features=8, max_epochs=3, min_epochs=1, min_patch=6, batch_size=128)


def _data() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(3000)
    x = np.c_[np.sin(t / 7), np.cos(t / 11)] + 0.1 * rng.standard_normal((3000, 2))
    x[2500:2520, 0] += 3.0
    return x


def test_amp_on_cpu_is_a_no_op_with_a_warning():
    x = _data()
    plain = CAPMixDetector(**CFG, device="cpu").fit(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        amp = CAPMixDetector(**CFG, device="cpu", amp=True).fit(x)
    assert any("amp: true has no effect" in str(w.message) for w in caught)
    for a, b in zip(plain.model_.state_dict().values(), amp.model_.state_dict().values()):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(plain.decision_function(x), amp.decision_function(x))


def test_amp_is_a_params_option_off_by_default():
    p = yaml.safe_load(open("params.yaml"))
    assert p["train"]["amp"] is False
    assert detector_config(p).amp is False
    assert detector_config(p, amp=True).amp is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_scoring_and_amp_training_match_cpu_within_tolerance(tmp_path):
    x = _data()
    cpu = CAPMixDetector(**CFG, device="cpu").fit(x)
    cpu.save(tmp_path / "m")
    s_cpu = cpu.decision_function(x)
    # the same weights scored on the GPU: float32 to float rounding, float16 autocast to ~1e-2
    s_gpu = CAPMixDetector.load(tmp_path / "m", device="cuda").decision_function(x)
    np.testing.assert_allclose(s_gpu, s_cpu, atol=1e-4)
    gpu_amp = CAPMixDetector.load(tmp_path / "m", device="cuda")
    gpu_amp.config = gpu_amp.config.replace(amp=True)
    np.testing.assert_allclose(gpu_amp.decision_function(x), s_cpu, atol=2e-2)
    # training: the CUDA dropout stream differs from the CPU one, and float16 adds rounding, so
    # the models agree in what they rank high, not in their bits
    fp32 = CAPMixDetector(**CFG, device="cuda").fit(x).decision_function(x)
    amp = CAPMixDetector(**CFG, device="cuda", amp=True).fit(x).decision_function(x)
    assert np.isfinite(amp).all()
    assert np.corrcoef(fp32, amp)[0, 1] > 0.9
    assert np.corrcoef(s_cpu, amp)[0, 1] > 0.8
