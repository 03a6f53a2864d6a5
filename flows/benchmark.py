"""The benchmark flow: datasets x methods x seeds (and the Fig. 5 / Fig. 8 studies) as Prefect tasks.

Run it:  capmix benchmark --dataset ucr --methods capmix,cap,iforest --seeds 3 [--subset 10] [--workers 2]
         python -m flows.benchmark ...   (same options)

Every cell (one series, method, seed) is a task calling ``capmix.evaluation.benchmark.run_cell``; finished
cells are files, so a re-run resumes. ``--workers N`` (> 1) runs the cells on a local Dask
cluster of N single-threaded worker processes through prefect-dask; ``benchmark.dask_address``
points the same flow at an existing cluster. Results go to MLflow as one parent run with one
child run per (dataset, method[, study point]), and to ``<out_dir>/<name>.md|csv``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import mlflow
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE as NO_CACHE
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from capmix.evaluation.benchmark import (
    BenchmarkConfig,
    Cell,
    DatasetSpec,
    cell_digest,
    load_benchmark_dataset,
    load_cells,
    pending,
    plan,
    run_cell,
    summarise,
    write_report,
)
from capmix.params import Params, load_params
from capmix.data.canonical import Series


@task(cache_policy=NO_CACHE, retries=0)
def cell_task(cell: Cell, series: Series, params: dict[str, Any], spec: DatasetSpec, out_dir: str,
              max_epochs: int | None, threads: int | None) -> dict[str, Any]:
    """One benchmark cell, with the thread count pinned to the worker's share (an explicit setting
    wins over the detectors' load-based choice, capmix/threads.py)."""
    from capmix.threads import limited_threads

    with limited_threads(threads or None):
        r = run_cell(cell, series, params, spec, out_dir, max_epochs)
    return {"series": cell.series, "method": cell.method, "seconds": r.fit_seconds + r.score_seconds}


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn())


def _config(p: Params, overrides: dict[str, Any] | None) -> BenchmarkConfig:
    """params ``benchmark`` with the command line's overrides on top."""
    return BenchmarkConfig.model_validate({**p.benchmark.model_dump(), **(overrides or {})})


def _runner(cfg: BenchmarkConfig):
    if cfg.workers <= 1 and not cfg.dask_address:
        return None
    from prefect_dask import DaskTaskRunner

    if cfg.dask_address:
        return DaskTaskRunner(address=cfg.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.workers, "threads_per_worker": 1, "processes": True})


def _log_mlflow(p: Params, cfg: BenchmarkConfig, rows: list[dict[str, Any]], files: tuple[Path, ...],
                name: str, seconds: float) -> str:
    from flows.train import setup_mlflow

    setup_mlflow(p, experiment=cfg.experiment)
    with mlflow.start_run(run_name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}") as parent:
        mlflow.log_params({"datasets": ",".join(cfg.datasets), "methods": ",".join(cfg.methods),
                           "seeds": ",".join(map(str, cfg.seeds)), "subset": cfg.subset, "half": cfg.half, "workers": cfg.workers,
                           "max_epochs": cfg.max_epochs})
        mlflow.log_metric("wall_seconds", seconds)
        for f in files:
            mlflow.log_artifact(str(f))
        for row in rows:
            child = f"{row['dataset']}/{row['method']}" + (f"@{row['study']}" if row["study"] else "")
            with mlflow.start_run(run_name=child, nested=True):
                mlflow.set_tags({"dataset": row["dataset"], "method": row["method"], "study": row["study"],
                                 "complete": str(row["complete"])})
                mlflow.log_params({"seeds": row["seeds"], "n_series": row["n_series"]})
                mlflow.log_metrics({k.replace("/", ".").replace("@", "_"): v for k, v in row.items()
                                    if isinstance(v, float) and v == v})
        return parent.info.run_id


@flow(name="capmix-benchmark", log_prints=True)
def benchmark_flow(params_path: str = "params.yaml", overrides: dict[str, Any] | None = None,
                   study: str | None = None, log_to_mlflow: bool = True, name: str | None = None,
                   report_only: bool = False) -> dict[str, Any]:
    """Run the benchmark (or a study) from params ``benchmark`` with CLI ``overrides``.

    ``study``: ``contamination`` (Fig. 5) or ``sensitivity`` (Fig. 8), planned by
    ``capmix.evaluation.studies`` from params ``studies``; without it the datasets x methods x seeds grid.
    ``name``: the report's file name (``<out_dir>/<name>.md|csv``), so runs sharing one cell
    directory keep their own reports.
    """
    from capmix.evaluation import studies

    log = get_run_logger()
    # one "Finished in state Completed" line per cell would bury the progress bar
    logging.getLogger("prefect.task_runs").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    p = load_params(params_path)
    raw = p.model_dump()  # what the harness's functions take (capmix.evaluation.benchmark, studies)
    cfg = _config(p, overrides)
    scfg = studies.study_config(raw, study) if study else None
    if scfg is not None:
        cfg = scfg.restrict(cfg)
    series = {ds: load_benchmark_dataset(ds, spec, cfg.root, cfg.subset, cfg.half) for ds, spec in cfg.datasets.items()}
    by_name = {(ds, s.name): s for ds, items in series.items() for s in items}
    cells = scfg.cells(series, cfg.seeds) if scfg is not None else plan(cfg, series)
    report_name = name or study or "results"
    digests = {c: cell_digest(c, raw, cfg.datasets[c.dataset], cfg.max_epochs) for c in cells}
    # report_only: the report of the finished cells as they are (e.g. computed under params whose
    # changed keys do not affect them), nothing run
    todo = [] if report_only else pending(cells, cfg.out_dir, digests)
    log.info("%d cells planned, %d already done, %d to run", len(cells), len(cells) - len(todo), len(todo))
    # torch's OpenMP threads spin while they wait: on a busy or oversubscribed machine two of
    # them made a small fit 13x slower than one (measured); parallelism comes from workers
    threads = cfg.threads
    args = [(c, by_name[(c.dataset, c.series)], raw, cfg.datasets[c.dataset], cfg.out_dir, cfg.max_epochs, threads)
            for c in todo]
    with _progress() as prog:
        bar = prog.add_task(report_name, total=len(cells), completed=len(cells) - len(todo), info="")
        if cfg.workers > 1 or cfg.dask_address:
            from prefect.futures import as_completed

            futures = [cell_task.submit(*a) for a in args]
            for fut in as_completed(futures):
                done = fut.result()
                prog.update(bar, advance=1, info=f"{done['method']} {done['series']} {done['seconds']:.1f}s")
        else:
            for a in args:  # the flow thread: torch trains faster here than in a pool thread
                done = cell_task(*a)
                prog.update(bar, advance=1, info=f"{done['method']} {done['series']} {done['seconds']:.1f}s")
    rows = summarise(load_cells(cfg.out_dir), cells)
    files = write_report(rows, cfg.out_dir, report_name, paper=None if scfg else studies.paper_numbers(),
                         title=scfg.title if scfg else "capmix benchmark")
    if scfg is not None:
        files = (*files, scfg.plot(rows, Path(cfg.out_dir) / f"{report_name}.png"))
    ucr_datasets = [ds for ds, spec in cfg.datasets.items() if spec.ucr_widen is not None] if scfg is None else []
    for ds in ucr_datasets:
        from capmix.evaluation.plots import plot_ucr_accuracy

        files = (*files, plot_ucr_accuracy([r for r in rows if r["dataset"] == ds],
                                           Path(cfg.out_dir) / f"{report_name}_{ds}_ucr.png",
                                           paper=studies.paper_numbers().get(ds)))
    seconds = time.perf_counter() - t0
    run_id = _log_mlflow(p, cfg, rows, files, report_name, seconds) if log_to_mlflow else None
    log.info("benchmark done in %.0fs: %s", seconds, files[1])
    return {"rows": rows, "report": str(files[1]), "csv": str(files[0]), "seconds": seconds,
            "cells": len(cells), "ran": len(todo), "mlflow_run_id": run_id}


def run(params_path: str = "params.yaml", overrides: dict[str, Any] | None = None,
        study: str | None = None, log_to_mlflow: bool = True, name: str | None = None,
        report_only: bool = False) -> dict:
    """Run the flow with the task runner the config asks for (Dask when workers > 1)."""
    cfg = _config(load_params(params_path), overrides)
    runner = _runner(cfg)
    f = benchmark_flow.with_options(task_runner=runner) if runner is not None else benchmark_flow
    return f(params_path=params_path, overrides=overrides, study=study, log_to_mlflow=log_to_mlflow, name=name,
             report_only=report_only)
