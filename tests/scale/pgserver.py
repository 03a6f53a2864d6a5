"""A throw-away PostgreSQL server on loopback, started from the machine's own binaries.

Used by the tests in tests/scale and by bench/bench_scale.py. The binaries come from PATH or
Debian's ``/usr/lib/postgresql/<version>/bin`` (``.ci/run`` apt-installs ``postgresql`` when
neither has them). initdb refuses to run as root, so as root the cluster is created and run as an
unprivileged system user (``postgres`` when it exists, else ``nobody``) through ``runuser``.
Authentication is ``trust`` on 127.0.0.1 only: a test database, never a deployment recipe.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "capmix"


def find_bin_dir() -> Path | None:
    """Directory holding initdb, pg_ctl and postgres, or None."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    # Debian keeps the server binaries off PATH; the newest version first
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                      if Path(p).parent.name.isdigit() else 0, reverse=True)
    candidates += [Path(p) for p in versions]
    for d in candidates:
        if all((d / b).exists() for b in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """Command prefix that drops root for initdb/pg_ctl, and that user; nothing when not root."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if shutil.which("runuser"):
            return ["runuser", "-u", name, "--"], entry
        if shutil.which("setpriv"):
            return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"], entry
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    data_dir: Path

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name`` (dropped first if it exists); returns its SQLAlchemy URL."""
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)


@contextmanager
def temporary_postgres(bin_dir: Path | None = None, max_connections: int = 100) -> Iterator[PostgresServer]:
    """initdb + start a server on a free loopback port; stopped and deleted on exit."""
    bin_dir = bin_dir or find_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found")
    prefix, owner = _run_as()
    root = Path(tempfile.mkdtemp(prefix="capmix-pg-"))
    data, sock, log = root / "data", root / "sock", root / "server.log"
    sock.mkdir()
    if owner is not None:
        for p in (root, sock):
            os.chown(p, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    try:
        subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust",
                        "-E", "UTF8", "--no-sync", "--no-instructions"], check=True, capture_output=True, text=True)
        # fsync off and no listening beyond loopback: a disposable test cluster
        opts = (f"-h 127.0.0.1 -p {port} -k {sock} -F -c max_connections={max_connections} "
                "-c synchronous_commit=off -c full_page_writes=off")
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w",
                        "-t", "60", "start"], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr or exc.stdout
        if log.exists():
            detail += log.read_text()[-2000:]
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL from {bin_dir}: {detail}") from exc
    try:
        yield PostgresServer("127.0.0.1", port, SUPERUSER, data)
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
