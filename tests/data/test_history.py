"""The nightly data side: day merge rules, history files, rolling window, drift, probe, day range checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capmix.data.daily import SimulatedFeed
from capmix.data.drift import drift_report, psi
from capmix.data.history import (
    DayRejected,
    after_last_gap,
    channel_ranges,
    day_frame,
    merge_day,
    read_day,
    read_history,
    rolling_dataset,
    write_history,
)
from capmix.data.probe import ProbeConfig, inject_probe
from capmix.data.validation import ValidationConfig, validate_frame


def _day(start: str, n: int, series=("a",), value=0.0, labels=True, freq="1min") -> pd.DataFrame:
    parts = []
    for s in series:
        ts = pd.date_range(start, periods=n, freq=freq).astype("datetime64[ns]")
        parts.append(pd.DataFrame({"series": s, "timestamp": ts,
                                   "label": pd.array(np.zeros(n, dtype=int) if labels else [pd.NA] * n, dtype="Int8"),
                                   "ch0": value + np.arange(n, dtype=float), "ch1": np.ones(n)}))
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------------------ merge rules
def test_first_day_starts_the_history():
    m = merge_day(None, _day("2024-01-01", 10), "keep_first", "insert")
    assert m.added == 10 and m.changed and len(m.frame) == 10


def test_identical_day_is_no_new_version():
    h = _day("2024-01-01", 10)
    m = merge_day(h, h.copy(), "keep_first", "insert")
    assert (m.added, m.duplicates, m.changed) == (0, 10, False)
    m = merge_day(h, h.copy(), "keep_last", "insert")
    assert m.replaced == 0 and not m.changed  # equal values: nothing replaced


def test_duplicates_keep_first_keep_last_reject():
    h = _day("2024-01-01", 10)
    d = _day("2024-01-01 00:05", 10, value=100.0)  # 5 overlap, 5 new
    first = merge_day(h, d, "keep_first", "insert")
    assert (first.added, first.duplicates, first.replaced) == (5, 5, 0)
    assert first.frame.loc[first.frame.timestamp == pd.Timestamp("2024-01-01 00:05"), "ch0"].item() == 5.0
    last = merge_day(h, d, "keep_last", "insert")
    assert (last.added, last.duplicates, last.replaced) == (5, 5, 5) and last.changed
    assert last.frame.loc[last.frame.timestamp == pd.Timestamp("2024-01-01 00:05"), "ch0"].item() == 100.0
    assert len(last.frame) == 15 and last.frame.timestamp.is_monotonic_increasing
    with pytest.raises(DayRejected, match="nightly.duplicates"):
        merge_day(h, d, "reject", "insert")


def test_late_points_insert_drop_reject():
    h = pd.concat([_day("2024-01-01", 5), _day("2024-01-01 00:10", 5)], ignore_index=True)  # a hole at 00:05-00:09
    late = _day("2024-01-01 00:05", 3)
    ins = merge_day(h, late, "keep_first", "insert")
    assert (ins.added, ins.late, ins.dropped, len(ins.frame)) == (3, 3, 0, 13)
    assert ins.frame.timestamp.is_monotonic_increasing
    drop = merge_day(h, late, "keep_first", "drop")
    assert (drop.late, drop.dropped, len(drop.frame), drop.changed) == (3, 3, 10, False)
    with pytest.raises(DayRejected, match="nightly.late"):
        merge_day(h, late, "keep_first", "reject")


def test_a_day_with_other_channels_is_rejected():
    h = _day("2024-01-01", 5)
    with pytest.raises(DayRejected, match="columns"):
        merge_day(h, _day("2024-01-02", 5).rename(columns={"ch1": "ch9"}), "keep_first", "insert")


# ------------------------------------------------------------------------------------------ files
def test_history_files_are_byte_reproducible(tmp_path):
    h = _day("2024-01-01", 50, series=("a", "b"), labels=False)
    write_history(h, tmp_path / "one")
    back = read_history(tmp_path / "one")
    pd.testing.assert_frame_equal(back, h.sort_values(["series", "timestamp"]).reset_index(drop=True),
                                  check_dtype=False)
    write_history(back, tmp_path / "two")
    for f in sorted((tmp_path / "one").glob("*.parquet")):
        assert f.read_bytes() == (tmp_path / "two" / f.name).read_bytes()


def test_read_day_csv_without_labels(tmp_path):
    f = tmp_path / "2024-01-02.csv"
    _day("2024-01-02", 5).drop(columns=["label"]).to_csv(f, index=False)
    d = read_day(f)
    assert list(d.columns[:3]) == ["series", "timestamp", "label"] and d["label"].isna().all()
    assert pd.api.types.is_datetime64_any_dtype(d["timestamp"])


# ------------------------------------------------------------------------------------------ rolling window
def test_rolling_dataset_trains_before_the_newest_slice_and_probes_unlabelled_slices():
    hist = _day("2024-01-01", 4 * 200, freq="30min", labels=False)  # 48 points a day
    day = hist[hist.timestamp >= hist.timestamp.iloc[-100]]
    data, source = rolling_dataset(hist, day, train_days=2, holdout_fraction=0.5, min_points=8,
                                   probe=ProbeConfig(n=2, min_length=4, max_length=6))
    (s,) = data
    assert source == {"a": "probe"}
    assert s.train_end == 96  # 2 days of 48 points before the cut
    assert len(s.values) - s.train_end == 50  # the newest half of the day
    assert s.labels[s.train_end:].sum() > 0 and s.labels[:s.train_end].sum() == 0
    assert s.timestamps[s.train_end - 1] < s.timestamps[s.train_end]


def test_rolling_dataset_keeps_real_labels_and_refuses_short_windows():
    hist = _day("2024-01-01", 300)
    hist.loc[290, "label"] = 1
    data, source = rolling_dataset(hist, hist.iloc[200:], train_days=1, holdout_fraction=0.5, min_points=8,
                                   probe=ProbeConfig())
    assert source == {"a": "real"} and data[0].labels[data[0].train_end:].sum() == 1
    calm = _day("2024-01-01", 300)  # labelled, but no anomaly in the slice: nothing to rank, so probes
    _, source = rolling_dataset(calm, calm.iloc[200:], train_days=1, holdout_fraction=0.5, min_points=8,
                                probe=ProbeConfig(n=2, min_length=4, max_length=6))
    assert source == {"a": "probe"}
    with pytest.raises(ValueError, match="train_days"):
        rolling_dataset(hist, hist.iloc[200:], train_days=1, holdout_fraction=0.5, min_points=500,
                        probe=ProbeConfig())


def test_training_window_starts_after_a_gap():
    h = pd.concat([_day("2024-01-01", 50), _day("2024-01-02", 50)], ignore_index=True)
    assert len(after_last_gap(h, 10.0)) == 50
    assert len(after_last_gap(_day("2024-01-01", 50), 10.0)) == 50


# ------------------------------------------------------------------------------------------ drift
def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5000)
    assert psi(ref, rng.normal(size=1000)) < 0.05
    assert psi(ref, rng.normal(loc=1.0, size=1000)) > 0.25
    assert psi(ref, rng.normal(scale=2.0, size=1000)) > 0.25


def test_simulated_feed_drifts_only_on_the_drift_day():
    feed = SimulatedFeed(series=1, channels=2, points_per_day=480, history_days=2, anomalies_per_day=1, drift_day=3,
                         drift_scale=2.5, drift_shift=2.0, broken_day=None, repeat_day=None, seed=1)
    ref = feed.history()
    calm = drift_report(ref, feed.day(1), ["ch0", "ch1"], bins=10, threshold=0.25)
    moved = drift_report(ref, feed.day(3), ["ch0", "ch1"], bins=10, threshold=0.25)
    assert not calm.drifted and moved.drifted and moved.max_psi > 1.0


def test_simulated_feed_events():
    feed = SimulatedFeed(series=2, channels=2, points_per_day=200, history_days=1, anomalies_per_day=1, drift_day=None,
                         drift_scale=1.0, drift_shift=0.0, broken_day=2, repeat_day=4, seed=3)
    assert list(feed.day(2).columns)[-1] == "ch1_v2"
    pd.testing.assert_frame_equal(feed.day(4), feed.day(3))
    assert feed.day(1).timestamp.min() == feed.history().timestamp.max() + pd.Timedelta(seconds=432)
    assert feed.date(1) == "2024-01-02"


# ------------------------------------------------------------------------------------------ probe
def test_probe_labels_exactly_the_changed_points():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y, labels = inject_probe(x, x, ProbeConfig(n=4, min_length=8, max_length=16), np.random.default_rng(1))
    changed = np.any(y != x, axis=1)
    assert labels.sum() > 0 and not changed[labels == 0].any()
    starts = np.flatnonzero(np.diff(np.r_[0, labels]) == 1)
    assert 2 <= len(starts) <= 4
    again, labels2 = inject_probe(x, x, ProbeConfig(n=4, min_length=8, max_length=16), np.random.default_rng(1))
    assert np.array_equal(again, y) and np.array_equal(labels, labels2)


# ------------------------------------------------------------------------------------------ day checks
def _cfg(ranges):
    return ValidationConfig(kind="multivariate", channels=["ch0", "ch1"], window=4, max_anomaly_ratio=1.0,
                            require_labels=False, mode="score", ranges=ranges, range_mostly=0.99)


def test_day_range_check_quarantines_a_unit_change(tmp_path):
    hist = _day("2024-01-01", 200)
    ranges = channel_ranges(hist, margin=1.0)
    assert ranges["ch0"] == (-199.0, 398.0)
    ok = validate_frame(day_frame(_day("2024-01-02", 200)), _cfg(ranges), tmp_path / "ok")
    assert ok.success
    scaled = _day("2024-01-02", 200)
    scaled["ch0"] *= 1000.0  # e.g. a feed switched from kV to V
    bad = validate_frame(day_frame(scaled), _cfg(ranges), tmp_path / "bad")
    assert not bad.success
    (failure,) = [f for f in bad.failures if f.column == "ch0"]
    assert "range" in failure.hint and "rows" in failure.where


def test_day_range_check_lets_a_few_spikes_through(tmp_path):
    hist = _day("2024-01-01", 1000)
    day = _day("2024-01-02", 1000)
    day.loc[10, "ch0"] = 1e6  # one spike: an anomaly to score, not a broken feed
    assert validate_frame(day_frame(day), _cfg(channel_ranges(hist, 1.0)), tmp_path).success
