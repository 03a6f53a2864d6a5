"""Usage telemetry is off in every entry point, before MLflow, Prefect, GX or DVC is imported.

Each entry point is imported in a fresh interpreter with a clean environment; an import hook
records the environment at the moment the first tracking library is about to be imported (and
stops the interpreter there, so the test does not pay for importing them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capmix.telemetry import TELEMETRY_OFF

ROOT = Path(__file__).resolve().parents[2]
WATCHED = ("mlflow", "prefect", "great_expectations", "dvc")

PROBE = """
import importlib.abc, json, os, sys

KEYS = json.loads(sys.argv[2])
WATCHED = set(json.loads(sys.argv[3]))

def report(when):
    print(json.dumps({"when": when, "env": {k: os.environ.get(k) for k in KEYS}}), flush=True)
    os._exit(0)

class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in WATCHED:
            report(name)
        return None

sys.meta_path.insert(0, Hook())
if sys.argv[1].endswith(".py"):
    import runpy
    runpy.run_path(sys.argv[1])
else:
    __import__(sys.argv[1])
report("end")
"""

ENTRY_POINTS = [
    "flows.train",  # python -m flows.train
    "flows.score",
    "flows.serve",
    "flows.benchmark",
    "flows.cli",  # the `capmix` console script (flows.cli:app)
    "capmix.cli",  # python -m capmix.cli, the DVC stages
    str(ROOT / "tests" / "conftest.py"),  # the test suite
]


def _probe(entry: str, **extra: str) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **extra}
    done = subprocess.run([sys.executable, "-c", PROBE, entry, json.dumps(sorted(TELEMETRY_OFF)),
                           json.dumps(WATCHED)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda e: Path(e).name if e.endswith(".py") else e)
def test_entry_point_switches_telemetry_off_before_any_tracking_import(entry):
    seen = _probe(entry)
    assert seen["env"] == TELEMETRY_OFF, f"{entry}: at {seen['when']}"


def test_telemetry_values_cover_every_tool():
    assert TELEMETRY_OFF["DO_NOT_TRACK"] == "true"
    assert TELEMETRY_OFF["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert TELEMETRY_OFF["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert TELEMETRY_OFF["PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY"] == "false"
    assert TELEMETRY_OFF["DVC_NO_ANALYTICS"] == "1"
    assert TELEMETRY_OFF["GX_ANALYTICS_ENABLED"] == "false"
    assert TELEMETRY_OFF["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "120"


def test_a_user_setting_is_kept():
    seen = _probe("flows.train", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300")
    assert seen["env"]["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "300"
    assert seen["env"]["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_telemetry_is_set_in_one_place():
    for path in [*ROOT.joinpath("flows").glob("*.py"), *ROOT.joinpath("capmix").rglob("*.py")]:
        if path.name == "telemetry.py":
            continue
        text = path.read_text()
        assert "MLFLOW_DISABLE_TELEMETRY" not in text and "GX_ANALYTICS_ENABLED\"] =" not in text, path
    for path in ROOT.joinpath("flows").glob("*.py"):
        assert "noqa: E402" not in path.read_text(), path
