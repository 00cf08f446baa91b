"""MLflow as a platform team runs it, the server profile ``.ci/run`` runs the ``postgres`` tests on: a real
PostgreSQL backend store, several workers, artifacts proxied by the server to an S3 bucket (tests/support/
server_profile.py). Proves the profile is what it says, whatever profile the session's own server has: what
the provider writes through the host is a row in PostgreSQL and objects in the bucket, not a sqlite file or a
local folder.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest

from support.host import DynamicHost, isolated_env
from support.runs import create_run
from support.server_profile import POSTGRES_WORKERS, TeamServer, team_server

pytestmark = pytest.mark.slow  # its own PostgreSQL, S3 and MLflow servers


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    with team_server(tmp_path_factory.mktemp("team-server")) as started:
        yield started


def test_a_run_with_artifacts_lands_in_postgres_and_the_bucket(team: TeamServer) -> None:
    from mlflow.tracking import MlflowClient

    args = team.server.process.args
    assert isinstance(args, list) and args[args.index("--workers") + 1] == str(POSTGRES_WORKERS) != "1"
    client = MlflowClient(tracking_uri=team.server.url)
    experiment_id = str(client.create_experiment(f"team-{uuid.uuid4().hex[:8]}"))
    with DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=team.server.url)) as host:
        host.configure({})
        run_id, outs, _ = create_run(
            host,
            experiment_id=experiment_id,
            params={"model": "bert"},
            artifacts={"notes/readme.txt": pulumi.StringAsset("hello\n")},
        )
    rows = team.postgres.execute(team.database, "SELECT artifact_uri FROM runs WHERE run_uuid = %s", [run_id])
    assert rows == [(f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts",)], rows
    params: list[tuple[Any, ...]] = team.postgres.execute(
        team.database, "SELECT key, value FROM params WHERE run_uuid = %s", [run_id]
    )
    assert params == [("model", "bert")]
    stored = team.s3.objects(team.bucket, f"{team.prefix}/")
    assert stored == {f"{team.prefix}/{experiment_id}/{run_id}/artifacts/notes/readme.txt": b"hello\n"}, stored
    assert set(outs["artifact_files"]) == {"notes/readme.txt"}
    assert not (team.server.log_path.parent / "mlflow.db").exists(), "the server made a sqlite store"
