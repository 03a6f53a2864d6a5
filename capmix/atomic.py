"""Atomic file writes: every artifact is written to a temporary file beside it, then renamed.

A crash, a full disk or a kill mid-write leaves the previous file (or none), never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: mkstemp creates 0600 files; artifacts are meant to be read by other users and tools.
FILE_MODE = 0o644


@contextmanager
def atomic_file(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s directory; on success fsync it and rename it to ``path``.

    ``suffix`` matters to writers that pick a format from the file name (``.png``, ``.npz``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success swap it in place of ``path``.

    The old directory (if any) is moved aside first and put back if the swap fails, so readers
    see the old folder or the new one, never a mixture.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = None
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; artifacts are meant to be read by other users
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}-{time.monotonic_ns()}")
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():
            os.replace(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(obj: Any, path: str | os.PathLike[str], **dump_kwargs: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (keys sorted, numpy scalars as floats, unless
    ``dump_kwargs`` say otherwise): readers never see half a file."""
    kwargs = {"indent": 2, "sort_keys": True, "default": float, **dump_kwargs}
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, **kwargs)
        f.write("\n")
    return Path(path)


def write_error(exc: OSError, path: str | os.PathLike[str] | None = None,
                target: str = "a writable output directory") -> str:
    """A failed write (disk full, read-only or missing directory) as problem + fix; ``path`` names
    the file when the error does not, ``target`` what to choose instead."""
    name = getattr(exc, "filename", None) or path
    where = f" {name}" if name else ""
    return (f"cannot write{where}: {exc.strerror or exc}. Nothing was replaced: the previous outputs are "
            f"untouched. Fix: free disk space, or choose {target}")
