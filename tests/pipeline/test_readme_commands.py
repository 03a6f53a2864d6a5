"""The README's "Using it" commands, run as written, in the README's order, on a fresh clone after `make run`.

The bash block under ``## Using it`` is read from the README of the copy, so the test always runs the
README's current text. What it does:

* **a fresh clone**: ``git clone`` of this repository into a temporary folder, with the working tree's
  uncommitted changes (modified, deleted and untracked-not-ignored files) laid over it, so a developer
  tests what is on disk; in CI, a clean clone, this is the commit itself. No DVC cache, no MLflow store,
  no ``runs/``, no default data: ``make run`` and the commands make them.
* **the virtual environment is shared, not reinstalled**: ``.venv`` in the copy is a symlink to the one
  running pytest, and ``PYTHONPATH`` points at the copy, because the venv's editable install of capmix
  points at the original checkout (the ``capmix`` command, the DVC stages). ``make run`` runs as
  ``make -o .venv/.installed run`` (the clone's files are newer than the venv's stamp, which would make
  ``make`` reinstall into the shared venv); the test first checks with ``make -n`` that the only
  command left is the training flow.
* **environment**: telemetry off (``capmix.telemetry.TELEMETRY_OFF``, set explicitly), a fresh
  ``PREFECT_HOME``, none of the caller's MLflow/Prefect/DVC variables, and the network guard of
  ``tests/reliability/test_rel_network.py`` (a ``sitecustomize`` that refuses and records every
  connection beyond loopback): the test fails if any command tried to reach the internet.
* **Prefect server**: ``make run`` runs as on a fresh machine (a temporary Prefect server inside the
  flow). The README block then runs against a real ``prefect server start`` (on a free port; its
  ``PREFECT_API_URL`` is set for every command), as the README asks for serving and deploying: a
  temporary server registers deployments but schedules no runs.
* **a command that never ends**: ``python -m flows.serve`` serves until Ctrl-C. It is started, the test
  waits for Prefect's "being served" line, checks the deployment and its schedule on the server, then
  sends SIGINT to its process group (what Ctrl-C does) and checks that it stops.
* **git identity**: ``dvc exp run`` commits the experiment to git refs and needs ``user.name`` /
  ``user.email``; where none is configured (a bare CI machine) the copy gets a local one.

Every other command must exit 0, and the test checks what the README says it does (the registry's
champion after the flows, promote and rollback; the scores files; the deployment and work pool on the
server; ``dvc repro`` up to date; ``dvc exp run`` changing the metric). A command the test has no
check for (someone added one to the README) still has to exit 0.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml

from capmix.telemetry import TELEMETRY_OFF

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)  # the venv running pytest: shared with the copy
STAMP = ".venv/.installed"  # the Makefile's install stamp ($(VENV)/.installed)
SECTION = "## Using it"
COMMAND_TIMEOUT_S = 1500
SERVE_READY = "is being served and polling for scheduled runs"
#: commands that run until Ctrl-C: started, checked while they run, then interrupted
SERVES_FOREVER = ("python -m flows.serve",)
#: the caller's settings that would send the copy's commands elsewhere
_DROP_ENV = ("MLFLOW_", "PREFECT_", "DVC_", "GIT_DIR", "GIT_WORK_TREE", "PYTHONPATH", "CAPMIX_")


# ============================================================================== the README's commands
def readme_commands(readme: Path) -> list[str]:
    """The logical command lines of the first ```bash block under ``## Using it`` (continuation
    lines joined as bash joins them; blank and comment-only lines dropped; inline comments kept)."""
    text = readme.read_text()
    start = text.index(f"\n{SECTION}\n")
    block = re.search(r"^```bash\n(.*?)^```", text[start:], re.S | re.M)
    assert block, f"no ```bash block under {SECTION!r} in {readme}"
    commands, pending = [], ""
    for line in block.group(1).splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if not line.endswith("\\"):
            commands.append(pending.rstrip("\n"))
            pending = ""
    assert not pending, f"unfinished continuation line in the README block: {pending!r}"
    return commands


def _argv(command: str) -> list[str]:
    return shlex.split(command, comments=True)


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# ============================================================================== the copy and its world
def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def fresh_copy(dest: Path) -> Path:
    """A clone of this repository with the working tree's uncommitted changes laid over it."""
    _git("clone", "-q", "--no-hardlinks", str(ROOT), str(dest))
    changed = _git("ls-files", "-z", "-m", "-o", "--exclude-standard").split("\0")
    for rel in filter(None, changed):
        src, dst = ROOT / rel, dest / rel
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        elif not src.exists() and dst.is_file():
            dst.unlink()  # deleted in the working tree
    (dest / ".venv").symlink_to(VENV, target_is_directory=True)
    with open(dest / ".git" / "info" / "exclude", "a") as f:
        f.write("\n.venv\n")  # a symlink: `.venv/` in .gitignore matches directories only
    if subprocess.run(["git", "config", "user.email"], cwd=dest, capture_output=True).returncode != 0:
        _git("config", "user.name", "capmix README test", cwd=dest)
        _git("config", "user.email", "readme-test@example.invalid", cwd=dest)
    return dest


def _network_guard() -> str:
    """The ``sitecustomize`` source of tests/reliability/test_rel_network.py (one definition)."""
    spec = importlib.util.spec_from_file_location(
        "_capmix_rel_network", ROOT / "tests" / "reliability" / "test_rel_network.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GUARD


def base_env(work: Path, copy: Path) -> dict[str, str]:
    guard = work / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(_network_guard())
    # MAKELEVEL/MAKEFLAGS: under `make test` the inner make would act as a sub-make ("Entering directory")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_DROP_ENV) and k not in ("VIRTUAL_ENV", "MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    env.update(TELEMETRY_OFF)
    env.update({
        # a shell before `source .venv/bin/activate`: the venv is not on PATH yet
        "PATH": os.pathsep.join(p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                                if p and Path(p).resolve() != (VENV / "bin").resolve()),
        "PYTHONPATH": os.pathsep.join([str(guard), str(copy)]),
        "CAPMIX_NET_LOG": str(work / "network.jsonl"),
        "PREFECT_HOME": str(work / "prefect-home"),
        "PWD": str(copy),
    })
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait_s: float = 30) -> int | None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            return proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None
        except ProcessLookupError:
            pass
    return proc.returncode


@dataclass
class PrefectServer:
    proc: subprocess.Popen
    api: str

    def get(self, path: str):
        with urllib.request.urlopen(self.api + path, timeout=15) as r:
            return json.load(r)

    def post(self, path: str, body: dict):
        req = urllib.request.Request(self.api + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=15) as r:
            return json.load(r)

    def deployment(self, name: str) -> dict:
        found = self.post("/deployments/filter", {"deployments": {"name": {"any_": [name]}}})
        assert len(found) == 1, f"deployments named {name!r} on the server: {found}"
        return found[0]


def start_prefect_server(env: dict[str, str], cwd: Path, log: Path) -> PrefectServer:
    port = _free_port()
    proc = subprocess.Popen(
        [str(VENV / "bin" / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=open(log, "w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = PrefectServer(proc, f"http://127.0.0.1:{port}/api")
    deadline = time.monotonic() + 180
    while True:
        try:
            server.get("/health")
            return server
        except OSError:
            pass
        assert proc.poll() is None, f"prefect server start exited: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"prefect server did not come up in 180 s: {log.read_text()[-3000:]}"
        time.sleep(0.5)


# ============================================================================== running one command
@dataclass
class Shell:
    """Runs commands one at a time as a bash session would: each sees the environment the previous
    one left (so ``source .venv/bin/activate`` carries on to the next lines)."""

    cwd: Path
    env: dict[str, str]
    logs: Path
    n: int = 0

    def _log(self, command: str) -> Path:
        self.n += 1
        slug = re.sub(r"[^a-z0-9]+", "-", command.split("#")[0].lower()).strip("-")[:60]
        return self.logs / f"{self.n:02d}-{slug}.log"

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT_S) -> tuple[int, str]:
        envfile = self.logs / "env.bin"
        script = f"{command}\n__rc=$?\nenv -0 > {shlex.quote(str(envfile))}\nexit $__rc\n"
        started = time.monotonic()
        proc = subprocess.Popen(["bash", "-c", script], cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            stdout, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc, signal.SIGKILL)  # the command's whole process group, not just bash
            stdout, _ = proc.communicate()
            self._log(command).write_text(f"$ {command}\n[killed after {timeout} s]\n{stdout}")
            raise AssertionError(f"{command!r} still running after {timeout} s: {_tail(stdout)}") from None
        done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout)
        self._log(command).write_text(f"$ {command}\n[{time.monotonic() - started:.0f} s, exit {done.returncode}]\n"
                                      + done.stdout)
        if envfile.exists():
            pairs = (item.split("=", 1) for item in envfile.read_text().split("\0") if "=" in item)
            self.env = {k: v for k, v in pairs if not k.startswith("BASH_FUNC_")}
            envfile.unlink()
        return done.returncode, done.stdout

    def start(self, command: str) -> tuple[subprocess.Popen, Path]:
        log = self._log(command)
        # Ctrl-C as a terminal delivers it: a suite started in the background (`make test &`) passes an
        # IGNORED SIGINT down to every child, and the serving command would never see the test's Ctrl-C
        proc = subprocess.Popen(["bash", "-c", command], cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        return proc, log


def _tail(text: str, n: int = 4000) -> str:
    return text[-n:]


# ============================================================================== what the README says
@dataclass
class World:
    """The copy, its Prefect server, and what the commands so far have done."""

    copy: Path
    server: PrefectServer
    champions: list[str] = field(default_factory=list)  # the champion after each move, oldest first

    @property
    def params(self) -> dict:
        return yaml.safe_load((self.copy / "params.yaml").read_text())

    def client(self):
        from mlflow.tracking import MlflowClient

        uri = self.params["mlflow"]["tracking_uri"]
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            uri = f"sqlite:///{self.copy / uri[len('sqlite:///'):]}"
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    @property
    def model_name(self) -> str:
        return self.params["register"]["model_name"]

    def registry(self) -> tuple[set[str], str | None, str | None]:
        """(versions, champion, challenger) of the registered model."""
        c = self.client()
        versions = {str(v.version) for v in c.search_model_versions(f"name='{self.model_name}'")}
        aliases = c.get_registered_model(self.model_name).aliases if versions else {}
        get = lambda a: str(aliases[a]) if a in aliases else None  # noqa: E731
        return versions, get("champion"), get("challenger")

    def note_champion(self) -> None:
        _, champion, _ = self.registry()
        if champion is not None and (not self.champions or self.champions[-1] != champion):
            self.champions.append(champion)

    def metrics(self) -> dict:
        return json.loads((self.copy / "metrics" / "metrics.json").read_text())


def check_activate(w: World, command: str, out: str, shell: Shell, before: dict) -> None:
    first = shell.env["PATH"].split(os.pathsep)[0]
    assert Path(first).resolve() == (w.copy / ".venv" / "bin").resolve(), f"PATH starts with {first}"
    assert shell.env.get("VIRTUAL_ENV")


def check_training_flow(w: World, command: str, out: str, shell: Shell, before: dict) -> None:
    """Trains every series of the dataset, writes runs/latest/, and registers as it says it did."""
    trained = re.search(r"trained (\S+) on (\d+) series of dataset '([^']+)'", out)
    assert trained, _tail(out)
    summary = json.loads((w.copy / w.params["flow"]["out_dir"] / "flow_summary.json").read_text())
    assert len(summary["series"]) == int(trained.group(2)) and summary["metrics"]["auc_pr"] is not None
    for what in ("models", "metrics", "plots"):
        assert Path(summary["out"][what]).is_dir(), what
    said = re.search(rf"model {re.escape(w.model_name)} v(\d+): (promoted|refused|identical|already-champion)", out)
    assert said, _tail(out)
    version, decision = said.groups()
    versions, champion, challenger = w.registry()
    assert version in versions
    if decision == "identical":  # not registered again: the twin was there before
        assert version in before["versions"] and versions == before["versions"], (versions, before)
    else:
        assert version not in before["versions"] and versions == before["versions"] | {version}
        assert challenger == version
        assert (champion == version) == (decision == "promoted"), (champion, decision)


def check_scoring_flow(w: World, command: str, out: str, shell: Shell, before: dict) -> None:
    """Scores every row of the input with models:/<name>@champion and writes a score column."""
    argv = _argv(command)
    source = pd.read_parquet(w.copy / _option(argv, "--input"))
    path = w.copy / _option(argv, "--output")
    scores = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    assert {"score", "alarm"} <= set(scores.columns) and len(scores) == len(source)
    assert scores["score"].notna().all()
    said = re.search(rf"(\d+) points scored with models:/{re.escape(w.model_name)}@champion \(v(\d+)\)", out)
    assert said, _tail(out)
    assert int(said.group(1)) == len(source) and said.group(2) == before["champion"]


def check_work_pool(w: World, command: str, out: str, shell: Shell, before: dict) -> None:
    argv = _argv(command)
    pool = w.server.get(f"/work_pools/{argv[argv.index('create') + 1]}")
    assert pool["type"] == _option(argv, "--type")


def check_deploy(w: World, command: str, out: str, shell: Shell, before: dict) -> None:
    """Every prefect.yaml deployment is on the server: its work pool, schedule (= params.yaml's) and
    CAPMIX_HOME (the folder deployed from)."""
    config = yaml.safe_load((w.copy / "prefect.yaml").read_text())
    schedule = w.params["schedule"]
    for dep in config["deployments"]:
        found = w.server.deployment(dep["name"])
        assert found["work_pool_name"] == dep["work_pool"]["name"] and found["entrypoint"] == dep["entrypoint"]
        [sched] = found["schedules"]
        assert (sched["schedule"]["cron"], sched["schedule"]["timezone"]) == (schedule["cron"], schedule["timezone"])
        home = found["job_variables"]["env"]["CAPMIX_HOME"]
        assert Path(home).resolve() == w.copy.resolve(), home
        assert found["paused"] is False, "the deployment's schedule is paused"


def check_repro(w: World, command: str, out: str, shell: Shell, before: dict) -> None:
    """Every stage ran or was up to date; afterwards nothing is left to reproduce, and with an unchanged
    dvc.lock the metrics are the ones the repository holds."""
    for stage in yaml.safe_load((w.copy / "dvc.yaml").read_text())["stages"]:
        assert f"Running stage '{stage}'" in out or f"Stage '{stage}' didn't change" in out, (stage, _tail(out))
    code, status = shell.run("dvc status")
    assert code == 0 and "Data and pipelines are up to date" in status, status
    if (w.copy / "dvc.lock").read_text() == before["dvc.lock"]:
        assert w.metrics() == before["metrics"]


def check_reproduced(w: World, command: str, out: str, shell: Shell, before: dict) -> None:
    """The comparison with the clone's commit passed (exit 0 is asserted for every command) and says so."""
    assert "check_reproduced: data" in out and "not reproduced" not in out, _tail(out)


def check_experiment(w: World, command: str, out: str, shell: Shell, before: dict) -> None:
    """The experiment ran with the -S values now in params.yaml, and the registry metric changed."""
    assert "Ran experiment(s)" in out, _tail(out)
    argv = _argv(command)
    for i, arg in enumerate(argv):
        if arg in ("-S", "--set-param"):
            key, value = argv[i + 1].split("=", 1)
            node = w.params
            for part in key.split("."):
                node = node[part]
            assert node == yaml.safe_load(value), (key, node, value)
    metric = w.params["register"]["metric"]
    assert w.metrics()[metric] != before["metrics"][metric], (metric, w.metrics(), before["metrics"])


def check_promote(w: World, command: str, out: str, shell: Shell, before: dict) -> None:
    version = _argv(command)[2]
    assert f"{w.model_name}@champion -> v{version}" in out, _tail(out)
    assert w.registry()[1] == version


def check_rollback(w: World, command: str, out: str, shell: Shell, before: dict) -> None:
    """Back to the champion before the current one."""
    assert len(w.champions) >= 2, f"nothing to roll back to: champions so far {w.champions}"
    expected = w.champions[-2]
    assert f"{w.model_name}@champion -> v{expected}" in out, (w.champions, _tail(out))
    assert w.registry()[1] == expected
    w.champions.pop()  # a second rollback goes one further back


def check_cli_score(w: World, command: str, out: str, shell: Shell, before: dict) -> None:
    """One saved model scores the rows of one series of the input file."""
    argv = _argv(command)
    source = pd.read_parquet(w.copy / _option(argv, "--input"))
    if "--series" in argv:
        source = source[source["series"] == _option(argv, "--series")]
    path = w.copy / _option(argv, "--out")
    scores = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    assert {"score", "alarm"} <= set(scores.columns) and len(scores) == len(source) > 0
    assert scores["score"].notna().all()
    said = re.search(rf"wrote {re.escape(_option(argv, '--out'))}: (\d+) alarms in (\d+) points", out)
    assert said and int(said.group(2)) == len(source), _tail(out)


CHECKS = [
    (r"source \.venv/bin/activate", check_activate),
    (r"python -m flows\.train\b", check_training_flow),
    (r"python -m flows\.score\b", check_scoring_flow),
    (r"prefect work-pool create\b", check_work_pool),
    (r"prefect deploy\b", check_deploy),
    (r"dvc repro\b", check_repro),
    (r"python scripts/check_reproduced\.py\b", check_reproduced),
    (r"dvc exp run\b", check_experiment),
    (r"capmix promote\b", check_promote),
    (r"capmix rollback\b", check_rollback),
    (r"capmix score\b", check_cli_score),
]


def check_for(command: str):
    found = [check for pattern, check in CHECKS if re.match(pattern, command)]
    return found[0] if found else None


def run_serve(w: World, shell: Shell, command: str) -> None:
    """Serves until Ctrl-C: wait for Prefect's ready line, check the served deployment and its
    schedule (params.yaml's) on the server, then interrupt it like Ctrl-C and let it stop."""
    proc, log = shell.start(command)
    try:
        deadline = time.monotonic() + 300
        while SERVE_READY not in log.read_text():
            assert proc.poll() is None, f"{command!r} exited {proc.returncode}: {_tail(log.read_text())}"
            assert time.monotonic() < deadline, f"{command!r} not serving after 300 s: {_tail(log.read_text())}"
            time.sleep(1)
        out = log.read_text()
        said = re.search(r"serving (\S+)/(\S+): cron '([^']+)' \(([^)]+)\)", out)
        assert said, _tail(out)
        flow_name, dep_name, cron, tz = said.groups()
        schedule = w.params["schedule"]
        assert (cron, tz) == (schedule["cron"], schedule["timezone"])
        found = w.server.deployment(dep_name)
        assert found["paused"] is False
        [sched] = found["schedules"]
        assert (sched["schedule"]["cron"], sched["schedule"]["timezone"], sched["active"]) == (cron, tz, True)
        assert "ephemeral server" not in out, _tail(out)  # a temporary server would schedule nothing
    finally:
        code = _stop(proc, signal.SIGINT, wait_s=120)
        with open(log, "a") as f:
            f.write(f"\n[test: Ctrl-C (SIGINT to the process group); exit {code}]\n")
    out = log.read_text()
    assert code is not None, f"{command!r} did not stop within 120 s of Ctrl-C: {_tail(out)}"
    assert "shutting down" in out or code == 0, (code, _tail(out))
    assert w.server.deployment(dep_name)["paused"] is True, _tail(out)  # stopping pauses its schedule


# ============================================================================== the test
def test_readme_commands_run_verbatim_on_a_fresh_clone_after_make_run(tmp_path):
    for tool in ("git", "make", "bash"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    copy = fresh_copy(tmp_path / "capmix")
    logs = tmp_path / "logs"
    logs.mkdir()
    env = base_env(tmp_path, copy)
    shell = Shell(copy, env, logs)
    timings: list[tuple[str, float]] = []

    # make run, as on a fresh machine, without reinstalling the shared venv
    dry = subprocess.run(["make", "-n", "-o", STAMP, "run"], cwd=copy, env=env, capture_output=True, text=True)
    assert dry.returncode == 0 and dry.stdout.split("\n")[0].endswith("python -m flows.train"), dry.stdout
    assert not re.search(r"\bpip\b|-m venv", dry.stdout), f"make run would reinstall: {dry.stdout}"
    server = None
    try:
        t0 = time.monotonic()
        code, out = shell.run(f"make -o {STAMP} run")
        timings.append(("make run", time.monotonic() - t0))
        assert code == 0, _tail(out)
        world = World(copy, server=None)  # type: ignore[arg-type]
        check_training_flow(world, "make run", out, shell, {"versions": set()})
        world.note_champion()

        server = start_prefect_server(env, copy, logs / "prefect-server.log")
        world.server = server
        shell.env["PREFECT_API_URL"] = server.api

        commands = readme_commands(copy / "README.md")
        assert len(commands) >= 5, commands
        for command in commands:
            t0 = time.monotonic()
            if command.startswith(SERVES_FOREVER):
                run_serve(world, shell, command)
            else:
                versions, champion, _ = world.registry()
                before = {"versions": versions, "champion": champion,
                          "metrics": world.metrics(), "dvc.lock": (copy / "dvc.lock").read_text()}
                code, out = shell.run(command)
                assert code == 0, f"{command!r} exited {code}:\n{_tail(out)}"
                check = check_for(command)
                if check is not None:
                    check(world, command, out, shell, before)
                world.note_champion()
            timings.append((command.split("#")[0].strip(), time.monotonic() - t0))
    finally:
        if server is not None:
            _stop(server.proc)
        (logs / "timings.txt").write_text("".join(f"{s:7.1f} s  {c}\n" for c, s in timings))
        print("".join(f"{s:7.1f} s  {c}\n" for c, s in timings))

    log = tmp_path / "network.jsonl"
    attempts = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert attempts == [], f"commands tried to reach beyond loopback: {attempts}"


def test_readme_block_is_parsed_as_bash_runs_it():
    """The extraction itself: continuation lines joined, comments kept inline, blank lines dropped."""
    commands = readme_commands(ROOT / "README.md")
    assert commands[0] == "source .venv/bin/activate"
    joined = [c for c in commands if "\\\n" in c]
    assert all(len(_argv(c)) > 3 for c in joined)
    assert all(not c.lstrip().startswith("#") for c in commands)
    # every command the README shows has a check, or is one that serves until Ctrl-C
    assert [c for c in commands if check_for(c) is None and not c.startswith(SERVES_FOREVER)] == []
