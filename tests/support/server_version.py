"""Which MLflow the tests' server runs: this venv's (3.x), or another venv's named by ``MLFLOW_SERVER_PYTHON``."""

from __future__ import annotations

import functools
import os
import subprocess

SERVER_PYTHON_ENV = "MLFLOW_SERVER_PYTHON"
"""Another venv's python (scripts/mlflow2-venv.sh prints one): the session's server runs its MLflow."""


def server_python() -> str | None:
    """The python the session's ``mlflow server`` runs under, when it is not this one."""
    return os.environ.get(SERVER_PYTHON_ENV) or None


@functools.cache
def mlflow_version_of(python: str) -> str:
    """The MLflow version installed beside ``python`` (from its metadata, without importing mlflow)."""
    code = "import importlib.metadata as m; print(m.version('mlflow'))"
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def server_version() -> str:
    """The session server's MLflow version."""
    python = server_python()
    if python is None:
        from importlib.metadata import version

        return version("mlflow")
    return mlflow_version_of(python)


def server_is_mlflow3() -> bool:
    return int(server_version().split(".")[0]) >= 3
