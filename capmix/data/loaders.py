"""Readers of public datasets as their owners distribute them, returning canonical ``Series``.

Data are read from a configurable root (params ``dataset.root``), never copied into the project.
Real copies (see ../shared/datasets/README.md): :func:`load_ucr`, :func:`load_aiops` (KPI),
:func:`load_smd`, :func:`load_asd`, :func:`load_smap_msl`, :func:`load_nab`, :func:`load_merlion`. Non-redistributable
sets, tested on generated fixtures in their owners' layouts: :func:`load_swat`, :func:`load_wadi`,
:func:`load_esa`. :data:`LOADERS` / :func:`load_dataset` dispatch by name; a missing dataset raises
:class:`DatasetNotFound` naming the folder or files expected.
"""

from __future__ import annotations

import ast
import json
import lzma
import pickle
import re
import zipfile
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any
from pathlib import Path

import numpy as np
import pandas as pd

from capmix.data.canonical import Series

#: UCR anomaly archive file name: NNN_UCR_Anomaly_<name>_<trainEnd>_<anomStart>_<anomEnd>.txt[.xz]
UCR_NAME = re.compile(r"^(\d{3})_UCR_Anomaly_(.+)_(\d+)_(\d+)_(\d+)\.txt(\.xz)?$")


class DatasetNotFound(FileNotFoundError):
    """The dataset is not under the configured root."""


def _open_text(path: Path):
    return lzma.open(path, "rt") if path.suffix == ".xz" else open(path)


def ucr_files(root: str | Path) -> list[Path]:
    """The UCR series files under ``root`` (``<root>/ucr/all_250`` or ``root`` itself), by index."""
    root = Path(root)
    for cand in (root / "ucr" / "all_250", root / "all_250", root):
        if cand.is_dir():
            files = sorted(p for p in cand.iterdir() if UCR_NAME.match(p.name))
            if files:
                return files
    raise DatasetNotFound(
        f"no UCR anomaly archive files (NNN_UCR_Anomaly_*.txt[.xz]) under {root}; "
        "set dataset.root to the folder holding ucr/all_250"
    )


def load_ucr_file(path: str | Path) -> Series:
    """One UCR series: training prefix ``[0, trainEnd)``, anomaly ``[anomStart, anomEnd)`` (0-based).

    The 0-based half-open label convention is TSB-UAD's, checked against its copies of 001 and 198.
    Some files hold all values on one whitespace-separated line; splitting on whitespace reads both.
    """
    path = Path(path)
    m = UCR_NAME.match(path.name)
    if not m:
        raise ValueError(f"{path.name} does not follow the UCR naming convention NNN_UCR_Anomaly_name_a_b_c.txt")
    idx, name, train_end, a, b = m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5))
    with _open_text(path) as f:
        values = np.array(f.read().split(), dtype=np.float64)
    labels = np.zeros(values.shape[0], np.int8)
    labels[a : max(b, a + 1)] = 1
    return Series(name=f"{idx}_{name}", values=values[:, None], labels=labels, train_end=train_end)


def load_ucr(root: str | Path, subset: int | None = None, ids: list[int] | None = None) -> list[Series]:
    """UCR series by archive order; ``ids`` (1-based archive numbers) or the first ``subset``."""
    files = ucr_files(root)
    if ids is not None:
        wanted = {f"{i:03d}" for i in ids}
        files = [f for f in files if f.name[:3] in wanted]
    elif subset is not None:
        files = files[:subset]
    return [load_ucr_file(f) for f in files]


# ==============================================================================================
# Helpers shared by the loaders below
# ==============================================================================================

_NATURAL = re.compile(r"(\d+)")


def _natural_key(text: str) -> list:
    """Sort key that orders ``machine-1-10`` after ``machine-1-9`` and ``omi-10`` after ``omi-9``."""
    return [int(tok) if tok.isdigit() else tok for tok in _NATURAL.split(text)]


def _stem(path: Path) -> str:
    """File name without its data suffixes (``.npy.xz``, ``.csv.xz``, ``.txt``, ...)."""
    name = path.name
    for suffix in (".xz", ".npy", ".csv", ".txt", ".zip"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _dataset_dir(root: str | Path, folder: str, what: str, must_hold: str) -> Path:
    """``<root>/<folder>`` when it holds ``must_hold`` (a glob); else a :class:`DatasetNotFound` naming it."""
    root = Path(root)
    base = root / folder
    if base.is_dir() and any(base.glob(must_hold)):
        return base
    raise DatasetNotFound(
        f"{what} not found: expected {must_hold!r} under {base}. "
        f"Fix: put the {folder}/ folder under the dataset root (set dataset.root), or pass the right root."
    )


def _load_npy_xz(path: Path) -> np.ndarray:
    with lzma.open(path) as f:
        return np.load(f, allow_pickle=False)


def _load_label_txt(path: Path) -> np.ndarray:
    """One 0/1 per line (``.txt`` or ``.txt.xz``)."""
    with _open_text(path) as f:
        return np.array(f.read().split(), dtype=np.float64).astype(np.int8)


def _strictly_increasing(ts: np.ndarray) -> bool:
    ordinal = ts.view(np.int64) if ts.dtype.kind == "M" else ts
    return ts.size < 2 or bool(np.all(np.diff(ordinal) > 0))


def _first(items: list, subset: int | None) -> list:
    if subset is not None and subset < 0:
        raise ValueError(f"subset must be >= 0 or None, got {subset}")
    return items if subset is None else items[:subset]


# ==============================================================================================
# AIOps 2018 KPI (phase 2)
# ==============================================================================================

KPI_DIR = "kpi_aiops2018"


def load_aiops(root: str | Path, subset: int | None = None, test_fraction: float = 0.5,
               stage: str = "phase2") -> list[Series]:
    """AIOps-2018 KPI series, one univariate series per KPI, sorted by KPI ID.

    ``stage="phase2"`` (default): the 29 phase-2 KPIs. ``stage="preliminary"``: the 26 KPIs of the
    preliminary round (``preliminary_train/``, same layout, no test files, so always split in time);
    their IDs do not map to the phase-2 ones and some may be the same underlying series.

    * ``phase2_train/<KPI-ID>.csv.xz`` (no header: timestamp, value, label) is always read.
    * Where ``phase2_test/<KPI-ID>.csv`` (header ``timestamp,value,label,KPI ID``) exists (7 KPIs in
      the shared copy), train = the whole phase-2 train file and test = the test file, concatenated in
      time order (``train_end = len(train)``), as the challenge split them.
    * Otherwise the train file is split chronologically: its last ``test_fraction`` is the test part
      (Donut/Bagel-style), ``train_end = round(T * (1 - test_fraction))``.

    Training labels are kept as given (real anomalies inside the training period: contaminated
    training, as in the reference). Timestamps are unix seconds (int64) with their gaps; nothing
    is filled in.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if stage not in ("phase2", "preliminary"):
        raise ValueError(f"stage must be 'phase2' or 'preliminary', got {stage!r}")
    train_dir = f"{stage}_train"
    base = _dataset_dir(root, KPI_DIR, "AIOps 2018 KPI dataset", f"{train_dir}/*.csv*")
    files = sorted((base / train_dir).glob("*.csv*"), key=lambda p: p.name)
    result = []
    for path in _first(files, subset):
        kpi = _stem(path)
        train = pd.read_csv(path, header=None, names=["timestamp", "value", "label"])
        test_path = base / "phase2_test" / f"{kpi}.csv"
        if test_path.exists():
            test = pd.read_csv(test_path)
            missing = {"timestamp", "value", "label"} - set(test.columns)
            if missing:
                raise ValueError(f"{test_path}: missing column(s) {sorted(missing)}; expected timestamp,value,label,KPI ID")
            frame = pd.concat([train, test[["timestamp", "value", "label"]]], ignore_index=True)
            train_end = len(train)
        else:
            frame = train
            train_end = int(round(len(train) * (1.0 - test_fraction)))
        ts = frame["timestamp"].to_numpy(dtype=np.int64)
        if not _strictly_increasing(ts):
            raise ValueError(f"KPI {kpi}: timestamps are not strictly increasing across train and test files")
        result.append(
            Series(
                name=kpi,
                values=frame["value"].to_numpy(dtype=np.float64)[:, None],
                labels=frame["label"].to_numpy(dtype=np.int8),
                train_end=train_end,
                timestamps=ts,
                channels=("value",),
            )
        )
    return result


# ==============================================================================================
# SMD and ASD (OmniAnomaly / InterFusion layout: train/, test/, test_label/)
# ==============================================================================================


def _load_train_test_label(base: Path, entity: str, label_dir: str = "test_label") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    train = _load_npy_xz(base / "train" / f"{entity}.npy.xz")
    test = _load_npy_xz(base / "test" / f"{entity}.npy.xz")
    candidates = [base / label_dir / f"{entity}.txt", base / label_dir / f"{entity}.txt.xz"]
    label_path = next((p for p in candidates if p.exists()), None)
    if label_path is None:
        raise DatasetNotFound(f"no test labels for {entity}: expected {candidates[0]}")
    labels = _load_label_txt(label_path)
    if labels.shape[0] != test.shape[0]:
        raise ValueError(f"{entity}: {labels.shape[0]} test labels for {test.shape[0]} test rows")
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"{entity}: train has {train.shape[1]} channels, test {test.shape[1]}")
    return train, test, labels


def _train_test_series(
    name: str, train: np.ndarray, test: np.ndarray, test_labels: np.ndarray, channels: tuple[str, ...] = ()
) -> Series:
    values = np.concatenate([train, test], axis=0).astype(np.float64)
    labels = np.concatenate([np.zeros(train.shape[0], np.int8), test_labels])
    return Series(name=name, values=values, labels=labels, train_end=train.shape[0], channels=channels)


def _entities(base: Path) -> list[str]:
    """Entities with both a train and a test array, in natural order."""
    train = {_stem(p) for p in (base / "train").glob("*.npy.xz")}
    test = {_stem(p) for p in (base / "test").glob("*.npy.xz")}
    return sorted(train & test, key=_natural_key)


def load_smd(root: str | Path, subset: int | None = None) -> list[Series]:
    """Server Machine Dataset: machines with data files (8 of 28 in the shared copy), 38 channels each.

    Train = ``train/<machine>.npy.xz``, test = ``test/<machine>.npy.xz``, labels of the test part =
    ``test_label/<machine>.txt``. SMD ships no training labels; the training half is treated as normal
    (labels 0), as in OmniAnomaly. Machines with labels but no data files are skipped.
    """
    base = _dataset_dir(root, "smd", "SMD (Server Machine Dataset)", "train/machine-*.npy.xz")
    out = []
    for machine in _first(_entities(base), subset):
        out.append(_train_test_series(machine, *_load_train_test_label(base, machine)))
    return out


def load_asd(root: str | Path, subset: int | None = None) -> list[Series]:
    """Application Server Dataset (InterFusion): ``omi-1`` ... ``omi-12``, 19 channels each.

    Same layout and convention as :func:`load_smd`: unlabelled training half treated as normal (0).
    """
    base = _dataset_dir(root, "asd", "ASD (Application Server Dataset)", "train/omi-*.npy.xz")
    out = []
    for entity in _first(_entities(base), subset):
        out.append(_train_test_series(entity, *_load_train_test_label(base, entity)))
    return out


# ==============================================================================================
# NASA SMAP / MSL (telemanom)
# ==============================================================================================

SPACECRAFTS = ("SMAP", "MSL")


def smap_msl_sequences(root: str | Path, spacecraft: str) -> dict[str, list[tuple[int, int]]]:
    """Channel -> inclusive ``[start, end]`` anomaly ranges (test-array indices), in file order.

    A channel listed more than once (``P-2`` in telemanom's ``labeled_anomalies.csv``) gets the
    union of its rows' sequences (merged, so both annotations count as anomalous).
    """
    base = _dataset_dir(root, "smap_msl", "NASA SMAP/MSL (telemanom) data", "labeled_anomalies.csv")
    table = pd.read_csv(base / "labeled_anomalies.csv")
    table = table[table["spacecraft"].astype(str).str.upper() == spacecraft]
    seqs: dict[str, list[tuple[int, int]]] = {}
    for chan, text in zip(table["chan_id"].astype(str), table["anomaly_sequences"].astype(str)):
        ranges = [(int(a), int(b)) for a, b in ast.literal_eval(text)]
        seqs.setdefault(chan, []).extend(ranges)
    return seqs


def load_smap_msl(root: str | Path, spacecraft: str = "SMAP", subset: int | None = None) -> list[Series]:
    """telemanom channels of one spacecraft: SMAP (54 labelled channels, 25 dims) or MSL (27, 55 dims).

    Train = ``train/<chan>.npy.xz``, test = ``test/<chan>.npy.xz``; ``anomaly_sequences`` are inclusive
    ``[start, end]`` indices into the test array. Channel 0 is the telemetry value ("value"), the
    others are one-hot commands ("cmd1", ...). Channels with data but no label row (``T-10``) are
    skipped; ``P-2``'s two rows are merged (see :func:`smap_msl_sequences`). Training labels are 0
    (telemanom's training split is unlabelled). Order: first appearance in ``labeled_anomalies.csv``.
    """
    spacecraft = spacecraft.upper()
    if spacecraft not in SPACECRAFTS:
        raise ValueError(f"spacecraft must be one of {SPACECRAFTS}, got {spacecraft!r}")
    base = Path(root) / "smap_msl"
    seqs = smap_msl_sequences(root, spacecraft)
    chans = [c for c in seqs if (base / "train" / f"{c}.npy.xz").exists() and (base / "test" / f"{c}.npy.xz").exists()]
    out = []
    for chan in _first(chans, subset):
        train = _load_npy_xz(base / "train" / f"{chan}.npy.xz")
        test = _load_npy_xz(base / "test" / f"{chan}.npy.xz")
        labels = np.zeros(test.shape[0], np.int8)
        for start, end in seqs[chan]:
            if not 0 <= start <= end < test.shape[0]:
                raise ValueError(f"{chan}: anomaly sequence [{start}, {end}] outside test length {test.shape[0]}")
            labels[start : end + 1] = 1
        channels = ("value",) + tuple(f"cmd{i}" for i in range(1, train.shape[1]))
        out.append(_train_test_series(chan, train, test, labels, channels))
    return out


# ==============================================================================================
# NAB
# ==============================================================================================


def load_nab(root: str | Path, subset: int | None = None, probation: float = 0.15) -> list[Series]:
    """NAB series that have at least one anomaly window in their test part, sorted by ``category/name``.

    Labels: a point is anomalous when its timestamp lies in a ``combined_windows.json`` window
    ``[start, end]`` (inclusive). Train = the first ``floor(probation * T)`` points (NAB's
    probationary period, 15 %; NAB's scorer also caps it at 750 points for series over 5000 points,
    which is not applied here), test = the rest. Every row is kept in file order, as NAB scores
    rows; 8 files have repeated or backwards timestamps (DST changes, duplicate records), which a
    :class:`Series` cannot carry, so NAB series are returned without timestamps (``None``) for all
    series alike (a dataset cannot mix timestamp kinds).
    """
    if not 0.0 < probation < 1.0:
        raise ValueError(f"probation must be in (0, 1), got {probation}")
    base = _dataset_dir(root, "nab", "NAB (Numenta Anomaly Benchmark)", "labels/combined_windows.json")
    windows = json.loads((base / "labels" / "combined_windows.json").read_text())
    out = []
    for key in sorted(windows):
        if not windows[key]:
            continue
        path = base / "data" / key
        if not path.exists():
            raise DatasetNotFound(f"NAB file {path} listed in combined_windows.json is missing")
        frame = pd.read_csv(path)
        ts = pd.to_datetime(frame["timestamp"]).to_numpy(dtype="datetime64[ns]")
        labels = np.zeros(len(frame), np.int8)
        for start, end in windows[key]:
            labels[(ts >= np.datetime64(pd.Timestamp(start))) & (ts <= np.datetime64(pd.Timestamp(end)))] = 1
        train_end = int(np.floor(probation * len(frame)))
        if not labels[train_end:].any():
            continue
        out.append(
            Series(
                name=key.removesuffix(".csv"),
                values=frame["value"].to_numpy(dtype=np.float64)[:, None],
                labels=labels,
                train_end=train_end,
                channels=("value",),
            )
        )
        if subset is not None and len(out) >= subset:
            break
    return out


def load_merlion(root: str | Path, subset: int | None = None, train_fraction: float = 0.5) -> list[Series]:
    """Salesforce Merlion's synthetic series with injected anomalies (``merlion_synthetic/``).

    The 15 ``<base>_<type>_anomaly.csv`` files (header ``timestamp,<base>,anomaly``; 3 base shapes x
    dip/level/shock/spike/trend), sorted by name; the 3 anomaly-free base files are skipped. Anomalies
    run through the whole file, so the split is in time: the first ``train_fraction`` is the
    training part, with its labels kept (contaminated training, as for the KPIs).
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    base = _dataset_dir(root, "merlion_synthetic", "Merlion synthetic anomaly set", "*_anomaly.csv")
    out = []
    for path in _first(sorted(base.glob("*_anomaly.csv")), subset):
        frame = pd.read_csv(path)
        if frame.shape[1] != 3 or frame.columns[0] != "timestamp" or frame.columns[2] != "anomaly":
            raise ValueError(f"{path}: expected columns timestamp,<name>,anomaly, got {list(frame.columns)}")
        out.append(
            Series(
                name=path.stem.removesuffix("_anomaly"),
                values=frame.iloc[:, 1].to_numpy(dtype=np.float64)[:, None],
                labels=(frame["anomaly"].to_numpy() > 0).astype(np.int8),
                train_end=int(np.floor(train_fraction * len(frame))),
                timestamps=frame["timestamp"].to_numpy(dtype=np.int64),
                channels=("value",),  # one name for all, as for every univariate set (one dataset file)
            )
        )
    return out


# ==============================================================================================
# Non-redistributable sets (iTrust SWaT / WADI, ESA-ADB): readers of the owners' file layouts,
# tested on generated fixtures in those layouts (tests/fixtures/{swat,wadi,esa}).
# ==============================================================================================


def _locate(path: str | Path, required: Sequence[str], subfolders: Sequence[str], what: str) -> Path:
    """The folder holding all ``required`` files: ``path`` itself or one of its ``subfolders``."""
    path = Path(path)
    for cand in (path, *(path / sub for sub in subfolders)):
        if cand.is_dir() and all((cand / name).exists() for name in required):
            return cand
    raise DatasetNotFound(
        f"{what} not found: expected {list(required)} in {path} or in one of its subfolders {list(subfolders)}. "
        "These files cannot be redistributed; request them from their owner and point the path at their folder."
    )


def _header_row(path: Path, first_field: str, max_lines: int = 10) -> int:
    """0-based number of the first line (of the first ``max_lines``) whose first field is ``first_field``.

    Why the first field: the rows that may precede a header (SWaT's empty/units row, WADI's row of
    column descriptions) can mention the same words elsewhere.
    """
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for i, line in enumerate(f):
            if i >= max_lines:
                break
            field = re.split(r"[,;]", line, maxsplit=1)[0].strip().strip('"').strip()
            if field.lower() == first_field.lower():
                return i
    raise ValueError(f"{path}: no header line starting with {first_field!r} in its first {max_lines} lines")


SWAT_FILES = ("SWaT_Dataset_Normal_v1.csv", "SWaT_Dataset_Attack_v0.csv")
SWAT_TIME_FORMAT = "%d/%m/%Y %I:%M:%S %p"  # " 28/12/2015 10:00:00 AM" once stripped
SWAT_LABEL_COL = "Normal/Attack"


def _read_swat_csv(path: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(sensor frame, timestamps, 0/1 labels) of one SWaT csv (header possibly after a blank/units row)."""
    header = _header_row(path, "Timestamp")
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        header_line = [next(f) for _ in range(header + 1)][-1]
    sep = ";" if header_line.count(";") > header_line.count(",") else ","
    frame = pd.read_csv(path, skiprows=header, sep=sep, decimal="," if sep == ";" else ".", encoding="utf-8-sig")
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.dropna(how="all")
    if "Timestamp" not in frame.columns or SWAT_LABEL_COL not in frame.columns:
        raise ValueError(f"{path}: expected columns 'Timestamp' ... '{SWAT_LABEL_COL}', got {list(frame.columns)[:3]}...")
    raw = frame[SWAT_LABEL_COL].astype(str).str.replace(" ", "", regex=False).str.lower()
    unknown = sorted(set(raw) - {"normal", "attack"})
    if unknown:
        raise ValueError(f"{path}: unknown {SWAT_LABEL_COL} values {unknown[:5]}; expected Normal / Attack / 'A ttack'")
    labels = (raw == "attack").to_numpy(dtype=np.int8)
    ts = pd.to_datetime(frame["Timestamp"].astype(str).str.strip(), format=SWAT_TIME_FORMAT).to_numpy("datetime64[ns]")
    sensors = frame.drop(columns=["Timestamp", SWAT_LABEL_COL]).apply(pd.to_numeric, errors="raise")
    return sensors, ts, labels


def load_swat(path: str | Path, subset: int | None = None) -> list[Series]:
    """iTrust SWaT (Dec 2015, A1&A2): train = ``SWaT_Dataset_Normal_v1.csv``, test = ``SWaT_Dataset_Attack_v0.csv``.

    Both files are CSV exports of the official xlsx: an optional empty/units row, then a header whose
    first column is `` Timestamp`` (values like `` 28/12/2015 10:00:00 AM``, day first), 51
    sensor/actuator columns (some names with a leading space, stripped here) and ``Normal/Attack``
    (``Normal`` / ``Attack`` / ``A ttack``, all mapped to 0/1). ``;``-separated exports with decimal
    commas are also read. One series "SWaT" with 51 channels; training labels are those of the normal
    file (all 0). Timestamps are kept when strictly increasing across both files, else dropped.
    ``subset`` is accepted for a uniform signature (there is one series).
    """
    base = _locate(path, SWAT_FILES, ("swat", "SWaT", "SWaT.A1 & A2_Dec 2015/Physical"), "SWaT")
    normal, ts_n, lab_n = _read_swat_csv(base / SWAT_FILES[0])
    attack, ts_a, lab_a = _read_swat_csv(base / SWAT_FILES[1])
    if list(normal.columns) != list(attack.columns):
        raise ValueError(f"SWaT: normal and attack files have different sensor columns under {base}")
    ts = np.concatenate([ts_n, ts_a])
    series = Series(
        name="SWaT",
        values=np.concatenate([normal.to_numpy(np.float64), attack.to_numpy(np.float64)]),
        labels=np.concatenate([lab_n, lab_a]),
        train_end=len(normal),
        timestamps=ts if _strictly_increasing(ts) else None,
        channels=tuple(normal.columns),
    )
    return _first([series], subset)


WADI_FILES = ("WADI_14days_new.csv", "WADI_attackdataLABLE.csv")
WADI_LABEL_COL = "Attack LABLE (1:No Attack, -1:Attack)"
WADI_ID_COLS = ("Row", "Date", "Time")
#: Columns that are empty over the whole WADI A2 record (dropped; any all-empty column is dropped).
WADI_EMPTY_COLS = ("2_LS_001_AL", "2_LS_002_AL", "2_P_001_STATUS", "2_P_002_STATUS")


def _read_wadi_csv(path: Path) -> pd.DataFrame:
    header = _header_row(path, "Row")
    frame = pd.read_csv(path, skiprows=header, low_memory=False)
    # A1 exports prefix sensors with "\\WIN-25J4RO10SBF\LOG_DATA\SUTD_WADI\LOG_DATA\"; A2 has bare names.
    frame.columns = [str(c).strip().rsplit("\\", 1)[-1].strip() for c in frame.columns]
    missing = [c for c in WADI_ID_COLS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected Row, Date, Time, sensors...")
    return frame.dropna(subset=["Date", "Time"], how="any").reset_index(drop=True)


def _wadi_time(frame: pd.DataFrame) -> np.ndarray | None:
    text = frame["Date"].astype(str).str.strip() + " " + frame["Time"].astype(str).str.strip()
    for fmt in ("%m/%d/%Y %I:%M:%S.%f %p", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S.%f", "%m/%d/%Y %H:%M:%S"):
        try:
            return pd.to_datetime(text, format=fmt).to_numpy("datetime64[ns]")
        except (ValueError, TypeError):
            continue
    return None


def load_wadi(path: str | Path, subset: int | None = None) -> list[Series]:
    """iTrust WADI A2 (19 Nov 2019): train = ``WADI_14days_new.csv``, test = ``WADI_attackdataLABLE.csv``.

    Layouts: columns ``Row, Date, Time`` then the sensors (~127); the attack file has one row of
    column descriptions before its header, whose last column is ``Attack LABLE (1:No Attack, -1:Attack)``
    (1 -> 0, -1 -> 1). The train file (14 days of normal operation) gets labels 0. Column names are
    stripped (``"Row "``), and A1-style long prefixes are cut. Columns empty over a whole file (in WADI:
    ``2_LS_001_AL, 2_LS_002_AL, 2_P_001_STATUS, 2_P_002_STATUS``) are dropped; the remaining isolated
    NaN are **forward-filled** (then back-filled for a leading gap) within each file. Timestamps
    (Date + Time, month first) are kept when they parse and increase strictly, else dropped.
    """
    base = _locate(path, WADI_FILES, ("wadi", "WADI", "WADI.A2_19 Nov 2019"), "WADI A2")
    train = _read_wadi_csv(base / WADI_FILES[0])
    test = _read_wadi_csv(base / WADI_FILES[1])
    if WADI_LABEL_COL not in test.columns:
        raise ValueError(f"WADI attack file has no {WADI_LABEL_COL!r} column (last column: {test.columns[-1]!r})")
    raw = pd.to_numeric(test[WADI_LABEL_COL], errors="raise").to_numpy()
    if not np.isin(raw, (1, -1)).all():
        raise ValueError(f"WADI labels must be 1 (no attack) or -1 (attack), found {sorted(set(raw.tolist()))[:5]}")
    test_labels = (raw == -1).astype(np.int8)
    sensors = [c for c in train.columns if c not in WADI_ID_COLS and c != WADI_LABEL_COL]
    absent = [c for c in sensors if c not in test.columns]
    if absent:
        raise ValueError(f"WADI attack file lacks sensor column(s) {absent[:5]}")
    tr = train[sensors].apply(pd.to_numeric, errors="coerce")
    te = test[sensors].apply(pd.to_numeric, errors="coerce")
    keep = [c for c in sensors if tr[c].notna().any() and te[c].notna().any()]
    tr, te = tr[keep].ffill().bfill(), te[keep].ffill().bfill()
    ts_tr, ts_te = _wadi_time(train), _wadi_time(test)
    ts = None if ts_tr is None or ts_te is None else np.concatenate([ts_tr, ts_te])
    series = Series(
        name="WADI",
        values=np.concatenate([tr.to_numpy(np.float64), te.to_numpy(np.float64)]),
        labels=np.concatenate([np.zeros(len(tr), np.int8), test_labels]),
        train_end=len(tr),
        timestamps=ts if ts is not None and _strictly_increasing(ts) else None,
        channels=tuple(keep),
    )
    return _first([series], subset)


#: ESA-ADB train/test split per mission (kplabs-pl/ESA-ADB notebooks/data-prep): Mission 1 trains on
#: everything up to 2007-01-01 ("84_months") and tests on the rest.
ESA_SPLITS = {1: "2007-01-01"}
ESA_CATEGORIES = ("Anomaly", "Rare Event")


#: The only globals an ESA channel pickle may name: the constructors pandas/numpy/pyarrow use to
#: rebuild a DataFrame of numbers or strings with a time index. Anything else (os.system,
#: builtins.eval, subprocess.Popen, ...) is refused before it is called.
SAFE_PICKLE_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("pandas", "DataFrame"), ("pandas", "Series"), ("pandas.core.frame", "DataFrame"),
    ("pandas.core.series", "Series"), ("pandas.core.internals.managers", "BlockManager"),
    ("pandas.core.internals.managers", "SingleBlockManager"), ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.indexes.base", "_new_Index"), ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.datetimes", "_new_DatetimeIndex"), ("pandas.core.indexes.datetimes", "DatetimeIndex"),
    ("pandas.core.indexes.range", "RangeIndex"), ("pandas.arrays", "ArrowStringArray"),
    ("pandas.arrays", "DatetimeArray"), ("pandas.core.arrays.datetimes", "DatetimeArray"),
    ("pandas.core.arrays.string_arrow", "ArrowStringArray"), ("pandas.core.arrays.string_", "StringDtype"),
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"), ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
    ("pandas._libs.tslibs.timezones", "tz_standardize"), ("pandas.core.dtypes.dtypes", "DatetimeTZDtype"),
    ("pandas._libs.tslibs.offsets", "Second"), ("pandas._libs.tslibs.offsets", "Minute"),
    ("pandas._libs.tslibs.offsets", "Milli"), ("pandas._libs.tslibs.offsets", "Micro"),
    ("pandas._libs.tslibs.offsets", "Nano"), ("pandas._libs.tslibs.offsets", "Hour"),
    ("pandas._libs.tslibs.offsets", "Day"),
    ("numpy", "dtype"), ("numpy", "ndarray"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("pyarrow.lib", "_restore_array"), ("pyarrow.lib", "type_for_alias"), ("pyarrow.lib", "py_buffer"),
    ("builtins", "slice"), ("datetime", "datetime"), ("datetime", "timedelta"), ("_codecs", "encode"),
    ("collections", "OrderedDict"), ("pandas", "Index"), ("pandas", "DatetimeIndex"), ("pandas", "RangeIndex"),
    ("pandas.core.arrays.arrow.array", "ArrowExtensionArray"), ("pandas", "StringDtype"),
})


class UnsafePickleError(ValueError):
    """A pickle names a global outside :data:`SAFE_PICKLE_GLOBALS`."""


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in SAFE_PICKLE_GLOBALS:
            raise UnsafePickleError(f"{module}.{name}")
        return super().find_class(module, name)


def safe_read_pickle(path: Path) -> Any:
    """A zip-compressed pandas pickle rebuilt with only :data:`SAFE_PICKLE_GLOBALS` callable."""
    with zipfile.ZipFile(path) as z:
        members = [m for m in z.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise ValueError(f"{path}: expected one pickled frame in the zip, found {members}")
        with z.open(members[0]) as f:
            try:
                return _SafeUnpickler(f).load()
            except UnsafePickleError as exc:
                raise UnsafePickleError(
                    f"{path} is a pickle that calls {exc} when loaded, which is not a pandas/numpy data "
                    "constructor; it was NOT loaded (unpickling can run arbitrary code). Fix: convert the file "
                    "to CSV (datetime,value), or pass allow_pickle=True to load_esa if you trust its source"
                ) from None


def _read_esa_channel(path: Path, name: str, allow_pickle: bool = False) -> pd.Series:
    """One ESA-ADB channel as a time-indexed float series.

    ``.zip``: the official format, a zip-compressed pandas pickle of a DataFrame indexed by time with
    one column named after the channel. Read by :func:`safe_read_pickle`, which calls only pandas,
    numpy and pyarrow data constructors; ``allow_pickle=True`` uses ``pd.read_pickle`` (arbitrary
    code: only for files you trust, e.g. ones pickled by an old pandas whose layout is refused).
    ``.csv``: columns ``datetime,value`` (or time index + one value column).
    """
    if path.suffix == ".zip":
        frame = pd.read_pickle(path) if allow_pickle else safe_read_pickle(path)
        if isinstance(frame, pd.Series):
            frame = frame.to_frame(name)
        col = name if name in frame.columns else frame.columns[0]
        values = frame[col]
    else:
        frame = pd.read_csv(path)
        time_col = "datetime" if "datetime" in frame.columns else frame.columns[0]
        value_col = "value" if "value" in frame.columns else frame.columns[1]
        values = frame.set_index(time_col)[value_col]
    index = pd.to_datetime(values.index, utc=True, format="ISO8601").tz_localize(None)
    values = pd.Series(values.to_numpy(), index=index)
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        values = pd.Series(pd.factorize(values)[0].astype(np.float64), index=index)  # as ESA-ADB does
    values = values[~values.index.duplicated(keep="last")].sort_index()
    return values.astype(np.float64)


def load_esa(
    path: str | Path,
    mission: int = 1,
    subset: int | None = None,
    split_at: str | None = None,
    resample: str = "30s",
    channels: Sequence[str] | None = None,
    categories: Sequence[str] = ESA_CATEGORIES,
    allow_pickle: bool = False,
) -> list[Series]:
    """ESA-ADB (ESA Anomalies Dataset) mission as one multivariate series on a regular time grid.

    The channel pickles are read safely (see :func:`_read_esa_channel`); ``allow_pickle=True``
    opts in to full unpickling for trusted files.

    Layout (zenodo 10.5281/zenodo.12528696, read as in kplabs-pl/ESA-ADB): ``ESA-Mission<N>/``
    with ``channels/channel_<k>.zip`` (or ``.csv``, see :func:`_read_esa_channel`), ``labels.csv``
    (``ID, Channel, StartTime, EndTime``; ISO times, tz dropped) and optionally ``anomaly_types.csv``
    (``ID, Category, ...``) and ``channels.csv``. Telecommands are not read.

    * Channels (all, natural order, or ``channels``) are aligned by zero-order hold on a ``resample``
      grid (30 s, as ESA-ADB) from the earliest to the latest sample; a channel's leading gap is
      back-filled, as ESA-ADB's preprocessing does.
    * Labels: a grid point ``t`` is 1 when an annotation of a loaded channel whose category is in
      ``categories`` (Anomaly and Rare Event by default; communication gaps are not anomalies)
      overlaps ``(t - resample, t]``, i.e. the point that first shows it. Without ``anomaly_types.csv``
      every annotation counts.
    * Train = grid points ``<= split_at`` (mission 1: 2007-01-01, ESA-ADB's full "84 months" training
      set), test = the rest. Training labels are kept (ESA-ADB training data are not anomaly-free).

    Memory: the full mission 1 at 30 s is ~14 M points x 76 channels; pass ``channels`` for a subset.
    """
    if split_at is None:
        if mission not in ESA_SPLITS:
            raise ValueError(f"no default split for ESA mission {mission}; pass split_at (a date)")
        split_at = ESA_SPLITS[mission]
    folder = f"ESA-Mission{mission}"
    base = _locate(path, ("labels.csv", "channels"), (folder, f"esa/{folder}", "esa"), f"ESA-ADB {folder}")
    files = {p.name.rsplit(".", 1)[0]: p for p in sorted((base / "channels").iterdir()) if p.suffix in (".zip", ".csv")}
    names = sorted(files, key=_natural_key) if channels is None else list(channels)
    unknown = [n for n in names if n not in files]
    if unknown or not names:
        raise DatasetNotFound(f"ESA channel file(s) {unknown or '(none)'} not found in {base / 'channels'}")
    raw = {n: _read_esa_channel(files[n], n, allow_pickle) for n in names}
    rule = pd.Timedelta(resample)
    start = min(s.index[0] for s in raw.values()).floor(rule)
    end = max(s.index[-1] for s in raw.values()).ceil(rule)
    grid = pd.date_range(start, end, freq=rule)
    values = np.column_stack([raw[n].reindex(grid, method="ffill").bfill().to_numpy() for n in names])

    table = pd.read_csv(base / "labels.csv")
    table["Channel"] = table["Channel"].astype(str).str.strip()
    table = table[table["Channel"].isin(names)]
    types_path = base / "anomaly_types.csv"
    if types_path.exists() and len(table):
        types = pd.read_csv(types_path)
        keep_ids = set(types.loc[types["Category"].astype(str).str.strip().isin(categories), "ID"].astype(str))
        table = table[table["ID"].astype(str).isin(keep_ids)]
    labels = np.zeros(len(grid), np.int8)
    if len(table):
        starts = pd.to_datetime(table["StartTime"], utc=True, format="ISO8601").dt.tz_localize(None)
        ends = pd.to_datetime(table["EndTime"], utc=True, format="ISO8601").dt.tz_localize(None)
        lo = grid.searchsorted(starts, side="left")
        hi = grid.searchsorted(ends + rule, side="left")
        for a, b in zip(lo, hi):
            labels[a : max(b, a + 1)] = 1  # at least the first grid point after the start
    train_end = int(grid.searchsorted(pd.Timestamp(split_at), side="right"))
    series = Series(
        name=folder,
        values=values,
        labels=labels,
        train_end=train_end,
        timestamps=grid.to_numpy("datetime64[ns]"),
        channels=tuple(names),
    )
    return _first([series], subset)


# ==============================================================================================
# Registry
# ==============================================================================================

#: Dataset name -> loader ``(root, subset=None) -> list[Series]``. ``root`` is the folder holding the
#: dataset directories (e.g. /work/shared/datasets); SWaT/WADI/ESA also accept their own folder.
LOADERS: dict[str, Callable[..., list[Series]]] = {
    "ucr": load_ucr,
    "aiops": load_aiops,
    "aiops-prelim": partial(load_aiops, stage="preliminary"),
    "smd": load_smd,
    "asd": load_asd,
    "smap": partial(load_smap_msl, spacecraft="SMAP"),
    "msl": partial(load_smap_msl, spacecraft="MSL"),
    "nab": load_nab,
    "merlion": load_merlion,
    "swat": load_swat,
    "wadi": load_wadi,
    "esa": load_esa,
}
#: Other spellings accepted by :func:`load_dataset`.
ALIASES = {"kpi": "aiops", "iops": "aiops", "esa-adb": "esa", "esa_mission1": "esa"}


def load_dataset(name: str, root: str | Path, subset: int | None = None) -> list[Series]:
    """Series of dataset ``name`` (a key of :data:`LOADERS`, case-insensitive) under ``root``.

    Raises :class:`DatasetNotFound` (naming the expected folder) when the files are absent and
    ``ValueError`` for an unknown name.
    """
    key = ALIASES.get(name.lower(), name.lower())
    if key not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(LOADERS)} (aliases {sorted(ALIASES)})")
    if not Path(root).is_dir():
        raise DatasetNotFound(f"dataset root {root} does not exist (needed for {key!r}); set dataset.root")
    return LOADERS[key](root, subset=subset)
