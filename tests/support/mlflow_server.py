"""Start a real ``mlflow server`` (sqlite backend) on a free loopback port for integration tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

_STARTUP_TIMEOUT = 60.0
_STOP_GRACE = 10.0


@dataclass
class MlflowServer:
    """A running server; ``stop()`` kills its whole process group (uvicorn spawns workers)."""

    port: int
    log_path: Path
    process: subprocess.Popen[bytes]
    extra_env: Mapping[str, str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        stop_group(self.process)

    def start_again(self, timeout: float = _STARTUP_TIMEOUT) -> None:
        """After ``stop()``: start it on the same port, store and artifact root, as an operator restarts it.

        The port is free once the old group is gone; if another process took it meanwhile, the new server
        dies and this raises with its log.
        """
        workdir = self.log_path.parent
        self.log_path = workdir / f"mlflow-server-{len(list(workdir.glob('mlflow-server-*.log'))) + 1}.log"
        self.process = _spawn(list(self.process.args), self.log_path, self.extra_env)  # type: ignore[arg-type]
        if not _wait_healthy(self, timeout):
            raise RuntimeError(f"mlflow server did not come back on port {self.port}; log tail:\n{self.log_tail()}")

    def __enter__(self) -> MlflowServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's group, SIGKILL after a grace; then to stragglers left in the group."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_GRACE)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()
    # Stragglers (if any) share the group even after the leader has exited.
    _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)  # pgid == pid thanks to start_new_session=True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(
    workdir: Path,
    port: int,
    attempt: int,
    workers: int,
    app_name: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    python: str | None = None,
    artifact_root: str | None = None,
    extra_args: Sequence[str] = (),
    backend_store_uri: str | None = None,
) -> MlflowServer:
    log_path = workdir / f"mlflow-server-{attempt}.log"
    cmd = [
        python or sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_store_uri or f"sqlite:///{workdir / 'mlflow.db'}",
        "--default-artifact-root", artifact_root or str(workdir / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    if app_name:
        cmd += ["--app-name", app_name]
    cmd += extra_args
    return MlflowServer(port=port, log_path=log_path, process=_spawn(cmd, log_path, extra_env), extra_env=extra_env)


def _spawn(cmd: list[str], log_path: Path, extra_env: Mapping[str, str] | None) -> subprocess.Popen[bytes]:
    """The server process, in a group of its own (``stop`` signals the group), logging beside its store."""
    env = dict(os.environ)
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no huey consumers: faster start, fewer processes
    env.update(extra_env or {})
    with log_path.open("wb") as log:
        return subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=log_path.parent, start_new_session=True,
        )  # fmt: skip


def _wait_healthy(server: MlflowServer, timeout: float) -> bool:
    """True when /health says 200; False if the process died; raises on timeout."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                return False
            try:
                if client.get(f"{server.url}/health").status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"mlflow server not healthy after {timeout:.0f}s; log tail:\n{server.log_tail()}")


def start_mlflow_server(
    workdir: Path,
    *,
    timeout: float = _STARTUP_TIMEOUT,
    attempts: int = 3,
    workers: int = 1,
    app_name: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    python: str | None = None,
    artifact_root: str | None = None,
    extra_args: Sequence[str] = (),
    backend_store_uri: str | None = None,
) -> MlflowServer:
    """Start the server and block until healthy; retries on a lost free-port race.

    One uvicorn worker for tests; the benchmark's scale test asks for more. ``app_name`` is passed as
    ``--app-name`` (``basic-auth`` for MLflow's auth app) and ``extra_env`` is added to the server's env
    (the auth app's ``MLFLOW_FLASK_SERVER_SECRET_KEY`` and ``MLFLOW_AUTH_ADMIN_PASSWORD``).
    ``python`` runs ``-m mlflow server`` instead of this interpreter: another venv's MLflow (2.x, say).
    ``artifact_root`` replaces the default root (``s3://bucket/prefix``, say) and ``extra_args`` go last
    (``--no-serve-artifacts``). ``backend_store_uri`` replaces the sqlite file in ``workdir`` (PostgreSQL:
    tests/support/server_profile.py).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "artifacts").mkdir(exist_ok=True)
    for attempt in range(1, attempts + 1):
        server = _launch(
            workdir, _free_port(), attempt, workers, app_name, extra_env, python, artifact_root, extra_args,
            backend_store_uri,
        )
        if _wait_healthy(server, timeout):
            return server
        server.stop()
        tail = server.log_tail()
        if "address already in use" not in tail.lower() or attempt == attempts:
            raise RuntimeError(f"mlflow server exited with {server.process.returncode}; log tail:\n{tail}")
    raise AssertionError("unreachable")
