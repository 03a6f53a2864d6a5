"""Storage by configuration only: DVC remotes (a local one, and S3 via an S3-compatible endpoint)
and the MLflow artifact store on S3 (params ``mlflow.artifact_location``).

The S3 endpoint is moto's server on loopback, spoken to over HTTP exactly like MinIO would be.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

DVC = str(Path(sys.executable).parent / "dvc")


def _dvc(cwd: Path, *args: str, env: dict | None = None) -> str:
    r = subprocess.run([DVC, *args], cwd=cwd, env={**os.environ, "DVC_NO_ANALYTICS": "1", **(env or {})},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"dvc {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def _repo(tmp_path: Path) -> tuple[Path, str]:
    """A DVC repo (no git) with one tracked data file; returns it and the file's sha256."""
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    payload = os.urandom(200_000)
    (repo / "data" / "series.parquet").write_bytes(payload)
    _dvc(repo, "init", "--no-scm", "-q")
    _dvc(repo, "config", "core.analytics", "false")
    _dvc(repo, "add", "-q", "data/series.parquet")
    return repo, hashlib.sha256(payload).hexdigest()


def _round_trip(repo: Path, digest: str, env: dict | None = None) -> None:
    """push, forget the data and the cache, pull: the same bytes come back from the remote."""
    _dvc(repo, "push", "-q", env=env)
    (repo / "data" / "series.parquet").unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    _dvc(repo, "pull", "-q", env=env)
    assert hashlib.sha256((repo / "data" / "series.parquet").read_bytes()).hexdigest() == digest


def test_dvc_local_remote_round_trip(tmp_path):
    repo, digest = _repo(tmp_path)
    remote = tmp_path / "remote"
    _dvc(repo, "remote", "add", "-d", "store", str(remote))
    _round_trip(repo, digest)
    assert any(p.is_file() for p in remote.rglob("*")), "nothing was pushed to the remote"


def test_dvc_s3_remote_round_trip(tmp_path, s3, s3_keys):
    repo, digest = _repo(tmp_path)
    # what the README tells a user to run against MinIO / any S3-compatible store
    _dvc(repo, "remote", "add", "-d", "store", f"s3://{s3['bucket']}/capmix")
    _dvc(repo, "remote", "modify", "store", "endpointurl", s3["endpoint"])
    _round_trip(repo, digest, env=s3["env"])
    assert s3_keys(s3["client"], s3["bucket"], "capmix/"), "nothing was pushed to the bucket"
    # credentials stay out of the committed config (they come from the environment)
    config = (repo / ".dvc" / "config").read_text()
    assert "capmix-test-secret" not in config and "endpointurl" in config


def test_mlflow_artifacts_go_to_s3_when_params_say_so(s3, s3_keys, clean_mlflow_env, tmp_path):
    import mlflow

    from capmix.params import parse_params
    from flows.train import setup_mlflow

    setup_mlflow(parse_params({"mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "capmix-s3",
                             "artifact_location": f"s3://{s3['bucket']}/mlflow"}}))
    (tmp_path / "metrics.json").write_text('{"auc_pr": 0.5}')
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "metrics.json"))
    assert run.info.artifact_uri.startswith(f"s3://{s3['bucket']}/mlflow/")
    assert [k for k in s3_keys(s3["client"], s3["bucket"]) if k.endswith("metrics.json")]
    back = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/metrics.json", dst_path=str(tmp_path / "dl")))
    assert back.read_text() == '{"auc_pr": 0.5}'
    # a second flow process finds the experiment and keeps its location
    setup_mlflow(parse_params({"mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "capmix-s3",
                             "artifact_location": f"s3://{s3['bucket']}/mlflow"}}))
    assert mlflow.get_experiment_by_name("capmix-s3").artifact_location == f"s3://{s3['bucket']}/mlflow"


def test_default_artifact_location_is_unchanged(clean_mlflow_env, tmp_path, monkeypatch):
    """Without ``artifact_location`` the store's default is used, as before (laptop default)."""
    import mlflow

    from capmix.params import parse_params
    from flows.train import setup_mlflow

    monkeypatch.chdir(tmp_path)
    setup_mlflow(parse_params({"mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "capmix-local",
                             "artifact_location": None}}))
    assert not mlflow.get_experiment_by_name("capmix-local").artifact_location.startswith("s3://")
