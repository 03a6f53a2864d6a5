"""Series validation, the long frame, and the Parquet round trip (capmix.data.canonical)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from capmix.data import canonical as data
from capmix.data.canonical import Series, from_frame, read_dataset, read_metadata, to_frame, write_dataset

N_POINTS = 50
TRAIN_END = 30


def _series(name: str = "s0", n: int = N_POINTS, channels: int = 2, labelled: bool = True, dated: bool = True,
            seed: int = 0) -> Series:
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=np.int8)
    labels[TRAIN_END + 5 : TRAIN_END + 9] = 1
    timestamps = (np.datetime64("2024-01-01T00:00:00", "ns") + np.arange(n) * np.timedelta64(60, "s")) if dated else None
    return Series(
        name=name,
        values=rng.normal(size=(n, channels)),
        labels=labels if labelled else None,
        train_end=TRAIN_END,
        timestamps=timestamps,
        channels=tuple(f"m{i}" for i in range(channels)),
    )


def _assert_same(a: list[Series], b: list[Series]) -> None:
    assert [s.name for s in a] == [s.name for s in b]
    for x, y in zip(a, b):
        assert x.equals(y), x.name


# -- Series ------------------------------------------------------------------------------------


def test_series_properties_and_dtypes() -> None:
    s = _series()
    assert (s.n_points, s.n_channels) == (N_POINTS, 2)
    assert s.values.dtype == np.float64 and s.labels is not None and s.labels.dtype == np.int8
    assert s.timestamps is not None and s.timestamps.dtype == np.dtype("datetime64[ns]")
    train_x, train_y = s.train
    test_x, test_y = s.test
    assert train_x.shape == (TRAIN_END, 2) and test_x.shape == (N_POINTS - TRAIN_END, 2)
    assert train_y is not None and test_y is not None and train_y.sum() == 0 and test_y.sum() == 4
    u = Series("u", np.ones((10, 1)), None, 10)
    assert u.channels == ("ch0",) and u.test[0].shape == (0, 1) and u.train[1] is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": np.ones(10)}, "2-D"),
        ({"labels": np.zeros(9)}, "labels must have shape"),
        ({"labels": np.full(10, -1)}, "labels must be 0 or 1"),
        ({"train_end": 0}, "train_end=0"),
        ({"train_end": 11}, "train_end=11"),
        ({"channels": ("a", "a")}, "duplicate channel"),
        ({"channels": ("label", "b")}, "reserved"),
        ({"timestamps": np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 8])}, "strictly increasing"),
    ],
)
def test_series_validation_names_series_and_fix(kwargs: dict, match: str) -> None:
    args = {"name": "bad-one", "values": np.zeros((10, 2)), "labels": None, "train_end": 5}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match) as err:
        Series(**args)
    assert "bad-one" in str(err.value) and "Fix" in str(err.value)


# -- frame / parquet round trip --------------------------------------------------------------


def test_frame_layout() -> None:
    frame = to_frame([_series("a"), _series("b", n=40, labelled=False)])
    assert list(frame.columns) == ["series", "timestamp", "split", "label", "m0", "m1"]
    assert frame["timestamp"].dtype == np.dtype("datetime64[ns]")
    assert frame["label"].dtype == pd.Int8Dtype()
    assert set(frame["split"].astype(str)) == {"train", "test"}
    assert frame.loc[frame["series"] == "b", "label"].isna().all()
    assert (frame["m0"].dtype, frame["m1"].dtype) == (np.float64, np.float64)


@pytest.mark.parametrize("dated", [True, False])
def test_round_trip(tmp_path: Path, dated: bool) -> None:
    original = [
        _series("a", dated=dated, seed=1),
        _series("b", n=80, labelled=False, dated=dated, seed=2),
        _series("c", n=31, dated=dated, seed=3),
    ]
    original[0].values[3, 1] = np.nan  # missing measurements survive
    path = write_dataset(original, tmp_path / "deep" / "dir" / "ds.parquet", metadata={"name": "toy", "k": [1, 2]})
    assert path.exists()
    _assert_same(original, read_dataset(path))
    _assert_same(original, from_frame(to_frame(original)))
    meta = read_metadata(path)
    assert meta["name"] == "toy" and meta["k"] == [1, 2]
    assert meta["labelled"] is False and meta["unlabelled_series"] == ["b"]
    assert meta["channels"] == ["m0", "m1"] and meta["n_series"] == 3


def test_int_timestamps_round_trip(tmp_path: Path) -> None:
    s = Series("i", np.arange(12.0).reshape(6, 2), np.array([0, 0, 0, 1, 0, 0]), 3, timestamps=np.arange(100, 106))
    out = read_dataset(write_dataset([s], tmp_path / "i.parquet"))
    _assert_same([s], out)
    assert out[0].timestamps is not None and out[0].timestamps.dtype == np.int64


def test_from_frame_sorts_shuffled_rows() -> None:
    original = [_series("a"), _series("b", seed=5)]
    frame = to_frame(original).sample(frac=1.0, random_state=0).reset_index(drop=True)
    _assert_same(original, from_frame(frame))


def test_overwrite_replaces_content(tmp_path: Path) -> None:
    path = tmp_path / "ds.parquet"
    write_dataset([_series("old")], path)
    write_dataset([_series("new")], path)
    assert [s.name for s in read_dataset(path)] == ["new"]


# -- atomic write --------------------------------------------------------------------------------


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    write_dataset([_series()], tmp_path / "ds.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.parquet"]


def test_crash_during_write_keeps_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ds.parquet"
    write_dataset([_series("old")], path)
    before = path.read_bytes()
    real_write = pq.write_table

    def crash(table, where, **kwargs):  # the temp file is written, then the process dies before the rename
        real_write(table, where, **kwargs)
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(data.pq, "write_table", crash)
    with pytest.raises(KeyboardInterrupt):
        write_dataset([_series("new")], path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.parquet"]


# -- clear errors ----------------------------------------------------------------------------------


def test_missing_file_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_dataset(tmp_path / "nope.parquet")
    with pytest.raises(FileNotFoundError):
        read_metadata(tmp_path / "nope.parquet")


def test_missing_columns_named() -> None:
    frame = to_frame([_series()]).drop(columns=["split", "label"])
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['split', 'label'\]"):
        from_frame(frame)


def test_missing_columns_in_file(tmp_path: Path) -> None:
    path = tmp_path / "raw.parquet"
    to_frame([_series()]).drop(columns=["timestamp"]).to_parquet(path)
    with pytest.raises(ValueError, match="timestamp"):
        read_dataset(path)


@pytest.mark.parametrize("bad", [-1, 2])
def test_bad_label_values(bad: int) -> None:
    frame = to_frame([_series()])
    frame["label"] = frame["label"].astype("int64")
    frame.loc[3, "label"] = bad
    with pytest.raises(ValueError, match=rf"values {bad}; only 0, 1 and <NA>"):
        from_frame(frame)


def test_partially_missing_labels_rejected() -> None:
    frame = to_frame([_series()])
    frame.loc[2, "label"] = pd.NA
    with pytest.raises(ValueError, match="fully labelled or unlabelled"):
        from_frame(frame)


def test_non_numeric_channel() -> None:
    frame = to_frame([_series()])
    frame["m1"] = frame["m1"].astype(str)
    with pytest.raises(ValueError, match=r"Channel column\(s\) \['m1'\] are not numeric"):
        from_frame(frame)


def test_bad_split_values() -> None:
    frame = to_frame([_series()])
    frame["split"] = frame["split"].astype(str)
    frame.loc[0, "split"] = "validation"
    with pytest.raises(ValueError, match="'validation'"):
        from_frame(frame)


def test_test_before_train_rejected() -> None:
    frame = to_frame([_series()])
    frame["split"] = frame["split"].astype(str)
    frame.loc[0, "split"] = "test"
    with pytest.raises(ValueError, match="'train' followed by 'test'"):
        from_frame(frame)


def test_heterogeneous_channels_rejected(tmp_path: Path) -> None:
    a = _series("a", channels=2)
    b = _series("b", channels=3)
    with pytest.raises(ValueError, match="Heterogeneous channels.*'b'"):
        write_dataset([a, b], tmp_path / "x.parquet")
    assert not any(tmp_path.iterdir())


def test_mixed_timestamp_kinds_and_duplicate_names_rejected() -> None:
    with pytest.raises(ValueError, match="Mixed timestamp kinds"):
        to_frame([_series("a"), _series("b", dated=False)])
    with pytest.raises(ValueError, match="Duplicate series names"):
        to_frame([_series("a"), _series("a")])


def test_metadata_conflict_and_serialisation(tmp_path: Path) -> None:
    s = [_series()]
    with pytest.raises(ValueError, match="contradicts the data"):
        write_dataset(s, tmp_path / "sub" / "x.parquet", metadata={"labelled": False})
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        write_dataset(s, tmp_path / "sub" / "x.parquet", metadata={"obj": object()})
    assert not any(tmp_path.iterdir())
