"""Bad input, one test per case, through the command line at ingestion (``capmix ingest``) and at
scoring (``capmix score``): exit status 2, one message naming the problem and the fix, and no
output file (nor a temp file) left behind. Also bad params.yaml values and broken model folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from capmix.cli import app
from relhelpers import TINY, leftovers, signal

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _params(tmp: Path, **train) -> Path:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["train"].update({k: v for k, v in TINY.items() if k in p["train"]}, **train)
    p["validate"]["out"] = str(tmp / "reports")
    p["dataset"].update(name="custom", path=str(tmp / "data" / "series.parquet"))
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return path


def _fails(args: list[str], *needles: str) -> str:
    result = runner.invoke(app, args)
    out = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 2, (result.exit_code, out, result.exception)
    assert "error:" in out and "Fix" in out or "fix" in out.lower(), out
    for n in needles:
        assert n in out, f"{n!r} not in: {out}"
    return out


# ============================================================================================ ingestion
def _ingest_fails(tmp: Path, frame: pd.DataFrame | None, *needles: str, raw: bytes | None = None,
                  suffix: str = ".csv") -> None:
    src = tmp / f"raw{suffix}"
    if raw is not None:
        src.write_bytes(raw)
    elif suffix == ".csv":
        frame.to_csv(src, index=False)
    else:
        frame.to_parquet(src, index=False)
    out = tmp / "data" / "series.parquet"
    _fails(["ingest", "--input", str(src), "--out", str(out), "--params", str(_params(tmp))], *needles)
    assert not out.exists(), "no canonical file may be written for bad data"
    assert not (tmp / "data").exists() or leftovers(tmp / "data") == []


def test_ingest_good_table_writes_the_canonical_file(tmp_path, raw_frame):
    src = tmp_path / "raw.csv"
    raw_frame.to_csv(src, index=False)
    out = tmp_path / "data" / "series.parquet"
    result = runner.invoke(app, ["ingest", "--input", str(src), "--out", str(out), "--params", str(_params(tmp_path))])
    assert result.exit_code == 0, result.output
    from capmix.data.canonical import read_dataset

    series = read_dataset(out)
    assert [s.name for s in series] == ["synthetic-000", "synthetic-001"] and series[0].channels == ("ch0", "ch1")


def test_ingest_empty_file(tmp_path):
    _ingest_fails(tmp_path, None, "empty (0 bytes)", raw=b"")


def test_ingest_header_only(tmp_path):
    _ingest_fails(tmp_path, None, "no rows", raw=b"series,timestamp,split,label,ch0,ch1\n")


def test_ingest_missing_column(tmp_path, raw_frame):
    _ingest_fails(tmp_path, raw_frame.drop(columns=["split"]), "expect_column_to_exist [split]", "add the 'split'")


def test_ingest_renamed_column(tmp_path, raw_frame):
    _ingest_fails(tmp_path, raw_frame.rename(columns={"timestamp": "time"}), "expect_column_to_exist [timestamp]")


def test_ingest_non_numeric_values(tmp_path, raw_frame):
    bad = raw_frame.astype({"ch1": object})
    bad.loc[5, "ch1"] = "abc"
    _ingest_fails(tmp_path, bad, "[ch1]", "pd.to_numeric")


def test_ingest_nan(tmp_path, raw_frame):
    bad = raw_frame.copy()
    bad.loc[7, "ch0"] = np.nan
    _ingest_fails(tmp_path, bad, "expect_column_values_to_not_be_null [ch0]", "impute")


def test_ingest_inf(tmp_path, raw_frame):
    bad = raw_frame.copy()
    bad.loc[9, "ch0"] = np.inf
    _ingest_fails(tmp_path, bad, "[ch0]", "inf in a channel", suffix=".parquet")


def test_ingest_duplicate_timestamps(tmp_path, raw_frame):
    bad = raw_frame.copy()
    bad.loc[11, "timestamp"] = bad.loc[10, "timestamp"]
    _ingest_fails(tmp_path, bad, "duplicate_timestamps", "drop_duplicates", suffix=".parquet")


def test_ingest_decreasing_timestamps(tmp_path, raw_frame):
    bad = raw_frame.copy()
    bad.loc[[20, 21], "timestamp"] = bad.loc[[21, 20], "timestamp"].to_numpy()
    _ingest_fails(tmp_path, bad, "decreasing_timestamps", "sort the rows", suffix=".parquet")


def test_ingest_irregular_sampling(tmp_path, raw_frame):
    bad = raw_frame.copy()
    first = (bad["series"] == "synthetic-000").to_numpy()
    # every 3rd interval is 2 minutes instead of 1
    bad.loc[first, "timestamp"] = bad.loc[first, "timestamp"].iloc[0] + pd.to_timedelta(
        np.arange(first.sum()) + np.arange(first.sum()) // 3, unit="min")
    _ingest_fails(tmp_path, bad, "irregular_interval_ratio", "'synthetic-000'", "resample", suffix=".parquet")


def test_ingest_series_shorter_than_a_window(tmp_path, raw_frame):
    short = raw_frame.groupby(["series", "split"], observed=True).cumcount() < 20
    _ingest_fails(tmp_path, raw_frame[short.to_numpy()], "train_points", "window=32")


def test_ingest_constant_series(tmp_path, raw_frame):
    bad = raw_frame.copy()
    rows = ((bad["series"] == "synthetic-001") & (bad["split"] == "train")).to_numpy()
    bad.loc[rows, ["ch0", "ch1"]] = 1.0
    _ingest_fails(tmp_path, bad, "train_all_channels_constant", "'synthetic-001'", "nothing to learn")


def test_ingest_labels_other_than_0_1(tmp_path, raw_frame):
    bad = raw_frame.copy()
    bad["label"] = bad["label"].astype("Int64")
    bad.loc[3, "label"] = 2
    _ingest_fails(tmp_path, bad, "expect_column_values_to_be_in_set [label]", "map anomalies to 1")


def test_ingest_all_points_anomalous(tmp_path, raw_frame):
    bad = raw_frame.copy()
    bad.loc[(bad["series"] == "synthetic-000").to_numpy(), "label"] = 1
    _ingest_fails(tmp_path, bad, "train_anomaly_ratio", "test_anomaly_ratio", "normal data")


# ============================================================================================= scoring
def _score_fails(tmp: Path, model_dir: Path, frame: pd.DataFrame | None, *needles: str, raw: bytes | None = None,
                 suffix: str = ".csv", extra: tuple[str, ...] = ()) -> None:
    src = tmp / f"in{suffix}"
    if raw is not None:
        src.write_bytes(raw)
    elif suffix == ".csv":
        frame.to_csv(src, index=False)
    else:
        frame.to_parquet(src, index=False)
    out = tmp / "out" / "scores.csv"
    # chunks of 500 rows: errors deep in the file are found after some output was produced
    _fails(["score", "--model", str(model_dir), "--input", str(src), "--out", str(out), "--chunk-rows", "500",
            *extra], *needles)
    assert not out.exists(), "no partial scores file"
    assert not (tmp / "out").exists() or leftovers(tmp / "out") == []


def _scoring_frame(n: int = 3000) -> pd.DataFrame:
    x = signal(n, start=5000)
    return pd.DataFrame({"timestamp": np.arange(n), "ch0": x[:, 0], "ch1": x[:, 1]})


def test_score_good_file_in_chunks(tmp_path, model_dir):
    from capmix.detectors.capmix.detector import CAPMixDetector

    frame = _scoring_frame()
    frame.to_csv(tmp_path / "in.csv", index=False)
    result = runner.invoke(app, ["score", "--model", str(model_dir), "--input", str(tmp_path / "in.csv"),
                                 "--out", str(tmp_path / "s.parquet"), "--chunk-rows", "333"])
    assert result.exit_code == 0, result.output
    out = pd.read_parquet(tmp_path / "s.parquet")
    assert list(out.columns) == ["timestamp", "score", "alarm"] and len(out) == len(frame)
    det = CAPMixDetector.load(model_dir)
    np.testing.assert_array_equal(out["score"].to_numpy(), det.decision_function(frame[["ch0", "ch1"]].to_numpy()))


def test_score_empty_file(tmp_path, model_dir):
    _score_fails(tmp_path, model_dir, None, "empty (0 bytes)", raw=b"")


def test_score_header_only(tmp_path, model_dir):
    _score_fails(tmp_path, model_dir, None, "no rows", raw=b"timestamp,ch0,ch1\n")


def test_score_missing_channel(tmp_path, model_dir):
    _score_fails(tmp_path, model_dir, _scoring_frame().drop(columns=["ch1"]), "lacks channel column(s) ['ch1']")


def test_score_renamed_channel(tmp_path, model_dir):
    _score_fails(tmp_path, model_dir, _scoring_frame().rename(columns={"ch1": "pressure"}),
                 "lacks channel column(s) ['ch1']", "['pressure']: renamed?")


def test_score_non_numeric(tmp_path, model_dir):
    frame = _scoring_frame().astype({"ch0": object})
    frame.loc[2100, "ch0"] = "abc"
    _score_fails(tmp_path, model_dir, frame, "non-numeric value 'abc' at row 2100", "clean the column")


def test_score_nan(tmp_path, model_dir):
    frame = _scoring_frame()
    frame.loc[1700, "ch1"] = np.nan
    _score_fails(tmp_path, model_dir, frame, "NaN/inf", "'ch1' at row 1700", "impute")


def test_score_inf(tmp_path, model_dir):
    frame = _scoring_frame()
    frame.loc[2999, "ch0"] = -np.inf
    _score_fails(tmp_path, model_dir, frame, "-inf", "'ch0' at row 2999", suffix=".parquet")


def test_score_duplicate_timestamps(tmp_path, model_dir):
    frame = _scoring_frame()
    frame.loc[1001, "timestamp"] = 1000
    _score_fails(tmp_path, model_dir, frame, "duplicate timestamp 1000 at row 1001", "sort the rows")


def test_score_decreasing_timestamps_across_chunks(tmp_path, model_dir):
    frame = _scoring_frame()
    frame.loc[500, "timestamp"] = 10  # first row of the second chunk goes back in time
    _score_fails(tmp_path, model_dir, frame, "decreasing timestamp 10 at row 500")


def test_score_irregular_sampling(tmp_path, model_dir):
    frame = _scoring_frame()
    frame["timestamp"] = pd.date_range("2024-01-01", periods=len(frame), freq="1min").astype(str)
    frame.loc[1500:, "timestamp"] = (pd.to_datetime(frame.loc[1500:, "timestamp"]) + pd.Timedelta("30s")).astype(str)
    _score_fails(tmp_path, model_dir, frame, "irregular sampling", "at row 1500", "--allow-irregular")
    out = tmp_path / "ok.csv"
    result = runner.invoke(app, ["score", "--model", str(model_dir), "--input", str(tmp_path / "in.csv"),
                                 "--out", str(out), "--allow-irregular"])
    assert result.exit_code == 0 and len(pd.read_csv(out)) == len(frame)


def test_score_shorter_than_a_window(tmp_path, model_dir):
    _score_fails(tmp_path, model_dir, _scoring_frame(20), "20 points, fewer than one window (32)")


def test_score_labels_other_than_0_1(tmp_path, model_dir):
    frame = _scoring_frame().assign(label=0)
    frame.loc[800, "label"] = -1
    _score_fails(tmp_path, model_dir, frame, "column 'label' has value -1 at row 800")


def test_score_other_number_of_channels(tmp_path, model_dir):
    frame = _scoring_frame().assign(ch2=0.5)
    # names are checked first when the model recorded them; without names the count is checked
    _score_fails(tmp_path, model_dir, frame, "3 channel column(s)", "trained on 2")


def test_score_several_series_in_one_file(tmp_path, model_dir):
    frame = _scoring_frame().assign(series=["a"] * 1500 + ["b"] * 1500)
    _score_fails(tmp_path, model_dir, frame, "several series ('a', 'b'", "--series NAME")
    _score_fails(tmp_path, model_dir, frame, "no rows of series 'c'", extra=("--series", "c"))
    _score_fails(tmp_path, model_dir, frame.drop(columns="series"), "no 'series' column", extra=("--series", "a"))


def test_score_one_series_of_several(tmp_path, model_dir):
    from capmix.detectors.capmix.detector import CAPMixDetector

    frame = _scoring_frame().assign(series=["a"] * 1500 + ["b"] * 1500)
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    result = runner.invoke(app, ["score", "--model", str(model_dir), "--input", str(tmp_path / "in.parquet"),
                                 "--series", "b", "--out", str(tmp_path / "s.csv"), "--chunk-rows", "700"])
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "s.csv")
    b = frame[frame["series"] == "b"]
    assert len(out) == len(b) and (out["timestamp"].to_numpy() == b["timestamp"].to_numpy()).all()
    det = CAPMixDetector.load(model_dir)
    np.testing.assert_allclose(out["score"].to_numpy(), det.decision_function(b[["ch0", "ch1"]].to_numpy()),
                               rtol=1e-6)


def test_score_constant_series_and_all_anomalous_labels_are_scored(tmp_path, model_dir):
    """Scoring needs no variation and ignores labels: these are valid inputs (a flat line is scored)."""
    frame = _scoring_frame().assign(ch0=1.0, ch1=-1.0, label=1)
    frame.to_csv(tmp_path / "in.csv", index=False)
    result = runner.invoke(app, ["score", "--model", str(model_dir), "--input", str(tmp_path / "in.csv"),
                                 "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "s.csv")
    assert len(out) == len(frame) and np.isfinite(out["score"]).all()


# ======================================================================================= model folders
def _broken_model(tmp: Path, model_dir: Path, how: str) -> Path:
    broken = tmp / "broken"
    shutil.copytree(model_dir, broken)
    if how == "truncated weights":
        data = (broken / "weights.pt").read_bytes()
        (broken / "weights.pt").write_bytes(data[: len(data) // 2])
    elif how == "tampered config":
        (broken / "config.json").write_text((broken / "config.json").read_text().replace('"stride": 8', '"stride": 4'))
    elif how == "missing state":
        (broken / "state.json").unlink()
    elif how == "corrupt checksums":
        (broken / "checksums.json").write_text("{not json")
    return broken


@pytest.mark.parametrize("how, needle", [
    ("truncated weights", "weights.pt does not match its checksum"),
    ("tampered config", "config.json does not match its checksum"),
    ("missing state", "missing ['state.json']"),
    ("corrupt checksums", "checksums.json is corrupt"),
])
def test_score_with_a_broken_model_directory(tmp_path, model_dir, how, needle):
    _score_fails(tmp_path, _broken_model(tmp_path, model_dir, how), _scoring_frame(), needle)


# =========================================================================================== params.yaml
@pytest.mark.parametrize("key, value, needle", [
    ("gamma", 1.0, "train.gamma = 1.0: Input should be greater than 1"),
    ("alpha", 0.0, "train.alpha = 0.0: Input should be greater than 0"),
    ("window", 4, "train.window = 4: Input should be greater than or equal to 8"),
    ("stride", 64, "stride (64) > window (32)"),
    ("max_epochs", "ten", "train.max_epochs = 'ten': Input should be a valid integer"),
])
def test_params_with_wrong_type_or_out_of_range(tmp_path, raw_frame, key, value, needle):
    from capmix.data.canonical import from_frame, write_dataset

    params = _params(tmp_path, **{key: value})
    write_dataset(from_frame(raw_frame), tmp_path / "data" / "series.parquet")
    models = tmp_path / "models"
    _fails(["train", "--params", str(params), "--models", str(models)], needle, "correct these keys in params.yaml")
    assert not models.exists()


def test_params_with_a_credential_are_refused(tmp_path):
    params = _params(tmp_path)
    p = yaml.safe_load(params.read_text())
    p["mlflow"]["tracking_uri"] = "postgresql://capmix:s3cret@db:5432/mlflow"
    params.write_text(yaml.safe_dump(p))
    out = _fails(["validate", "--params", str(params)], "holds credentials at ['mlflow.tracking_uri']",
                 "set them in the environment")
    assert "s3cret" not in out
