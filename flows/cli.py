"""The full ``capmix`` command: the library's commands plus the registry ones (MLflow lives in flows/).

``capmix promote`` / ``capmix rollback`` move the production alias by hand; capmix/ itself stays free
of orchestration and tracking imports, so these commands are added here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from capmix.cli import ParamsOpt, _fail, _params, _user_errors, app, console

def _client(p: Any):
    import os

    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", p.mlflow.tracking_uri))
    return mlflow.MlflowClient()


def _on_registry(params: Path, what: str, action: Any) -> tuple[str, Any]:
    """Run ``action(client, model_name)`` on the registry; a failure is one line and exit 2."""
    p = _params(params)
    name = p.register.model_name
    try:
        return name, action(_client(p), name)
    except Exception as exc:  # registry errors are user-facing here
        _fail(f"could not {what} {name}: {exc}")


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="model version to make champion")],
    reason: Annotated[str, typer.Option(help="why (kept in the registry's history)")] = "manual promotion",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Move the production alias (champion) to VERSION by hand; the history is kept in tags."""
    from flows.promotion import promote as do_promote

    name, _ = _on_registry(params, f"promote v{version} of", lambda c, n: do_promote(c, n, version, reason))
    console.print(f"{name}@champion -> v{version}")


@app.command()
def rollback(
    reason: Annotated[str, typer.Option(help="why (kept in the registry's history)")] = "manual rollback",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Move champion back to the previous champion."""
    from flows.promotion import rollback as do_rollback

    name, entry = _on_registry(params, "roll back", lambda c, n: do_rollback(c, n, reason))
    console.print(f"{name}@champion -> v{entry.get('version')}")


@app.command()
def benchmark(
    dataset: Annotated[str | None, typer.Option(help="comma-separated datasets from params benchmark.datasets")] = None,
    methods: Annotated[str | None, typer.Option(help="comma-separated methods (capmix, cap, iforest, ...)")] = None,
    seeds: Annotated[int | None, typer.Option(help="number of seeds (0..N-1)")] = None,
    subset: Annotated[int | None, typer.Option(help="only the first N series of each dataset")] = None,
    half: Annotated[str | None, typer.Option(help="odd | even: only the odd- or even-numbered series")] = None,
    workers: Annotated[int | None, typer.Option(help="parallel series on a local Dask cluster")] = None,
    max_epochs: Annotated[int | None, typer.Option(help="cap CAPMix epochs (quick runs)")] = None,
    out_dir: Annotated[str | None, typer.Option(help="where cells and reports go")] = None,
    study: Annotated[str | None, typer.Option(help="contamination (Fig. 5) or sensitivity (Fig. 8)")] = None,
    mlflow_log: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="log parent/child runs")] = True,
    name: Annotated[str | None, typer.Option(help="report name: <out_dir>/<name>.md|csv (default: results)")] = None,
    report_only: Annotated[bool, typer.Option("--report-only", help="report the finished cells, run nothing")] = False,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Datasets x methods x seeds under both threshold protocols; resumable; Markdown + CSV + MLflow."""
    from capmix.detectors.registry import entry

    p = _params(params)
    over: dict[str, Any] = {}
    if dataset:
        known = p.benchmark.datasets
        names = [d.strip() for d in dataset.split(",") if d.strip()]
        missing = [d for d in names if d not in known]
        if missing:
            _fail(f"dataset(s) {missing} are not in params benchmark.datasets ({sorted(known)}); add them there")
        over["datasets"] = {d: known[d].model_dump() for d in names}
    if methods:
        over["methods"] = [m.strip() for m in methods.split(",") if m.strip()]
        with _user_errors():
            for m in over["methods"]:
                entry(m)  # an unknown name: one line naming the valid ones
    if seeds is not None:
        over["seeds"] = list(range(seeds))
    for key, val in (("subset", subset), ("half", half), ("workers", workers), ("max_epochs", max_epochs), ("out_dir", out_dir)):
        if val is not None:
            over[key] = val
    from flows.benchmark import run

    with _user_errors():
        out = run(str(params), overrides=over, study=study, log_to_mlflow=mlflow_log, name=name,
                  report_only=report_only)
    typer.echo(Path(out["report"]).read_text())  # plain stdout: Markdown must not be re-wrapped
    console.print(f"{out['ran']} of {out['cells']} cells run in {out['seconds']:.0f}s; report: {out['report']}")


@app.command()
def simulate(
    days: Annotated[int, typer.Option(help="simulated days to run (a second call continues with the next ones)")] = 7,
    workdir: Annotated[Path, typer.Option(help="the simulation's folder: inbox, history, MLflow store, Prefect DB")] = Path("simulation"),
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Run the nightly flow over simulated days (params `simulate`: drift, broken-schema and repeated days)
    and print one line per day."""
    import os
    import sys

    from flows.simulate import prefect_env

    if "prefect" in sys.modules:  # settings are read on import: too late to point Prefect at the workdir
        _fail("capmix simulate must start before Prefect is imported; run it as its own command")
    env = prefect_env(workdir)
    Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    _params(params)  # a params error is one line, before anything starts
    from flows.simulate import simulate as run_days, simulation_table

    def progress(k: int, rows: list) -> None:
        for r in rows:
            console.print(f"day {k} ({r['day']}): checks {r['checks']}, trained {r['trained']}, "
                          f"champion v{r.get('champion')}, alarms {r.get('alarms')}", soft_wrap=True)

    from flows.errors import quiet_user_errors

    with _user_errors(), quiet_user_errors(False):
        rows = run_days(days, workdir, str(params), progress=progress)
    from rich.console import Console

    out = Console(width=max(console.width, 120))  # stdout, one line per day, never wrapped
    out.print(simulation_table(rows))
    home = env["PREFECT_HOME"]
    out.print(f"runs: PREFECT_HOME={home} PREFECT_API_DATABASE_CONNECTION_URL={env['PREFECT_API_DATABASE_CONNECTION_URL']} "
              ".venv/bin/prefect server start   (then http://127.0.0.1:4200)", soft_wrap=True, highlight=False)
    out.print(f"      DO_NOT_TRACK=true .venv/bin/mlflow ui --backend-store-uri sqlite:///{Path(workdir).resolve() / 'mlflow.db'}",
              soft_wrap=True, highlight=False)


__all__ = ["app"]
