"""MLflow servers for the benchmark: the tests' one-worker server, or the same with more uvicorn workers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import bench_common  # noqa: F401 - sets the environment and sys.path first
import httpx

from support.mlflow_server import MlflowServer, start_mlflow_server


def start_server(workdir: Path, workers: int = 1) -> MlflowServer:
    """A sqlite-backed server on a free loopback port, healthy when returned."""
    if workers == 1:
        return start_mlflow_server(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "artifacts").mkdir(exist_ok=True)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log_path = workdir / "mlflow-server.log"
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--default-artifact-root", str(workdir / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=workdir, start_new_session=True,
        )  # fmt: skip
    server = MlflowServer(port=port, log_path=log_path, process=process)
    deadline = time.monotonic() + 120
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                if client.get(f"{server.url}/health").status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"mlflow server with {workers} workers did not start; log tail:\n{server.log_tail()}")


def create_experiment(url: str, name: str) -> str:
    with httpx.Client(base_url=url, timeout=60) as client:
        resp = client.post("/api/2.0/mlflow/experiments/create", json={"name": name})
        resp.raise_for_status()
        return str(resp.json()["experiment_id"])
