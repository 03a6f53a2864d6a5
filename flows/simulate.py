"""``capmix simulate``: nights of the nightly flow, fed from the embedded generator, in one folder.

Each simulated day drops that day's file into ``<workdir>/inbox`` (Parquet and CSV in turn) and runs
:func:`flows.nightly.nightly_flow` on it, against the workdir's own MLflow store (sqlite) and its own
Prefect server database (``<workdir>/prefect``: ``PREFECT_HOME=<workdir>/prefect prefect server start``
shows the runs afterwards). The scenario comes from params ``simulate``: a drift day, a day with a
broken schema, a day that repeats the previous one. Running it again on the same workdir continues
with the next days: the history, the champion and the day records carry over.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from capmix.atomic import atomic_file, write_json
from capmix.data.daily import SimulatedFeed
from capmix.data.history import write_history
from capmix.params import derive_params, load_params

__all__ = ["prefect_env", "simulate", "simulation_table"]

STATE = "simulate.json"


def prefect_env(workdir: str | os.PathLike[str]) -> dict[str, str]:
    """Settings that give the simulation its own Prefect database inside ``workdir`` (set them before
    Prefect is imported; Prefect's ephemeral server then serves that database)."""
    home = Path(workdir).resolve() / "prefect"
    return {"PREFECT_HOME": str(home),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true"}


def _workdir_params(params_path: str, workdir: Path) -> Path:
    """The workdir's params.yaml: the user's, with the nightly folder, MLflow store and artifacts inside
    the workdir. Written once: a second simulated week runs on the same settings."""
    target = workdir / "params.yaml"
    if target.is_file():
        return target
    return derive_params(params_path, target, {
        "nightly": {"workdir": str(workdir)},
        "mlflow": {"tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}",
                   "artifact_location": (workdir / "mlartifacts").as_uri()},
        "flow": {"out_dir": str(workdir / "runs" / "latest")},
    })


def simulate(days: int, workdir: str | os.PathLike[str], params_path: str = "params.yaml",
             progress: Any = None) -> list[dict[str, Any]]:
    """Run ``days`` more simulated days in ``workdir``; returns the day records of those days."""
    from flows.nightly import NightlyPaths, nightly_flow
    from flows.versioning import add_version

    if days < 1:
        raise ValueError(f"--days must be at least 1, got {days}")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    params = _workdir_params(params_path, workdir)
    p = load_params(params)
    paths = NightlyPaths.of(p)
    feed = SimulatedFeed(**p.simulate.model_dump())
    state_file = paths.state / STATE
    done = json.loads(state_file.read_text())["last_day"] if state_file.is_file() else 0
    if done == 0 and not paths.history.exists():
        write_history(feed.history(), paths.history)  # the days before day 1: the first version
        add_version(paths.history)
    rows = []
    for k in range(done + 1, done + days + 1):
        frame = feed.day(k)
        name = paths.inbox / f"{feed.date(k)}.{'parquet' if k % 2 else 'csv'}"
        with atomic_file(name, suffix=name.suffix) as tmp:
            if name.suffix == ".csv":
                frame.to_csv(tmp, index=False)
            else:
                frame.to_parquet(tmp, index=False)
        out = nightly_flow(params_path=str(params))
        rows.extend({**r, "sim_day": k} for r in out)
        write_json({"last_day": k}, state_file)
        if progress is not None:
            progress(k, out)
    return rows


def simulation_table(rows: list[dict[str, Any]]) -> Any:
    """A rich table, one line per day: data version, checks, drift, training, champion, alarms."""
    from rich.table import Table

    t = Table(title="capmix simulate: one nightly run per day")
    for col in ("day", "date", "data version", "checks", "drift PSI", "trained", "champion", "alarms"):
        t.add_column(col, justify="right" if col in ("day", "drift PSI", "alarms") else "left")
    for r in rows:
        version = str(r.get("version") or "-")[:8] + (" (new)" if r.get("new_version") else "")
        trained = r["trained"]
        if trained == "yes":
            trained = f"v{r['registered']} {r.get('promotion')}" if r.get("registered") else str(r.get("promotion"))
        elif r["checks"] != "quarantined" and not r.get("new_version"):
            trained = "no (no new data)"
        checks = r["checks"] if r["checks"] != "quarantined" else "QUARANTINED"
        psi = "-" if r.get("drift_psi") is None else f"{r['drift_psi']:.2f}" + (" drift" if r.get("drifted") else "")
        t.add_row(str(r.get("sim_day", "")), r["day"], version, checks, psi, trained,
                  f"v{r['champion']}" if r.get("champion") else "-", "-" if r.get("alarms") is None else str(r["alarms"]))
    return t
