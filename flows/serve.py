"""Nightly retraining on one machine: serve the nightly day flow on the params.yaml schedule.

Run it (keeps running; Ctrl-C stops it):  python -m flows.serve [--params params.yaml]

Each scheduled run is :func:`flows.nightly.nightly_flow`: it takes the day files waiting in the
inbox (params ``nightly``), checks and versions them, retrains when the rule says so and scores the
new day. ``nightly_flow.serve`` registers the deployment ``capmix-nightly/capmix-nightly`` with the Prefect API
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
DESCRIPTION = ("Nightly: the inbox's day files checked (GX, drift), versioned (DVC), retrained on drift or age, "
               "champion vs challenger on the newest slice, alarms scored.")


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
    """Flow parameters of each scheduled run (everything else comes from params.yaml at run time)."""
    return {"params_path": params_path}


def build_deployment(params_path: str = "params.yaml", name: str = DEPLOYMENT_NAME):
    """The nightly ``RunnerDeployment`` (what :func:`main` serves); ``.apply()`` registers it only."""
    from flows.nightly import nightly_flow

    p = load_params(params_path)
    return nightly_flow.to_deployment(
        name=name,
        schedules=[nightly_schedule(p)],
        parameters=deployment_parameters(params_path),
        description=DESCRIPTION,
        tags=TAGS,
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", help="params file (read now and by every run)")
    ap.add_argument("--name", default=DEPLOYMENT_NAME, help="deployment name")
    args = ap.parse_args(argv)

    from flows.nightly import FLOW_NAME, nightly_flow

    p = load_params(args.params)
    cron, timezone = deployment_schedule(p)
    print(f"serving {FLOW_NAME}/{args.name}: cron {cron!r} ({timezone}), day files from "
          f"{p.nightly.workdir}/inbox; Ctrl-C to stop")
    try:
        nightly_flow.serve(
            name=args.name,
            schedules=[Cron(cron, timezone=timezone)],
            parameters=deployment_parameters(args.params),
            description=DESCRIPTION,
            tags=TAGS,
        )
    finally:
        pause_served(f"{FLOW_NAME}/{args.name}")
    return 0


def pause_served(full_name: str) -> bool:
    """Pause the served deployment's schedule once serving stops.

    Prefect's runner pauses it on shutdown too, but only on a best-effort path: a Ctrl-C that lands
    while the runner is still busy can cancel that call, and the server would then go on scheduling
    runs nobody executes (seen once in CI). Pausing again is harmless. Returns whether it is paused.
    """
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(full_name)
            if not deployment.paused:
                client.pause_deployment(deployment.id)
    except ObjectNotFound:
        return False  # serving failed before the deployment was registered: nothing to pause
    except Exception as exc:  # the API is down: say so instead of hiding the original error
        print(f"could not pause {full_name} on the Prefect API ({exc}); pause it in the Prefect UI or with "
              f"`prefect deployment schedule pause {full_name} --all`", file=sys.stderr)
        return False
    print(f"stopped serving {full_name}; its schedule is paused")
    return True


if __name__ == "__main__":
    sys.exit(main())
