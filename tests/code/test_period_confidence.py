"""Label-free building blocks of the ensemble: period estimation and peak confidence."""

from __future__ import annotations

import numpy as np
import pytest

from capmix.detectors.classic import candidate_scores
from capmix.detectors.confidence import peak_confidence, select_candidate, top_peaks
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


def _dropout(n_train: int = 3000, n_test: int = 3000, period: int = 50, at: int = 1500, length: int = 150):
    """A noisy sine whose test part freezes (a flat line, noise gone too) for ``length`` points."""
    rng = np.random.default_rng(3)
    t = np.arange(n_train + n_test)
    x = np.sin(2 * np.pi * t / period) + 0.1 * rng.standard_normal(t.size)
    x[n_train + at : n_train + at + length] = x[n_train + at]
    return x[:n_train], x[n_train:]


def test_flat_kinds_are_inverse_rolling_stats_on_their_own_multiples():
    train, test = _dropout()
    got = [(k, w) for k, w, s, ref in candidate_scores(train, test, 50, mp_kinds=(), flat_kinds=("std_diff_inv", "std_inv"))]
    assert got[:6] == [(k, w) for w in (25, 50, 100) for k in ("std_diff", "ptp_diff")]
    assert got[6:] == [("std_diff_inv", 100), ("std_inv", 100), ("std_diff_inv", 200), ("std_inv", 200)]
    # off by default: the library's default candidate set is unchanged
    assert len(list(candidate_scores(train, test, 50, mp_kinds=()))) == 6
    with pytest.raises(ValueError, match="inverse"):
        list(candidate_scores(train, test, 50, mp_kinds=(), flat_kinds=("std_diff",)))


def test_a_flat_line_is_found_confidently_by_the_flat_kinds():
    """The default rolling candidates see a dropout only weakly (its end, confidence < 0.5); with the
    flat kinds the most confident candidate is an inverse one, its top peak inside the flat stretch."""
    train, test = _dropout()
    inside = range(1500 - 100, 1650 + 100)  # the archive rule's tolerance
    plain = list(candidate_scores(train, test, 50, mp_kinds=()))
    _, conf = select_candidate(plain, exclusion=100)
    assert max(conf) < 0.5
    cands = list(candidate_scores(train, test, 50, mp_kinds=(), flat_kinds=("std_diff_inv", "std_inv")))
    best, conf = select_candidate(cands, exclusion=100)
    assert cands[best][0].endswith("_inv") and conf[best] > 0.8
    assert int(np.argmax(cands[best][2])) in inside


def test_mp_smooth_is_the_moving_mean_of_each_join_score_and_its_reference():
    from capmix.detectors.classic import moving_mean

    train, test = _dropout(n_train=1000, n_test=800, at=300)
    raw = list(candidate_scores(train, test, 50, roll_kinds=(), mp_kinds=("mp_novelty", "mp_discord")))
    smooth = list(candidate_scores(train, test, 50, roll_kinds=(), mp_kinds=("mp_novelty", "mp_discord"), mp_smooth=0.5))
    assert [(k, w) for k, w, _, _ in raw] == [(k, w) for k, w, _, _ in smooth] and len(raw) == 4
    for (_, w, s, ref), (_, _, s2, ref2) in zip(raw, smooth):
        np.testing.assert_allclose(s2, moving_mean(s, round(0.5 * w)))
        np.testing.assert_allclose(ref2, moving_mean(ref, round(0.5 * w)))
        assert not np.allclose(s2, s)
