"""Great Expectations validation of the long frame (capmix.data.validation).

Each bad case must fail with the responsible expectation *named* in the error message; the
JSON result and the Data Docs site must be written atomically under out_dir.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from capmix.data.canonical import Series, to_frame
from capmix.data.synthetic import GeneratorConfig, generate
from capmix.data.validation import DataValidationError, ValidationConfig, ValidationReport, validate_frame

WINDOW = 32
CHANNELS = ["ch0", "ch1", "ch2"]


def _frame(n_channels: int = 3, length: int = 400, n_series: int = 3) -> pd.DataFrame:
    cfg = GeneratorConfig(
        n_series=n_series, length=length, n_channels=n_channels, anomalies_per_series=1,
        min_anomaly_length=8, max_anomaly_length=20, seed=3,
    )
    return to_frame(generate(cfg))


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return _frame()


def _cfg(**kw) -> ValidationConfig:
    base = {"kind": "multivariate", "window": WINDOW, "require_labels": True, "mode": "train"}
    return ValidationConfig(**{**base, **kw})


def _fails(frame: pd.DataFrame, tmp_path: Path, *names: str, **cfg_kw) -> str:
    """Validate, expect failure, return the error message after checking every name is in it."""
    report = validate_frame(frame, _cfg(**cfg_kw), tmp_path)
    assert not report.success and report.failures
    with pytest.raises(DataValidationError) as info:
        report.raise_for_failures()
    msg = str(info.value)
    for name in names:
        assert name in msg, f"{name!r} not in:\n{msg}"
    # one line per failure, each with a fix
    lines = [ln for ln in msg.splitlines() if ln.startswith("- ")]
    assert len(lines) == len(report.failures) and all("Fix: " in ln for ln in lines)
    assert isinstance(info.value, ValueError) and info.value.report is report
    return msg


def _first_rows(frame: pd.DataFrame, series: str) -> np.ndarray:
    return np.flatnonzero((frame["series"] == series).to_numpy())


# -- passes ---------------------------------------------------------------------------------------


def test_good_frame_passes_and_writes_outputs(good: pd.DataFrame, tmp_path: Path) -> None:
    report = validate_frame(good, _cfg(channels=CHANNELS), tmp_path)
    assert isinstance(report, ValidationReport)
    assert report.success and report.failures == [] and report.imputed == 0
    report.raise_for_failures()  # no-op
    assert report.frame is good  # nothing imputed: the caller continues with its own frame
    stats = report.statistics
    assert stats["n_series"] == 3 and stats["n_rows"] == len(good) and stats["channels"] == CHANNELS
    assert stats["unsuccessful_expectations"] == 0 and stats["evaluated_expectations"] > 20

    assert report.json_path == tmp_path / "validation.json"
    payload = json.loads(report.json_path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert payload["success"] is True and payload["failures"] == []
    assert set(payload["gx_results"]) == {"frame", "series"}
    assert payload["gx_results"]["frame"]["suite_name"] == "capmix-multivariate-frame"
    assert len(payload["series"]) == 3

    index = tmp_path / "data_docs" / "index.html"
    assert report.data_docs_path == index and index.is_file()
    assert "capmix-multivariate-frame" in index.read_text()
    assert list((tmp_path / "data_docs" / "validations").rglob("*.html"))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # temp files/folders renamed or removed


def test_univariate_passes_and_rerun_replaces_outputs(tmp_path: Path) -> None:
    frame = _frame(n_channels=1)
    cfg = _cfg(kind="univariate")
    first = validate_frame(frame, cfg, tmp_path)
    second = validate_frame(frame, cfg, tmp_path)
    assert first.success and second.success
    assert "capmix-univariate-series" in second.data_docs_path.read_text()
    assert [p.name for p in tmp_path.iterdir()] and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# -- schema ---------------------------------------------------------------------------------------


def test_missing_channel_column(good: pd.DataFrame, tmp_path: Path) -> None:
    msg = _fails(good.drop(columns=["ch2"]), tmp_path, "expect_column_to_exist", "'ch2'", channels=CHANNELS)
    assert "expect_table_columns_to_match_ordered_list" in msg and "missing ['ch2']" in msg
    # knock-on failures on the absent column are not listed
    assert "[ch2]" in msg and msg.count("[ch2]") == 1


def test_non_numeric_channel(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.assign(ch1=good["ch1"].map(lambda v: f"{v:.3f}"))
    msg = _fails(bad, tmp_path, "expect_column_values_to_be_in_type_list [ch1]", "float64")
    assert "pd.to_numeric" in msg and msg.count("[ch1]") == 1  # value checks that could not run are not listed


def test_series_column_must_be_string(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.assign(series=pd.factorize(good["series"])[0])
    _fails(bad, tmp_path, "expect_column_values_to_be_of_type [series]")


def test_channels_different_from_expected(good: pd.DataFrame, tmp_path: Path) -> None:
    msg = _fails(good, tmp_path, "expect_table_columns_to_match_ordered_list", "'chX'",
                 channels=["ch0", "ch1", "chX"])
    assert "unexpected ['ch2']" in msg
    reordered = good[["series", "timestamp", "split", "label", "ch1", "ch0", "ch2"]]
    _fails(reordered, tmp_path, "expect_table_columns_to_match_ordered_list", "column order", channels=CHANNELS)


def test_kind_fixes_the_channel_count(good: pd.DataFrame, tmp_path: Path) -> None:
    _fails(good, tmp_path, "expect_table_column_count_to_equal", kind="univariate")
    _fails(_frame(n_channels=1), tmp_path, "expect_table_column_count_to_be_between", kind="multivariate")


# -- values ---------------------------------------------------------------------------------------


def _with_bad_values(good: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    bad = good.copy()
    rows = _first_rows(bad, "synthetic-001")
    bad.loc[rows[[10, 11]], "ch0"] = np.nan
    bad.loc[rows[0], "ch1"] = np.inf  # leading: ffill must fall back on the next value
    bad.loc[rows[-1], "ch2"] = -np.inf
    return bad, 4


def test_nan_and_inf_fail(good: pd.DataFrame, tmp_path: Path) -> None:
    bad, _ = _with_bad_values(good)
    msg = _fails(
        bad, tmp_path,
        "expect_column_values_to_not_be_null [ch0]",
        "expect_column_values_to_be_between [ch1]",
        "expect_column_values_to_be_between [ch2]",
        "'synthetic-001' (2 rows",
        "validate.impute: ffill",
    )
    assert "synthetic-000" not in msg
    payload = json.loads((tmp_path / "validation.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert payload["success"] is False and len(payload["failures"]) == 3


@pytest.mark.parametrize("method", ["ffill", "interpolate"])
def test_imputation_passes_and_counts(good: pd.DataFrame, tmp_path: Path, method: str) -> None:
    bad, n_bad = _with_bad_values(good)
    report = validate_frame(bad, _cfg(impute=method), tmp_path)
    assert report.success, [f.line() for f in report.failures]
    assert report.imputed == n_bad and report.statistics["imputed"] == n_bad
    values = report.frame[CHANNELS].to_numpy()
    assert np.isfinite(values).all()
    assert np.isnan(bad["ch0"]).sum() == 2  # the caller's frame is untouched
    rows = _first_rows(bad, "synthetic-001")
    if method == "ffill":
        assert report.frame.loc[rows[10], "ch0"] == bad.loc[rows[9], "ch0"]
        assert report.frame.loc[rows[0], "ch1"] == bad.loc[rows[1], "ch1"]
    else:
        expected = bad.loc[rows[9], "ch0"] + (bad.loc[rows[12], "ch0"] - bad.loc[rows[9], "ch0"]) / 3
        assert report.frame.loc[rows[10], "ch0"] == pytest.approx(expected)


def test_labels_other_than_0_1(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.copy()
    bad.loc[_first_rows(bad, "synthetic-002")[5], "label"] = 2
    bad.loc[_first_rows(bad, "synthetic-002")[6], "label"] = -1
    _fails(bad, tmp_path, "expect_column_values_to_be_in_set [label]", "'synthetic-002' (2 rows", "e.g. 2, -1")


# -- per series -----------------------------------------------------------------------------------


def test_duplicate_timestamps(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.copy()
    rows = _first_rows(bad, "synthetic-000")
    bad.loc[rows[50], "timestamp"] = bad.loc[rows[49], "timestamp"]
    msg = _fails(bad, tmp_path, "expect_column_values_to_be_between [duplicate_timestamps]",
                 "'synthetic-000' has duplicate_timestamps=1")
    assert "decreasing_timestamps" not in msg


def test_decreasing_timestamps(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.copy()
    rows = _first_rows(bad, "synthetic-001")
    a, b = bad.loc[rows[20], "timestamp"], bad.loc[rows[21], "timestamp"]
    bad.loc[rows[20], "timestamp"], bad.loc[rows[21], "timestamp"] = b, a
    msg = _fails(bad, tmp_path, "expect_column_values_to_be_between [decreasing_timestamps]",
                 "'synthetic-001' has decreasing_timestamps=1", "sort_values")
    assert "duplicate_timestamps" not in msg


def test_integer_timestamps_are_checked_too(tmp_path: Path) -> None:
    series = [Series(f"u{i}", np.random.default_rng(i).normal(size=(200, 1)), np.zeros(200), 100) for i in range(2)]
    frame = to_frame(series)  # no timestamps: int64 positions
    assert validate_frame(frame, _cfg(kind="univariate"), tmp_path).success
    bad = frame.copy()
    bad.loc[150, "timestamp"] = 3
    _fails(bad, tmp_path, "decreasing_timestamps", "'u0'", kind="univariate")


def test_series_shorter_than_a_window(good: pd.DataFrame, tmp_path: Path) -> None:
    position = good.groupby(["series", "split"], observed=True).cumcount()
    short = (good["series"] == "synthetic-002") & (position >= WINDOW - 2)
    msg = _fails(good[~short.to_numpy()].reset_index(drop=True), tmp_path,
                 "expect_column_values_to_be_between [train_points]",
                 "expect_column_values_to_be_between [test_points]",
                 f"'synthetic-002' has test_points={WINDOW - 2}", f"window={WINDOW}")
    assert "synthetic-001" not in msg
    # scoring only needs the test split
    short_train = (good["series"] == "synthetic-002") & (good["split"] == "train") & (position >= 5)
    report = validate_frame(good[~short_train.to_numpy()], _cfg(mode="score"), tmp_path)
    assert report.success, [f.line() for f in report.failures]


def test_anomaly_ratio_above_bound(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.copy()
    test_rows = np.flatnonzero(((bad["series"] == "synthetic-000") & (bad["split"] == "test")).to_numpy())
    bad.loc[test_rows[: test_rows.size // 2], "label"] = 1
    _fails(bad, tmp_path, "expect_column_values_to_be_between [test_anomaly_ratio]",
           "'synthetic-000' has test_anomaly_ratio=0.5", "allowed [0.0, 0.2]")
    assert validate_frame(bad, _cfg(max_anomaly_ratio=0.6), tmp_path).success
    _fails(good, tmp_path, "test_anomaly_ratio", min_anomaly_ratio=0.15, max_anomaly_ratio=0.9)


def test_missing_test_labels(good: pd.DataFrame, tmp_path: Path) -> None:
    unlabelled = good.assign(label=pd.array([pd.NA] * len(good), dtype="Int8"))
    _fails(unlabelled, tmp_path, "expect_column_values_to_be_between [test_labels_missing]", "require_labels=False")
    assert validate_frame(unlabelled, _cfg(require_labels=False), tmp_path).success


def test_train_after_test(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.copy()
    bad.loc[_first_rows(bad, "synthetic-001")[-1], "split"] = "train"
    _fails(bad, tmp_path, "train_points_after_test", "'synthetic-001'")


# -- config -----------------------------------------------------------------------------------------


def test_config_rejects_bad_settings() -> None:
    with pytest.raises(ValidationError):
        ValidationConfig(kind="multivariate", window=8, require_labels=True, mode="train", typo=1)
    with pytest.raises(ValidationError, match="require_labels"):
        ValidationConfig(kind="multivariate", window=8, mode="train")  # an explicit decision
    with pytest.raises(ValidationError, match="min_anomaly_ratio"):
        _cfg(min_anomaly_ratio=0.5, max_anomaly_ratio=0.1)
    with pytest.raises(ValidationError, match="univariate"):
        _cfg(kind="univariate", channels=CHANNELS)
    with pytest.raises(ValidationError, match="reserved"):
        _cfg(channels=["ch0", "label"])
    with pytest.raises(ValidationError):
        _cfg(impute="mean")
    with pytest.raises(TypeError):
        validate_frame([1, 2, 3], _cfg(), ".")  # type: ignore[arg-type]
