"""Shared test settings: telemetry off, a configurable real-data root."""

import os
from pathlib import Path

import pytest

from capmix.telemetry import switch_off

switch_off()  # before any test module imports MLflow, Prefect, DVC or GX

ROOT = Path(__file__).resolve().parents[1]
#: Real datasets live outside the project; override with CAPMIX_DATA_ROOT.
DATA_ROOT = Path(os.environ.get("CAPMIX_DATA_ROOT", ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not DATA_ROOT.is_dir():
        pytest.skip(f"real datasets not found at {DATA_ROOT} (set CAPMIX_DATA_ROOT to run these tests)")
    return DATA_ROOT


@pytest.fixture(autouse=True)
def _project_root(monkeypatch):
    """Tests read params.yaml relative to the project root, wherever pytest is started."""
    monkeypatch.chdir(ROOT)
