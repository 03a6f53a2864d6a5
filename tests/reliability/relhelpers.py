"""Helpers of the reliability tests (imported by the test modules and conftest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: small enough to train in about a second, same code paths as the real configuration
TINY = dict(window=32, stride=8, kernel=4, features=8, max_epochs=2, min_epochs=1, min_patch=6,
            batch_size=128, device="cpu")
CHANNELS = ("ch0", "ch1")


def signal(n: int, start: int = 0) -> np.ndarray:
    t = np.arange(start, start + n)
    return np.stack([np.sin(t / 10), np.cos(t / 7)], 1) + 0.05 * np.sin(t / 3.3)[:, None]


def leftovers(directory: Path) -> list[str]:
    """Temp files an interrupted write could leave (atomic writers name them .<name>.*)."""
    return sorted(p.name for p in directory.rglob(".*") if p.is_file() and not p.name.endswith(".lock"))
