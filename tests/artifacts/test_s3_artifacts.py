"""Run artifacts on a direct S3 root: an MLflow server run with ``--default-artifact-root s3://bucket/prefix
--no-serve-artifacts`` (MLflow's "remote tracking with direct artifact access") against moto's S3 server.

What the provider stores must be what MLflow's own client (boto3, with ``MLFLOW_S3_ENDPOINT_URL``) reads back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.mlflow_server import MlflowServer, start_mlflow_server
from support.object_stores import S3Server
from support.runs import unique

BUCKET = "mlflow-artifacts"


@pytest.fixture(scope="module")
def s3_mlflow(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[MlflowServer]:
    """An MLflow server whose runs get ``s3://<BUCKET>/runs/...`` roots, serving no artifacts itself."""
    s3_server.create_bucket(BUCKET)
    server = start_mlflow_server(
        tmp_path_factory.mktemp("mlflow-s3"),
        artifact_root=f"s3://{BUCKET}/runs",
        extra_args=["--no-serve-artifacts"],
        extra_env=s3_server.env,
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_client(s3_mlflow: MlflowServer, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Any:
    """MLflow's own client of that server, reading the bucket as MLflow does (boto3 and the env)."""
    from mlflow.tracking import MlflowClient

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return MlflowClient(tracking_uri=s3_mlflow.url)


def test_the_servers_runs_get_s3_roots(s3_client: Any, s3_server: S3Server, tmp_path: Path) -> None:
    experiment = s3_client.create_experiment(unique("s3"))
    run = s3_client.create_run(experiment)
    assert run.info.artifact_uri.startswith(f"s3://{BUCKET}/runs/")
    (tmp_path / "a.txt").write_text("from mlflow's client")
    s3_client.log_artifact(run.info.run_id, str(tmp_path / "a.txt"))
    key = run.info.artifact_uri.removeprefix(f"s3://{BUCKET}/") + "/a.txt"
    assert s3_server.objects(BUCKET, key) == {key: b"from mlflow's client"}
