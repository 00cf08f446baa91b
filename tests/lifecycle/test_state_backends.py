"""The lifecycle through the real CLI with the state where teams keep it: ``postgres://`` and ``s3://``.

A YAML program on the plugin, from its project folder as a user runs it, with ``PULUMI_BACKEND_URL`` naming a
real PostgreSQL (tests/support/postgres.py) or moto's S3 server: up, a no-change preview, an update, destroy
and ``stack rm``, each read back from the backend itself (the table's rows, the bucket's objects), and nothing
written to the local folder a file backend would use.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.object_stores import S3Server
from support.postgres import Postgres, running_postgres
from support.project import PACKAGE_VENV, project_folder
from support.runs import unique
from support.state_backends import PostgresState, S3State, StateBackend, resources_in

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer

PROJECT = "team-state"
PROGRAM = textwrap.dedent(
    f"""\
    name: {PROJECT}
    runtime: yaml
    config:
      experimentName:
        type: string
      reviewer:
        type: string
        default: alice
    resources:
      evaluations:
        type: mlflow-runs:index:Experiment
        properties:
          name: ${{experimentName}}
      run:
        type: mlflow-runs:index:ExperimentRun
        properties:
          experimentId: ${{evaluations.experimentId}}
          runName: on-team-state
          params:
            model: bert-base-uncased
          tags:
            reviewed_by: ${{reviewer}}
          metrics:
            - key: loss
              value: 0.42
              step: 0
    outputs:
      runId: ${{run.runId}}
    """
)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as server:
        yield server


@pytest.fixture(params=["postgres", "s3"])
def backend(request: pytest.FixtureRequest) -> StateBackend:
    """An empty backend of each kind: a new database, or a new bucket."""
    name = unique("state").replace("-", "_")
    if request.param == "postgres":
        server: Postgres = request.getfixturevalue("postgres")
        server.create_database(name)
        return PostgresState(server, name)
    s3: S3Server = request.getfixturevalue("s3_server")
    return S3State(s3, s3.create_bucket(name.replace("_", "-")))


def test_the_lifecycle_with_the_state_in_a_team_backend(
    backend: StateBackend, tmp_path: Path, pulumi_bin: Path, mlflow_server: MlflowServer, mlflow_client: MlflowClient
) -> None:
    folder = tmp_path / PROJECT
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text(PROGRAM)
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url, "PULUMI_BACKEND_URL": backend.url, **backend.env}
    stack = "dev"
    project = project_folder(folder, pulumi_bin, tmp_path, stack, env, venv=PACKAGE_VENV)
    project.init({"experimentName": unique("team-state")})
    assert backend.checkpoint(PROJECT, stack) is not None, backend.paths()

    project.pulumi("up", "--yes", "--skip-preview")
    run_id = project.outputs()["runId"]
    stored = resources_in(backend.checkpoint(PROJECT, stack) or {})
    assert stored["run"]["outputs"]["runId"] == run_id, stored.keys()
    assert stored["run"]["inputs"]["tags"] == {"reviewed_by": "alice"}
    assert mlflow_client.get_run(run_id).data.tags["reviewed_by"] == "alice"
    project.pulumi("preview", "--diff", "--expect-no-changes")

    project.pulumi("config", "set", "reviewer", "bob")
    assert "~ 1 to update" in project.pulumi("up", "--yes", "--diff").stdout
    stored = resources_in(backend.checkpoint(PROJECT, stack) or {})
    assert (stored["run"]["outputs"]["runId"], stored["run"]["inputs"]["tags"]) == (run_id, {"reviewed_by": "bob"})
    assert mlflow_client.get_run(run_id).data.tags["reviewed_by"] == "bob"
    history = [key for key in backend.paths() if f"/history/{PROJECT}/{stack}/" in key]
    assert len([key for key in history if key.endswith(".history.json")]) == 2, history  # one per update

    project.pulumi("destroy", "--yes", "--skip-preview")
    assert resources_in(backend.checkpoint(PROJECT, stack) or {}) == {}
    assert mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"
    project.pulumi("stack", "rm", "--yes")
    assert backend.checkpoint(PROJECT, stack) is None, backend.paths()
    assert not any((tmp_path / "state").iterdir()), "the file backend's folder was written to"
