"""Data versions with DVC: ``dvc add`` on a folder, its hash back as the version MLflow records.

The folder's DVC repository is the one that contains it (the project, when the nightly workdir is
inside it: the ``.dvc`` file then goes into git with the code); a folder outside any DVC repository
gets one of its own, without git (``dvc init --no-scm``). Every version's files stay in the DVC cache,
so any day's history can be checked out again (``dvc checkout`` with that day's ``.dvc`` file, or
``dvc get`` / ``dvc.api.open`` on a git revision).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

import yaml

__all__ = ["DataVersion", "add_version", "cached", "dvc_root"]


class DataVersion(dict):
    """``{"md5": ..., "dvc_file": ..., "files": n, "size": bytes}`` of one ``dvc add``."""


def dvc_root(folder: Path) -> Path:
    """The DVC repository holding ``folder``; one without git is made next to it when there is none."""
    from dvc.repo import Repo

    try:
        return Path(Repo.find_root(str(folder.parent)))
    except Exception:  # dvc.exceptions.NotDvcRepoError: no repository above the folder
        return _init_beside(folder)


def _init_beside(folder: Path) -> Path:
    """A DVC repository without git in ``folder``'s parent."""
    from dvc.repo import Repo

    dvc_log = logging.getLogger("dvc")
    level = dvc_log.level
    dvc_log.setLevel(logging.WARNING)
    try:  # DVC's "Initialized DVC repository." banner, printed and logged
        with contextlib.redirect_stdout(io.StringIO()):
            Repo.init(str(folder.parent), no_scm=True)
    finally:
        dvc_log.setLevel(level)
    return folder.parent


def add_version(folder: str | os.PathLike[str]) -> DataVersion:
    """``dvc add folder`` (a no-op for an unchanged folder) and the version it recorded."""
    from dvc.dvcfile import FileIsGitIgnored

    folder = Path(folder).resolve()
    root = dvc_root(folder)
    try:
        _add(root, folder)
    except FileIsGitIgnored:
        # a scratch folder git ignores inside a project (e.g. `capmix simulate --workdir simulation`):
        # it gets its own repository, so the project's stays as it is
        _add(_init_beside(folder), folder)
    dvc_file = folder.with_name(folder.name + ".dvc")
    out = yaml.safe_load(dvc_file.read_text())["outs"][0]
    return DataVersion(md5=str(out["md5"]), dvc_file=str(dvc_file), files=int(out.get("nfiles", 0)),
                       size=int(out.get("size", 0)))


def _add(root: Path, folder: Path) -> None:
    from dvc.repo import Repo

    repo = Repo(str(root))
    try:
        repo.add(str(folder))  # under DVC's repository lock: a concurrent `dvc` command waits
    finally:
        repo.close()


def cached(folder: str | os.PathLike[str], md5: str) -> bool:
    """Is version ``md5`` of ``folder`` in its repository's DVC cache (can it be checked out again)?"""
    root = dvc_root(Path(folder).resolve())
    digest = md5.removesuffix(".dir")
    return (root / ".dvc" / "cache" / "files" / "md5" / digest[:2] / (digest[2:] + (".dir" if md5.endswith(".dir") else ""))).exists()
