"""The training flow: ingest -> validate -> augment -> (tune) -> train -> evaluate -> register -> promote.

Run it:  python -m flows.train [--params params.yaml]
Multi-series datasets (UCR, AIOps: one model per series) fan out with ``task.map``; the task
runner comes from params ``flow`` (threads here, a Dask cluster when you outgrow one machine).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from capmix.params import Params, load_params
from capmix.detectors.registry import family, pipeline_detector
from capmix.data.canonical import read_dataset
from capmix.atomic import write_error, write_json
from capmix.pipeline import write_evaluation
from capmix.redaction import redact
from capmix.evaluation.plots import plot_dtw_histogram, plot_training_curves
from flows import promotion, tasks
from flows.locks import (
    CAPMIX_FLOWS,
    crash_dead_flow_runs,
    fail_dead_runs,
    out_dir_lock,
    registry_lock,
    run_owner_tags,
    tag_flow_run_owner,
)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # read by MLflow's UI to pick the experiment's landing view
HEADLINE = ("validation_rpa_f1", "oracle_rpa_f1", "auc_pr", "auc_roc")


#: The URI this module last handed to mlflow.set_tracking_uri(), which also writes it into
#: MLFLOW_TRACKING_URI: an environment value equal to it is our own echo, not the user's setting
#: (otherwise the first flow of a process would decide the store of every later one).
_LAST_SET_URI: str | None = None


def user_tracking_uri() -> str | None:
    """MLFLOW_TRACKING_URI as the user (or a caller) set it, ignoring what this module wrote."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    return None if env is None or env == _LAST_SET_URI else env


def setup_mlflow(p: Params, experiment: str | None = None) -> None:
    """Tracking and registry URI from the environment (MLFLOW_TRACKING_URI wins) or params ``mlflow``;
    the experiment is ``mlflow.experiment`` unless ``experiment`` names another."""
    cfg = p.mlflow
    global _LAST_SET_URI
    uri = user_tracking_uri() or cfg.tracking_uri
    mlflow.set_tracking_uri(uri)
    _LAST_SET_URI = uri
    mlflow.set_registry_uri(uri)
    name = experiment or cfg.experiment
    location = cfg.artifact_location  # e.g. s3://bucket/mlflow; only used when creating the experiment
    if location and mlflow.get_experiment_by_name(name) is None:
        try:
            mlflow.create_experiment(name, artifact_location=location)
        except mlflow.exceptions.MlflowException:
            if mlflow.get_experiment_by_name(name) is None:  # not a race with another flow run: a real error
                raise
    exp = mlflow.set_experiment(name)
    if exp.tags.get(EXPERIMENT_KIND_TAG) is None:
        # MLflow 3's UI opens an untagged experiment on its empty GenAI overview; this one is about
        # comparing training runs, so it opens on the runs table
        mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, "custom_model_development")


def tune_task(data: dict[str, str], base_cfg: dict[str, Any], tune_params: dict[str, Any], parent_run_id: str,
              parallel: bool = False):
    """Optuna γ/α search on the training period; one nested MLflow run per trial.

    ``tune.workers`` > 1 with a parallel task runner runs that many workers on one study
    (flows/distributed.py); the best of all their trials is written.
    """
    from flows.distributed import run_tuning

    return run_tuning(data, base_cfg, tune_params, parent_run_id, parallel)


@dataclass(frozen=True)
class _Dirs:
    """Where one flow run writes: models, prepared data, plots and metrics under ``flow.out_dir``."""

    out: Path

    models = property(lambda self: str(self.out / "models"))
    work = property(lambda self: str(self.out / "work"))
    plots = property(lambda self: str(self.out / "plots"))
    metrics = property(lambda self: str(self.out / "metrics"))


@flow(name="capmix-train", log_prints=True)
def training_flow(
    params_path: str = "params.yaml", tune: bool | None = None, register: bool = True, refresh_cache: bool = False
) -> dict[str, Any]:
    """Train, evaluate, and (if evaluation passed) register and gate-promote one bundle of detectors.

    ``refresh_cache`` re-runs preparation (CAPMix: augmentation) and training even when their inputs
    are unchanged.
    """
    log = get_run_logger()
    t0 = time.perf_counter()
    tag_flow_run_owner()  # a later run can then tell this one was killed (flows/locks.py)
    for dead in crash_dead_flow_runs(CAPMIX_FLOWS):
        log.warning("flow run %s was left Running by a killed process: marked Crashed", dead)
    p = load_params(params_path)
    dirs = _Dirs(Path(p.flow.out_dir).resolve())
    # one flow at a time per output directory: a second flow started at once waits here instead of
    # overwriting the models the first one is about to register
    with out_dir_lock(dirs.out, log):
        shutil.rmtree(dirs.plots, ignore_errors=True)  # only this run's plots go to MLflow
        data = tasks.ingest(p.dataset.model_dump(), p.generate.model_dump())
        # the report goes to this run's folder: validate.out belongs to the DVC stage (dvc status stays clean)
        checked = tasks.validate(data, {**p.validate.model_dump(), "out": str(dirs.out / "validation")},
                                 p.capmix_window())
        data = {"path": checked["path"], "digest": checked["digest"]}
        names = [s.name for s in read_dataset(data["path"])]
        _start_tracking(p, log)
        with mlflow.start_run(run_name=f"train-{time.strftime('%Y%m%d-%H%M%S')}") as run:
            mlflow.log_params({f"train.{k}": v for k, v in p.detector_config().model_dump().items()})
            mlflow.set_tags({"dataset": p.dataset.name, "data.digest": data["digest"], "detector": p.detector,
                             **run_owner_tags()})
            det = _detector(p, data, run.info.run_id, tune, log)
            fan_out = _fan_out(p)
            trained = _train_series(tasks.detector_spec(det, p.detector), data, names,
                                    (dirs.work, dirs.models, dirs.plots), refresh_cache, fan_out)
            metrics = _evaluate(p, data, names, trained, dirs, fan_out, log)
            summary = {"run_id": run.info.run_id, "metrics": {k: metrics.get(k) for k in HEADLINE},
                       "detector": p.detector, "dataset": p.dataset.name, "series": names,
                       "out": {k: str(getattr(dirs, k)) for k in ("models", "metrics", "plots")}}
            summary.update(_register_and_promote(p, data, dirs.models, metrics, run.info.run_id, register, log))
            summary["seconds"] = round(time.perf_counter() - t0, 1)
            write_json(summary, dirs.out / "flow_summary.json")
            create_markdown_artifact(_markdown(summary), key="capmix-train-summary")
    return summary


def _start_tracking(p: Params, log: Any) -> None:
    """The MLflow store and experiment; runs a killed process left RUNNING are marked FAILED first."""
    setup_mlflow(p)
    exp = mlflow.get_experiment_by_name(p.mlflow.experiment)
    for dead in fail_dead_runs(mlflow.MlflowClient(), exp.experiment_id) if exp is not None else []:
        log.warning("MLflow run %s was left RUNNING by a killed process: marked FAILED", dead)


def _detector(p: Params, data: dict[str, str], run_id: str, tune: bool | None, log: Any) -> Any:
    """The unfitted detector params.yaml names, after the optional gamma/alpha search (CAPMix family)."""
    kind = p.detector
    do_tune = p.tune.enabled if tune is None else tune
    if do_tune and family(kind) != "capmix":
        # the Optuna search is over CAPMix's gamma/alpha; other detectors train with their params as set
        log.warning("tuning searches CAPMix's gamma/alpha only: skipped for detector %r", kind)
        do_tune = False
    if do_tune:
        parallel = p.flow.task_runner != "sequential"
        best = tune_task(data, p.detector_config().model_dump(), p.tune.model_dump(), run_id, parallel)
        mlflow.log_artifact(best["plot"], "tuning")
        mlflow.log_artifact(best["file"], "tuning")
    overrides = p.tuned_overrides(do_tune)  # the one rule (capmix/params.py), as `capmix train`
    det = pipeline_detector(p, tuned=overrides)
    if overrides and family(kind) == "capmix":
        log.info("training with tuned parameters %s", overrides)
        mlflow.log_params({f"tuned.{k}": str(v) for k, v in overrides.items()})
    if family(kind) != "capmix":  # CAPMix's own (train.*) are logged with the run
        mlflow.log_params({f"{kind}.{k}": str(v)[:500] for k, v in det.get_params().items()})
    return det


def _evaluate(p: Params, data: dict[str, str], names: list[str], trained: list[dict[str, Any]], dirs: _Dirs,
              fan_out: Any, log: Any) -> dict[str, float]:
    """Score every test period, write and log metrics, plots and (params ``shift``) the anomaly shift."""
    ecfg = p.evaluate
    plot_training_curves({t["series"]: t["history"] for t in trained}, Path(dirs.plots) / "training_curves.png")
    plot_for = [names.index(t["series"]) < ecfg.max_plots for t in trained]
    evaluated = fan_out(tasks.evaluate, [(data, t, ecfg.model_dump(), dirs.plots if show else None)
                                         for t, show in zip(trained, plot_for)])
    metrics = write_evaluation(
        [e["result"] for e in evaluated], ecfg, dirs.metrics,
        [e["scores"] for e in evaluated], [e["labels"] for e in evaluated],
        [e["threshold"] for e in evaluated], dirs.plots,
    )
    mlflow.log_metrics({k.replace("/", "."): v for k, v in metrics.items() if np.isfinite(v)})
    for e in evaluated:
        r = e["result"]
        mlflow.log_metrics({f"series.{r.series}.{k.replace('/', '.')}": v
                            for k, v in r.flat().items() if k.endswith("rpa_f1") and np.isfinite(v)})
    if p.shift.enabled:
        _log_shift(p.shift, data, trained, p.detector, dirs.out / "shift", log)
    mlflow.log_artifacts(dirs.plots, "plots")
    for name in ("metrics.json", "metrics_all.json", "per_series.csv"):
        mlflow.log_artifact(f"{dirs.metrics}/{name}")
    return metrics


def _register_and_promote(p: Params, data: dict[str, str], models_dir: str, metrics: dict[str, float],
                          run_id: str, register: bool, log: Any) -> dict[str, Any]:
    """The evaluation gate, then registration and the champion/challenger gate (nothing when it fails)."""
    reg = p.register
    value = float(metrics.get(reg.metric, float("nan")))
    passed = bool(np.isfinite(value) and value >= reg.min_metric)
    mlflow.set_tag("evaluation.passed", str(passed))
    if not register:
        return {}
    if not passed:
        log.warning("evaluation gate failed (%s = %s < %s): nothing registered", reg.metric, value, reg.min_metric)
        return {}
    # register + promote under the model's registry lock: concurrent flows register one after the other
    # and each gate compares against the champion of that moment
    with registry_lock(mlflow.get_tracking_uri(), reg.model_name) as lock:
        log.info("holding registry lock %s", lock)
        from flows.bundle import models_fingerprint

        fingerprint = models_fingerprint(models_dir)  # hashed once: the twin lookup and the new version's tag
        same = _registered_twin(reg.model_name, fingerprint)
        if same is not None:
            log.info("the trained models are identical to registered v%s: not registered again", same)
            mlflow.set_tag("registry.identical_to", same)
            return {"model_name": reg.model_name, "version": same, "promotion": "identical",
                    "reason": f"the trained models are identical to registered v{same}: not registered again"}
        out = _register(p, data, models_dir, metrics, run_id, fingerprint)
        out.update(promotion.gate(reg.model_name, out["version"], reg.metric, reg.margin, value, data["path"],
                                  p.evaluate.model_dump(), reg.promote_ties))
    return out


def _registered_twin(name: str, fingerprint: str) -> str | None:
    """The registered version whose bundle fingerprint (``flows.bundle.models_fingerprint``) is this one."""
    found = [v for v in mlflow.MlflowClient().search_model_versions(f"name='{name}'")
             if v.tags.get("model.fingerprint") == fingerprint]
    return str(min(int(v.version) for v in found)) if found else None


@task(name="register")
def _register(p, data, models_dir, metrics, run_id, fingerprint):
    """Log the bundle into the training run and register it: no retries, a retry would add a version."""
    from capmix.data.canonical import to_frame
    from flows.bundle import log_bundle

    name = p.register.model_name
    example = to_frame(read_dataset(data["path"])[:1])
    tags = {"data.digest": data["digest"], "model.fingerprint": fingerprint}
    mv = log_bundle(models_dir, example, name, tags=tags,
                    metrics={k: v for k, v in metrics.items() if k in HEADLINE}, params=p.model_dump(), run_id=run_id)
    return {"model_name": name, "version": str(mv.version)}


def _train_series(spec: dict[str, Any], data: dict[str, str], names: list[str], dirs: tuple[str, str, str],
                  refresh_cache: bool, fan_out: Any) -> list[dict[str, Any]]:
    """prepare (CAPMix: CutAddPaste + DTW revision) then train, per series, for any detector."""
    work_dir, models_dir, plots_dir = dirs
    # a cached result is only as good as the files it points to: redo a stage whose outputs are gone
    missing = any(not tasks.prepared_path(work_dir, n, data).exists() for n in names)
    prepare_task = tasks.prepare.with_options(refresh_cache=(refresh_cache or missing) or None)
    # per series: a series whose model is missing retrains (resuming from its checkpoint), the others
    # keep their cached result
    train_tasks = [tasks.train.with_options(refresh_cache=(
        refresh_cache or missing or not (Path(models_dir) / n / "checksums.json").exists()) or None) for n in names]
    prepared = fan_out(prepare_task, [(data, n, spec, work_dir) for n in names])
    counts = sorted({k for a in prepared for k, v in a["report"].items() if isinstance(v, int)})
    mlflow.log_metrics({f"augment.{k}": float(sum(a["report"].get(k, 0) for a in prepared)) for k in counts})
    dists = np.concatenate([np.asarray(a["distances"], dtype=float) for a in prepared])
    if dists.size:
        cutoffs = [a["report"].get("dtw_cutoff", np.nan) for a in prepared]
        # pooled over series; the cutoff line is the mean of the per-series cutoffs
        plot_dtw_histogram(dists, float(np.nanmean(cutoffs)), Path(plots_dir) / "dtw_hist.png")
    trained = fan_out(train_tasks, [(a, spec, models_dir) for a in prepared])
    for t in trained:  # e.g. the window CoAD resolved from the period
        mlflow.log_metrics({f"{spec['name']}.{k}.{t['series']}": float(v) for k, v in t["report"].items()
                            if isinstance(v, (int, float)) and k not in ("best_epoch", "epochs")})
    return trained


def _log_shift(cfg: Any, data: dict[str, str], trained: list[dict[str, Any]], kind: str, shift_dir: Path,
               log: Any) -> None:
    """Anomaly shift (params ``shift``, ``cfg``) of the first series: metrics ``shift.*`` and UMAP PNGs
    under ``shift/``."""
    if family(kind) != "capmix":
        log.warning("anomaly shift is measured in CAPMix's TCN feature space: skipped for detector %r", kind)
        return
    shutil.rmtree(shift_dir, ignore_errors=True)
    rows = []
    for i, t in enumerate(trained[: cfg.max_series]):
        png = str(shift_dir / f"shift_{t['series']}.png") if i < cfg.plots else None
        try:
            rows.append(tasks.anomaly_shift(data, t, png))
        except ValueError as exc:  # e.g. no anomalous test window in this series
            log.warning("anomaly shift of %s skipped: %s", t["series"], exc)
    for r in rows:
        mlflow.log_metrics({f"shift.{r['series']}.{k.replace('/', '.')}": v for k, v in r["numbers"].items()})
    if rows:
        keys = [k for k in rows[0]["numbers"] if k.startswith(("energy/", "mmd/"))]
        mlflow.log_metrics({f"shift.{k.replace('/', '.')}": float(np.mean([r["numbers"][k] for r in rows]))
                            for k in keys})
        mlflow.log_metric("shift.eq10_energy_holds", float(np.mean([r["numbers"]["eq10_energy"] for r in rows])))
        write_json([{"series": r["series"], **r["numbers"]} for r in rows], shift_dir / "shift.json")
        mlflow.log_artifacts(str(shift_dir), "shift")


def _markdown(summary: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in summary["metrics"].items() if v is not None)
    extra = ""
    if "version" in summary:
        extra = f"\n\nRegistered `{summary['model_name']}` v{summary['version']}: **{summary['promotion']}** ({summary['reason']})"
    return f"## capmix training run\n\n| metric | value |\n|---|---|\n{rows}{extra}\n"


def _fan_out(p: Params):
    """Per-series fan-out: mapped over the task runner, or in the flow's own thread when sequential.

    ``flow.task_runner: sequential`` (the default on small machines) calls the tasks one after
    another in the flow's thread: torch trains ~1.25x slower in a pool thread than in the main
    thread here (bench/bench_flow_overhead.py), and on 2 cores two concurrent fits gain nothing.
    """
    def per_call(task, calls):  # one task for all calls, or one task per call
        return task if isinstance(task, list) else [task] * len(calls)

    if p.flow.task_runner == "sequential":
        return lambda task, calls: [t(*args) for t, args in zip(per_call(task, calls), calls)]

    def mapped(task, calls):
        futures = [t.submit(*args) for t, args in zip(per_call(task, calls), calls)]
        return [f.result() for f in futures]

    return mapped


def runner_for(p: Params):
    """Task runner from params ``flow``: threads (also used by ``sequential``), or Dask (prefect-dask):
    the cluster at ``dask_address``, else a LocalCluster of ``dask_workers`` processes per flow run."""
    cfg = p.flow
    if cfg.task_runner == "dask":
        from flows.distributed import dask_task_runner

        return dask_task_runner(cfg)
    return ThreadPoolTaskRunner(max_workers=cfg.max_workers)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--tune", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--no-register", action="store_true")
    ap.add_argument("--debug", action="store_true", help="show Prefect's tracebacks of a user error")
    args = ap.parse_args(argv)
    from flows.errors import USER_ERRORS, run_main

    def run() -> tuple[dict[str, Any], Params]:
        p = load_params(args.params)
        return training_flow.with_options(task_runner=runner_for(p))(
            params_path=args.params, tune=args.tune, register=not args.no_register), p

    # bad data, bad params, a broken model, a registry lock held too long: one message and exit 2
    code, out = run_main(run, args.debug, (*USER_ERRORS, TimeoutError),
                         write_failure=lambda exc: write_error(exc, target="a writable flow.out_dir"))
    if code:
        return code
    print_summary(*out)
    return 0


def print_summary(summary: dict[str, Any], p: Params) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="capmix training flow (Eq. 13 RPA-F1, window granularity)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in summary["metrics"].items():
        table.add_row(k, "n/a" if v is None else f"{v:.4f}")
    con = Console()
    series = summary.get("series") or []
    shown = ", ".join(series[:4]) + (f", ... ({len(series)} in all)" if len(series) > 4 else "")
    con.print(f"trained {summary.get('detector', 'capmix')} on {len(series)} series of dataset "
              f"'{summary.get('dataset', '?')}': {shown}", soft_wrap=True)
    con.print(table)
    if "version" in summary:
        con.print(f"model [bold]{summary['model_name']}[/] v{summary['version']}: {summary['promotion']} — "
                  f"{summary['reason']}", soft_wrap=True)
    cwd = Path.cwd()
    for what, path in (summary.get("out") or {}).items():
        rel = Path(path).relative_to(cwd) if Path(path).is_relative_to(cwd) else Path(path)
        con.print(f"  {what + ':':9s}{rel}/", soft_wrap=True)
    uri = redact(p.mlflow.tracking_uri)
    con.print(f"done in {summary['seconds']}s. Look at the runs (then open http://127.0.0.1:5000 and "
              "http://127.0.0.1:4200):", soft_wrap=True)
    # one command per line, never wrapped, so each can be copied as it is
    # DO_NOT_TRACK: MLflow's server reports usage otherwise (Prefect's is off in prefect.toml)
    con.print(f"  DO_NOT_TRACK=true .venv/bin/mlflow ui --backend-store-uri {uri}", soft_wrap=True, highlight=False)
    con.print("  .venv/bin/prefect server start", soft_wrap=True, highlight=False)


if __name__ == "__main__":
    sys.exit(main())
