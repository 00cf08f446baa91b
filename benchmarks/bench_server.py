"""MLflow servers for the benchmark: the tests' one-worker server, or the same with more uvicorn workers."""

from __future__ import annotations

from pathlib import Path

import bench_common  # noqa: F401 - sets the environment and sys.path first
import httpx

from support.mlflow_server import MlflowServer, start_mlflow_server


def start_server(workdir: Path, workers: int = 1) -> MlflowServer:
    """A sqlite-backed server on a free loopback port, healthy when returned (scale asks for 4 workers)."""
    return start_mlflow_server(workdir, timeout=120, workers=workers)


def create_experiment(url: str, name: str) -> str:
    with httpx.Client(base_url=url, timeout=60) as client:
        resp = client.post("/api/2.0/mlflow/experiments/create", json={"name": name})
        resp.raise_for_status()
        return str(resp.json()["experiment_id"])
