"""Nothing reaches past loopback at run time.

The training flow, the scoring flow and the CLI run as a user runs them: a fresh interpreter, a
clean environment (none of the telemetry variables set), a fresh Prefect home and MLflow store.
A ``sitecustomize`` hook records, and refuses, every IPv4/IPv6 connection or datagram to an
address that is not loopback; the test fails when anything was recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

GUARD = r'''
import json, os, socket

_LOG = os.environ["CAPMIX_NET_LOG"]


def _loopback(addr):
    host = str(addr[0]) if isinstance(addr, tuple) else ""
    return host in ("localhost", "::1", "0.0.0.0", "::") or host.startswith("127.") or host.startswith("::ffff:127.")


def _check(sock, addr, what):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(addr):
        with open(_LOG, "a") as f:
            f.write(json.dumps({"what": what, "address": repr(addr), "pid": os.getpid()}) + "\n")
        raise OSError(f"test guard: no network beyond loopback ({what} {addr!r})")


_connect, _connect_ex, _sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto


def connect(self, addr):
    _check(self, addr, "connect")
    return _connect(self, addr)


def connect_ex(self, addr):
    _check(self, addr, "connect_ex")
    return _connect_ex(self, addr)


def sendto(self, data, *args):
    _check(self, args[-1], "sendto")
    return _sendto(self, data, *args)


socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
'''


def _params(work: Path) -> Path:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["generate"].update(n_series=1, length=2400, n_channels=2, max_anomaly_length=60)
    p["train"].update(window=32, stride=8, kernel=4, features=8, max_epochs=2, min_epochs=1, min_patch=6,
                      batch_size=128, device="cpu")
    p["mlflow"]["tracking_uri"] = f"sqlite:///{work}/mlflow.db"
    p["validate"]["out"] = str(work / "reports" / "validation")
    p["flow"].update(task_runner="sequential")
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return path


def _run(cmd: list[str], work: Path, env: dict[str, str]) -> None:
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (cmd, done.stdout[-2000:], done.stderr[-4000:])


def test_flows_and_cli_reach_nothing_beyond_loopback(tmp_path):
    work, guard = tmp_path / "work", tmp_path / "guard"
    work.mkdir()
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    log = tmp_path / "network.jsonl"
    env = {"PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join([str(guard), str(ROOT)]), "CAPMIX_NET_LOG": str(log),
           "PREFECT_HOME": str(tmp_path / "prefect"), "OMP_NUM_THREADS": "1"}
    params = _params(work)

    _run([sys.executable, "-m", "flows.train", "--params", str(params)], work, env)
    series = pd.read_parquet(work / "data" / "default" / "series.parquet")
    name = str(series["series"].iloc[0])
    test = series[(series["series"] == name) & (series["split"] == "test")][["ch0", "ch1"]]
    test.to_csv(work / "new.csv", index=False)
    _run([sys.executable, "-m", "flows.score", "--input", "new.csv", "--output", "scores.parquet",
          "--params", str(params)], work, env)
    _run([str(VENV_BIN / "capmix"), "score", "--model", f"runs/latest/models/{name}", "--input", "new.csv",
          "--out", "cli_scores.csv"], work, env)

    assert len(pd.read_parquet(work / "scores.parquet")) == len(test)
    assert np.isfinite(pd.read_csv(work / "cli_scores.csv")["score"]).all()
    attempts = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert attempts == [], attempts
