"""The Prefect flows end to end (flows/train.py, flows/score.py, flows/serve.py, prefect.yaml).

One temporary Prefect server (``prefect_test_harness``) serves the whole module; the flows run in a
temporary working directory with a tiny params.yaml (2 series x 3000 points, 2 channels, 3 epochs)
and their own sqlite MLflow store. The training flow runs three times (module fixture ``trained``):
the first registers v1 as champion, the second (register.margin 1.0) cannot beat it, the third
(margin -1.0) is accepted; the later runs hit the Prefect cache for augment and train.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest

from capmix.params import parse_params
import yaml
from mlflow.tracking import MlflowClient

from capmix.data.canonical import read_dataset, to_frame
from capmix.data.validation import DataValidationError
from capmix.modelfiles import sha256_file
from flows.promotion import CHALLENGER, CHAMPION, HISTORY_TAG, champion_history, rollback

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
MODEL_NAME = "capmix-flowtest"
TINY = {
    "generate": {"n_series": 2, "length": 3000, "n_channels": 2, "max_anomaly_length": 60},
    "train": {"window": 32, "stride": 8, "kernel": 4, "features": 8, "max_epochs": 3, "min_epochs": 1,
              "min_patch": 6, "batch_size": 128, "device": "cpu"},
}
_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")


# ============================================================================================ helpers
def _params(root: Path, **changes: dict) -> dict:
    """The repo's params.yaml, shrunk and pointed at ``root`` (``changes``: section -> keys)."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, keys in TINY.items():
        p[section].update(keys)
    p["generate"]["out"] = p["dataset"]["path"] = "data/default/series.parquet"
    p["dataset"].update(name="default", subset=None)
    p["tune"].update(enabled=False, best_params=str(root / "tuning" / "best_params.yaml"),
                     storage=f"sqlite:///{root}/optuna.db")
    p["validate"]["out"] = str(root / "reports" / "validation")
    p["mlflow"].update(tracking_uri=f"sqlite:///{root.parent / 'store'}/mlflow.db", experiment="capmix-flowtest")
    p["register"].update(model_name=MODEL_NAME, margin=0.0, min_metric=0.0)
    p["flow"].update(task_runner="threads", max_workers=2)
    for section, keys in changes.items():
        p.setdefault(section, {}).update(keys)
    return p


def _write_params(path: Path, p: dict) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return str(path)


def _task_states(flow_run_id, names=("augment", "train"), timeout=30.0) -> dict[str, list[str]]:
    """State names of a flow run's task runs by task name (states reach the API asynchronously)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        states: dict[str, list[str]] = {}
        for tr in runs:
            states.setdefault(tr.name.rsplit("-", 1)[0], []).append(tr.state_name)
        settled = all(s not in (None, "Pending", "Running", "Scheduled") for v in states.values() for s in v)
        if (settled and all(n in states for n in names)) or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def _aliases(client: MlflowClient) -> dict[str, str]:
    """alias -> version (MLflow 3.17 gives the versions as int here)."""
    return {k: str(v) for k, v in client.get_registered_model(MODEL_NAME).aliases.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# =========================================================================================== fixtures
@pytest.fixture(scope="module")
def ws(tmp_path_factory, harness, isolated_mlflow):
    """The working directory of the flows + its MLflow store (MLflow's process state: ``isolated_mlflow``)."""
    base = tmp_path_factory.mktemp("flows")
    root = base / "work"
    root.mkdir()
    (base / "store").mkdir()
    p = _params(root)
    uri = p["mlflow"]["tracking_uri"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)  # an earlier test may have pinned the registry elsewhere
    client = MlflowClient(uri, uri)
    for name in (p["mlflow"]["experiment"], f"{p['mlflow']['experiment']}-scoring"):
        # explicit artifact roots: the store's default (./mlruns) is relative to the cwd it was opened in
        client.create_experiment(name, artifact_location=(base / "artifacts" / name).as_uri())
    yield SimpleNamespace(root=root, params=p, params_path=_write_params(root / "params.yaml", p), uri=uri,
                          client=client)


@pytest.fixture
def in_ws(_project_root, ws, monkeypatch):
    """chdir into the flows' working directory (after conftest's chdir to the project root)."""
    monkeypatch.chdir(ws.root)
    return ws


@pytest.fixture(scope="module")
def trained(ws):
    """Four training-flow runs: first (becomes champion), the same again (identical models: not
    registered), another seed with margin 1.0 (refused), another seed with margin -1.0 (accepted)."""
    from flows.train import training_flow

    client, old = ws.client, Path.cwd()
    os.chdir(ws.root)
    try:
        runs = []
        for label, margin, seed in (("first", 0.0, 0), ("same", 0.0, 0), ("worse", 1.0, 1), ("better", -1.0, 2)):
            path = ws.params_path if label in ("first", "same") else _write_params(
                ws.root / f"params-{label}.yaml", _params(ws.root, register={"margin": margin}, train={"seed": seed}))
            state = training_flow(params_path=path, return_state=True)
            summary = state.result()
            runs.append(SimpleNamespace(label=label, summary=summary, flow_run_id=state.state_details.flow_run_id,
                                        aliases=_aliases(client), history=champion_history(client, MODEL_NAME),
                                        written=json.loads((ws.root / "runs/latest/flow_summary.json").read_text())))
    finally:
        os.chdir(old)
    return {r.label: r for r in runs}


# ============================================================================================ training
def test_training_flow_tracks_the_run_and_registers_the_first_champion(trained, ws):
    first = trained["first"]
    s = first.summary
    assert set(s["metrics"]) == {"validation_rpa_f1", "oracle_rpa_f1", "auc_pr", "auc_roc"}
    assert all(np.isfinite(v) for v in s["metrics"].values())
    run = ws.client.get_run(s["run_id"])
    assert run.info.status == "FINISHED"
    for key in ("auc_pr", "auc_roc", "validation_rpa_f1", "oracle_rpa_f1", "augment.n_injected"):
        assert key in run.data.metrics, key
    assert run.data.metrics["auc_pr"] == pytest.approx(s["metrics"]["auc_pr"])
    assert run.data.params["train.window"] == "32" and run.data.params["train.max_epochs"] == "3"
    assert run.data.tags["evaluation.passed"] == "True"
    # the MLflow UI opens the experiment on its runs table, not on MLflow 3's GenAI overview
    assert ws.client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert run.data.tags["data.digest"] == sha256_file(ws.root / "data/default/series.parquet")
    top = {a.path for a in ws.client.list_artifacts(s["run_id"])}
    assert {"plots", "metrics.json", "per_series.csv"} <= top
    plots = {Path(a.path).name for a in ws.client.list_artifacts(s["run_id"], "plots")}
    assert "dtw_hist.png" in plots and any(n.startswith("training_") for n in plots)
    metrics_json = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=s["run_id"],
                                                                         artifact_path="metrics.json",
                                                                         tracking_uri=ws.uri)).read_text())
    assert metrics_json["auc_pr"] == pytest.approx(s["metrics"]["auc_pr"])
    # registered from this run, champion right away (there was none)
    assert (s["model_name"], str(s["version"]), s["promotion"]) == (MODEL_NAME, "1", "promoted")
    mv = ws.client.get_model_version(MODEL_NAME, "1")
    assert mv.run_id == s["run_id"]
    assert mv.tags["promotion.decision"] == "promoted" and mv.tags["promotion.compared_to"] == "none"
    assert first.aliases == {CHAMPION: "1", CHALLENGER: "1"}
    assert [h["version"] for h in first.history] == ["1"]
    # the flow's own outputs, relative to its working directory
    assert sorted(p.name for p in (ws.root / "runs/latest/models").iterdir()) == ["synthetic-000", "synthetic-001"]
    assert first.written["version"] == "1" and first.written["run_id"] == s["run_id"]


def test_a_model_that_cannot_beat_the_champion_is_refused(trained, ws):
    worse = trained["worse"].summary
    assert (str(worse["version"]), worse["promotion"]) == ("2", "refused")
    assert "margin 1" in worse["reason"]
    assert trained["worse"].aliases == {CHAMPION: "1", CHALLENGER: "2"}  # champion unchanged
    tags = ws.client.get_model_version(MODEL_NAME, "2").tags
    assert tags["promotion.decision"] == "refused"
    assert tags["promotion.compared_to"] == "1" and tags["promotion.margin"] == "1.0"
    assert tags["promotion.reason"] == worse["reason"]
    assert float(tags["promotion.new_value"]) < float(tags["promotion.champion_value"]) + 1.0
    assert [h["version"] for h in trained["worse"].history] == ["1"]


def test_a_model_within_a_negative_margin_is_accepted(trained, ws):
    better = trained["better"].summary
    assert (str(better["version"]), better["promotion"]) == ("3", "promoted")
    assert trained["better"].aliases == {CHAMPION: "3", CHALLENGER: "3"}
    assert ws.client.get_model_version(MODEL_NAME, "3").tags["promotion.compared_to"] == "1"
    assert [(h["version"], h["from"]) for h in trained["better"].history] == [("1", None), ("3", "1")]


def test_rerun_with_the_same_inputs_hits_the_prefect_cache(trained):
    first = _task_states(trained["first"].flow_run_id)
    assert first["prepare"] == ["Completed"] * 2 and first["train"] == ["Completed"] * 2
    states = _task_states(trained["same"].flow_run_id)  # same data, config and code
    assert states["prepare"] == ["Cached"] * 2, states
    assert states["train"] == ["Cached"] * 2, states
    assert states["evaluate"] == ["Completed"] * 2  # not cached: it is cheap and feeds the gate
    states = _task_states(trained["worse"].flow_run_id)  # another seed: trained again
    assert states["train"] == ["Completed"] * 2, states


def test_an_identical_model_is_not_registered_again(trained, ws):
    same = trained["same"]
    assert (same.summary["version"], same.summary["promotion"]) == ("1", "identical")
    assert same.aliases == {CHAMPION: "1", CHALLENGER: "1"}
    assert [h["version"] for h in same.history] == ["1"]
    assert ws.client.get_run(same.summary["run_id"]).data.tags["registry.identical_to"] == "1"
    fingerprints = {v.version: v.tags["model.fingerprint"]
                    for v in ws.client.search_model_versions(f"name='{MODEL_NAME}'")}
    assert len(set(fingerprints.values())) == len(fingerprints) == 3  # v1-v3, all different models


def _corrupted_dataset(src: Path, dst: Path, column: str, value) -> Path:
    frame = pd.read_parquet(src)
    rows = frame.index[frame["series"] == frame["series"].iloc[0]][100:103]
    frame.loc[rows, column] = value
    dst.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(dst, index=False)
    return dst


def _n_runs(client: MlflowClient) -> int:
    return len(client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000))


def _failing_flow(ws, tmp_path, monkeypatch, column, value):
    from flows.train import training_flow

    data = _corrupted_dataset(ws.root / "data/default/series.parquet", tmp_path / "bad" / "series.parquet", column, value)
    p = _params(tmp_path, dataset={"name": "custom", "path": str(data)}, mlflow={"tracking_uri": ws.uri})
    params_path = _write_params(tmp_path / "params.yaml", p)
    versions = len(ws.client.search_model_versions(f"name='{MODEL_NAME}'"))
    n_runs = _n_runs(ws.client)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataValidationError) as err:
        training_flow(params_path=params_path)
    # nothing trained, logged or registered
    assert not (tmp_path / "runs/latest/models").exists() or not any((tmp_path / "runs/latest/models").iterdir())
    assert not (tmp_path / "runs/latest/flow_summary.json").exists()
    assert len(ws.client.search_model_versions(f"name='{MODEL_NAME}'")) == versions
    assert _n_runs(ws.client) == n_runs
    report = json.loads((tmp_path / "runs/latest/validation/validation.json").read_text())
    assert report["success"] is False
    assert not (tmp_path / "reports/validation").exists()  # the DVC stage's folder is not the flow's
    return str(err.value), report


def test_failing_validation_stops_the_flow_before_any_model(trained, _project_root, ws, tmp_path, monkeypatch):
    message, report = _failing_flow(ws, tmp_path, monkeypatch, "ch0", np.nan)
    assert "expect_column_values_to_not_be_null [ch0]" in message
    assert "'synthetic-000' (3 rows" in message  # where: series and rows
    assert [f["expectation"] for f in report["failures"]] == ["expect_column_values_to_not_be_null"]


def test_failing_label_validation_names_the_expectation(trained, _project_root, ws, tmp_path, monkeypatch):
    message, _ = _failing_flow(ws, tmp_path, monkeypatch, "label", 2)
    assert "expect_column_values_to_be_in_set [label]" in message


# ============================================================================================ scoring
def _test_frame(ws) -> pd.DataFrame:
    frame = to_frame(read_dataset(ws.root / "data/default/series.parquet"))
    return frame[frame["split"] == "test"].reset_index(drop=True)


def test_champion_loads_as_pyfunc_and_scores_a_frame(trained, ws):
    champion = _aliases(ws.client)[CHAMPION]
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHAMPION}")
    assert model.metadata.run_id == ws.client.get_model_version(MODEL_NAME, champion).run_id
    assert model.model_config["channels"] == ["ch0", "ch1"]
    frame = _test_frame(ws)
    out = model.predict(frame[["series", "ch0", "ch1"]])
    assert list(out.columns) == ["series", "score", "alarm"] and len(out) == len(frame)
    assert np.isfinite(out["score"]).all() and out["alarm"].dtype == bool
    assert (out["series"] == frame["series"]).all()


def test_scoring_flow_writes_scores_and_alarms_for_every_row(trained, in_ws):
    from flows.score import main, scoring_flow

    ws = in_ws
    data = ws.root / "data/default/series.parquet"
    frame = pd.read_parquet(data)
    summary = scoring_flow(str(data), "out/scores.parquet", params_path=ws.params_path)
    champion = _aliases(ws.client)[CHAMPION]
    assert summary["model_version"] == champion and summary["model_uri"] == f"models:/{MODEL_NAME}@champion"
    out = pd.read_parquet(ws.root / "out/scores.parquet")
    assert list(out.columns) == ["series", "timestamp", "score", "alarm"]
    assert len(out) == len(frame) == summary["n_points"]
    assert (out["series"].to_numpy() == frame["series"].to_numpy()).all()
    assert (out["timestamp"].to_numpy() == frame["timestamp"].to_numpy()).all()
    assert np.isfinite(out["score"]).all() and out["alarm"].dtype == bool
    assert int(out["alarm"].sum()) == summary["n_alarms"] > 0
    assert not list((ws.root / "out").glob(".*.tmp")), "no temp file left behind"
    # the same scores as the registered model itself gives
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{champion}")
    np.testing.assert_allclose(out["score"], model.predict(frame[["series", "ch0", "ch1"]])["score"], rtol=1e-6)

    run = ws.client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert ws.client.get_experiment(run.info.experiment_id).name == "capmix-flowtest-scoring"
    tags = run.data.tags
    assert tags["model.uri"] == f"models:/{MODEL_NAME}@champion" and tags["model.version"] == champion
    assert tags["input.digest"] == sha256_file(data) and tags["validation.passed"] == "True"
    assert run.data.metrics["n_points"] == len(frame)
    assert run.data.metrics["n_alarms"] == summary["n_alarms"]
    assert run.data.metrics["alarm_rate"] == pytest.approx(summary["n_alarms"] / len(frame))
    artifacts = {a.path for a in ws.client.list_artifacts(summary["run_id"], "scores")}
    assert artifacts == {"scores/scores.parquet"}

    # a plain CSV (series + channels only) through the command line, a pinned version
    frame[["series", "ch0", "ch1"]].to_csv(ws.root / "new.csv", index=False)
    assert main(["--input", "new.csv", "--output", "out/scores.csv", "--params", ws.params_path,
                 "--model-uri", f"models:/{MODEL_NAME}/1"]) == 0
    csv = pd.read_csv(ws.root / "out/scores.csv")
    assert list(csv.columns) == ["series", "score", "alarm"] and len(csv) == len(frame)
    v1 = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1").predict(frame[["series", "ch0", "ch1"]])
    np.testing.assert_allclose(csv["score"], v1["score"], rtol=1e-6)


def test_scoring_data_with_other_channels_fails_validation_before_scoring(trained, in_ws):
    from flows.score import main, scoring_flow

    ws = in_ws
    frame = pd.read_parquet(ws.root / "data/default/series.parquet").rename(columns={"ch1": "pressure"})
    frame.to_parquet(ws.root / "other.parquet", index=False)
    state = scoring_flow(str(ws.root / "other.parquet"), "out/other.parquet", params_path=ws.params_path,
                         return_state=True)
    assert state.is_failed()
    with pytest.raises(DataValidationError) as err:
        state.result()
    message = str(err.value)
    assert "expect_table_columns_to_match_ordered_list" in message
    assert "expect_column_to_exist [ch1]" in message and "unexpected ['pressure']" in message
    assert not (ws.root / "out/other.parquet").exists()
    states = _task_states(state.state_details.flow_run_id, names=("validate-input",))
    assert states["validate-input"] == ["Failed"] and "score" not in states and "write-scores" not in states
    # the scoring run is recorded as failed, with the validation report
    exp = ws.client.get_experiment_by_name("capmix-flowtest-scoring")
    failed = ws.client.search_runs([exp.experiment_id], "tags.`validation.passed` = 'False'")
    assert failed and failed[0].info.status == "FAILED"
    assert {a.path for a in ws.client.list_artifacts(failed[0].info.run_id, "validation")} == {
        "validation/validation.json"}
    # the command line says so with exit status 2
    assert main(["--input", "other.parquet", "--output", "out/other.csv", "--params", ws.params_path]) == 2
    # an alias that does not exist: a clear error, nothing written
    with pytest.raises(LookupError, match="has no alias 'staging'"):
        scoring_flow(str(ws.root / "data/default/series.parquet"), "out/none.parquet", params_path=ws.params_path,
                     model_uri=f"models:/{MODEL_NAME}@staging")
    assert not (ws.root / "out/none.parquet").exists()


# ============================================================================================ rollback
def test_rollback_restores_the_previous_champion_which_still_scores(trained, ws):
    assert _aliases(ws.client)[CHAMPION] == "3"
    entry = rollback(ws.client, MODEL_NAME, reason="test")
    assert entry["version"] == "1" and entry["from"] == "3" and entry["action"] == "rollback"
    assert _aliases(ws.client)[CHAMPION] == "1"
    assert ws.client.get_model_version(MODEL_NAME, "3").tags["rollback.reason"].startswith("test")
    history = json.loads(ws.client.get_registered_model(MODEL_NAME).tags[HISTORY_TAG])
    assert [h["version"] for h in history] == ["1", "3", "1"]
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHAMPION}")
    assert model.metadata.run_id == trained["first"].summary["run_id"]
    out = model.predict(_test_frame(ws)[["series", "ch0", "ch1"]])
    assert len(out) == len(_test_frame(ws)) and np.isfinite(out["score"]).all()


# ========================================================================================= deployment
def test_prefect_yaml_schedule_equals_params_yaml():
    """params.yaml is the source of the schedule; prefect.yaml's copy must agree."""
    from capmix.config import load_params
    from flows.serve import DEPLOYMENT_NAME, deployment_schedule

    cron, timezone = deployment_schedule(load_params(ROOT / "params.yaml"))
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [dep] = [d for d in config["deployments"] if d["name"] == DEPLOYMENT_NAME]
    [schedule] = dep["schedules"]
    assert (schedule["cron"], schedule["timezone"]) == (cron, timezone)
    assert dep["entrypoint"] == "flows/nightly.py:nightly_flow"
    assert dep["parameters"] == {"params_path": "params.yaml"}
    assert dep["work_pool"]["name"] == "capmix-pool"
    assert config["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $CAPMIX_HOME }}"}}]


def _read_deployment(name: str):
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(name)


def test_served_nightly_deployment_has_the_params_schedule(harness, monkeypatch):
    from capmix.config import load_params
    from flows import serve
    from flows.nightly import nightly_flow

    params = load_params(ROOT / "params.yaml")
    cron, timezone = serve.deployment_schedule(params)
    deployment = serve.build_deployment(str(ROOT / "params.yaml"))
    deployment.apply()
    dep = _read_deployment("capmix-nightly/capmix-nightly")
    [schedule] = dep.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == (cron, timezone, True)
    assert dep.parameters == {"params_path": str(ROOT / "params.yaml")}

    # main() serves exactly that (serve() itself blocks forever: record its arguments instead)
    calls = []
    monkeypatch.setattr(type(nightly_flow), "serve", lambda self, **kw: calls.append((self, kw)))
    assert serve.main(["--params", str(ROOT / "params.yaml")]) == 0
    [(served, kw)] = calls
    assert served.name == nightly_flow.name == "capmix-nightly"
    assert kw["name"] == "capmix-nightly"
    assert [(s.cron, s.timezone) for s in kw["schedules"]] == [(cron, timezone)]
    # once serving stops, the schedule is paused even where Prefect's own pause on shutdown was lost
    assert _read_deployment("capmix-nightly/capmix-nightly").paused is True

    with pytest.raises(ValueError, match="not an IANA time zone"):
        serve.deployment_schedule(parse_params({"schedule": {"cron": "0 2 * * *", "timezone": "Mars/Olympus"}}))
    with pytest.raises(ValueError, match="not a valid cron"):
        serve.deployment_schedule(parse_params({"schedule": {"cron": "0 25 * * *"}}))


def test_prefect_deploy_all_registers_prefect_yaml(harness):
    """`prefect deploy --all` (what users run) accepts prefect.yaml, against the test server."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL

    from capmix.config import load_params
    from flows.serve import deployment_schedule

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="capmix-pool", type="process"), overwrite=True)
    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value(), PWD=str(ROOT),
               PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run([str(VENV_BIN / "prefect"), "--no-prompt", "deploy", "--all"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    dep = _read_deployment("capmix-nightly/capmix-nightly")
    [schedule] = dep.schedules
    expected = deployment_schedule(load_params(ROOT / "params.yaml"))
    assert (schedule.schedule.cron, schedule.schedule.timezone) == expected
    assert dep.work_pool_name == "capmix-pool" and dep.entrypoint == "flows/nightly.py:nightly_flow"
    assert dep.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $CAPMIX_HOME }}"}}]
    assert dep.job_variables["env"]["CAPMIX_HOME"] == str(ROOT)


# ====================================================================================== mlflow server
def test_mlflow_server_lists_the_flow_runs_with_metrics(trained, ws, tmp_path):
    port = _free_port()
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    for k in _MLFLOW_ENV:
        env.pop(k, None)
    log = open(tmp_path / "mlflow-server.log", "w")
    proc = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", ws.uri, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--default-artifact-root", (tmp_path / "artifacts").as_uri()],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def call(path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "mlflow-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not come up in 90 s"
            time.sleep(0.5)
        exp = call("/api/2.0/mlflow/experiments/get-by-name?experiment_name=capmix-flowtest")["experiment"]
        runs = call("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 50})
        by_id = {r["info"]["run_id"]: r for r in runs["runs"]}
        for label in ("first", "worse", "better"):
            s = trained[label].summary
            run = by_id[s["run_id"]]
            assert run["info"]["status"] == "FINISHED"
            metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
            for key in ("auc_pr", "auc_roc", "validation_rpa_f1", "oracle_rpa_f1"):
                assert metrics[key] == pytest.approx(s["metrics"][key]), (label, key)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
