"""The on-disk model folder shared by every detector: JSON config and state, weights, checksums.

A folder is written into a temporary sibling and renamed into place, so a crash never leaves
half a model. Reading verifies every file's SHA-256 before parsing anything and loads the
weights with ``torch.load(weights_only=True)``: tensors and plain containers only, never an
arbitrary pickled object. Every problem is a ``ModelFileError`` that names the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from capmix import __version__
from capmix.atomic import atomic_dir

FILES = ("config.json", "state.json", "weights.pt")
CHECKSUMS = "checksums.json"


class ModelFileError(ValueError):
    """A saved model directory is missing files, truncated or tampered with."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_model_dir(path: str | Path, config_json: str, state: dict[str, Any],
                    weights: dict[str, torch.Tensor]) -> Path:
    """Write a model folder atomically (``capmix.atomic.atomic_dir``)."""
    with atomic_dir(path) as tmp:
        (tmp / "config.json").write_text(config_json)
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        torch.save({k: v.detach().cpu() for k, v in weights.items()}, tmp / "weights.pt")
        (tmp / CHECKSUMS).write_text(json.dumps({n: sha256_file(tmp / n) for n in FILES}, indent=2))
    return Path(path)


def versions() -> dict[str, str]:
    """Library versions recorded with a saved model (what it was trained with)."""
    return {"capmix": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


@dataclass
class ModelFiles:
    """A verified model folder: the config text (parsed by the detector's own config class)."""

    path: Path
    config_json: str
    state: dict[str, Any]
    weights: dict[str, torch.Tensor]


def check_complete(path: str | Path) -> Path:
    """The folder exists and holds every file ``write_model_dir`` writes, else a ModelFileError naming the fix."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFileError(f"model directory {path} does not exist. Fix: pass the folder written by save() / "
                             "capmix train (the training flow writes runs/latest/models/<series>)")
    missing = [n for n in (*FILES, CHECKSUMS) if not (path / n).is_file()]
    if missing:
        raise ModelFileError(f"model directory {path} is incomplete: missing {missing}. Fix: save or train it again, or restore it")
    return path


def read_model_dir(path: str | Path, detector: str, format_version: int) -> ModelFiles:
    """Verify and read a model folder written by ``write_model_dir`` for ``detector``."""
    path = check_complete(path)
    try:
        checksums = json.loads((path / CHECKSUMS).read_text())
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}/{CHECKSUMS} is corrupt ({exc}). Fix: re-train or restore the model") from exc
    for name in FILES:
        if not isinstance(checksums, dict) or checksums.get(name) != sha256_file(path / name):
            raise ModelFileError(f"{path}/{name} does not match its checksum: the model was truncated or modified. "
                                 "Fix: re-train or restore it")
    # checksums match, yet the files may have been written consistently wrong (another format, an
    # edited checksums.json): every parse error below is a ModelFileError naming the file
    try:
        state = json.loads((path / "state.json").read_text())
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}/state.json is corrupt ({exc}). Fix: re-train or restore it") from exc
    if not isinstance(state, dict):
        raise ModelFileError(f"{path}/state.json is not a JSON object. Fix: re-train or restore it")
    kind, version = state.get("detector", "capmix"), state.get("format_version")
    if kind != detector or version != format_version:
        raise ModelFileError(f"{path} holds a {kind!r} model of format {version}, expected {detector!r} format "
                             f"{format_version}. Fix: load it with its own detector, or re-train it with this capmix")
    try:
        weights = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, pickle.UnpicklingError, EOFError) as exc:
        raise ModelFileError(f"{path} cannot be loaded ({type(exc).__name__}: {exc}). Fix: re-train or restore it") from exc
    if not isinstance(weights, dict):
        raise ModelFileError(f"{path}/weights.pt does not hold a state dict. Fix: re-train or restore it")
    return ModelFiles(path, (path / "config.json").read_text(), state, weights)
