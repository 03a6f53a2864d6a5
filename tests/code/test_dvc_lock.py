"""The committed dvc.lock matches the code: what CI checks after the suite, caught by the suite itself.

A stage's dependency that differs from dvc.lock ("modified") means the committed metrics and plots
no longer come from the committed code: run `dvc repro` and commit dvc.lock (and what it changed).
An output a fresh clone does not hold yet ("deleted") is fine: `dvc repro` makes it.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_no_stage_dependency_differs_from_dvc_lock():
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
    if dvc is None or not (ROOT / "dvc.lock").is_file():
        pytest.skip("dvc or dvc.lock not available")
    done = subprocess.run([dvc, "status", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout or "{}")
    stale = {stage: {p: how for p, how in e["changed deps"].items() if how != "deleted"}
             for stage, entries in status.items() for e in entries if isinstance(e, dict) and "changed deps" in e}
    stale = {stage: deps for stage, deps in stale.items() if deps}
    assert not stale, f"dvc.lock is stale: {stale}; run `dvc repro` and commit dvc.lock"
