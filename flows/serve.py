"""Nightly retraining on one machine: serve the training flow on the params.yaml schedule.

Run it (keeps running; Ctrl-C stops it):  python -m flows.serve [--params params.yaml]

``training_flow.serve`` registers the deployment ``capmix-train/capmix-nightly`` with the Prefect API
(``PREFECT_API_URL``, or a local ephemeral server) and executes its scheduled runs in this process, so
no work pool or worker is needed. With a work pool and workers use ``prefect deploy --all`` and
``prefect.yaml`` instead (same name, same schedule). The schedule is ``params.yaml`` ``schedule``
(``cron`` + ``timezone``): both this module and the tests read it through :func:`deployment_schedule`.
"""

from __future__ import annotations

import sys
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect.schedules import Cron, Schedule

from capmix.params import Params, load_params

DEPLOYMENT_NAME = "capmix-nightly"
DEFAULT_TIMEZONE = "UTC"
TAGS = ["capmix", "training", "nightly"]


def deployment_schedule(params: Params) -> tuple[str, str]:
    """``(cron, timezone)`` of the nightly run from params ``schedule`` (validated, so a typo fails here)."""
    sched = params.schedule
    cron = sched.cron
    if not cron.strip():
        raise ValueError("params.yaml schedule.cron is missing; set e.g. schedule: {cron: '0 2 * * *', timezone: UTC}")
    cron = cron.strip()
    timezone = sched.timezone or DEFAULT_TIMEZONE
    try:
        Cron(cron, timezone=timezone)  # Prefect's own check of the cron string
    except ValueError as exc:
        raise ValueError(f"params.yaml schedule.cron {cron!r} is not a valid cron string: {exc}") from exc
    try:
        ZoneInfo(timezone)  # Prefect's client schedule accepts any string; the server would refuse it later
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"params.yaml schedule.timezone {timezone!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)"
        ) from exc
    return cron, timezone


def nightly_schedule(params: Params) -> Schedule:
    cron, timezone = deployment_schedule(params)
    return Cron(cron, timezone=timezone)


def deployment_parameters(params_path: str) -> dict[str, Any]:
    """Flow parameters of each scheduled run: tuning as params.yaml says, register and gate-promote."""
    return {"params_path": params_path, "tune": None, "register": True}


def build_deployment(params_path: str = "params.yaml", name: str = DEPLOYMENT_NAME):
    """The nightly ``RunnerDeployment`` (what :func:`main` serves); ``.apply()`` registers it only."""
    from flows.train import training_flow

    p = load_params(params_path)
    return training_flow.to_deployment(
        name=name,
        schedules=[nightly_schedule(p)],
        parameters=deployment_parameters(params_path),
        description="Nightly CAPMix retraining: ingest, validate, augment, train, evaluate, register, gate-promote.",
        tags=TAGS,
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", help="params file (read now and by every run)")
    ap.add_argument("--name", default=DEPLOYMENT_NAME, help="deployment name")
    args = ap.parse_args(argv)

    from flows.train import runner_for, training_flow

    p = load_params(args.params)
    cron, timezone = deployment_schedule(p)
    # served runs use the task runner params.yaml asks for (threads, or a Dask cluster)
    training_flow = training_flow.with_options(task_runner=runner_for(p))
    print(f"serving capmix-train/{args.name}: cron {cron!r} ({timezone}); Ctrl-C to stop")
    training_flow.serve(
        name=args.name,
        schedules=[Cron(cron, timezone=timezone)],
        parameters=deployment_parameters(args.params),
        description="Nightly CAPMix retraining (served by flows/serve.py).",
        tags=TAGS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
