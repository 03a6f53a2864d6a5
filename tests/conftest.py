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


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """One temporary Prefect API per test module (``prefect_test_harness``), with task results (the
    cache) in a tmp dir, so nothing is shared with ~/.prefect/storage or with other modules."""
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    storage = tmp_path_factory.mktemp("prefect-results")
    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: storage}):
        # None: wait PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (120 s here) for the server
        with prefect_test_harness(server_startup_timeout=None):
            yield storage


_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")


@pytest.fixture(scope="module")
def isolated_mlflow():
    """A module's flows get a clean MLflow process state: the MLFLOW_* variables (which
    mlflow.set_tracking_uri also writes), the tracking and registry URIs, the active experiment and
    sys.path (loading a pyfunc prepends its code/ directory) are restored afterwards.
    ``CAPMIX_GIT_COMMIT`` is set meanwhile, so logging a bundle makes no git call."""
    import sys

    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = ({k: os.environ.get(k) for k in _MLFLOW_ENV}, tracking_utils._tracking_uri, registry_utils._registry_uri,
             fluent._active_experiment_id, list(sys.path))
    for k in _MLFLOW_ENV:
        os.environ.pop(k, None)
    os.environ["CAPMIX_GIT_COMMIT"] = "0" * 40
    try:
        yield
    finally:
        env, tracking_utils._tracking_uri, registry_utils._registry_uri, fluent._active_experiment_id, path = saved
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        os.environ.pop("CAPMIX_GIT_COMMIT", None)
        sys.path[:] = path
