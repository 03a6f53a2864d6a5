"""A series' growing history: new days appended under a named rule, a rolling training window cut from it.

The nightly flow (flows/nightly.py) receives one file per day in an inbox. This module is the data
side of that day, free of orchestration:

* :func:`read_day`: a day file (CSV or Parquet, columns ``series, timestamp[, label], <channels>``)
  in canonical column order, unlabelled points as ``<NA>``;
* :func:`merge_day`: the history with the day appended. Points whose (series, timestamp) is already
  in the history are *duplicates* (``duplicates: keep_first | keep_last | reject``); new points
  earlier than a series' last stored point are *late* (``late: insert | drop | reject``). Both
  rules come from params.yaml ``nightly``;
* :func:`read_history` / :func:`write_history`: one Parquet file per series, written atomically and
  byte-for-byte reproducibly (the same points give the same file, so DVC sees no new version);
* :func:`rolling_dataset`: the training dataset of a day: the last ``train_days`` days before the
  newest slice as the training period, the newest slice (the end of the newest day) as the test period.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from capmix.atomic import atomic_file
from capmix.data.probe import ProbeConfig, inject_probe
from capmix.data.canonical import (
    LABEL_COL,
    RESERVED_COLUMNS,
    SERIES_COL,
    SPLIT_COL,
    SPLIT_TEST,
    TIMESTAMP_COL,
    Series,
    canonical_columns,
    read_table,
)

__all__ = ["DayMerge", "DayRejected", "channel_ranges", "day_frame", "merge_day", "read_day", "read_history",
           "rolling_dataset", "write_history"]

HISTORY_COLUMNS = (SERIES_COL, TIMESTAMP_COL, LABEL_COL)
DAY = pd.Timedelta(days=1)


class DayRejected(ValueError):
    """The day breaks the history's rules (params ``nightly.duplicates`` / ``nightly.late``): quarantine it."""


@dataclass(frozen=True)
class DayMerge:
    """The history after a day was appended, and what happened to the day's points."""

    frame: pd.DataFrame
    added: int        # points new to the history
    duplicates: int   # points whose (series, timestamp) was stored already
    replaced: int     # duplicates that replaced the stored point (duplicates: keep_last, values differed)
    late: int         # new points earlier than their series' last stored point
    dropped: int      # late points dropped (late: drop)

    @property
    def changed(self) -> bool:
        """Did the history change (a new data version)?"""
        return self.added - self.dropped > 0 or self.replaced > 0


def read_day(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A day file as a frame: ``series, timestamp, label`` first (label ``<NA>`` where absent), then the
    other columns as they are. Values are not checked here: that is the day's validation."""
    frame = canonical_columns(read_table(path), default_series=Path(path).stem)
    if TIMESTAMP_COL in frame.columns and pd.api.types.is_datetime64_any_dtype(frame[TIMESTAMP_COL]):
        frame[TIMESTAMP_COL] = frame[TIMESTAMP_COL].astype("datetime64[ns]")  # the canonical unit (files may hold us)
    if LABEL_COL not in frame.columns:
        frame.insert(2 if TIMESTAMP_COL in frame.columns else 1, LABEL_COL, pd.array([pd.NA] * len(frame), dtype="Int8"))
    return frame


def day_frame(day: pd.DataFrame) -> pd.DataFrame:
    """The day in the form the scoring-time validation suite checks: every point in the test split."""
    df = day.copy()
    df[SPLIT_COL] = SPLIT_TEST
    others = [c for c in df.columns if c not in RESERVED_COLUMNS]
    return df[[c for c in RESERVED_COLUMNS if c in df.columns] + others]


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values([SERIES_COL, TIMESTAMP_COL], kind="stable").reset_index(drop=True)


def merge_day(history: pd.DataFrame | None, day: pd.DataFrame, duplicates: str, late: str) -> DayMerge:
    """Append ``day`` (validated, :func:`read_day` form) to ``history`` under the two rules.

    Within the day itself a repeated (series, timestamp) is refused: the validation reports it first.
    """
    day = day[[SERIES_COL, TIMESTAMP_COL, LABEL_COL, *[c for c in day.columns if c not in HISTORY_COLUMNS]]]
    day = day.drop(columns=[SPLIT_COL], errors="ignore")
    if history is None or history.empty:
        return DayMerge(_sorted(day), added=len(day), duplicates=0, replaced=0, late=0, dropped=0)
    if list(history.columns) != list(day.columns):
        raise DayRejected(f"the day's columns {list(day.columns)} differ from the history's {list(history.columns)}: "
                          "send the day with the history's channels, or start a new history for the new schema")
    key = [SERIES_COL, TIMESTAMP_COL]
    stored = pd.MultiIndex.from_frame(history[key])
    incoming = pd.MultiIndex.from_frame(day[key])
    dup = incoming.isin(stored)
    n_dup = int(dup.sum())
    if n_dup and duplicates == "reject":
        first = day.loc[dup, key].iloc[0]
        raise DayRejected(f"{n_dup} points are already in the history (first: series {first[SERIES_COL]!r} at "
                          f"{first[TIMESTAMP_COL]}); nightly.duplicates is 'reject'. Fix: send only new points, or "
                          "set nightly.duplicates to keep_first or keep_last")
    replaced = 0
    if n_dup and duplicates == "keep_last":
        old = history.set_index(key).loc[incoming[dup]]
        new = day.loc[dup].set_index(key)
        differs = ~((old == new) | (old.isna() & new.isna())).all(axis=1)
        replaced = int(differs.sum())
        history = history[~stored.isin(incoming[dup])] if replaced else history
        keep_dup = day.loc[dup].loc[differs.to_numpy()] if replaced else day.iloc[:0]
    else:
        keep_dup = day.iloc[:0]
    fresh = day.loc[~dup]
    last = history.groupby(SERIES_COL, sort=False)[TIMESTAMP_COL].max()
    series_last = fresh[SERIES_COL].map(last)
    is_late = (series_last.notna() & (fresh[TIMESTAMP_COL] < series_last)).to_numpy()
    n_late = int(is_late.sum())
    if n_late and late == "reject":
        raise DayRejected(f"{n_late} points are earlier than their series' last stored point; nightly.late is "
                          "'reject'. Fix: send them in order, or set nightly.late to insert or drop")
    dropped = n_late if late == "drop" else 0
    if dropped:
        fresh = fresh.loc[~is_late]
    merged = _sorted(pd.concat([history, keep_dup, fresh], ignore_index=True))
    return DayMerge(merged, added=len(fresh) + dropped, duplicates=n_dup, replaced=replaced, late=n_late,
                    dropped=dropped)


def _file_name(series: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in series)
    return f"{safe}.parquet"


def write_history(frame: pd.DataFrame, directory: str | os.PathLike[str]) -> list[Path]:
    """One Parquet file per series under ``directory`` (atomic; files of series no longer present removed).

    The bytes depend only on the points: no pandas index or timestamps of the write go into the file,
    so an unchanged history keeps its DVC hash."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, part in frame.groupby(SERIES_COL, sort=True):
        table = pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False)
        table = table.replace_schema_metadata(None)
        path = directory / _file_name(str(name))
        with atomic_file(path, suffix=".parquet") as tmp:
            pq.write_table(table, tmp, compression="zstd")
        written.append(path)
    keep = {p.name for p in written}
    for old in directory.glob("*.parquet"):
        if old.name not in keep:
            old.unlink()
    return written


def read_history(directory: str | os.PathLike[str]) -> pd.DataFrame | None:
    """The stored history (``None`` when there is none yet)."""
    files = sorted(Path(directory).glob("*.parquet"))
    if not files:
        return None
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    frame[SERIES_COL] = frame[SERIES_COL].astype("str")
    frame[LABEL_COL] = frame[LABEL_COL].astype("Int8")
    return _sorted(frame)


def channels_of(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in RESERVED_COLUMNS]


def channel_ranges(history: pd.DataFrame, margin: float) -> dict[str, tuple[float, float]]:
    """Per channel, the history's [min, max] widened by ``margin`` times its span on each side: values
    beyond it are a broken feed (units, scaling), not an anomaly worth scoring."""
    out = {}
    for ch in channels_of(history):
        v = history[ch].to_numpy(dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        lo, hi = float(v.min()), float(v.max())
        span = max(hi - lo, 1e-12)
        out[ch] = (lo - margin * span, hi + margin * span)
    return out


def window_before(history: pd.DataFrame, end: pd.Timestamp, days: int) -> pd.DataFrame:
    """The points in ``[end - days, end)`` (the rolling training window ending at ``end``)."""
    ts = history[TIMESTAMP_COL]
    return history[(ts >= end - days * DAY) & (ts < end)]


def after_last_gap(points: pd.DataFrame, max_gap: float) -> pd.DataFrame:
    """The points after the last gap longer than ``max_gap`` usual sampling intervals (windows must not
    span a missing stretch, e.g. a quarantined day)."""
    if len(points) < 3:
        return points
    ts = points[TIMESTAMP_COL].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    steps = np.diff(ts)
    usual = float(np.median(steps))
    gaps = np.flatnonzero(steps > max_gap * usual)
    return points.iloc[gaps[-1] + 1:] if gaps.size else points


def rolling_dataset(history: pd.DataFrame, day: pd.DataFrame, train_days: int, holdout_fraction: float,
                    min_points: int, probe: ProbeConfig, max_gap: float = 10.0) -> tuple[list[Series], dict[str, str]]:
    """The day's training dataset and, per series, where its test labels come from (``real`` | ``probe``).

    Per series (of ``day``), the test period is the newest slice, the last ``holdout_fraction`` of the
    day's points; the training period is the ``train_days`` days of history before it. Champion and
    challenger are compared on the newest slice, which the challenger never trained on. A slice without
    labels, or whose labels hold no anomaly (nothing to rank), gets probe anomalies
    (:func:`capmix.data.probe.inject_probe`) and their labels. The training
    period starts after the last gap of more than ``max_gap`` sampling intervals.

    Labels of the training period are never read (training is unsupervised; evaluation reads the test
    period only): where they are unknown they are stored as 0, so the series is a complete canonical one.
    """
    out: list[Series] = []
    source: dict[str, str] = {}
    channels = channels_of(history)
    for i, (name, points) in enumerate(day.groupby(SERIES_COL, sort=True)):
        ts = points[TIMESTAMP_COL].sort_values().to_numpy()
        n_test = max(int(round(holdout_fraction * len(ts))), 1)
        cut = pd.Timestamp(ts[len(ts) - n_test])
        mine = history[history[SERIES_COL] == name]
        train = after_last_gap(window_before(mine, cut, train_days), max_gap)
        test = mine[(mine[TIMESTAMP_COL] >= cut) & (mine[TIMESTAMP_COL] <= pd.Timestamp(ts[-1]))]
        if len(train) <= min_points or len(test) <= min_points:
            raise ValueError(f"series {name!r}: {len(train)} training and {len(test)} newest-slice points, both must "
                             f"be more than {min_points} (a window). Fix: raise nightly.train_days or "
                             "nightly.holdout_fraction, or wait for more history")
        x_train = train[channels].to_numpy(dtype=np.float64)
        x_test = test[channels].to_numpy(dtype=np.float64)
        if labelled(test) and test[LABEL_COL].sum() > 0:
            y_test = test[LABEL_COL].to_numpy(dtype=np.int8)
            source[str(name)] = "real"
        else:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(probe.seed, spawn_key=(i,))))
            x_test, y_test = inject_probe(x_test, x_train, probe, rng)
            source[str(name)] = "probe"
        y_train = train[LABEL_COL].fillna(0).to_numpy(dtype=np.int8)
        out.append(Series(name=str(name), values=np.vstack([x_train, x_test]), labels=np.concatenate([y_train, y_test]),
                          train_end=len(train),
                          timestamps=np.concatenate([train[TIMESTAMP_COL].to_numpy(dtype="datetime64[ns]"),
                                                     test[TIMESTAMP_COL].to_numpy(dtype="datetime64[ns]")]),
                          channels=tuple(channels)))
    return out, source


def labelled(frame: pd.DataFrame) -> bool:
    """Every point of ``frame`` has a 0/1 label."""
    return bool(len(frame)) and not frame[LABEL_COL].isna().any()


def day_of(path: str | os.PathLike[str]) -> str:
    """The day a file stands for: its name without the suffix (``2024-01-05.parquet`` -> ``2024-01-05``)."""
    return Path(path).name.split(".")[0]


def pending_days(inbox: str | os.PathLike[str], suffixes: Sequence[str] = (".csv", ".parquet")) -> list[Path]:
    """The inbox's day files in day order."""
    inbox = Path(inbox)
    if not inbox.is_dir():
        return []
    return sorted((p for p in inbox.iterdir() if p.is_file() and p.suffix.lower() in suffixes), key=day_of)
