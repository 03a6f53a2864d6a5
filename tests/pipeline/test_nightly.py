"""The nightly day flow over a simulated week (flows/nightly.py, flows/simulate.py, ``capmix simulate``).

A real Prefect test server (``prefect_test_harness``) and a real sqlite MLflow store; the week comes
from params ``simulate`` (drift on day 4, a broken schema on day 3, day 6 = day 5 again). The detector
is Isolation Forest so the week takes about a minute; the flow code is the same for every detector.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MODEL = "capmix-nightlytest"


@pytest.fixture(scope="module")
def week(harness, isolated_mlflow, tmp_path_factory):
    """Two simulated weeks in one workdir: the day records of each, and the workdir."""
    from flows.simulate import simulate

    base = tmp_path_factory.mktemp("nightly")
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["detector"] = "iforest"
    p["register"]["model_name"] = MODEL
    p["mlflow"]["experiment"] = "nightlytest"
    params = base / "user-params.yaml"
    params.write_text(yaml.safe_dump(p, sort_keys=False))
    cwd = Path.cwd()
    workdir = base / "sim"
    try:
        os.chdir(base)
        first = simulate(7, workdir, str(params))
        mid = _snapshot(workdir)
        second = simulate(7, workdir, str(params))
        yield SimpleNamespace(first=first, second=second, workdir=workdir, mid=mid,
                              uri=f"sqlite:///{workdir / 'mlflow.db'}")
    finally:
        os.chdir(cwd)


def _snapshot(workdir: Path) -> dict:
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    return {"versions": sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))}


def _client(week) -> MlflowClient:
    return MlflowClient(week.uri, week.uri)


def test_the_week_goes_as_the_scenario_says(week):
    rows = {r["sim_day"]: r for r in week.first}
    assert sorted(rows) == list(range(1, 8))
    assert rows[1]["trained"] == "yes" and rows[1]["promotion"] == "promoted"  # no champion yet
    assert rows[2]["trained"] == "no" and rows[2]["new_version"]                 # a calm day: no retraining
    assert rows[3]["checks"] == "quarantined" and "ch2" in rows[3]["reason"]     # the broken schema
    assert rows[4]["drifted"] and rows[4]["trained"] == "yes"                    # drift -> retrain
    assert rows[4]["promotion"] == "promoted"                                    # ... and the challenger wins
    assert not rows[6]["new_version"] and rows[6]["trained"] == "no"             # the repeated day
    assert rows[6]["version"] == rows[5]["version"]
    for r in week.first:
        if r["checks"] == "passed":
            assert r["alarms"] is not None
            assert (week.workdir / "alarms" / f"{r['day']}.parquet").is_file()


def test_the_quarantined_day_changed_nothing(week):
    rows = {r["sim_day"]: r for r in week.first}
    q = rows[3]
    assert q["version"] == rows[2]["version"] and not q["new_version"]
    assert q["champion"] == q["champion_before"] == rows[2]["champion"]
    assert q["trained"] == "no" and q.get("registered") is None
    folder = week.workdir / "quarantine" / q["day"]
    assert (folder / "reason.txt").read_text().strip() and any(folder.glob(f"{q['day']}.*"))
    assert not any((week.workdir / "processed").glob(f"{q['day']}.*"))
    assert not (week.workdir / "alarms" / f"{q['day']}.parquet").exists()


def test_the_champion_changed_only_on_the_days_the_table_says(week):
    from flows.promotion import champion_history

    rows = week.first + week.second
    moved = [r for r in rows if r.get("champion") != r.get("champion_before")]
    assert moved and all(r.get("promotion") == "promoted" and r["champion"] == r["registered"] for r in moved)
    history = champion_history(_client(week), MODEL)
    assert [h["version"] for h in history] == [r["registered"] for r in moved]


def test_every_data_version_is_in_mlflow_and_in_dvc(week):
    from flows.versioning import cached

    client = _client(week)
    exp = client.get_experiment_by_name("nightlytest-nightly")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    by_day = {r.data.tags["nightly.day"]: r for r in runs}
    for r in week.first + week.second:
        assert by_day[r["day"]].data.tags["data.version"] == r["version"]
        assert cached(week.workdir / "history", r["version"]), r["day"]


def test_prefect_shows_every_day_finished_and_none_running(week):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        days = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["capmix-day"])))
        nightly = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["capmix-nightly"])))
    assert len(days) == 14 and len(nightly) == 14
    states = sorted(r.state_type.value for r in days)
    assert states.count("FAILED") == 1 and states.count("COMPLETED") == 13
    assert all(r.state_type.value == "COMPLETED" for r in nightly)
    failed = next(r for r in days if r.state_type.value == "FAILED")
    assert "quarantined" in failed.state.message


def test_the_second_week_resumes_without_retraining_unchanged_days(week):
    rows = [r["sim_day"] for r in week.second]
    assert rows == list(range(8, 15))
    first_champion = week.first[-1]["champion"]
    assert week.second[0]["champion_before"] == first_champion
    for r in week.second:  # the champion carries over: only drift or age may retrain
        assert r.get("retrain_reason") is None or not r["retrain_reason"].startswith("no champion")
        if not r["new_version"]:
            assert r["trained"] == "no"
    trained = [r for r in week.second if r["trained"] == "yes"]
    assert all(r["retrain_reason"] for r in trained)
    state = json.loads((week.workdir / "state" / "simulate.json").read_text())
    assert state == {"last_day": 14}


def test_a_killed_run_is_marked_crashed_by_the_next(harness):
    """A flow run whose process is SIGKILLed (no chance to report) is set Crashed by the next run,
    instead of staying Running for ever; a live run of this host is left alone."""
    import time

    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL

    from flows.locks import crash_dead_flow_runs

    code = ("import time\nfrom prefect import flow\nfrom flows.locks import tag_flow_run_owner\n"
            "@flow(name='capmix-day')\ndef day():\n    tag_flow_run_owner()\n    time.sleep(600)\nday()\n")
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    victim = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    tag = f"capmix.pid:{victim.pid}"

    def runs():
        with get_client(sync_client=True) as client:
            return [r for r in client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["capmix-day"])))
                    if tag in r.tags]

    try:
        deadline = time.monotonic() + 120
        while not [r for r in runs() if r.state_type.value == "RUNNING"]:
            assert time.monotonic() < deadline and victim.poll() is None, "the flow run never started"
            time.sleep(0.5)
        assert crash_dead_flow_runs(("capmix-day",)) == []  # alive: left alone
    finally:
        victim.kill()
        victim.wait()
    [run] = runs()
    assert run.state_type.value == "RUNNING"  # what Prefect believes after a SIGKILL
    assert crash_dead_flow_runs(("capmix-day",)) == [str(run.id)]
    [run] = runs()
    assert run.state_type.value == "CRASHED" and "killed" in run.state.message


def test_two_nightly_runs_cannot_overlap(harness):
    """The global concurrency limit: while one holder has the slot, a second waits and times out."""
    import logging

    from flows.locks import global_limit

    log = logging.getLogger("test")
    entered, release, outcome = threading.Event(), threading.Event(), {}

    def first():
        with global_limit("capmix-nightly-test", log):
            entered.set()
            release.wait(30)

    t = threading.Thread(target=first)
    t.start()
    assert entered.wait(60)
    try:
        with pytest.raises(TimeoutError):
            with global_limit("capmix-nightly-test", log, timeout=2):
                outcome["second"] = "entered"
    finally:
        release.set()
        t.join()
    assert "second" not in outcome
    with global_limit("capmix-nightly-test", log, timeout=30):  # free again once the first left
        pass


def test_capmix_simulate_command(tmp_path):
    """The CLI as a user runs it: its own Prefect database in the workdir, one line per day."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["detector"] = "iforest"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(p, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    done = subprocess.run([str(Path(sys.executable).parent / "capmix"), "simulate", "--days", "1", "--workdir",
                           str(tmp_path / "sim"), "--params", str(params)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "one nightly run per day" in done.stdout and "v1 promoted" in done.stdout
    assert (tmp_path / "sim" / "prefect" / "prefect.db").is_file()
    assert (tmp_path / "sim" / "alarms" / "2024-01-04.parquet").is_file()
    assert f"PREFECT_HOME={tmp_path / 'sim' / 'prefect'}" in done.stdout


def test_data_versions_in_a_git_ignored_folder_get_their_own_dvc_repository(tmp_path):
    """`capmix simulate --workdir simulation` inside a project whose .gitignore lists it: DVC would refuse
    a git-ignored .dvc file in the project's repository, so the folder gets a repository of its own."""
    from dvc.repo import Repo

    from flows.versioning import add_version, cached

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    Repo.init(str(tmp_path))
    (tmp_path / ".gitignore").write_text("/scratch/\n")
    history = tmp_path / "scratch" / "history"
    history.mkdir(parents=True)
    (history / "a.parquet").write_bytes(b"one")
    first = add_version(history)
    assert (tmp_path / "scratch" / ".dvc").is_dir() and cached(history, first["md5"])
    (history / "a.parquet").write_bytes(b"two")
    second = add_version(history)
    assert second["md5"] != first["md5"] and cached(history, first["md5"]) and cached(history, second["md5"])
    assert not (tmp_path / "scratch.dvc").exists()


def test_the_retraining_rule():
    from capmix.data.drift import DriftReport
    from capmix.params import parse_params
    from flows.nightly import retrain_reason

    p = parse_params({"nightly": {"retrain": "on_drift", "max_model_age_days": 7, "drift_threshold": 0.25}})
    calm, moved = DriftReport(0.25, {"a/ch0/value": 0.05}), DriftReport(0.25, {"a/ch0/value": 0.9})
    assert retrain_reason(p, False, None, moved, "2024-01-10", None) is None          # no new data: never
    assert retrain_reason(p, True, None, calm, "2024-01-10", None) == "no champion yet"
    assert retrain_reason(p, True, "1", moved, "2024-01-10", "2024-01-09").startswith("drift: PSI 0.90")
    assert retrain_reason(p, True, "1", calm, "2024-01-10", "2024-01-04") is None     # 6 days after the last training
    assert "7 days ago" in retrain_reason(p, True, "1", calm, "2024-01-11", "2024-01-04")
    daily = parse_params({"nightly": {"retrain": "daily"}})
    assert retrain_reason(daily, True, "1", calm, "2024-01-10", "2024-01-09") == "daily retraining"
