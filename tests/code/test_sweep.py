"""The whole-series sweep candidates (capmix.detectors.sweep) and the peak ratio that selects them."""

from __future__ import annotations

import numpy as np
import pytest

from capmix.detectors.confidence import peak_ratio
from capmix.detectors.sweep import (
    candidate_ratio,
    JOIN_KINDS,
    ROLL_KINDS,
    activity_weight,
    edge_taper,
    sweep_candidates,
    sweep_windows,
    whole_scores,
)


def _bumps(heights: list[tuple[int, float]], n: int = 4000) -> np.ndarray:
    s = np.full(n, 1.0)
    for i, h in heights:
        s[i - 5: i + 5] = h
    return s


def test_sweep_windows_are_geometric_and_bounded():
    ws = sweep_windows(50, 800, 1.2)
    assert ws[0] == 50 and ws[-1] <= 800 and ws == sorted(set(ws))
    assert all(b / a == pytest.approx(1.2, rel=0.05) for a, b in zip(ws, ws[1:]))
    assert sweep_windows(10, 10, 2.0) == [10]
    with pytest.raises(ValueError, match="growth"):
        sweep_windows(50, 800, 1.0)


def test_edge_taper_is_zero_at_the_edges_and_one_inside():
    m = edge_taper(1000, 20, 3.0)
    assert m[:20].max() == 0 and m[-20:].max() == 0
    assert m[80:920].min() == 1.0
    assert np.all(np.diff(m[:100]) >= 0)


def test_ratio_of_one_clear_peak_and_of_two_equal_peaks():
    assert peak_ratio(_bumps([(2000, 5.0)]), 100) == pytest.approx(5.0)
    assert peak_ratio(_bumps([(1000, 5.0), (3000, 5.0)]), 100) == pytest.approx(1.0)
    # the top's own shoulder (just outside the exclusion, still rising to it) is no second peak
    s = _bumps([(2000, 5.0)])
    s[1850:2000] = np.linspace(1.0, 5.0, 150)
    assert peak_ratio(s, 100) == pytest.approx(5.0)


def test_ratio_counts_the_training_part_as_a_competitor_and_ignores_scale():
    s = _bumps([(2000, 5.0)])
    assert peak_ratio(s, 100, reference=np.full(500, 2.5)) == pytest.approx(2.0)
    # training reaches higher than the test top: below one, never picked over a real peak
    assert peak_ratio(s, 100, reference=np.full(500, 10.0)) == pytest.approx(0.5)
    assert peak_ratio(7.0 * s, 100) == pytest.approx(peak_ratio(s, 100))
    assert peak_ratio(np.zeros(100), 10) == 0.0


def test_activity_weight_silences_flat_stretches_and_quiet_series():
    ptp = np.ones(2000)
    ptp[900:1000] = 0.0
    w = activity_weight(ptp, 50)
    assert w[900:1000].max() == 0 and w[860:900].max() == 0 and w[:800].min() == 1.0
    mostly_flat = np.zeros(2000)
    mostly_flat[:500] = 1.0
    assert activity_weight(mostly_flat, 50).max() == 0.0


def test_unknown_kind_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="ptp_diff"):
        whole_scores(np.zeros(500), 250, 20, kinds=("nope",))


@pytest.fixture(scope="module")
def sine_with_anomaly():
    rng = np.random.default_rng(3)
    t = np.arange(12_000)
    x = np.sin(2 * np.pi * t / 80) + 0.05 * rng.standard_normal(t.size)
    x[9000:9040] = x[9000:9040][::-1] * 0.2  # a distorted cycle in the test part
    return x[:6000], x[6000:]


def test_every_kind_is_non_negative_whole_series_and_finite(sine_with_anomaly):
    train, test = sine_with_anomaly
    x = np.concatenate([train, test])
    out = whole_scores(x, train.size, 64)
    assert set(out) == set(ROLL_KINDS + JOIN_KINDS)
    for kind, s in out.items():
        assert s.shape == x.shape, kind
        assert np.isfinite(s).all() and s.min() >= 0, kind


def test_the_most_confident_candidate_finds_the_distorted_cycle(sine_with_anomaly):
    train, test = sine_with_anomaly
    cands = list(sweep_candidates(train, test, sweep_windows(40, 160, 2.0)))
    assert {w for _, w, _, _ in cands} == {40, 80, 160}
    ratios = [candidate_ratio(k, w, s, ref) for k, w, s, ref in cands]
    _, w, s, _ = cands[int(np.argmax(ratios))]
    assert max(ratios) > 1.5
    assert 3000 - 100 <= int(np.argmax(s)) <= 3040 + 100


def test_windows_the_training_part_cannot_hold_ten_times_are_skipped(sine_with_anomaly):
    train, test = sine_with_anomaly
    windows = {w for _, w, _, _ in sweep_candidates(train[:1000], test, [50, 100, 200], kinds=("ptp",))}
    assert windows == {50, 100}
