"""A run gone for good: moved to the trash, then removed from the server's store by ``mlflow gc``."""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from .mlflow_server import MlflowServer


def purge_run(server: MlflowServer, client: MlflowClient, run_id: str) -> None:
    """Delete ``run_id`` for good, as an administrator does: ``runs/delete``, then ``mlflow gc --run-ids``.

    ``gc`` runs under the interpreter that runs the server (its MLflow, its store schema) against the
    server's own backend store, read from the server's command line; a sqlite store takes it while the
    server runs. ``MLFLOW_TRACKING_URI`` names the server, which ``gc`` needs to resolve artifact URIs.
    """
    command = list(server.process.args)  # type: ignore[arg-type]
    store = command[command.index("--backend-store-uri") + 1]
    client.delete_run(run_id)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_"))}
    env["MLFLOW_TRACKING_URI"] = server.url
    proc = subprocess.run(
        [command[0], "-m", "mlflow", "gc", "--backend-store-uri", store, "--run-ids", run_id],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"mlflow gc failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException as exc:
        assert exc.error_code == "RESOURCE_DOES_NOT_EXIST", exc
    else:
        raise AssertionError(f"run {run_id} is still on the server after mlflow gc")
