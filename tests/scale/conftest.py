"""Real services for the scale-out tests: PostgreSQL on loopback, an S3-compatible store (moto).

PostgreSQL is started from the machine's binaries (tests/scale/pgserver.py); where there are none
(``.ci/run`` tries ``apt-get install postgresql`` first) the PostgreSQL tests skip and say why.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pgserver import find_bin_dir, temporary_postgres  # noqa: E402

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "capmix-test",
    "AWS_SECRET_ACCESS_KEY": "capmix-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def postgres():
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found on PATH or in /usr/lib/postgresql/*/bin "
                    "(.ci/run installs Debian's postgresql package; apt-get install -y postgresql)")
    with temporary_postgres(bin_dir) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 on loopback: a real HTTP endpoint that boto3, MLflow and DVC talk to like MinIO."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch, request):
    """A fresh bucket on the S3 endpoint, with the client settings MLflow and boto3 read from the env."""
    import boto3

    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_server)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=s3_server, region_name=S3_ENV["AWS_DEFAULT_REGION"])
    bucket = "capmix-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    client.create_bucket(Bucket=bucket)
    return {"endpoint": s3_server, "bucket": bucket, "client": client, "env": {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": s3_server}}


def keys(client, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.fixture
def s3_keys():
    return keys


@pytest.fixture
def clean_mlflow_env(monkeypatch):
    """MLflow's process-global URIs (set_tracking_uri writes os.environ) restored after the test."""
    import mlflow

    old_tracking, old_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    old_path = list(sys.path)  # loading a pyfunc prepends its code/ dir
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(k, raising=False)
    yield
    mlflow.set_tracking_uri(old_tracking)
    mlflow.set_registry_uri(old_registry)
    sys.path[:] = old_path
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(k, None)
