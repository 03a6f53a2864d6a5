"""Loaders on the real dataset copies (skipped where ../shared/datasets is absent).

Counts, shapes, label values and anomaly ratios per dataset, plus one hand-checked series each
(lengths counted with ``wc -l`` / ``xz -dc | wc -l`` on the files, sequences read off the label files).
"""

import numpy as np
import pytest

from capmix.data.canonical import to_frame
from capmix.data.loaders import load_aiops, load_asd, load_dataset, load_merlion, load_nab, load_smap_msl, load_smd

pytestmark = pytest.mark.realdata


def _check_common(series, n_channels):
    names = [s.name for s in series]
    assert len(set(names)) == len(names)
    for s in series:
        assert s.n_channels == n_channels, s.name
        assert s.labels is not None and set(np.unique(s.labels)) <= {0, 1}, s.name
        assert 0 < s.train_end < s.n_points, s.name
        assert np.isfinite(s.values).all(), s.name
        assert s.labels[s.train_end :].any(), f"{s.name}: no anomaly in the test part"
    to_frame(series)  # homogeneous enough to be written as one dataset


def _ratio(series):
    return sum(int(s.labels.sum()) for s in series) / sum(s.n_points for s in series)


def test_aiops(data_root):
    series = load_aiops(data_root)
    assert len(series) == 29
    _check_common(series, 1)
    assert 0.01 < _ratio(series) < 0.05  # README: 2.65 % of the train points
    by_name = {s.name: s for s in series}
    # KPI with a phase-2 test file: train file 8784 rows + test file 8784 rows
    s = by_name["0efb375b-b902-3661-ab23-9a0bb799f4e3"]
    assert s.train_end == 8784 and s.n_points == 2 * 8784
    assert s.timestamps.dtype == np.int64
    assert s.timestamps[0] == 1472918400 and s.timestamps[s.train_end] == 1475553600
    assert s.values[0, 0] == pytest.approx(0.2341910677954737)
    # KPI without a test file: chronological 50/50 split of its 146255 rows
    s = by_name["05f10d3a-239c-3bef-9bdc-a2feeb0037aa"]
    assert s.n_points == 146255 and s.train_end == round(146255 * 0.5)
    assert np.all(np.diff(s.timestamps) > 0)
    with_test_file = {"0efb375b", "301c70d8", "54350a12", "a8c06b47", "ab216663", "c02607e8", "e0747cad"}
    # rows of all phase-2 train files = the official phase2_train.csv row count (README)
    train_rows = sum(s.train_end if s.name[:8] in with_test_file else s.n_points for s in series)
    assert train_rows == 3_004_066
    short = load_aiops(data_root, subset=2, test_fraction=0.25)
    assert len(short) == 2 and short[0].train_end == round(146255 * 0.75)


def test_smd(data_root):
    series = load_smd(data_root)
    assert [s.name for s in series] == [
        "machine-1-6", "machine-1-7", "machine-2-1", "machine-2-2",
        "machine-2-7", "machine-2-8", "machine-3-3", "machine-3-4",
    ]  # fmt: skip
    _check_common(series, 38)
    assert 0.01 < _ratio(series) < 0.1
    s = series[0]  # machine-1-6: train (23688, 38), test (23689, 38), 23689 test labels
    assert s.train_end == 23688 and s.n_points == 23688 + 23689
    assert s.labels[: s.train_end].sum() == 0  # unlabelled train half treated as normal
    assert 0.0 <= s.values.min() and s.values.max() <= 1.0 + 1e-6  # min-max normalised


def test_asd(data_root):
    series = load_asd(data_root)
    assert [s.name for s in series] == [f"omi-{i}" for i in range(1, 13)]
    _check_common(series, 19)
    assert 0.005 < _ratio(series) < 0.05
    assert all(s.n_points - s.train_end == 4320 for s in series)
    assert series[-1].train_end == 7291 and all(s.train_end == 8640 for s in series[:-1])


@pytest.mark.parametrize("spacecraft, count, dims", [("SMAP", 54, 25), ("MSL", 27, 55)])
def test_smap_msl(data_root, spacecraft, count, dims):
    series = load_smap_msl(data_root, spacecraft)
    assert len(series) == count  # SMAP: 55 label rows, P-2 twice; T-10 (no label row) skipped
    names = [s.name for s in series]
    assert "T-10" not in names
    _check_common(series, dims)
    assert series[0].channels[0] == "value"
    assert 0.02 < _ratio(series) < 0.2
    if spacecraft == "SMAP":
        a1 = series[names.index("A-1")]  # [[4690, 4774]], inclusive, test length 8640
        test_labels = a1.labels[a1.train_end :]
        assert test_labels.size == 8640
        assert np.flatnonzero(test_labels).tolist() == list(range(4690, 4775))
        p2 = series[names.index("P-2")]  # rows [[5350, 6575]] and [[5300, 6420]] merged
        assert np.flatnonzero(p2.labels[p2.train_end :]).tolist() == list(range(5300, 6576))
    else:
        m6 = series[0]  # M-6: train 1565 rows, test 2049, [[1850, 2030]]
        assert m6.name == "M-6" and m6.train_end == 1565 and m6.n_points == 1565 + 2049
        assert np.flatnonzero(m6.labels[m6.train_end :]).tolist() == list(range(1850, 2031))


def test_nab(data_root):
    series = load_nab(data_root)
    assert len(series) == 52  # 58 files, 6 without any window
    names = [s.name for s in series]
    assert not any(n.startswith("artificialNoAnomaly/") for n in names)
    _check_common(series, 1)
    assert 0.05 < _ratio(series) < 0.15  # NAB windows cover ~10 % of each series
    taxi = series[names.index("realKnownCause/nyc_taxi")]  # 10320 rows, 30-min steps
    assert taxi.n_points == 10320 and taxi.train_end == int(0.15 * 10320)
    # first window starts 2014-10-30 15:30, row 5839 of the file (0-based, header excluded)
    assert np.flatnonzero(taxi.labels)[0] == 5839
    assert len(load_nab(data_root, subset=5)) == 5


def test_aiops_preliminary(data_root):
    """The preliminary round's 26 KPIs (README: 2,476,315 points, 53,500 anomalous), split in time."""
    series = load_aiops(data_root, stage="preliminary")
    assert len(series) == 26
    assert sum(s.n_points for s in series) == 2_476_315
    assert sum(int(s.labels.sum()) for s in series) == 53_500
    for s in series:
        assert s.n_channels == 1 and s.train_end == int(round(s.n_points / 2)), s.name
    # two KPIs have no anomaly in their second half (benchmarks skip them: AUC-PR is undefined)
    assert sum(not s.labels[s.train_end:].any() for s in series) == 2
    assert [s.name for s in load_dataset("aiops-prelim", data_root, subset=1)] == ["02e99bd4f6cfb33f"]
    with pytest.raises(ValueError, match="stage"):
        load_aiops(data_root, stage="final")


def test_merlion(data_root):
    series = load_merlion(data_root)
    assert len(series) == 15  # 3 shapes x 5 anomaly types; the 3 anomaly-free base files skipped
    _check_common(series, 1)
    by_name = {s.name: s for s in series}
    s = by_name["horizontal_dip"]
    assert s.n_points == 10_000 and s.train_end == 5_000 and s.channels == ("value",)
    assert int(s.labels.sum()) == 3104 and np.flatnonzero(s.labels)[0] == 186


def test_load_dataset_registry(data_root):
    assert len(load_dataset("kpi", data_root, subset=3)) == 3
    assert len(load_dataset("msl", data_root, subset=2)) == 2
    assert [s.name for s in load_dataset("ucr", data_root, subset=1)] == ["001_DISTORTED1sddb40"]
