"""Shared fixtures: one real MLflow server per session, plus env/client/experiment helpers."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

_TESTS_DIR = Path(__file__).resolve().parent
# `support.*` (tests/support) importable under any import mode; `pulumi_mlflow_runs` comes from the
# installed package (`pip install -e .`), as it does for the provider host the engine starts.
if str(_TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(_TESTS_DIR))

from support.fault_proxy import FaultProxy  # noqa: E402
from support.host import DynamicHost, isolated_env  # noqa: E402
from support.mlflow_proxy import RecordingProxy  # noqa: E402
from support.mlflow_server import MlflowServer, start_mlflow_server  # noqa: E402
from support.server_version import SERVER_PYTHON_ENV, server_is_mlflow3, server_python, server_version  # noqa: E402

if TYPE_CHECKING:  # importing mlflow is slow; keep it out of collection
    from mlflow.tracking import MlflowClient


@pytest.fixture(scope="module")
def host(mlflow_server: MlflowServer) -> Iterator[DynamicHost]:
    """A real provider host pointed at the test server through MLFLOW_TRACKING_URI, with no stack config."""
    with DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=mlflow_server.url)) as h:
        h.configure({})
        yield h


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "mlflow3: needs an MLflow 3 server (skipped when MLFLOW_SERVER_PYTHON runs an older one)"
    )
    config.addinivalue_line("markers", "cli: needs the Pulumi CLI, a language host or a built SDK (not in --fast)")
    config.addinivalue_line("markers", "slow: needs no CLI but takes more than a few seconds (not in --fast)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("mlflow3") is not None and not server_is_mlflow3():
        pytest.skip(f"needs an MLflow 3 server; the test server is MLflow {server_version()} ({SERVER_PYTHON_ENV})")


def _serving(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[MlflowServer]:
    server = start_mlflow_server(tmp_path_factory.mktemp(name), python=server_python())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """The session's server: this venv's MLflow, or the one beside ``MLFLOW_SERVER_PYTHON``."""
    yield from _serving(tmp_path_factory, "mlflow-server")


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A server of its own for a module whose tests stop it and start it again (the convergence model)."""
    yield from _serving(tmp_path_factory, "own-server")


@pytest.fixture
def proxy(mlflow_server: MlflowServer) -> Iterator[RecordingProxy]:
    """A recording proxy in front of the test server: what the provider sent, in order (a file may override)."""
    with RecordingProxy(mlflow_server.url) as p:
        yield p


@pytest.fixture
def fault_proxy(mlflow_server: MlflowServer) -> Iterator[FaultProxy]:
    """A proxy in front of the test server that injects the faults a test asks for (``fail``)."""
    with FaultProxy(mlflow_server.url) as p:
        yield p


@pytest.fixture(scope="session")
def pulumi_bin() -> Path:
    """The folder of the real Pulumi CLI (scripts/pulumi-cli.sh); skips without one, fails under CI=true."""
    from support.pulumi_cli import require_cli

    return require_cli()


@pytest.fixture
def mlflow_env(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point MLflow at the local server and hide any ambient credentials."""
    for name in set(os.environ) - set(isolated_env()):
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    return mlflow_server.url


@pytest.fixture
def mlflow_client(mlflow_server: MlflowServer) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=mlflow_server.url)


@pytest.fixture
def experiment_id(mlflow_client: MlflowClient) -> str:
    return mlflow_client.create_experiment(f"test-{uuid.uuid4().hex}")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel a release would publish, built from this checkout (the README tests install it)."""
    import subprocess

    out = tmp_path_factory.mktemp("dist")
    root = _TESTS_DIR.parent
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(root)],
        check=True, timeout=600,
    )  # fmt: skip
    (built,) = out.glob("pulumi_mlflow_runs-*.whl")
    return built


@pytest.fixture(scope="session")
def npm_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Node.js SDK's npm package as a release packs it (scripts/sdk-nodejs.sh), built once per session."""
    from support.sdks import npm_package

    return npm_package(tmp_path_factory.mktemp("npm"))
