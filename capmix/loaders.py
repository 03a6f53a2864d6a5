"""Readers of public datasets as their owners distribute them, returning canonical ``Series``.

Data are read from a configurable root (params ``dataset.root``), never copied into the project.
"""

from __future__ import annotations

import lzma
import re
from pathlib import Path

import numpy as np

from capmix.data import Series

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
