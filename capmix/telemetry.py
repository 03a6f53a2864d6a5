"""Usage telemetry off, for every entry point: nothing about a run may leave this machine.

:func:`switch_off` runs when ``flows`` is imported (``flows/__init__.py``: the Prefect flows, the
``capmix`` command, ``python -m flows.*``), in ``capmix.cli`` and in the tests, before MLflow,
Prefect, DVC or Great Expectations is imported. Only variables not set yet are set: a user who
wants a different value exports it first.
"""

from __future__ import annotations

import os

__all__ = ["TELEMETRY_OFF", "switch_off"]

TELEMETRY_OFF: dict[str, str] = {
    "DO_NOT_TRACK": "true",  # the common standard (Prefect's client analytics honour it)
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    # not telemetry: the temporary Prefect server of a flow run without PREFECT_API_URL gets time
    # to start on a busy machine (the default, 20 s, is too short on 2 cores)
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # not telemetry: MLflow's artifact download bars flood a flow's console on every model load
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def switch_off() -> None:
    """Set every variable of :data:`TELEMETRY_OFF` that the environment does not set already."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
