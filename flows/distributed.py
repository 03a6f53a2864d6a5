"""Running the training flow on more than one process: Dask task runner, Optuna trials on workers.

Everything is chosen in params.yaml, nothing in code:

* ``flow.task_runner: dask`` with ``flow.dask_address: tcp://scheduler:8786`` uses an existing Dask
  cluster; with no address a ``distributed.LocalCluster`` of ``flow.dask_workers`` worker processes
  is started for the flow run and closed after it.
* ``tune.workers: N`` runs the Optuna search as N tasks on the flow's task runner, all on the one
  study in ``tune.storage`` (a SQLAlchemy URL: sqlite on one machine, PostgreSQL across machines).

Worker processes share no memory with the flow: every input travels as a path or a small dict, and
the MLflow tracking URI is passed explicitly (a worker has no ``mlflow.set_tracking_uri`` of its own).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlflow
from prefect import task

from capmix.data.canonical import read_dataset
from capmix.params import TuneParams


def local_cluster_kwargs(cfg: Any) -> dict[str, Any]:
    """``LocalCluster`` arguments from params ``flow`` (a ``FlowParams``): N single-threaded worker processes.

    One Dask thread per worker (a worker trains one series at a time) and torch limited to its
    share of the cores, so N workers do not oversubscribe the machine (N x all-core torch pools).
    Scheduler, workers and the diagnostics dashboard listen on 127.0.0.1 only (random ports).
    """
    workers = cfg.dask_workers
    torch_threads = cfg.dask_torch_threads or max(1, (os.cpu_count() or 1) // workers)
    threads_env = {k: str(torch_threads)
                   for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "CAPMIX_THREADS")}
    return {
        "n_workers": workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": None,
        "env": threads_env,
    }


def dask_task_runner(cfg: Any):
    """prefect-dask runner: the cluster at ``dask_address``, else a temporary LocalCluster."""
    from prefect_dask import DaskTaskRunner

    address = cfg.dask_address
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_kwargs(cfg))


def trial_shares(n_trials: int, workers: int) -> list[int]:
    """Split ``n_trials`` over ``workers`` (the first ones take the remainder); no empty share."""
    workers = max(1, min(workers, n_trials))
    base, extra = divmod(n_trials, workers)
    return [base + (i < extra) for i in range(workers)]


def tune_config_dict(data: dict[str, str], tune_params: dict[str, Any]) -> dict[str, Any]:
    """The ``TuneConfig`` fields of params ``tune``; one study per training data digest."""
    tp = TuneParams.model_validate(tune_params)
    t = tp.search_config().model_dump()
    # a deployment's shared study (e.g. PostgreSQL with a password) comes from the environment,
    # so no credential has to be written into params.yaml
    if os.environ.get("CAPMIX_TUNE_STORAGE"):
        t["storage"] = os.environ["CAPMIX_TUNE_STORAGE"]
    # one study per training data: a nightly run on new data starts a fresh search
    t["study_name"] = f"{tp.study_name}-{data['digest'][:12]}"
    return t


@task(name="tune-worker")
def tune_worker(data: dict[str, str], base_cfg: dict[str, Any], tune_params: dict[str, Any],
                parent_run_id: str, tracking_uri: str, worker: int = 0, n_trials: int | None = None) -> dict[str, Any]:
    """One worker's share of the Optuna search; one nested MLflow run per finished trial.

    Workers add trials to the same study (``load_if_exists``) and draw from distinct sampler streams
    (``TuneConfig.worker``), so N of them run N different trials at a time.
    """
    from capmix.config import DetectorConfig
    from capmix.tuning import TuneConfig, tune

    series = read_dataset(data["path"])
    t = tune_config_dict(data, tune_params)
    t["worker"] = worker
    if n_trials is not None:
        t["n_trials"] = n_trials
    tcfg = TuneConfig.model_validate(t)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_run(parent_run_id).info.experiment_id

    def on_trial(number, params, value, state):
        run = client.create_run(exp, run_name=f"trial-{number}",
                                tags={"mlflow.parentRunId": parent_run_id, "optuna.state": str(state),
                                      "optuna.worker": str(worker)})
        for k, v in params.items():
            client.log_param(run.info.run_id, k, v)
        if value is not None:
            client.log_metric(run.info.run_id, "val_auc", float(value))
        client.set_terminated(run.info.run_id)

    result = tune(series, DetectorConfig.model_validate(base_cfg), tcfg, on_trial=on_trial)
    return {"worker": worker, "n_trials": int(tcfg.n_trials), "best_value": result.best_value}


def run_tuning(data: dict[str, str], base_cfg: dict[str, Any], tune_params: dict[str, Any], parent_run_id: str,
               parallel: bool) -> dict[str, Any]:
    """The whole search: ``tune.workers`` tasks (submitted when ``parallel``), then the study's best.

    The best parameters are read back from the study after every worker has finished, so the file
    holds the best trial of all workers, not of the one that happened to finish last.
    """
    from capmix.tuning import TuneConfig, plot_study, study_result, write_best_params

    tp = TuneParams.model_validate(tune_params)
    workers, n_trials = tp.workers, tp.n_trials
    uri = mlflow.get_tracking_uri()
    shares = trial_shares(n_trials, workers)
    if parallel and len(shares) > 1:
        futures = [tune_worker.submit(data, base_cfg, tune_params, parent_run_id, uri, i, n)
                   for i, n in enumerate(shares)]
        done = [f.result() for f in futures]
    else:
        done = [tune_worker(data, base_cfg, tune_params, parent_run_id, uri, 0, n_trials)]
    result = study_result(TuneConfig.model_validate(tune_config_dict(data, tune_params)))
    out = write_best_params(result, tp.best_params)
    plot = plot_study(result, Path(out).with_name("study.png"))
    return {"best_params": result.best_params, "best_value": result.best_value, "n_trials": result.n_trials,
            "n_pruned": result.n_pruned, "file": str(out), "plot": str(plot), "workers": len(done)}


__all__ = ["dask_task_runner", "local_cluster_kwargs", "run_tuning", "trial_shares", "tune_worker"]
