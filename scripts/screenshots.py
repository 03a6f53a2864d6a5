"""The README's UI screenshots, taken in headless Chromium against the real servers.

    python scripts/screenshots.py mlflow  --store sqlite:///mlflow.db --experiment capmix
    python scripts/screenshots.py prefect --workdir simulation        # after `capmix simulate --workdir simulation`

``mlflow`` starts ``mlflow server`` on the store and shows the experiment's runs compared on their
metrics (the chart view: auc_pr and auc_roc first; it needs two finished runs); ``prefect`` starts ``prefect server`` on the
simulation's Prefect database (``flows.simulate.prefect_env``) and shows the runs list and the
quarantined day. Chromium is Debian's (``apt-get install chromium``); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--force-device-scale-factor=1", "--hide-scrollbars"]
QUIET = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f} s")


def shoot(url: str, out: Path, size: str = "1600,1000", budget_ms: int = 20000) -> Path:
    """One screenshot of ``url`` (``budget_ms`` of virtual time lets the single-page app load its data)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium not found: install Debian's package (apt-get install chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    profile = out.parent / ".chromium-profile"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
                    f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", url],
                   check=True, capture_output=True, timeout=180)
    shutil.rmtree(profile, ignore_errors=True)
    print(f"{out}  <-  {url}")
    return out


def _post(url: str, body: dict) -> list:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=30))


def mlflow_shots(store: str, experiment: str, out: Path) -> None:
    port = _port()
    env = {**os.environ, **QUIET}
    server = subprocess.Popen([str(BIN / "mlflow"), "server", "--backend-store-uri", store, "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(f"{base}/health")
        exp = json.load(urllib.request.urlopen(
            f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name={urllib.parse.quote(experiment)}"))
        exp_id = exp["experiment"]["experiment_id"]
        runs = _post(f"{base}/api/2.0/mlflow/runs/search",
                     {"experiment_ids": [exp_id], "filter": "attributes.status = 'FINISHED' and metrics.auc_pr > -1",
                      "order_by": ["attributes.start_time DESC"], "max_results": 2})["runs"]
        if len(runs) < 2:
            sys.exit(f"experiment {experiment!r} has {len(runs)} finished runs with auc_pr: run the training flow twice")
        # the runs' chart view: one bar chart per metric, the detection metrics (auc_pr, auc_roc) first
        shoot(f"{base}/#/experiments/{exp_id}/runs?compareRunsMode=CHART", out / "mlflow-compare-runs.png",
              size="1600,1000", budget_ms=30000)
    finally:
        server.terminate()
        server.wait(30)


def prefect_shots(workdir: Path, out: Path) -> None:
    from flows.simulate import prefect_env

    port = _port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **QUIET, **prefect_env(workdir), "PREFECT_UI_API_URL": f"{base}/api"}
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"{base}/api/health")
        # the runs list (subflows shown: the seven capmix-day runs, one Failed = the quarantined day)
        shoot(f"{base}/runs", out / "prefect-nightly-runs.png", size="1600,1500", budget_ms=60000)
        failed = _post(f"{base}/api/flow_runs/filter",
                       {"flow_runs": {"state": {"type": {"any_": ["FAILED"]}}}, "flows": {"name": {"any_": ["capmix-day"]}}})
        if failed:
            shoot(f"{base}/runs/flow-run/{failed[0]['id']}", out / "prefect-quarantined-day.png", size="1600,760")
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    m = sub.add_parser("mlflow")
    m.add_argument("--store", default="sqlite:///mlflow.db")
    m.add_argument("--experiment", default="capmix")
    pr = sub.add_parser("prefect")
    pr.add_argument("--workdir", default="simulation", type=Path)
    ap.add_argument("--out", default=ROOT / "docs" / "img", type=Path)
    args = ap.parse_args()
    if args.what == "mlflow":
        mlflow_shots(args.store, args.experiment, args.out)
    else:
        prefect_shots(args.workdir, args.out)


if __name__ == "__main__":
    main()
