"""Label-free building blocks of the ensemble: period estimation and peak confidence."""

from __future__ import annotations

import numpy as np
import pytest

from capmix.detectors.confidence import peak_confidence, top_peaks
from capmix.detectors.period import estimate_period


@pytest.mark.parametrize("period", [12, 50, 137, 400])
def test_period_of_a_noisy_sine_with_a_trend(period):
    rng = np.random.default_rng(period)
    t = np.arange(20 * period)
    x = np.sin(2 * np.pi * t / period) + 0.3 * rng.standard_normal(t.size) + 0.002 * t
    assert abs(estimate_period(x) - period) <= max(1, round(0.02 * period))


def test_period_prefers_the_fundamental_over_its_multiples():
    t = np.arange(6000)
    # a heartbeat-like series: a sharp spike every 100 points plus a weaker bump every 50
    x = np.exp(-0.5 * ((t % 100) - 20) ** 2) + 0.3 * np.sin(2 * np.pi * t / 50)
    assert estimate_period(x) == 100


def test_no_period_in_noise_or_a_constant():
    rng = np.random.default_rng(0)
    assert estimate_period(rng.standard_normal(5000)) is None
    assert estimate_period(np.ones(5000)) is None


def test_period_of_several_channels_is_their_median():
    t = np.arange(4000)
    x = np.stack([np.sin(2 * np.pi * t / p) for p in (40, 42, 44)], axis=1)
    assert estimate_period(x) == 42


def _peaks(heights: list[tuple[int, float]], n: int = 5000, noise: float = 0.1) -> np.ndarray:
    s = noise * np.random.default_rng(1).standard_normal(n)
    for i, h in heights:
        s[i] += h
    return s


def test_one_clear_peak_is_confident_two_equal_peaks_are_not():
    one = peak_confidence(_peaks([(2500, 5.0)]), exclusion=50)
    two = peak_confidence(_peaks([(1000, 5.0), (3500, 5.0)]), exclusion=50)
    assert one > 0.8
    assert abs(two) < 0.1
    # a second peak inside the exclusion zone belongs to the first: still confident
    assert peak_confidence(_peaks([(2500, 5.0), (2530, 4.9)]), exclusion=50) > 0.8


def test_confidence_is_invariant_to_affine_rescaling():
    s = _peaks([(2500, 5.0), (800, 2.0)])
    assert peak_confidence(s, 50) == pytest.approx(peak_confidence(3.0 * s + 7.0, 50))


def test_a_peak_no_higher_than_normal_training_data_is_not_confident():
    s = _peaks([(2500, 2.0)])
    train = _peaks([(100 + i, 3.0) for i in range(20)], n=3000)  # known-normal data already reaches 3
    assert peak_confidence(s, 50, reference=train) <= 0.0 < peak_confidence(s, 50)


def test_top_peaks_mask_their_neighbourhood():
    s = _peaks([(1000, 5.0), (1010, 4.0), (3000, 3.0)])
    idx = [i for i, _ in top_peaks(s, exclusion=50, k=2)]
    assert idx == [1000, 3000]
