"""Where a registered bundle came from: git commit, DVC output hashes, training params, as MLflow tags.

Shipped with every logged bundle (``code_paths``, see :mod:`flows.bundle`), so it imports nothing
from ``flows`` and nothing heavier than yaml.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from capmix.redaction import is_secret_key, redact

__all__ = ["clean_tags", "dvc_lock_hashes", "git_commit", "train_params", "utc_now"]

_BAD_TAG_CHARS = re.compile(r"[^/\w.\- ]")
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 5000


def utc_now() -> str:
    """Now, in UTC, as ISO 8601 to the second (the time stamps of registry tags)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def git_commit(repo_dir: str | Path | None = None) -> str:
    """HEAD commit of ``repo_dir`` (``CAPMIX_GIT_COMMIT`` overrides it, e.g. in CI); "unknown" if none."""
    if env := os.environ.get("CAPMIX_GIT_COMMIT"):
        return env.strip()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=str(repo_dir or Path.cwd()),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", sha) else "unknown"


def dvc_lock_hashes(lock_path: str | Path) -> dict[str, str]:
    """``{out path: md5}`` of every stage output in a ``dvc.lock`` (empty if the file is absent)."""
    lock_path = Path(lock_path)
    if not lock_path.is_file():
        return {}
    lock = yaml.safe_load(lock_path.read_text()) or {}
    hashes: dict[str, str] = {}
    for stage in (lock.get("stages") or {}).values():
        for out in (stage or {}).get("outs") or []:
            path, md5 = out.get("path"), out.get("md5") or out.get("etag") or out.get("checksum")
            if path and md5:
                hashes[str(path)] = str(md5)
    return hashes


def _flatten(d: Mapping[str, Any], prefix: str) -> dict[str, str]:
    flat: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            flat.update(_flatten(v, key))
        else:
            flat[key] = json.dumps(v) if isinstance(v, (list, tuple)) or v is None else str(v)
    return flat


def train_params(params: Mapping[str, Any] | None, repo_dir: str | Path | None = None) -> dict[str, str]:
    """Flattened ``train.*`` params: from ``params`` (whole params.yaml dict or its ``train`` section),
    else from ``<repo_dir>/params.yaml``; empty when neither exists."""
    if params is None:
        path = Path(repo_dir or Path.cwd()) / "params.yaml"
        if not path.is_file():
            return {}
        params = yaml.safe_load(path.read_text()) or {}
    section = params.get("train", params) if isinstance(params.get("train"), Mapping) else params
    return _flatten(section, "train")


def clean_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Valid MLflow tag keys/values with anything credential-like removed (secret-named keys
    dropped, URL credentials masked)."""
    clean: dict[str, str] = {}
    for k, v in tags.items():
        if v is None or is_secret_key(k):
            continue
        key = _BAD_TAG_CHARS.sub("_", str(k))[:MAX_TAG_KEY]
        if isinstance(v, str):
            value = v
        elif isinstance(v, (dict, list, tuple)):
            value = json.dumps(v, default=str)
        else:
            value = str(v)
        clean[key] = redact(value)[:MAX_TAG_VALUE]
    return clean
