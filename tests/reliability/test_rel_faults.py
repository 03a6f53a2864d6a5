"""Faults, with real processes: a SIGKILL in the middle of training, a death between registration
and promotion, two registrations at once, bad params through ``python -m flows.train``.

Every flow runs as its own ``python -m flows.train`` process against one temporary Prefect API
(``prefect_test_harness``) and one sqlite MLflow store, on 2 series x 3000 points, 8 epochs each.
Order matters (module-scoped state): reference run -> killed run -> resumed run -> crash before
promotion; the tests read what those runs left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MODEL = "capmix-faults"
EXPERIMENT = "capmix-faults"
TINY = {
    "generate": {"n_series": 2, "length": 3000, "n_channels": 2, "max_anomaly_length": 60},
    # min_epochs = max_epochs: all 8 epochs run, so there is time to kill the process mid-training
    "train": {"window": 32, "stride": 8, "kernel": 4, "features": 8, "max_epochs": 8, "min_epochs": 8,
              "patience": 10, "min_patch": 6, "batch_size": 64, "device": "cpu"},
}


def _params(ws: Path, store: Path, **changes: dict) -> dict:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, keys in TINY.items():
        p[section].update(keys)
    p["generate"]["out"] = p["dataset"]["path"] = "data/default/series.parquet"
    p["dataset"].update(name="default", subset=None)
    p["tune"].update(enabled=False, best_params=str(ws / "tuning" / "best_params.yaml"))
    p["validate"]["out"] = str(ws / "reports" / "validation")
    p["mlflow"].update(tracking_uri=f"sqlite:///{store}/mlflow.db", experiment=EXPERIMENT,
                       artifact_location=(store / "artifacts").as_uri())
    p["register"].update(model_name=MODEL, margin=0.0, min_metric=0.0)
    p["flow"].update(task_runner="sequential", out_dir="runs/latest")
    for section, keys in changes.items():
        p[section].update(keys)
    return p


def _write(path: Path, p: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A Prefect API for all flow processes; each workspace gets its own result storage (the cache)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    base = tmp_path_factory.mktemp("faults")
    store = base / "store"
    store.mkdir()
    with prefect_test_harness(server_startup_timeout=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
        e.update(PREFECT_API_URL=PREFECT_API_URL.value(), CAPMIX_GIT_COMMIT="0" * 40, PYTHONPATH=str(ROOT),
                 MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", GX_ANALYTICS_ENABLED="false")
        uri = f"sqlite:///{store}/mlflow.db"
        yield SimpleNamespace(base=base, store=store, env=e, uri=uri, client=MlflowClient(uri, uri), state={})


def _ws(env, name: str, **changes) -> SimpleNamespace:
    ws = env.base / name
    params = _write(ws / "params.yaml", _params(ws, env.store, **changes))
    e = dict(env.env, PREFECT_LOCAL_STORAGE_PATH=str(env.base / f"{name}-results"))
    return SimpleNamespace(root=ws, params=params, env=e)


def _flow(ws, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.train", "--params", str(ws.params), *args], cwd=ws.root,
                          env=ws.env, capture_output=True, text=True, timeout=timeout)


def _runs(env) -> list:
    exp = env.client.get_experiment_by_name(EXPERIMENT)
    return env.client.search_runs([exp.experiment_id], max_results=100) if exp else []


def _summary(ws) -> dict:
    return json.loads((ws.root / "runs/latest/flow_summary.json").read_text())


# ================================================================================== kill and resume
@pytest.fixture(scope="module")
def reference(env):
    ws = _ws(env, "reference")
    done = _flow(ws, "--no-register")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return _summary(ws)


@pytest.fixture(scope="module")
def killed(env, reference):
    """The same flow in another workspace, SIGKILLed as soon as the 2nd series has a checkpoint."""
    ws = _ws(env, "resumable")
    proc = subprocess.Popen([sys.executable, "-m", "flows.train", "--params", str(ws.params)], cwd=ws.root,
                            env=ws.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    work = ws.root / "runs/latest/work"
    try:
        while not list(work.glob("synthetic-001-*.ckpt.pt")):
            assert proc.poll() is None, "the flow ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint of the 2nd series within 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    models = ws.root / "runs/latest/models"
    before = {p.relative_to(ws.root): p.stat().st_mtime_ns
              for p in [*(models / "synthetic-000").iterdir(), *work.glob("*.npz")]}
    running = [r for r in _runs(env) if r.info.status == "RUNNING"]
    return SimpleNamespace(ws=ws, before=before, running=running, rc=proc.returncode)


@pytest.fixture(scope="module")
def resumed(env, killed):
    done = _flow(killed.ws)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return SimpleNamespace(out=done.stdout + done.stderr, summary=_summary(killed.ws))


def test_sigkill_mid_training_leaves_a_checkpoint_and_a_dangling_run(killed):
    ws = killed.ws
    assert killed.rc == -signal.SIGKILL
    assert (ws.root / "runs/latest/models/synthetic-000/checksums.json").is_file()  # finished before the kill
    assert not (ws.root / "runs/latest/models/synthetic-001").exists()  # killed while training it
    assert [p.name for p in (ws.root / "runs/latest/models").iterdir() if p.name.startswith(".")] == []
    assert len(killed.running) == 1  # MLflow cannot know the process died


def test_rerun_resumes_skips_finished_stages_and_matches_an_uninterrupted_run(env, killed, resumed, reference):
    ws = killed.ws
    assert "resumed from checkpoint" in resumed.out
    # finished stages were not redone: the first series' model and both augmentations are untouched
    for rel, mtime in killed.before.items():
        assert (ws.root / rel).stat().st_mtime_ns == mtime, rel
    assert not list((ws.root / "runs/latest/work").glob("*.ckpt.pt"))  # consumed once the model was saved
    assert resumed.summary["metrics"] == reference["metrics"]  # bit for bit, not approximately
    # the killed run is FAILED (found dead by the re-run), not left RUNNING
    dead = env.client.get_run(killed.running[0].info.run_id)
    assert dead.info.status == "FAILED" and "killed or crashed" in dead.data.tags["capmix.failure"]
    assert env.client.get_run(resumed.summary["run_id"]).info.status == "FINISHED"
    aliases = env.client.get_registered_model(MODEL).aliases
    assert str(aliases["champion"]) == resumed.summary["version"] == "1"
    env.state["champion"] = "1"


# ================================================================== death between register and promote
CRASH = """
import os, signal, sys
import flows.promotion
def die(*args, **kwargs):  # the process dies right after the version was registered
    os.kill(os.getpid(), signal.SIGKILL)
flows.promotion.promote_if_better = die
from flows.train import main
sys.exit(main(["--params", sys.argv[1]]))
"""


def _champion_scores(env, ws) -> np.ndarray:
    from capmix.data.canonical import read_dataset, to_frame
    from flows.bundle import CAPMixBundleModel, download_bundle

    mlflow.set_tracking_uri(env.uri)
    mlflow.set_registry_uri(env.uri)
    model = CAPMixBundleModel.from_dir(download_bundle(f"models:/{MODEL}@champion")[0], ["ch0", "ch1"])
    frame = to_frame(read_dataset(ws.root / "data/default/series.parquet"))
    return model.predict(None, frame[["series", "ch0", "ch1"]])["score"].to_numpy()


def test_crash_between_registration_and_promotion_keeps_the_old_champion(env, resumed, killed):
    from flows.locks import fail_dead_runs, registry_lock

    ws = killed.ws
    # another seed: a bit-identical model would not be registered again (nothing to crash after)
    params = _write(ws.root / "params-crash.yaml",
                    _params(ws.root, env.store, register={"model_name": MODEL, "margin": -1.0, "min_metric": 0.0},
                            train={"seed": 7}))
    before = _champion_scores(env, ws)
    done = subprocess.run([sys.executable, "-c", CRASH, str(params)], cwd=ws.root, env=ws.env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    versions = {str(v.version): v for v in env.client.search_model_versions(f"name='{MODEL}'")}
    assert sorted(map(str, versions)) == ["1", "2"]  # registered ...
    assert "promotion.decision" not in versions["2"].tags  # ... never gated
    assert {k: str(v) for k, v in env.client.get_registered_model(MODEL).aliases.items()} == {
        "champion": "1", "challenger": "1"}
    np.testing.assert_array_equal(_champion_scores(env, ws), before)  # the champion still loads and scores
    # the lock the dead process held is free again, and its run is cleaned up
    with registry_lock(env.uri, MODEL, timeout=5):
        pass
    exp = env.client.get_experiment_by_name(EXPERIMENT)
    [dead] = fail_dead_runs(env.client, exp.experiment_id)
    assert env.client.get_run(dead).info.status == "FAILED"


# ======================================================================================== concurrency
RACER = """
import sys, time
from pathlib import Path
import mlflow
from capmix.data.canonical import read_dataset, to_frame
from flows.bundle import log_bundle
from flows.locks import registry_lock
from flows.promotion import promote_if_better
uri, name, models, data, go = sys.argv[1:6]
mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri); mlflow.set_experiment("capmix-faults")
example = to_frame(read_dataset(data)[:1])
while not Path(go).exists():  # both processes start registering at the same moment
    time.sleep(0.01)
with registry_lock(uri, name):
    mv = log_bundle(models, example, name, run_name="racer")
    d = promote_if_better(mlflow.MlflowClient(), name, mv.version, "auc_pr", 0.0, 0.6,
                          lambda uri: (time.sleep(1.0), 0.5)[1])
print(mv.version, d.decision, d.champion_version)
"""


def test_two_registrations_at_once_are_serialised_by_the_registry_lock(env, resumed, killed, tmp_path):
    name = "capmix-concurrent"
    go = tmp_path / "go"
    args = [env.uri, name, str(killed.ws.root / "runs/latest/models"),
            str(killed.ws.root / "data/default/series.parquet"), str(go)]
    procs = [subprocess.Popen([sys.executable, "-c", RACER, *args], cwd=tmp_path, env=env.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    time.sleep(6)  # both import mlflow/torch and wait at the barrier
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    results = sorted(tuple(o[0].split()[-3:]) for o in outs)
    # the first saw no champion; the second was compared with the champion of that moment: the first
    assert results == [("1", "promoted", "None"), ("2", "promoted", "1")], results
    history = json.loads(env.client.get_registered_model(name).tags["champion.history"])
    assert [(h["version"], h["from"]) for h in history] == [("1", None), ("2", "1")]
    runs = [r for r in _runs(env) if r.info.run_name == "racer"]
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)  # both runs recorded


# ========================================================================================= bad params
def test_flow_with_bad_params_exits_2_before_any_run(env, resumed):
    ws = _ws(env, "badparams", train={"gamma": 0.5})
    n_runs = len(_runs(env))
    done = _flow(ws)
    assert done.returncode == 2
    assert "train.gamma = 0.5: Input should be greater than 1" in done.stderr and "Fix" in done.stderr
    assert len(_runs(env)) == n_runs
    assert not (ws.root / "runs/latest/models").exists()
