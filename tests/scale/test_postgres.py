"""MLflow and Optuna on a real PostgreSQL server (started on loopback by the ``postgres`` fixture).

* MLflow tracking + model registry with a PostgreSQL backend and the artifacts in an S3-compatible
  bucket: runs, versions, aliases, the promotion gate and a rollback, and the champion loaded back.
* One Optuna study shared by two worker processes running trials at the same time: every trial
  recorded once, none lost, and both workers report the same best trial.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capmix.detectors.capmix.detector import CAPMixDetector

ROOT = Path(__file__).resolve().parents[2]
SERIES = ("pg-a", "pg-b")
TINY = dict(window=32, stride=8, kernel=4, features=8, max_epochs=2, min_epochs=1, min_patch=6, batch_size=64,
            device="cpu")


def _signal(n: int, phase: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n)
    return np.c_[np.sin(t / 8 + phase), np.cos(t / 13 + phase)] + 0.1 * rng.standard_normal((n, 2))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    rng = np.random.default_rng(0)
    models = tmp_path_factory.mktemp("pg-bundle") / "models"
    for i, name in enumerate(SERIES):
        CAPMixDetector(**TINY).fit(_signal(600, i, rng)).save(models / name)
    (models / "summary.json").write_text(json.dumps({"series": [{"series": s} for s in SERIES]}))
    frames = []
    for i, name in enumerate(SERIES):
        x = _signal(200, i, rng)
        frames.append(pd.DataFrame({"series": name, "timestamp": np.arange(200, dtype=np.int64), "split": "test",
                                    "label": pd.array(np.zeros(200, np.int8), dtype="Int8"),
                                    "ch0": x[:, 0], "ch1": x[:, 1]}))
    return {"dir": models, "test": pd.concat(frames, ignore_index=True)}


def test_mlflow_tracking_and_registry_on_postgres_with_s3_artifacts(
    postgres, s3, s3_keys, bundle, clean_mlflow_env, monkeypatch, tmp_path
):
    import mlflow
    from mlflow.tracking import MlflowClient

    from flows.bundle import log_bundle
    from flows.promotion import CHAMPION, champion_history, load_champion, promote_if_better, rollback
    from capmix.params import parse_params
    from flows.train import setup_mlflow

    monkeypatch.setenv("CAPMIX_GIT_COMMIT", "0" * 40)  # no git call
    uri = postgres.create_database("mlflow")
    # the flow's own setup: tracking + registry URI and the experiment's artifact location from params
    setup_mlflow(parse_params({"mlflow": {"tracking_uri": uri, "experiment": "capmix-pg",
                             "artifact_location": f"s3://{s3['bucket']}/mlflow"}}))
    assert mlflow.get_tracking_uri().startswith("postgresql://")
    client = MlflowClient(uri, uri)
    exp = client.get_experiment_by_name("capmix-pg")
    assert exp.artifact_location == f"s3://{s3['bucket']}/mlflow"

    name = "capmix-pg-bundle"
    values = {"1": 0.50, "2": 0.40, "3": 0.70}
    for v, auc in values.items():
        with mlflow.start_run(run_name=f"train-{v}") as run:
            mlflow.log_metric("auc_pr", auc)
            mv = log_bundle(bundle["dir"], bundle["test"], name, metrics={"auc_pr": auc},
                            params={"train": TINY}, repo_dir=tmp_path, run_id=run.info.run_id)
        assert str(mv.version) == v
        decision = promote_if_better(client, name, v, "auc_pr", 0.0, auc,
                                     lambda u: values[u.rsplit("/", 1)[1]])
        assert decision.decision == {"1": "promoted", "2": "refused", "3": "promoted"}[v], decision

    # runs and metrics live in PostgreSQL
    runs = client.search_runs([exp.experiment_id], order_by=["metrics.auc_pr DESC"])
    assert [r.data.metrics["auc_pr"] for r in runs] == [0.70, 0.50, 0.40]
    assert client.get_registered_model(name).aliases[CHAMPION] in (3, "3")
    assert [h["version"] for h in champion_history(client, name)] == ["1", "3"]
    rollback(client, name, reason="test rollback")
    assert client.get_registered_model(name).aliases[CHAMPION] in (1, "1")

    # the model files went to the bucket, and the champion loads back from there
    stored = s3_keys(s3["client"], s3["bucket"], "mlflow/")
    assert any(k.endswith("weights.pt") for k in stored), stored[:10]
    assert not list((tmp_path).glob("mlruns")), "no local artifact store may be used"
    out = load_champion(name).predict(bundle["test"])
    assert len(out) == len(bundle["test"]) and np.isfinite(out["score"]).all()


WORKER = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import optuna
    from capmix.config import DetectorConfig
    from capmix.data.canonical import Series
    from capmix.tuning import TuneConfig, tune, study_result

    storage, worker, barrier, total = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    rng = np.random.default_rng(7)
    t = np.arange(1600)
    values = (np.sin(t / 9) + 0.1 * rng.standard_normal(t.size))[:, None]
    series = [Series("s0", values, np.zeros(t.size, np.int8), 1200)]
    cfg = DetectorConfig(window=32, stride=8, kernel=4, features=8, max_epochs=2, min_epochs=1, min_patch=6,
                         batch_size=64, device="cpu")
    tcfg = TuneConfig(storage=storage, study_name="shared", n_trials=3, worker=worker, pruning=False, seed=0)
    # both workers enter the search together, so their trials overlap in time
    import os
    open(f"{barrier}.{worker}", "w").close()
    deadline = time.monotonic() + 240  # a peer that died must not hang this one
    while not all(os.path.exists(f"{barrier}.{w}") for w in (0, 1)):
        assert time.monotonic() < deadline, "the other worker never started"
        time.sleep(0.05)
    tune(series, cfg, tcfg)
    # "found by both": each worker reads the best trial once the whole study is done
    study = optuna.load_study(study_name="shared", storage=storage)
    while len([x for x in study.get_trials(deepcopy=False) if x.state.is_finished()]) < total:
        assert time.monotonic() < deadline, "the other worker's trials never finished"
        time.sleep(0.1)
    r = study_result(tcfg)
    print("RESULT " + json.dumps({"worker": worker, "best_trial": r.best_trial, "best_value": r.best_value,
                                  "best_params": r.best_params, "n_trials": r.n_trials}))
    """
)


def test_optuna_study_shared_by_two_worker_processes(postgres, tmp_path):
    import optuna

    from capmix.data.canonical import Series  # noqa: F401  (the worker script's import must exist)

    url = postgres.create_database("optuna")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on a small machine
    logs = [(tmp_path / f"out{w}.txt", tmp_path / f"err{w}.txt") for w in (0, 1)]
    procs = [subprocess.Popen([sys.executable, str(script), url, str(w), str(tmp_path / "ready"), "6"],
                              cwd=ROOT, env=env, stdout=out.open("w"), stderr=err.open("w"))
             for w, (out, err) in zip((0, 1), logs)]
    for p, (_, err) in zip(procs, logs):
        p.wait(timeout=400)
        assert p.returncode == 0, err.read_text()[-3000:]
    results = [json.loads(next(line[7:] for line in out.read_text().splitlines() if line.startswith("RESULT ")))
               for out, _ in logs]

    study = optuna.load_study(study_name="shared", storage=url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6, "3 trials from each worker, none lost"
    assert sorted(t.number for t in trials) == list(range(6)), "every trial recorded once"
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # the two workers sampled different parameters (distinct sampler streams)
    assert len({(t.params["gamma"], t.params["alpha"]) for t in trials}) == 6
    # the trials of the two processes ran at the same time (both entered the search together)
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:])), "no two trials overlapped"
    best = max(trials, key=lambda t: t.value)
    for r in results:
        assert r["n_trials"] == 6
        assert r["best_trial"] == best.number and r["best_value"] == pytest.approx(best.value)
        assert r["best_params"] == {"gamma": best.params["gamma"], "alpha": best.params["alpha"]}
