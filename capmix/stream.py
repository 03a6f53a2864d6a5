"""Streaming batch scoring: a file of any length scored in chunks, in bounded memory.

The scores equal :meth:`CAPMixDetector.decision_function` on the whole series: windows sit on
the same global grid (window i starts at point ``i * stride``); a chunk's last ``window - stride``
points (the part of the next window that is already read) are carried over to the next chunk,
and a point's score is emitted as soon as the window it is assigned to has been scored.

Memory bound: the reader holds one chunk (``chunk_rows`` rows of a CSV; for Parquet one
record batch of ``chunk_rows`` rows, pyarrow decoding at most one row group of the selected
columns at a time), the scorer one chunk plus ``window`` carried points as float64 and float32,
plus ``score_batch_size`` windows of network activations. For ``chunk_rows = 100_000``, C = 38
channels and the default Parquet row groups (1 Mi rows) that is well under 1 GB whatever the
length of the file; the README gives the measured peak RSS.

Every input problem raises :class:`InputError` (a ``ValueError``) naming the column, the row
(0-based data row of the file) and the fix. Output is written to a temp file beside the target
and renamed only when the whole input was scored: an error leaves the previous output untouched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from capmix.atomic import atomic_file
from capmix.data.canonical import LABEL_COL, RESERVED_COLUMNS, SERIES_COL, TIMESTAMP_COL

CSV_SUFFIXES = (".csv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
DEFAULT_CHUNK_ROWS = 100_000


class InputError(ValueError):
    """The file to score is unusable; the message names the problem and the fix."""


def _fail(path: Path, problem: str, fix: str) -> InputError:
    return InputError(f"{path}: {problem}. Fix: {fix}.")


# ------------------------------------------------------------------------------------ reading
def iter_chunks(path: str | os.PathLike[str], chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The rows of a CSV or Parquet file as DataFrames of at most ``chunk_rows`` rows.

    The path is opened as a file, never handed to a shell or a URL handler.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "input file not found" if not path.exists() else "is not a regular file",
                    "check the path (a CSV or Parquet file)")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise _fail(path, f"cannot be read as Parquet ({exc})", "regenerate or re-export the file") from exc
        if pf.metadata.num_rows == 0:
            raise _fail(path, "has no rows", "pass a file with at least one window of points")
        for batch in pf.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    elif suffix in CSV_SUFFIXES:
        if path.stat().st_size == 0:
            raise _fail(path, "is empty (0 bytes)", "pass a CSV with a header row and one column per channel")
        try:
            reader = pd.read_csv(path, chunksize=chunk_rows, low_memory=False)
            seen = False
            for chunk in reader:
                if len(chunk):
                    seen = True
                    yield chunk
        except pd.errors.EmptyDataError as exc:
            raise _fail(path, "is empty (no header)", "pass a CSV with a header row and one column per channel") from exc
        except pd.errors.ParserError as exc:
            raise _fail(path, f"is not a well-formed CSV ({exc})", "fix the malformed lines") from exc
        if not seen:
            raise _fail(path, "has a header but no rows", "pass a file with at least one window of points")
    else:
        raise _fail(path, f"unknown format {suffix!r}", f"pass a CSV ({', '.join(CSV_SUFFIXES)}) or Parquet "
                    f"({', '.join(PARQUET_SUFFIXES)}) file")


def _plain(v: Any) -> Any:
    """numpy scalars as Python ones, so messages read -1, not np.int64(-1)."""
    return v.item() if isinstance(v, np.generic) else v


# ------------------------------------------------------------------------------------ checking
@dataclass
class _Checker:
    """Per-chunk input checks that need state across chunks (channels, series, time order)."""

    path: Path
    n_channels: int
    expected: tuple[str, ...] | None  # the model's channel names, when it recorded them
    allow_irregular: bool
    channels: list[str] = field(default_factory=list)
    row: int = 0  # file row of the first row of the current chunk
    series: Any = None
    last_ts: Any = None
    step: Any = None

    def header(self, columns: list[str]) -> None:
        data = [c for c in columns if c not in RESERVED_COLUMNS]
        if self.expected is not None:
            missing = [c for c in self.expected if c not in columns]
            if missing:
                extra = [c for c in data if c not in self.expected]
                renamed = f" (found instead {extra}: renamed?)" if extra else ""
                raise _fail(self.path, f"lacks channel column(s) {missing}{renamed}; the model was trained on "
                            f"{list(self.expected)}", "pass the training channels under the same names")
            self.channels = list(self.expected)
            extra = [c for c in data if c not in self.expected]
            if extra:
                raise _fail(self.path, f"has {len(data)} channel column(s) {data[:10]} but the model was trained on "
                            f"{len(self.expected)}: {list(self.expected)} (extra {extra[:10]})",
                            "drop the extra columns, or retrain on data with these channels")
        else:
            self.channels = data
        if len(self.channels) != self.n_channels:
            raise _fail(self.path, f"has {len(self.channels)} channel column(s) {self.channels[:10]} but the model "
                        f"was trained on {self.n_channels}",
                        "score data with the training channels, in the same order (other columns: "
                        f"only {list(RESERVED_COLUMNS)} are ignored)")

    def values(self, chunk: pd.DataFrame) -> np.ndarray:
        cols = []
        for c in self.channels:
            col = chunk[c]
            if not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
                num = pd.to_numeric(col, errors="coerce")
                bad = np.flatnonzero(num.isna().to_numpy() & col.notna().to_numpy())
                if bad.size or pd.api.types.is_bool_dtype(col.dtype):
                    i = int(bad[0]) if bad.size else 0
                    raise _fail(self.path, f"column {c!r} has non-numeric value {_plain(col.iloc[i])!r} at row "
                                f"{self.row + i}",
                                "clean the column (numbers only) or drop it if it is not a channel")
                col = num
            cols.append(col.to_numpy(dtype=np.float64, na_value=np.nan))
        x = np.column_stack(cols)
        bad = ~np.isfinite(x)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise _fail(self.path, f"{int(bad.sum())} NaN/inf value(s) in this chunk, first {float(x[r, c])!r} in column "
                        f"{self.channels[c]!r} at row {self.row + r}",
                        "impute or drop them first (capmix validate with validate.impute: ffill | interpolate)")
        return x

    def others(self, chunk: pd.DataFrame) -> np.ndarray | None:
        """Series, label and timestamp checks; returns the chunk's timestamps (None without)."""
        if SERIES_COL in chunk.columns:
            names = pd.unique(chunk[SERIES_COL].astype("str"))
            if self.series is None:
                self.series = names[0]
            other = [n for n in names if n != self.series]
            if other:
                raise _fail(self.path, f"holds several series ({self.series!r}, {other[0]!r}, ...)",
                            "score one series per model: pick one with --series NAME, or use the scoring flow "
                            "(python -m flows.score) with the bundle")
        if LABEL_COL in chunk.columns:
            lab = pd.to_numeric(chunk[LABEL_COL], errors="coerce")
            bad = np.flatnonzero((lab.notna() & ~lab.isin([0, 1])).to_numpy() |
                                 (lab.isna() & chunk[LABEL_COL].notna()).to_numpy())
            if bad.size:
                i = int(bad[0])
                raise _fail(self.path, f"column 'label' has value {_plain(chunk[LABEL_COL].iloc[i])!r} at row "
                            f"{self.row + i}; "
                            "labels must be 0, 1 or empty", "map anomalies to 1 and normal points to 0, or drop the "
                            "column (labels are not needed to score)")
        # the split column is ignored: every row is scored
        return self._timestamps(chunk[TIMESTAMP_COL]) if TIMESTAMP_COL in chunk.columns else None

    def timestamps(self, col: pd.Series) -> np.ndarray:
        if pd.api.types.is_datetime64_any_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
            ts = col
        else:
            try:
                ts = pd.to_datetime(col, utc=True, format="ISO8601").dt.tz_localize(None)
            except (TypeError, ValueError) as exc:
                raise _fail(self.path, f"column 'timestamp' is not parseable as times ({exc})",
                            "use ISO-8601 times or integer positions") from exc
        if isinstance(ts.dtype, pd.DatetimeTZDtype):
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        if ts.isna().any():
            i = int(np.flatnonzero(ts.isna().to_numpy())[0])
            raise _fail(self.path, f"column 'timestamp' is empty at row {self.row + i}", "fill or drop those rows")
        return ts.to_numpy()

    def _timestamps(self, col: pd.Series) -> np.ndarray:
        ts = self.timestamps(col)
        full = ts if self.last_ts is None else np.concatenate([[self.last_ts], ts])
        offset = self.row - (0 if self.last_ts is None else 1)
        if full.size > 1:
            d = np.diff(full)
            zero = np.zeros((), dtype=d.dtype)
            dup, dec = np.flatnonzero(d == zero), np.flatnonzero(d < zero)
            if dup.size or dec.size:
                first = min(dup[0] if dup.size else full.size, dec[0] if dec.size else full.size)
                kind = "duplicate" if dup.size and first == dup[0] else "decreasing"
                raise _fail(self.path, f"{kind} timestamp {_plain(full[first + 1])} at row {offset + first + 1} "
                            f"(after {_plain(full[first])})", "sort the rows by time and drop duplicate points")
            if self.step is None:
                self.step = d[0]
            irregular = np.flatnonzero(d != self.step)
            if irregular.size and not self.allow_irregular:
                i = int(irregular[0])
                raise _fail(self.path, f"irregular sampling: interval {d[i]} at row {offset + i + 1} differs from "
                            f"the first interval {self.step}", "resample to a regular grid (e.g. "
                            "frame.resample(...).ffill()), or pass --allow-irregular if the gaps are harmless")
        self.last_ts = full[-1]
        return ts


# ------------------------------------------------------------------------------------ scoring
def score_file(
    det: Any,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    allow_irregular: bool = False,
    series: str | None = None,
) -> dict[str, Any]:
    """Score a CSV/Parquet file with a fitted detector; write ``[timestamp,] score, alarm`` per row.

    ``series``: score only the rows of this series of a file that holds several (its ``series``
    column), e.g. the canonical Parquet of a whole dataset. The output (CSV for ``.csv``, else
    Parquet) appears only when every row was scored.
    """
    src, dst = Path(input_path), Path(output_path)
    if src.resolve() == dst.resolve():
        raise _fail(src, "is also the output path", "write the scores to another file")
    expected = tuple(getattr(det, "channels_", None) or ()) or None
    check = _Checker(src, det.n_channels_, expected, allow_irregular)
    pending_ts: list[np.ndarray] = []  # timestamps of rows read but not yet scored
    has_ts: list[bool] = []

    def values() -> Iterator[np.ndarray]:
        for chunk in iter_chunks(src, chunk_rows):
            chunk.columns = [str(c) for c in chunk.columns]
            if series is not None:
                if SERIES_COL not in chunk.columns:
                    raise _fail(src, f"has no {SERIES_COL!r} column to pick series {series!r} from",
                                "drop --series: the file holds one series")
                chunk = chunk[chunk[SERIES_COL].astype("str") == series]
                if chunk.empty:
                    continue
            if not has_ts:
                check.header(list(chunk.columns))
                has_ts.append(TIMESTAMP_COL in chunk.columns)
            ts = check.others(chunk)
            x = check.values(chunk)
            if ts is not None:
                pending_ts.append(ts)
            check.row += len(chunk)
            yield x
        if series is not None and not has_ts:  # said before the detector finds "0 points"
            raise _fail(src, f"has no rows of series {series!r}", "pass one of the names in its 'series' column")

    n_points = n_alarms = 0
    threshold = float(det.threshold_)
    csv = dst.suffix.lower() in CSV_SUFFIXES
    with atomic_file(dst, suffix=dst.suffix or ".tmp") as tmp:
        writer = None
        try:
            for scores in det.score_chunks(values()):
                alarm = scores > threshold
                cols: dict[str, Any] = {}
                if has_ts[0]:
                    ts = np.concatenate(pending_ts)
                    cols[TIMESTAMP_COL], rest = ts[: scores.size], ts[scores.size :]
                    pending_ts[:] = [rest]
                cols["score"] = scores.astype(np.float64)
                cols["alarm"] = alarm
                frame = pd.DataFrame(cols)
                if csv:
                    frame.to_csv(tmp, mode="a", header=n_points == 0, index=False)
                else:
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                n_points += scores.size
                n_alarms += int(alarm.sum())
        finally:
            if writer is not None:
                writer.close()
    return {"input": str(src), "output": str(dst), "n_points": n_points, "n_alarms": n_alarms,
            "alarm_rate": n_alarms / n_points if n_points else 0.0, "has_timestamp": bool(has_ts and has_ts[0])}
