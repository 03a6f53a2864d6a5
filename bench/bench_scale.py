"""Scale-out measurements behind docs/scale.md: per-series costs, fixed overheads, 1 vs 2 workers.

    python bench/bench_scale.py [--out docs/scale_measurements.json] [--skip-flows]

1. Per-series cost of augment (CutAddPaste + DTW revision), training and test scoring, with torch
   on ONE thread (the unit a single-core worker runs), on the default data and, where
   ../shared/datasets exists, on a few UCR series (UCR preset) and AIOps KPIs (AIOps preset). The
   point lengths of all 250 UCR series and all 29 AIOps KPIs are counted for the projection.
2. Fixed costs that do not shrink with workers: MLflow calls on sqlite vs PostgreSQL, Optuna trial
   bookkeeping on sqlite vs PostgreSQL, Prefect-task overhead through a Dask LocalCluster, cluster start.
3. The training flow, sequential vs a two-worker Dask LocalCluster, on the default data and a UCR subset.

Every figure is measured on the machine it runs on; docs/scale.md projects from them.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from capmix.telemetry import switch_off

switch_off()

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "scale"))  # the throw-away PostgreSQL server of the tests
DATA = Path(os.environ.get("CAPMIX_DATA_ROOT", ROOT.parent / "shared" / "datasets"))
UCR_SAMPLE = [1, 26, 76, 126, 201]     # spread over the archive (different source families)
AIOPS_SAMPLE = 3                        # the first KPIs by ID


def series_costs(series, cfg) -> list[dict]:
    import torch

    from capmix.detectors.capmix.detector import CAPMixDetector

    torch.set_num_threads(1)
    rows = []
    for s in series:
        det = CAPMixDetector(cfg)
        t0 = time.perf_counter()
        prepared = det.prepare(*s.train)
        t1 = time.perf_counter()
        det.fit_prepared(prepared)
        t2 = time.perf_counter()
        det.decision_function(s.test[0])
        t3 = time.perf_counter()
        rows.append({"series": s.name, "n_train": int(s.train_end), "n_test": int(s.values.shape[0] - s.train_end),
                     "n_train_windows": int(prepared.x_train.shape[0]), "epochs": len(det.history_),
                     "augment_s": t1 - t0, "train_s": t2 - t1, "score_s": t3 - t2})
        print(f"  {s.name}: {rows[-1]}", flush=True)
    return rows


def count_lines_xz(path: Path) -> int:
    n = 0
    with lzma.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            n += chunk.count(b"\n")
    return n


def ucr_lengths() -> list[dict]:
    from capmix.data.loaders import UCR_NAME, ucr_files

    out = []
    for f in ucr_files(DATA / "ucr"):
        with lzma.open(f, "rt") as fh:
            n = len(fh.read().split())  # some files hold every value on one line
        out.append({"name": f.name[:3], "length": n, "train_end": int(UCR_NAME.match(f.name).group(3))})
    return out


def aiops_lengths() -> list[dict]:
    files = sorted((DATA / "kpi_aiops2018" / "phase2_train").glob("*.csv.xz"))
    return [{"name": f.name[:8], "length": count_lines_xz(f)} for f in files]


def _time_calls(fn, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n


def mlflow_latency(uri: str, tmp: Path) -> dict:
    """Seconds per call against one tracking store (what every series/trial/flow run pays)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.create_experiment(f"bench-{time.time_ns()}", artifact_location=(tmp / "art").as_uri())
    run = client.create_run(exp)
    rid = run.info.run_id
    art = tmp / "artifact.json"
    art.write_text(json.dumps({"x": list(range(200))}))
    out = {
        "create_run_s": _time_calls(lambda i: client.set_terminated(client.create_run(exp).info.run_id), 20),
        "log_metric_s": _time_calls(lambda i: client.log_metric(rid, "m", float(i), step=i), 100),
        "log_param_s": _time_calls(lambda i: client.log_param(rid, f"p{i}", i), 50),
        "log_artifact_s": _time_calls(lambda i: client.log_artifact(rid, str(art), f"a{i}"), 20),
    }
    client.set_terminated(rid)
    return out


def optuna_latency(url: str) -> float:
    """Seconds of storage bookkeeping per trial (ask, 3 reports, tell) with a trivial objective."""
    import optuna

    from capmix.tuning import _open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=_open_storage(url), study_name=f"bench-{time.time_ns()}", direction="maximize")

    def one(i):
        t = study.ask()
        x = t.suggest_float("x", 0.0, 1.0)
        for step in range(3):
            t.report(x, step)
        study.tell(t, x)

    return _time_calls(one, 30)


def prefect_dask_overhead(workers: int = 2) -> dict:
    """Per-task cost of a Prefect task on a LocalCluster of ``workers`` processes (no work in the task)."""
    from prefect import flow, task

    from flows.distributed import dask_task_runner

    @task
    def noop(i: int) -> int:
        return i

    n = 60

    @flow
    def many():
        t0 = time.perf_counter()
        futures = [noop.submit(i) for i in range(n)]
        [f.result() for f in futures]
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    runner = dask_task_runner({"dask_workers": workers})
    elapsed = many.with_options(task_runner=runner)()
    total = time.perf_counter() - t0
    return {"tasks": n, "tasks_s": elapsed, "per_task_s": elapsed / n, "flow_with_cluster_s": total,
            "cluster_start_and_stop_s": total - elapsed}


def flow_runs(tmp: Path, name: str, dataset: dict, train: dict, generate: dict | None = None) -> dict:
    """Wall time of the training flow, sequential vs dask (2 workers), registration off."""
    import yaml

    from capmix.config import load_params
    from flows.train import runner_for, training_flow

    out = {}
    for runner_name in ("sequential", "dask"):
        p = yaml.safe_load((ROOT / "params.yaml").read_text())
        p["dataset"].update(dataset)
        p["train"].update(train)
        if generate:
            p["generate"].update(generate)
        p["mlflow"].update(tracking_uri=f"sqlite:///{tmp}/mlflow-{name}.db", experiment=f"bench-{name}",
                           artifact_location=(tmp / "artifacts").as_uri())
        p["flow"].update(task_runner=runner_name, dask_workers=2, out_dir=str(tmp / f"{name}-{runner_name}"))
        p["validate"]["out"] = str(tmp / "reports")
        p["tune"]["best_params"] = str(tmp / "none.yaml")
        path = tmp / f"{name}-{runner_name}.yaml"
        path.write_text(yaml.safe_dump(p))
        t0 = time.perf_counter()
        summary = training_flow.with_options(task_runner=runner_for(load_params(path)))(
            params_path=str(path), register=False, refresh_cache=True)
        out[runner_name] = {"wall_s": time.perf_counter() - t0, "metrics": summary["metrics"]}
        print(f"  flow {name} {runner_name}: {out[runner_name]['wall_s']:.1f} s", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/scale_measurements.json")
    ap.add_argument("--skip-flows", action="store_true")
    args = ap.parse_args()
    os.chdir(ROOT)

    from capmix.config import detector_config, load_params
    from capmix.data.canonical import read_dataset

    p = load_params("params.yaml")
    res: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                             "loadavg_start": os.getloadavg()}, "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    print("per-series costs (torch 1 thread)", flush=True)
    res["default"] = series_costs(read_dataset(p["dataset"]["path"]), detector_config(p))
    if DATA.is_dir():
        from capmix.data.loaders import load_aiops, load_ucr

        res["ucr"] = series_costs(load_ucr(DATA / "ucr", ids=UCR_SAMPLE), detector_config(p, preset="ucr"))
        res["aiops"] = series_costs(load_aiops(DATA, subset=AIOPS_SAMPLE),
                                    detector_config(p, preset="aiops"))
        print("dataset lengths", flush=True)
        res["ucr_lengths"] = ucr_lengths()
        res["aiops_lengths"] = aiops_lengths()

    print("fixed costs", flush=True)
    from pgserver import find_bin_dir, temporary_postgres

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        res["mlflow"] = {"sqlite": mlflow_latency(f"sqlite:///{tmp}/mlflow.db", tmp)}
        res["optuna_per_trial_s"] = {"sqlite": optuna_latency(f"sqlite:///{tmp}/optuna.db")}
        if find_bin_dir() is not None:
            with temporary_postgres() as pg:
                res["mlflow"]["postgresql"] = mlflow_latency(pg.create_database("mlflow"), tmp)
                res["optuna_per_trial_s"]["postgresql"] = optuna_latency(pg.create_database("optuna"))
        print(f"  mlflow {res['mlflow']}\n  optuna {res['optuna_per_trial_s']}", flush=True)

        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=None):
            res["prefect_dask"] = prefect_dask_overhead(2)
            # with one worker: is the per-task cost in the workers (shrinks with more) or central?
            res["prefect_dask_1"] = prefect_dask_overhead(1)
            print(f"  prefect+dask {res['prefect_dask']} / 1 worker {res['prefect_dask_1']}", flush=True)
            if not args.skip_flows:
                res["flows"] = {"default": flow_runs(tmp, "default", {"name": "default"}, {})}
                if DATA.is_dir():
                    # 6 UCR series, epochs capped so the comparison fits a CI-sized machine
                    res["flows"]["ucr6"] = flow_runs(
                        tmp, "ucr6", {"name": "ucr", "subset": 6, "path": str(tmp / "ucr6.parquet"),
                                      "root": str(DATA)}, {"preset": "ucr", "max_epochs": 8})
    res["machine"]["loadavg_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(res, indent=1, default=float))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
