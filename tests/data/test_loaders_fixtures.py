"""SWaT / WADI / ESA-ADB loaders on generated fixtures in the owners' layouts (no real data needed).

Fixtures: tests/fixtures/{swat,wadi,esa}, written by tests/fixtures/make_fixtures.py.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capmix.data.canonical import to_frame
from capmix.data.loaders import (
    LOADERS,
    WADI_EMPTY_COLS,
    DatasetNotFound,
    load_dataset,
    load_esa,
    load_swat,
    load_wadi,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_swat_fixture():
    [s] = load_swat(FIXTURES / "swat")
    assert s.name == "SWaT"
    assert s.values.shape == (60, 51) and s.n_channels == 51
    assert s.train_end == 30  # rows of the normal file (its leading empty row is skipped)
    assert s.channels[:4] == ("FIT101", "LIT101", "MV101", "P101")  # leading spaces stripped
    assert "Normal/Attack" not in s.channels and "Timestamp" not in s.channels
    assert s.labels[:30].sum() == 0
    # "Attack" (6 rows) and "A ttack" (2 rows) both count: attack-file rows 10..17
    assert np.flatnonzero(s.labels).tolist() == list(range(40, 48))
    assert s.timestamps[0] == np.datetime64("2015-12-28T09:59:20")
    assert s.timestamps[s.train_end] == np.datetime64("2015-12-28T09:59:50")  # " 28/12/2015 9:59:50 AM"
    assert s.timestamps[-1] == np.datetime64("2015-12-28T10:00:19")
    to_frame([s])  # writable as a dataset


def test_wadi_fixture():
    [s] = load_wadi(FIXTURES / "wadi")
    assert s.name == "WADI"
    assert s.train_end == 40 and s.n_points == 76
    assert not set(WADI_EMPTY_COLS) & set(s.channels)  # the 4 all-empty columns are dropped
    assert s.n_channels == 22 - 4
    assert not {"Row", "Date", "Time"} & set(s.channels)
    assert not np.isnan(s.values).any()
    raw = pd.read_csv(FIXTURES / "wadi" / "WADI_14days_new.csv")
    j = s.channels.index("1_AIT_002_PV")
    assert s.values[5, j] == s.values[6, j] == raw.loc[4, "1_AIT_002_PV"]  # forward fill
    k = s.channels.index("2_FIT_001_PV")
    assert s.values[0, k] == raw.loc[1, "2_FIT_001_PV"]  # leading gap back-filled
    # label column: 1 = no attack -> 0, -1 = attack -> 1 (attack rows 12..19 and 30..31)
    assert s.labels[:40].sum() == 0
    assert np.flatnonzero(s.labels).tolist() == [40 + i for i in [*range(12, 20), 30, 31]]
    assert s.timestamps[0] == np.datetime64("2017-09-25T11:59:40")
    assert s.timestamps[20] == np.datetime64("2017-09-25T12:00:00")  # "12:00:00.000 PM"
    assert s.timestamps[40] == np.datetime64("2017-10-09T18:00:00")  # "6:00:00.000 PM"
    to_frame([s])


def test_esa_fixture():
    [s] = load_esa(FIXTURES / "esa", mission=1)
    assert s.name == "ESA-Mission1"
    assert s.channels == ("channel_1", "channel_2", "channel_10")  # natural order, .zip and .csv
    # 30 s grid from floor(23:50:03) to ceil(last sample), zero-order hold, no gaps left
    assert s.timestamps[0] == np.datetime64("2006-12-31T23:50:00")
    assert np.all(np.diff(s.timestamps) == np.timedelta64(30, "s"))
    assert not np.isnan(s.values).any()
    # train = grid points <= 2007-01-01 (mission 1 split)
    assert s.timestamps[s.train_end - 1] == np.datetime64("2007-01-01T00:00:00")
    assert s.train_end == 21
    ts = s.timestamps
    anomalous = set(ts[s.labels == 1].astype("datetime64[s]").astype(str).tolist())
    # id_1 (Anomaly, 23:55:10-23:56:20 on two channels), id_2 (Rare Event), id_4 (point at 00:14:05)
    assert anomalous == {
        "2006-12-31T23:55:30", "2006-12-31T23:56:00", "2006-12-31T23:56:30",
        "2007-01-01T00:05:00", "2007-01-01T00:05:30", "2007-01-01T00:06:00", "2007-01-01T00:06:30",
        "2007-01-01T00:14:30",
    }  # fmt: skip
    # id_3 is a "Communication Gap": not an anomaly
    assert not s.labels[(ts >= np.datetime64("2007-01-01T00:10:00")) & (ts <= np.datetime64("2007-01-01T00:12:00"))].any()
    # zero-order hold: channel_1 at 23:50:30 is its last sample at or before (23:50:20)
    raw = pd.read_pickle(FIXTURES / "esa" / "ESA-Mission1" / "channels" / "channel_1.zip")
    assert s.values[1, 0] == raw["channel_1"].loc[:"2006-12-31 23:50:30"].iloc[-1]
    to_frame([s])


def test_esa_options():
    [s] = load_esa(FIXTURES / "esa" / "ESA-Mission1", channels=["channel_2"], categories=("Anomaly",))
    assert s.channels == ("channel_2",)
    # only id_1 is an Anomaly on channel_2 (23:55:40-23:56:00): the one grid point whose
    # interval (t - 30 s, t] overlaps it
    assert s.timestamps[s.labels == 1].astype("datetime64[s]").astype(str).tolist() == ["2006-12-31T23:56:00"]
    with pytest.raises(ValueError, match="split_at"):
        load_esa(FIXTURES / "esa", mission=2)


def test_registry_and_missing_files(tmp_path):
    assert {"ucr", "aiops", "smd", "asd", "smap", "msl", "nab", "swat", "wadi", "esa"} <= set(LOADERS)
    assert load_dataset("SWaT", FIXTURES)[0].name == "SWaT"  # root holding swat/
    assert load_dataset("wadi", FIXTURES)[0].name == "WADI"
    assert load_dataset("esa", FIXTURES)[0].name == "ESA-Mission1"
    for name, folder in [("smd", "smd"), ("kpi", "kpi_aiops2018"), ("nab", "nab"), ("msl", "smap_msl"), ("asd", "asd")]:
        with pytest.raises(DatasetNotFound, match=folder):
            load_dataset(name, tmp_path)
    with pytest.raises(DatasetNotFound, match="SWaT_Dataset_Normal_v1.csv"):
        load_dataset("swat", tmp_path)
    with pytest.raises(DatasetNotFound, match="does not exist"):
        load_dataset("smd", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("yahoo", tmp_path)


def test_merlion_layout_and_bad_columns(tmp_path):
    """Merlion's synthetic layout (timestamp,<shape>,anomaly): split in time, labels kept; a file
    without the anomaly column is named in the error."""
    from capmix.data.loaders import load_merlion

    folder = tmp_path / "merlion_synthetic"
    folder.mkdir()
    t = np.arange(40) * 300
    pd.DataFrame({"timestamp": t, "seasonal": np.sin(t), "anomaly": (np.arange(40) % 13 == 5) * 1.0}).to_csv(
        folder / "seasonal_spike_anomaly.csv", index=False)
    pd.DataFrame({"timestamp": t, "seasonal": np.sin(t)}).to_csv(folder / "seasonal.csv", index=False)  # skipped
    [s] = load_dataset("merlion", tmp_path)
    assert s.name == "seasonal_spike" and s.train_end == 20 and s.n_points == 40
    assert np.flatnonzero(s.labels).tolist() == [5, 18, 31]
    pd.DataFrame({"timestamp": t, "seasonal": np.sin(t), "label": 0}).to_csv(
        folder / "seasonal_level_anomaly.csv", index=False)
    with pytest.raises(ValueError, match="seasonal_level_anomaly.csv: expected columns"):
        load_merlion(tmp_path)
