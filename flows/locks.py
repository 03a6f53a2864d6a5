"""One training flow at a time in the registry of a model, and the runs that flows killed left behind.

* :func:`out_dir_lock`: one training flow at a time per output directory;
* :func:`registry_lock`: register + promote of a model run inside a file lock, so concurrent flows
  register one after the other and each gate compares against the champion of that moment;
* :func:`run_owner_tags` / :func:`fail_dead_runs`: a run names its process, so the next flow can
  mark FAILED the runs whose process was killed (a SIGKILL leaves no chance to end the run).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from flows.provenance import utc_now

__all__ = ["LOCK_TIMEOUT_S", "fail_dead_runs", "lock_path", "out_dir_lock", "registry_lock", "run_owner_tags"]

#: How long a training flow waits for another one holding the registry of the same model.
LOCK_TIMEOUT_S = 3600.0
RUN_PID_TAG = "capmix.pid"
RUN_HOST_TAG = "capmix.host"


def lock_path(tracking_uri: str, name: str) -> Path:
    """The lock file guarding register + promote of model ``name`` in the store ``tracking_uri``.

    A sqlite store gets its lock beside the database file (everyone opening that file shares it);
    any other store (a server, PostgreSQL) a lock under ``CAPMIX_LOCK_DIR`` (default
    ``~/.cache/capmix/locks``), which serialises the flows of one machine. Flows on several
    machines need a shared lock service instead (a Prefect global concurrency limit).
    """
    safe = re.sub(r"[^\w.-]", "_", name)
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return db.with_name(f"{db.name}.{safe}.lock")
    root = Path(os.environ.get("CAPMIX_LOCK_DIR", Path.home() / ".cache" / "capmix" / "locks"))
    return root / f"{hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]}-{safe}.lock"


@contextmanager
def registry_lock(tracking_uri: str, name: str, timeout: float = LOCK_TIMEOUT_S) -> Iterator[Path]:
    """Hold the lock of model ``name`` (register + promote run inside it, so the promotion gate
    compares against the champion as it is at the moment of promotion). The OS releases the lock
    when its holder dies, so a killed flow never blocks the next one."""
    from filelock import FileLock, Timeout

    path = lock_path(tracking_uri, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise TimeoutError(
            f"another training flow has held the registry lock {path} of {name!r} for over {timeout:.0f} s; "
            "wait for it to finish (a dead holder releases it automatically)"
        ) from exc
    try:
        yield path
    finally:
        lock.release()


def run_owner_tags() -> dict[str, str]:
    """Tags naming the process of a run, so a later run can tell a killed one from a live one."""
    return {RUN_PID_TAG: str(os.getpid()), RUN_HOST_TAG: socket.gethostname()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def fail_dead_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark FAILED the RUNNING runs of this host whose process is gone (killed, crashed, OOM).

    A SIGKILL leaves no chance to end the run; the next flow cleans it up. Runs of other hosts, and
    runs without the owner tags, are left alone (their process cannot be checked from here).
    """
    host = socket.gethostname()
    dead = []
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        pid = tags.get(RUN_PID_TAG)
        if tags.get(RUN_HOST_TAG) != host or not pid or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        client.set_tag(run.info.run_id, "capmix.failure", f"process {pid} ended without closing the run "
                       f"(killed or crashed); marked FAILED at {utc_now()}")
        client.set_terminated(run.info.run_id, status="FAILED")
        dead.append(run.info.run_id)
    return dead



@contextmanager
def out_dir_lock(out: Path, log: Any) -> Iterator[None]:
    """Exclusive use of a flow output directory: a second flow started at once waits here instead of
    overwriting the models the first one is about to register (the OS releases it if the holder dies)."""
    from filelock import FileLock, Timeout

    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / ".flow.lock"))
    try:
        held = lock.acquire(timeout=0)
    except Timeout:
        log.warning("another training flow is using %s; waiting for it to finish", out)
        held = lock.acquire()
    with held:
        yield


# ------------------------------------------------------------------------------ Prefect flow runs
#: The flows whose runs tag their process, so a later run can mark a killed one Crashed.
CAPMIX_FLOWS = ("capmix-nightly", "capmix-day", "capmix-train", "capmix-score")
#: Flow-run tags naming the process that runs it (a killed process cannot report its own crash).
PREFECT_PID_TAG = "capmix.pid:"
PREFECT_HOST_TAG = "capmix.host:"


def tag_flow_run_owner() -> None:
    """Tag the current flow run with this process and host, for :func:`crash_dead_flow_runs`."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        tags = [t for t in client.read_flow_run(run_id).tags
                if not t.startswith((PREFECT_PID_TAG, PREFECT_HOST_TAG))]
        client.update_flow_run(run_id, tags=[*tags, f"{PREFECT_PID_TAG}{os.getpid()}",
                                             f"{PREFECT_HOST_TAG}{socket.gethostname()}"])


def crash_dead_flow_runs(flow_names: tuple[str, ...]) -> list[str]:
    """Mark Crashed the Running flow runs of ``flow_names`` that this host's dead processes left behind.

    A SIGKILL (OOM killer, a lost machine) leaves Prefect believing the run is Running for ever. A run
    tagged by :func:`tag_flow_run_owner` with this host and a process that is gone is set Crashed, and
    runs of other hosts are left alone (their process cannot be checked). Every run that should be
    checked tags itself (subflows too: they run in their parent's process)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    host = socket.gethostname()
    crashed: list[str] = []
    with get_client(sync_client=True) as client:
        running = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=list(flow_names))),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING]))),
        )
        for run in running:
            tags = dict(t.split(":", 1) for t in run.tags if t.startswith((PREFECT_PID_TAG, PREFECT_HOST_TAG)))
            h, pid = tags.get(PREFECT_HOST_TAG[:-1]), tags.get(PREFECT_PID_TAG[:-1])
            if h != host or not pid or not pid.isdigit() or _pid_alive(int(pid)) or int(pid) == os.getpid():
                continue
            client.set_flow_run_state(run.id, Crashed(message=f"process {pid} on {host} ended without finishing "
                                                              f"the run (killed); marked Crashed at {utc_now()}"),
                                      force=True)
            crashed.append(str(run.id))
    return crashed


@contextmanager
def global_limit(name: str, log: Any, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the one slot of the Prefect global concurrency limit ``name`` (created on first use): two
    nightly runs never overlap on one Prefect server, whatever machines their workers run on."""
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency

    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    log.info("waiting for the global concurrency limit %r (one nightly run at a time)", name)
    with concurrency(name, occupy=1, timeout_seconds=timeout, strict=True):
        yield
