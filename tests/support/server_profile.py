"""Which deployment the session's MLflow server is: a sqlite file (the default) or what a platform team runs.

``MLFLOW_SERVER_PROFILE=postgres`` gives the session's servers (``mlflow_server``, ``model_server``) a real
PostgreSQL backend store (tests/support/postgres.py), several uvicorn workers, and artifacts proxied by the
server (``--serve-artifacts``) to a bucket on moto's S3 server (tests/support/object_stores.py): each server its
own PostgreSQL, S3 server and bucket, started before it and stopped after it. ``.ci/run`` runs the tests marked
``postgres`` there (tests/conftest.py marks the ``mlflow2`` tests ``ON_POSTGRES`` names). The profile is read
once, when the tests start: a test that clears ``MLFLOW_*`` from its environment (the ``mlflow_env`` fixture)
must not change the profile of a server started after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.mlflow_server import MlflowServer, start_mlflow_server
from support.object_stores import S3Server, start_s3
from support.postgres import Postgres, running_postgres

PROFILE_ENV = "MLFLOW_SERVER_PROFILE"
PROFILES = ("sqlite", "postgres")
POSTGRES_WORKERS = 2
"""uvicorn workers of a PostgreSQL-profile server: the requests of one ``up`` land on different processes (two,
on a two-core machine where two test workers each run a server; a team's server runs more)."""
ARTIFACT_BUCKET = "mlflow-artifacts"
ON_POSTGRES = (
    "tests/lifecycle/test_run_lifecycle.py",
    "tests/lifecycle/test_faults_on_every_step.py",
    "tests/artifacts/test_artifact_sync.py",
    "tests/lifecycle/test_convergence_model.py",
    "tests/lifecycle/test_run_table_core.py",
    "tests/native/test_plugin_lifecycle.py::test_yaml_program_lifecycle",
    "tests/native/test_plugin_lifecycle.py::test_faults_through_the_plugin_leave_one_run_with_each_point_once[yaml-",
)
"""Where the ``mlflow2`` tests run again on the PostgreSQL profile (marked ``postgres``; node ids that start so):
the lifecycle, faults on every step, artifacts, the convergence model's budget, parallel writes of a table, and
through the CLI the plugin's lifecycle and faults (the YAML program's; the Python one's are the same on the
wire). What can differ there: a store that enforces column types and lengths, a read answered by another process
than the write before it, artifacts through the server to S3 instead of a local folder. 434 s on two workers
at a load average of 9-13 (README, "How it is tested")."""
NOT_ON_POSTGRES = ("tests/artifacts/test_artifact_sync.py::test_through_the_cli_",)
"""The artifacts through the CLI: a minute, and the plugin's lifecycle above sends artifacts through the CLI too."""


def on_postgres(nodeid: str) -> bool:
    """Whether the ``mlflow2`` test ``nodeid`` runs again on the PostgreSQL profile."""
    return nodeid.startswith(ON_POSTGRES) and not nodeid.startswith(NOT_ON_POSTGRES)


def _read_profile() -> str:
    profile = os.environ.get(PROFILE_ENV) or "sqlite"
    if profile not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={profile!r}: expected one of {', '.join(PROFILES)}")
    return profile


PROFILE = _read_profile()
"""The session's profile, as the environment said when the tests started."""


@dataclass
class TeamServer:
    """An MLflow server on PostgreSQL with its artifacts on S3, and the two stores, to read back what it wrote."""

    server: MlflowServer
    postgres: Postgres
    database: str
    s3: S3Server
    bucket: str
    prefix: str


@contextmanager
def profile_server(workdir: Path, python: str | None = None) -> Iterator[MlflowServer]:
    """An MLflow server of the session's profile in ``workdir``, stopped (with what it runs on) after the block."""
    if PROFILE == "postgres":
        with team_server(workdir, python) as team:
            yield team.server
        return
    server = start_mlflow_server(workdir, python=python)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def team_server(workdir: Path, python: str | None = None) -> Iterator[TeamServer]:
    """PostgreSQL, moto's S3 server with a bucket, and an MLflow server on both; each stopped after the block,
    the MLflow server first."""
    with ExitStack() as stack:
        postgres = stack.enter_context(running_postgres())
        postgres.create_database("mlflow")
        s3 = stack.enter_context(start_s3(workdir / "s3"))
        s3.create_bucket(ARTIFACT_BUCKET)
        server = start_mlflow_server(
            workdir / "mlflow",
            python=python,
            workers=POSTGRES_WORKERS,
            backend_store_uri=postgres.sqlalchemy_uri("mlflow"),
            artifact_root="mlflow-artifacts:/",
            extra_args=["--artifacts-destination", f"s3://{ARTIFACT_BUCKET}/{workdir.name}", "--serve-artifacts"],
            extra_env=s3.env,
        )
        stack.callback(server.stop)
        yield TeamServer(server, postgres, "mlflow", s3, ARTIFACT_BUCKET, workdir.name)
