"""Great Expectations data validation of a dataset's long frame (see :mod:`capmix.data.canonical`).

One suite pair per dataset kind (``univariate`` / ``multivariate``), run on two batches:

* ``capmix-<kind>-frame`` on the frame itself (one row per point): required columns present,
  dtypes (``series`` string, ``timestamp`` datetime64[ns] or int64, ``label`` integer, every channel
  float), the number of channels fits the kind, channels exactly ``cfg.channels`` (names and
  order: the scoring-time "same channels as training" check), no NaN/inf in channels, labels in
  {0, 1} where not null, split values in {"train", "test"}.
* ``capmix-<kind>-series`` on a per-series aggregate frame (one row per series, built here with
  numpy): duplicate and decreasing timestamps, ``train`` rows after ``test`` rows, train/test
  lengths longer than one window, test anomaly ratio within bounds, missing test labels.
  Why an aggregate batch and not per-row helper columns: GX has no per-group expectation, the
  aggregate keeps the frame's column set untouched (so the column-set/count expectations stay
  exact), and every unexpected row of that batch *is* a series, so GX reports "where" directly.

Outputs under ``out_dir``: ``validation.json`` (summary + both GX results, strict JSON, written
to a temp file then renamed), ``summary.json`` (the verdict without run times and ids: equal
for equal data and checks) and ``data_docs/`` (GX's static HTML site, built in a temp folder
then swapped in). NaN/inf are either failures or, with ``impute`` set, filled per series and
counted. GX is imported lazily (it takes ~2 s): importing this module stays cheap.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from capmix.atomic import atomic_dir, write_json
from capmix.data.canonical import LABEL_COL, RESERVED_COLUMNS, SERIES_COL, SPLIT_COL, SPLIT_TEST, SPLIT_TRAIN, TIMESTAMP_COL

__all__ = [
    "DataValidationError",
    "Failure",
    "ValidationConfig",
    "ValidationReport",
    "build_suites",
    "series_summary",
    "validate_frame",
]

JSON_NAME = "validation.json"
SUMMARY_NAME = "summary.json"  #: the reproducible part of validation.json (what DVC tracks)
DOCS_DIR = "data_docs"
MAX_LISTED = 5  # series / values quoted per failure
PARTIAL_UNEXPECTED = 20  # rows GX lists per failed column-map expectation
FLOAT_MAX = float(np.finfo(np.float64).max)  # "finite" = between -FLOAT_MAX and FLOAT_MAX
CHANNEL_TYPES = ["float64", "float32"]
TIMESTAMP_TYPES = ["datetime64[ns]", "int64"]
LABEL_TYPES = ["Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype", "int8", "int16", "int32", "int64"]
NO_SERIES = "<no series column>"
TYPE_CHECKS = ("expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type")

# per-series aggregate columns (the second batch)
DUPLICATE_TS = "duplicate_timestamps"
DECREASING_TS = "decreasing_timestamps"
TRAIN_AFTER_TEST = "train_points_after_test"
TRAIN_POINTS = "train_points"
TEST_POINTS = "test_points"
ANOMALY_RATIO = "test_anomaly_ratio"
MISSING_LABELS = "test_labels_missing"
IRREGULAR = "irregular_interval_ratio"  # share of sampling intervals unlike the most common one
CONSTANT_TRAIN = "train_all_channels_constant"  # 1: nothing to learn from the training period
TRAIN_ANOMALY_RATIO = "train_anomaly_ratio"  # 1.0: no normal training point at all


class DataValidationError(ValueError):
    """The frame failed validation; the message lists each failed expectation, where, and a fix."""

    def __init__(self, message: str, report: ValidationReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class ValidationConfig(BaseModel):
    """What a dataset must satisfy to be trained on (``mode="train"``) or scored (``"score"``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["univariate", "multivariate"]
    channels: list[str] | None = Field(
        None, description="expected channel columns in order; None = the data's; at scoring time pass the model's"
    )
    window: int = Field(..., ge=1, description="every checked split of every series must be longer than this")
    max_anomaly_ratio: float = Field(0.2, ge=0.0, le=1.0)
    min_anomaly_ratio: float = Field(0.0, ge=0.0, le=1.0)
    max_irregular_ratio: float = Field(
        0.0, ge=0.0, le=1.0, description="share of sampling intervals allowed to differ from the usual one"
    )
    impute: Literal["none", "ffill", "interpolate"] = "none"
    require_labels: bool = Field(..., description="every test point needs a 0/1 label (evaluation)")
    mode: Literal["train", "score"] = Field(
        ..., description="train: train and test splits longer than a window; score: the test split"
    )
    ranges: dict[str, tuple[float, float]] | None = Field(
        None, description="channel -> [low, high] the values must lie in (the nightly day check: the history's "
                          "range, widened); None = only finite"
    )
    range_mostly: float = Field(1.0, gt=0.0, le=1.0, description="share of a channel's values that must be in range")

    @field_validator("channels")
    @classmethod
    def _check_channels(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not v or not all(isinstance(c, str) and c for c in v):
            raise ValueError("channels must be a non-empty list of non-empty names (or None)")
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate channel names in {v}")
        clash = sorted(set(v) & set(RESERVED_COLUMNS))
        if clash:
            raise ValueError(f"channel names {clash} clash with the reserved columns {list(RESERVED_COLUMNS)}")
        return v

    @model_validator(mode="after")
    def _check_consistency(self) -> ValidationConfig:
        if self.min_anomaly_ratio > self.max_anomaly_ratio:
            raise ValueError(
                f"min_anomaly_ratio={self.min_anomaly_ratio} > max_anomaly_ratio={self.max_anomaly_ratio}"
            )
        if self.channels is not None:
            n = len(self.channels)
            if self.kind == "univariate" and n != 1:
                raise ValueError(f"kind='univariate' needs exactly one channel, got {self.channels}")
            if self.kind == "multivariate" and n < 2:
                raise ValueError(f"kind='multivariate' needs at least two channels, got {self.channels}")
        return self


@dataclass
class Failure:
    """One failed expectation: which, on what, where in the data, and how to fix it."""

    expectation: str  # GX expectation type, e.g. "expect_column_values_to_not_be_null"
    column: str | None
    where: str  # which series / how many rows / a few example values
    hint: str
    suite: str = ""

    def line(self) -> str:
        on = f" [{self.column}]" if self.column else ""
        return f"- {self.expectation}{on}: {self.where}. Fix: {self.hint}"


@dataclass
class ValidationReport:
    """Outcome of :func:`validate_frame`; ``frame`` is the (possibly imputed) frame to continue with."""

    success: bool
    failures: list[Failure]
    statistics: dict[str, Any]
    imputed: int
    json_path: Path
    data_docs_path: Path  # the site's index.html
    frame: pd.DataFrame = field(repr=False)

    def message(self) -> str:
        head = f"Data validation failed: {len(self.failures)} expectation(s) not met"
        tail = f"Details: {self.json_path} ; report: {self.data_docs_path}"
        return "\n".join([head + ":", *(f.line() for f in self.failures), tail])

    def raise_for_failures(self) -> None:
        """Raise :class:`DataValidationError` listing every failure (one per line) if any."""
        if self.failures or not self.success:
            raise DataValidationError(self.message(), self)


# ----------------------------------------------------------------------------------------------
# GX plumbing (lazy import; the env must be set before GX is imported)
# ----------------------------------------------------------------------------------------------

_GX_LOCK = threading.RLock()  # GX keeps process-global state (the "current" context)


def _gx() -> Any:
    from capmix.telemetry import switch_off

    switch_off()  # GX reads GX_ANALYTICS_ENABLED when imported: nothing may reach the internet
    import great_expectations as gx

    # GX logs every ephemeral docs site it creates at INFO: noise on every run
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return gx


def _new_context() -> Any:
    """A fresh in-memory context (~5 ms) with analytics and progress bars off.

    Fresh per call instead of cached: its stores then hold exactly this run's suites and results,
    so the Data Docs index lists only this run and concurrent callers share nothing.
    """
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.config.analytics_enabled = False
    # the tqdm "Calculating Metrics" bars: metric_calculations wins over globally, so set both
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


# ----------------------------------------------------------------------------------------------
# suites
# ----------------------------------------------------------------------------------------------


@dataclass
class _Suites:
    frame: Any  # gx.ExpectationSuite for the point frame
    series: Any  # gx.ExpectationSuite for the per-series aggregate
    hints: dict[tuple[str, str | None], str]  # (expectation type, column) -> fix


def _channels_of(frame: pd.DataFrame, cfg: ValidationConfig) -> list[str]:
    if cfg.channels is not None:
        return list(cfg.channels)
    return [str(c) for c in frame.columns if c not in RESERVED_COLUMNS]


#: ``add(expectation, fix hint)``: puts the expectation in one suite and records its hint
_Add = Callable[[Any, str], None]


def _hinted_adder(suite: Any, hints: dict[tuple[str, str | None], str]) -> _Add:
    """An ``add`` bound to ``suite``; why: every expectation must carry the fix its failure prints."""

    def add(exp: Any, hint: str) -> None:
        suite.add_expectation(exp)
        hints[(exp.expectation_type, getattr(exp, "column", None))] = hint

    return add


def _add_table_expectations(add: _Add, E: Any, cfg: ValidationConfig) -> None:
    """Frame shape: rows present, reserved columns, channel count for the kind, exact channel list."""
    add(E.ExpectTableRowCountToBeBetween(min_value=1), "the frame is empty; load the data first")
    for col in RESERVED_COLUMNS:
        add(
            E.ExpectColumnToExist(column=col),
            f"add the {col!r} column; build frames with capmix.data.canonical.to_frame (columns {list(RESERVED_COLUMNS)} + channels)",
        )
    n_reserved = len(RESERVED_COLUMNS)
    if cfg.kind == "univariate":
        add(
            E.ExpectTableColumnCountToEqual(value=n_reserved + 1),
            "a univariate dataset has exactly one channel column; use kind='multivariate' or keep one channel",
        )
    else:
        add(
            E.ExpectTableColumnCountToBeBetween(min_value=n_reserved + 2),
            "a multivariate dataset has at least two channel columns; use kind='univariate' for one channel",
        )
    if cfg.channels is not None:
        add(
            E.ExpectTableColumnsToMatchOrderedList(column_list=[*RESERVED_COLUMNS, *cfg.channels]),
            "pass data with exactly the expected channels (the model's training channels, same names and order) "
            "or retrain on this data",
        )


def _add_reserved_column_expectations(add: _Add, E: Any) -> None:
    """Types and values of the series, timestamp, split and label columns."""
    add(
        E.ExpectColumnValuesToBeOfType(column=SERIES_COL, type_="str"),
        "cast the series names to strings: frame['series'] = frame['series'].astype('str')",
    )
    add(E.ExpectColumnValuesToNotBeNull(column=SERIES_COL), "name the series of every row")
    add(
        E.ExpectColumnValuesToBeInTypeList(column=TIMESTAMP_COL, type_list=TIMESTAMP_TYPES),
        "parse times with pd.to_datetime(...).astype('datetime64[ns]') or store positions as int64",
    )
    add(E.ExpectColumnValuesToNotBeNull(column=TIMESTAMP_COL), "fill or drop the rows without a time")
    add(E.ExpectColumnValuesToNotBeNull(column=SPLIT_COL), "mark every point 'train' or 'test'")
    add(
        E.ExpectColumnValuesToBeInSet(column=SPLIT_COL, value_set=[SPLIT_TRAIN, SPLIT_TEST]),
        "mark every point 'train' or 'test'",
    )
    add(
        E.ExpectColumnValuesToBeInTypeList(column=LABEL_COL, type_list=LABEL_TYPES),
        "store labels as nullable Int8: 0/1, <NA> for unlabelled points",
    )
    add(
        E.ExpectColumnValuesToBeInSet(column=LABEL_COL, value_set=[0, 1]),
        "map anomalies to 1, normal points to 0 and unknown labels to <NA> (not -1)",
    )


def _add_channel_expectations(add: _Add, E: Any, channels: Sequence[str],
                              ranges: dict[str, tuple[float, float]] | None = None, mostly: float = 1.0) -> None:
    """Each channel present, float, and free of NaN/inf (imputation fixes the last two); with ``ranges``,
    also (for ``mostly`` of its values) inside its range, which implies finite."""
    impute_hint = "set validate.impute: ffill (or interpolate) in params.yaml, or clean the source data"
    for ch in channels:
        add(
            E.ExpectColumnToExist(column=ch),
            f"the data lacks channel {ch!r}; pass data with all expected channels (or retrain on this data)",
        )
        add(
            E.ExpectColumnValuesToBeInTypeList(column=ch, type_list=CHANNEL_TYPES),
            f"convert it to float: pd.to_numeric(frame[{ch!r}], errors='coerce').astype('float64'), "
            "or drop a column that is not a channel",
        )
        add(E.ExpectColumnValuesToNotBeNull(column=ch), f"NaN in a channel: {impute_hint}")
        if ranges and ch in ranges:
            lo, hi = ranges[ch]
            add(
                E.ExpectColumnValuesToBeBetween(column=ch, min_value=lo, max_value=hi, mostly=mostly),
                f"values far outside the history's range [{lo:.4g}, {hi:.4g}] (or inf): check the feed for a unit "
                "or scaling change; if the new level is real, widen nightly.range_margin or start a new history",
            )
            continue
        add(
            E.ExpectColumnValuesToBeBetween(column=ch, min_value=-FLOAT_MAX, max_value=FLOAT_MAX),
            f"inf in a channel: {impute_hint}",
        )


def _add_series_time_expectations(add: _Add, E: Any, cfg: ValidationConfig) -> None:
    """Per series: time order, chronological split, regular sampling."""
    add(
        E.ExpectColumnValuesToBeBetween(column=DUPLICATE_TS, min_value=0, max_value=0),
        "drop duplicate points: frame.drop_duplicates(['series', 'timestamp'])",
    )
    add(
        E.ExpectColumnValuesToBeBetween(column=DECREASING_TS, min_value=0, max_value=0),
        "sort the rows by time within each series: frame.sort_values(['series', 'timestamp'], kind='stable')",
    )
    add(
        E.ExpectColumnValuesToBeBetween(column=TRAIN_AFTER_TEST, min_value=0, max_value=0),
        "mark the chronologically first points 'train' and the rest 'test'",
    )
    add(
        E.ExpectColumnValuesToBeBetween(column=IRREGULAR, min_value=0.0, max_value=cfg.max_irregular_ratio),
        "resample each series to a regular grid (e.g. frame.set_index('timestamp').resample('30s').ffill()), "
        "or raise validate.max_irregular_ratio if the gaps are harmless",
    )


def _add_series_content_expectations(add: _Add, E: Any, cfg: ValidationConfig) -> None:
    """Per series: split lengths, anomaly ratios and labels; train-only checks only in train mode."""
    min_points = cfg.window + 1
    length_hint = f"use longer series, a window below the shortest split, or drop these series (window={cfg.window})"
    if cfg.mode == "train":
        add(E.ExpectColumnValuesToBeBetween(column=TRAIN_POINTS, min_value=min_points), length_hint)
    add(E.ExpectColumnValuesToBeBetween(column=TEST_POINTS, min_value=min_points), length_hint)
    add(
        E.ExpectColumnValuesToBeBetween(
            column=ANOMALY_RATIO, min_value=cfg.min_anomaly_ratio, max_value=cfg.max_anomaly_ratio
        ),
        "check the labels (inverted 0/1? wrong split?) or adjust min_anomaly_ratio/max_anomaly_ratio",
    )
    if cfg.mode == "train":
        add(
            E.ExpectColumnValuesToBeBetween(column=CONSTANT_TRAIN, min_value=0, max_value=0),
            "every channel is constant in the training period, so there is nothing to learn: check the export "
            "(a stuck sensor, a wrong column) or drop the series",
        )
        add(
            E.ExpectColumnValuesToBeBetween(column=TRAIN_ANOMALY_RATIO, min_value=0.0, max_value=1.0, strict_max=True),
            "every training point is labelled anomalous; CAPMix learns from normal data: check the labels "
            "(inverted 0/1?) or the split",
        )
    if cfg.require_labels:
        add(
            E.ExpectColumnValuesToBeBetween(column=MISSING_LABELS, min_value=0, max_value=0),
            "label every test point 0/1, or set require_labels=False (no evaluation)",
        )


def build_suites(cfg: ValidationConfig, channels: Sequence[str]) -> _Suites:
    """The two GX suites for ``cfg.kind`` (and the fix hint of each expectation).

    The hints keep insertion order (schema first, then values): failures are reported in it.
    """
    gx = _gx()
    E = gx.expectations
    hints: dict[tuple[str, str | None], str] = {}
    frame_suite = gx.ExpectationSuite(name=f"capmix-{cfg.kind}-frame")
    series_suite = gx.ExpectationSuite(name=f"capmix-{cfg.kind}-series")
    add_frame = _hinted_adder(frame_suite, hints)
    add_series = _hinted_adder(series_suite, hints)
    _add_table_expectations(add_frame, E, cfg)
    _add_reserved_column_expectations(add_frame, E)
    _add_channel_expectations(add_frame, E, channels, cfg.ranges, cfg.range_mostly)
    _add_series_time_expectations(add_series, E, cfg)
    _add_series_content_expectations(add_series, E, cfg)
    return _Suites(frame_suite, series_suite, hints)


# ----------------------------------------------------------------------------------------------
# per-series aggregate (second batch)
# ----------------------------------------------------------------------------------------------


def _series_codes(frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    if SERIES_COL not in frame.columns:
        return np.zeros(len(frame), dtype=np.int64), [NO_SERIES]
    codes, uniques = pd.factorize(frame[SERIES_COL], use_na_sentinel=False, sort=False)
    return codes.astype(np.int64), [str(u) if not pd.isna(u) else "<NA>" for u in uniques]


def _ordinal(frame: pd.DataFrame) -> np.ndarray | None:
    """Timestamps as comparable numbers (int64 ns / int64 / float), None when not comparable."""
    if TIMESTAMP_COL not in frame.columns:
        return None
    col = frame[TIMESTAMP_COL]
    dtype = col.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        try:
            raw = col.to_numpy(dtype="datetime64[ns]")
        except (TypeError, ValueError):
            return None
        nat = np.isnat(raw)
        ordinal = raw.view(np.int64)
        return np.where(nat, np.nan, ordinal.astype(np.float64)) if nat.any() else ordinal
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        return None
    if pd.api.types.is_integer_dtype(dtype) and not col.isna().any():
        return col.to_numpy(dtype=np.int64)
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


def _split_flags(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    if SPLIT_COL not in frame.columns:
        return None
    col = frame[SPLIT_COL]
    return (col == SPLIT_TRAIN).to_numpy(dtype=bool, na_value=False), (col == SPLIT_TEST).to_numpy(
        dtype=bool, na_value=False
    )


def _labels(frame: pd.DataFrame) -> np.ndarray | None:
    if LABEL_COL not in frame.columns:
        return None
    col = frame[LABEL_COL]
    if not pd.api.types.is_numeric_dtype(col.dtype):
        col = pd.to_numeric(col, errors="coerce")
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


def _irregular_ratio(codes: np.ndarray, part: np.ndarray, ts: np.ndarray, n: int) -> np.ndarray:
    """Per series: share of sampling intervals (rows sorted by series, then time) unlike the most
    common one, within each split (the train -> test step may be a gap). Duplicates (interval 0)
    are counted by their own expectation, not here."""
    out = np.full(n, np.nan)
    same = (codes[1:] == codes[:-1]) & (part[1:] == part[:-1])
    d = np.diff(ts.astype(np.float64) if ts.dtype.kind == "f" else ts)
    for k in np.unique(codes[1:][same]):
        dk = d[same & (codes[1:] == k)]
        dk = dk[dk > 0]
        if dk.size:
            vals, counts = np.unique(dk, return_counts=True)
            out[k] = 1.0 - counts.max() / dk.size
    return out


def _train_constant(frame: pd.DataFrame, codes: np.ndarray, is_train: np.ndarray, n: int) -> np.ndarray:
    """Per series: 1 when every numeric channel is constant over its training rows (NaN: unknown)."""
    out = np.full(n, np.nan)
    chans = [c for c in frame.columns if c not in RESERVED_COLUMNS and pd.api.types.is_numeric_dtype(frame[c].dtype)
             and not pd.api.types.is_bool_dtype(frame[c].dtype)]
    if not chans or not is_train.any():
        return out
    block = frame.loc[is_train, chans].astype(np.float64)
    g = block.groupby(codes[is_train], sort=True)
    spread = (g.max() - g.min()).fillna(0.0)
    out[spread.index.to_numpy()] = (spread.to_numpy() == 0).all(axis=1).astype(np.float64)
    return out


def series_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per series (in order of first appearance): the facts the ``series`` suite checks.

    Rows keep their frame order within a series ("increasing" = in row order). Facts that
    cannot be computed (a missing or mistyped column) are NaN, which GX skips: the ``frame``
    suite reports the column itself.
    """
    codes, names = _series_codes(frame)
    n = len(names)
    nan = np.full(n, np.nan)
    out: dict[str, Any] = {SERIES_COL: pd.array(names, dtype="str")}

    ts = _ordinal(frame)
    if ts is None or len(frame) == 0:
        out[DUPLICATE_TS] = nan.copy()
        out[DECREASING_TS] = nan.copy()
        out[IRREGULAR] = nan.copy()
    else:
        order = np.argsort(codes, kind="stable")  # rows grouped by series, row order kept inside
        c, t = codes[order], ts[order]
        same = c[1:] == c[:-1]
        out[DECREASING_TS] = np.bincount(c[1:][same & (t[1:] < t[:-1])], minlength=n).astype(np.int64)
        by_time = np.lexsort((ts, codes))
        c2, t2 = codes[by_time], ts[by_time]
        dup = (c2[1:] == c2[:-1]) & (t2[1:] == t2[:-1])
        out[DUPLICATE_TS] = np.bincount(c2[1:][dup], minlength=n).astype(np.int64)
        flags = _split_flags(frame)
        part = flags[1][by_time] if flags is not None else np.zeros(len(frame), bool)
        out[IRREGULAR] = _irregular_ratio(c2, part, t2, n)

    flags = _split_flags(frame)
    if flags is None:
        for key in (TRAIN_POINTS, TEST_POINTS, TRAIN_AFTER_TEST, ANOMALY_RATIO, MISSING_LABELS, CONSTANT_TRAIN,
                    TRAIN_ANOMALY_RATIO):
            out[key] = nan.copy()
        return pd.DataFrame(out)
    is_train, is_test = flags
    out[TRAIN_POINTS] = np.bincount(codes, weights=is_train, minlength=n).astype(np.int64)
    out[TEST_POINTS] = np.bincount(codes, weights=is_test, minlength=n).astype(np.int64)
    rows = np.arange(len(frame))
    first_test = np.full(n, len(frame), dtype=np.int64)
    np.minimum.at(first_test, codes[is_test], rows[is_test])
    late_train = is_train & (rows > first_test[codes])
    out[TRAIN_AFTER_TEST] = np.bincount(codes, weights=late_train, minlength=n).astype(np.int64)

    out[CONSTANT_TRAIN] = _train_constant(frame, codes, is_train, n)
    labels = _labels(frame)
    if labels is None:
        out[ANOMALY_RATIO] = nan.copy()
        out[MISSING_LABELS] = nan.copy()
        out[TRAIN_ANOMALY_RATIO] = nan.copy()
    else:
        lab_train = is_train & ~np.isnan(labels)
        n_lab_train = np.bincount(codes, weights=lab_train, minlength=n)
        n_anom_train = np.bincount(codes, weights=lab_train & (labels == 1), minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[TRAIN_ANOMALY_RATIO] = np.where(n_lab_train > 0, n_anom_train / np.maximum(n_lab_train, 1), np.nan)
        labelled = is_test & ~np.isnan(labels)
        n_labelled = np.bincount(codes, weights=labelled, minlength=n)
        n_anomalous = np.bincount(codes, weights=labelled & (labels == 1), minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[ANOMALY_RATIO] = np.where(n_labelled > 0, n_anomalous / np.maximum(n_labelled, 1), np.nan)
        out[MISSING_LABELS] = np.bincount(codes, weights=is_test & np.isnan(labels), minlength=n).astype(np.int64)
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------------------------
# imputation
# ----------------------------------------------------------------------------------------------


def _impute(frame: pd.DataFrame, channels: Sequence[str], method: str) -> tuple[pd.DataFrame, int]:
    """NaN/inf in float channels filled within each series; returns (frame, cells filled)."""
    cols = [c for c in channels if c in frame.columns and pd.api.types.is_float_dtype(frame[c].dtype)]
    if method == "none" or not cols:
        return frame, 0
    values = frame[cols].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if not bad.any():
        return frame, 0
    codes, _ = _series_codes(frame)
    block = pd.DataFrame(np.where(bad, np.nan, values), columns=cols, index=frame.index)
    groups = block.groupby(codes, sort=False)
    if method == "ffill":
        filled = groups.ffill()
        filled = filled.fillna(filled.groupby(codes, sort=False).bfill())  # leading NaN: next value
    else:  # linear in row position, edges held at the nearest value
        filled = groups.transform(lambda s: s.interpolate(method="linear", limit_direction="both"))
    out = frame.copy()
    for c in cols:
        out[c] = filled[c].to_numpy(dtype=np.float64)
    still_bad = ~np.isfinite(out[cols].to_numpy(dtype=np.float64))
    return out, int((bad & ~still_bad).sum())


# ----------------------------------------------------------------------------------------------
# results -> failures
# ----------------------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, np.generic):
        return repr(v.item())
    return repr(v)


def _preview(items: Sequence[str], total: int | None = None) -> str:
    total = len(items) if total is None else total
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f", ... ({total} in all)" if total > MAX_LISTED else "")


def _row_mask(frame: pd.DataFrame, exp_type: str, column: str, kwargs: dict[str, Any] | None = None) -> np.ndarray | None:
    """Rows a failed column-map expectation of the frame suite objects to (None: not recomputable)."""
    if column not in frame.columns:
        return None
    col = frame[column]
    if exp_type == "expect_column_values_to_not_be_null":
        return col.isna().to_numpy(dtype=bool)
    if exp_type == "expect_column_values_to_be_between" and pd.api.types.is_numeric_dtype(col.dtype):
        v = col.to_numpy(dtype=np.float64, na_value=np.nan)
        lo, hi = (kwargs or {}).get("min_value", -FLOAT_MAX), (kwargs or {}).get("max_value", FLOAT_MAX)
        return np.isinf(v) | (v < lo) | (v > hi)
    if exp_type == "expect_column_values_to_be_in_set":
        allowed = [0, 1] if column == LABEL_COL else [SPLIT_TRAIN, SPLIT_TEST]
        return (col.notna() & ~col.isin(allowed)).to_numpy(dtype=bool)
    return None


def _where_rows(frame: pd.DataFrame, column: str, mask: np.ndarray) -> str:
    """'N of M rows in K series: 'a' (3 rows from timestamp t, e.g. nan), ...'."""
    idx = np.flatnonzero(mask)
    codes, names = _series_codes(frame)
    per: list[str] = []
    hit_codes = pd.unique(codes[idx])
    for code in hit_codes[:MAX_LISTED]:
        rows = idx[codes[idx] == code]
        vals = ", ".join(_fmt(v) for v in frame[column].iloc[rows[:3]].tolist())
        at = ""
        if TIMESTAMP_COL in frame.columns:
            at = f" from timestamp {frame[TIMESTAMP_COL].iloc[rows[0]]}"
        per.append(f"{names[code]!r} ({rows.size} row{'s' if rows.size != 1 else ''}{at}, e.g. {vals})")
    return f"{idx.size} of {len(frame)} rows in {len(hit_codes)} series: " + _preview(per, len(hit_codes))


def _where_series(result: dict[str, Any], column: str, kwargs: dict[str, Any], summary: pd.DataFrame) -> str:
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    bound = f"allowed [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
    v = summary[column].to_numpy(dtype=np.float64, na_value=np.nan)
    above = (v >= hi if kwargs.get("strict_max") else v > hi) if hi is not None else False
    bad = ~np.isnan(v) & (((v < lo) if lo is not None else False) | above)
    names = summary[SERIES_COL].tolist()
    ratios = (ANOMALY_RATIO, IRREGULAR, TRAIN_ANOMALY_RATIO)
    items = [f"{names[i]!r} has {column}={_fmt(round(float(v[i]), 4) if column in ratios else int(v[i]))}"
             for i in np.flatnonzero(bad)]
    if not items:  # fall back on GX's own listing
        items = [repr(r) for r in result.get("partial_unexpected_index_list") or []]
    return f"{int(bad.sum()) or result.get('unexpected_count', '?')} series ({bound}): " + _preview(items, len(items))


def _where_table(exp_type: str, column: str | None, result: dict[str, Any], frame: pd.DataFrame,
                 kwargs: dict[str, Any], channels: Sequence[str]) -> str:
    cols = [str(c) for c in frame.columns]
    data_channels = [c for c in cols if c not in RESERVED_COLUMNS]
    if exp_type == "expect_column_to_exist":
        return f"column {column!r} is missing; the frame has {cols}"
    if exp_type in TYPE_CHECKS:
        assert column is not None
        dtype = frame[column].dtype if column in frame.columns else None
        wanted = kwargs.get("type_list") or [kwargs.get("type_")]
        example = ""
        if column in frame.columns and len(frame):
            example = f", e.g. {_fmt(frame[column].iloc[0])}"
        return f"dtype is {dtype} (expected one of {wanted}){example}"
    if exp_type == "expect_table_columns_to_match_ordered_list":
        expected = list(channels)
        missing = [c for c in expected if c not in data_channels]
        extra = [c for c in data_channels if c not in expected]
        parts = [f"expected channels {expected}, found {data_channels}"]
        if missing:
            parts.append(f"missing {missing}")
        if extra:
            parts.append(f"unexpected {extra}")
        if not missing and not extra:
            parts.append(f"same names in another column order ({cols})")
        return "; ".join(parts)
    if exp_type.startswith("expect_table_column_count"):
        return f"{len(data_channels)} channel column(s) {data_channels}"
    if exp_type == "expect_table_row_count_to_be_between":
        return f"{len(frame)} rows"
    observed = result.get("observed_value")
    return f"observed {observed!r}" if observed is not None else "failed"


def _failures(results: dict[str, Any], frame: pd.DataFrame, summary: pd.DataFrame, suites: _Suites,
              channels: Sequence[str]) -> list[Failure]:
    """Failures of both suites, minus the knock-on ones (checks on a missing or mistyped column)."""
    raw: list[tuple[str, Any]] = [(name, r) for name, res in results.items() for r in res.results if not r.success]
    missing = {r.expectation_config.kwargs.get("column") for _, r in raw
               if r.expectation_config.type == "expect_column_to_exist"}
    mistyped = {r.expectation_config.kwargs.get("column") for _, r in raw
                if r.expectation_config.type in TYPE_CHECKS} - missing
    out: list[Failure] = []
    for suite_name, r in raw:
        cfg = r.expectation_config
        exp_type, kwargs = cfg.type, dict(cfg.kwargs)
        column = kwargs.get("column")
        raised = bool(r.exception_info and r.exception_info.get("raised_exception"))
        if column is not None and exp_type != "expect_column_to_exist" and column in missing:
            continue
        could_not_run = raised or "unexpected_count" not in (r.result or {})
        if column in mistyped and exp_type not in TYPE_CHECKS and could_not_run:
            continue  # a value check that could not run on a column of the wrong dtype
        result = dict(r.result or {})
        if suite_name == "series" and column is not None:
            where = _where_series(result, column, kwargs, summary)
        elif column is not None and exp_type.startswith("expect_column_values") and exp_type not in TYPE_CHECKS:
            mask = _row_mask(frame, exp_type, column, kwargs)
            if mask is not None and mask.any():
                where = _where_rows(frame, column, mask)
            else:
                where = (f"{result.get('unexpected_count', '?')} rows, e.g. "
                         f"{result.get('partial_unexpected_index_list') or result.get('partial_unexpected_list')}")
        else:
            where = _where_table(exp_type, column, result, frame, kwargs, channels)
        if raised:
            where += f" (check raised: {r.exception_info.get('exception_message')})"
        hint = suites.hints.get((exp_type, column), "see the Data Docs report")
        suite = suites.frame.name if suite_name == "frame" else suites.series.name
        out.append(Failure(exp_type, column, where, hint, suite=suite))
    rank = {key: i for i, key in enumerate(suites.hints)}  # suite order: schema first, then values
    out.sort(key=lambda f: rank.get((f.expectation, f.column), len(rank)))
    return out


# ----------------------------------------------------------------------------------------------
# atomic outputs
# ----------------------------------------------------------------------------------------------


def _jsonable(obj: Any) -> Any:
    """Strict-JSON version of a GX result dict: non-finite floats become strings, numpy -> python."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)  # 'nan', 'inf', '-inf'
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def _build_docs_atomic(context: Any, target: Path) -> Path:
    """Build GX's static site in a temp folder next to ``target``, then swap it in."""
    with atomic_dir(target) as tmp:
        site = "capmix_local_site"
        context.add_data_docs_site(
            site_name=site,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(tmp)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        context.build_data_docs(site_names=[site])
        if not (tmp / "index.html").is_file():
            raise RuntimeError(f"GX built no index.html under {tmp}")
    return target / "index.html"


# ----------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------


def validate_frame(frame: pd.DataFrame, cfg: ValidationConfig, out_dir: str | os.PathLike[str]) -> ValidationReport:
    """Validate a long frame (``capmix.data.canonical.to_frame`` form) for ``cfg``; write JSON + Data Docs.

    Never raises for bad data (call ``report.raise_for_failures()``); ``report.frame`` is the
    frame to continue with (imputed when ``cfg.impute`` is set, else the input itself).
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"validate_frame needs a pandas DataFrame, got {type(frame).__name__}")
    start = time.perf_counter()
    out_dir = Path(out_dir).resolve()  # GX site stores need absolute paths
    channels = _channels_of(frame, cfg)
    frame, imputed = _impute(frame, channels, cfg.impute)
    summary = series_summary(frame)

    gx = _gx()
    with _GX_LOCK:
        context = _new_context()
        suites = build_suites(cfg, channels)
        source = context.data_sources.add_pandas("capmix")
        results: dict[str, Any] = {}
        result_format = {
            "result_format": "SUMMARY",
            "partial_unexpected_count": PARTIAL_UNEXPECTED,
            "unexpected_index_column_names": [SERIES_COL],
        }
        for which, data, suite in (("frame", frame, suites.frame), ("series", summary, suites.series)):
            batch = source.add_dataframe_asset(which).add_batch_definition_whole_dataframe(f"{which}-whole")
            suite = context.suites.add(suite)
            vd = context.validation_definitions.add(gx.ValidationDefinition(name=suite.name, data=batch, suite=suite))
            fmt = result_format if which == "series" or SERIES_COL in data.columns else {
                k: v for k, v in result_format.items() if k != "unexpected_index_column_names"}
            results[which] = vd.run(batch_parameters={"dataframe": data}, result_format=fmt)
        docs_index = _build_docs_atomic(context, out_dir / DOCS_DIR)

    failures = _failures(results, frame, summary, suites, channels)
    evaluated = sum(r.statistics["evaluated_expectations"] for r in results.values())
    successful = sum(r.statistics["successful_expectations"] for r in results.values())
    data_channels = [c for c in frame.columns if c not in RESERVED_COLUMNS]
    statistics: dict[str, Any] = {
        "evaluated_expectations": evaluated,
        "successful_expectations": successful,
        "unsuccessful_expectations": evaluated - successful,
        "success_percent": 100.0 * successful / evaluated if evaluated else 100.0,
        "n_rows": len(frame),
        "n_series": len(summary),
        "channels": [str(c) for c in data_channels],
        "imputed": imputed,
        "seconds": round(time.perf_counter() - start, 3),
    }
    success = all(r.success for r in results.values()) and not failures
    json_path = out_dir / JSON_NAME
    payload = {
        "success": success,
        "config": cfg.model_dump(mode="json"),
        "statistics": statistics,
        "imputed": imputed,
        "failures": [
            {"expectation": f.expectation, "column": f.column, "where": f.where, "hint": f.hint, "suite": f.suite}
            for f in failures
        ],
        "series": summary.to_dict(orient="records"),
        "data_docs": str(docs_index),
        "gx_results": {name: res.to_json_dict() for name, res in results.items()},
    }
    write_json(_jsonable(payload), json_path, sort_keys=False, default=None, allow_nan=False)
    # the same verdict without GX's run times and random ids and without our wall time: it changes
    # only when the data or the checks do, so a DVC stage can depend on it (dvc repro stays reproducible)
    stable = {k: v for k, v in payload.items() if k not in ("gx_results", "data_docs")}
    stable["statistics"] = {k: v for k, v in statistics.items() if k != "seconds"}
    write_json(_jsonable(stable), out_dir / SUMMARY_NAME, sort_keys=False, default=None, allow_nan=False)
    return ValidationReport(
        success=success,
        failures=failures,
        statistics=statistics,
        imputed=imputed,
        json_path=json_path,
        data_docs_path=docs_index,
        frame=frame,
    )
