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
from support.mlflow_server import MlflowServer  # noqa: E402
from support.object_stores import S3Server, start_s3  # noqa: E402
from support.once import built_once, locked, shared_root  # noqa: E402
from support.project import PACKAGE_VENV  # noqa: E402
from support.server_profile import on_postgres, profile_server  # noqa: E402
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
    if not hasattr(config, "workerinput"):  # once per run, before any worker starts a CLI
        _forget_cached_schema()
    config.addinivalue_line(
        "markers", "mlflow3: needs an MLflow 3 server (skipped when MLFLOW_SERVER_PYTHON runs an older one)"
    )
    config.addinivalue_line(
        "markers",
        "cli: needs the Pulumi CLI, a language host or a built SDK; given by conftest to every test that uses "
        f"{', '.join(sorted(CLI_FIXTURES))} or lives in tests/{{{','.join(sorted(CLI_FOLDERS))}}} (not in --fast)",
    )
    config.addinivalue_line("markers", "slow: needs no CLI but takes more than a few seconds (not in --fast)")
    config.addinivalue_line(
        "markers", "mlflow2: can differ on an MLflow 2.x server; .ci/run runs these again against MLflow 2.22"
    )
    config.addinivalue_line(
        "markers",
        "postgres: run again by .ci/run on MLflow on PostgreSQL with S3 artifacts (MLFLOW_SERVER_PROFILE=postgres); "
        "given by conftest to the mlflow2 tests support/server_profile.py's ON_POSTGRES names",
    )


CLI_FIXTURES = frozenset({"pulumi_bin", "npm_sdk", "wheel"})
"""Fixtures only a test that runs the CLI, a language host or a built package uses: such a test is ``cli``."""
CLI_FOLDERS = frozenset({"native", "languages"})
"""Folders whose every test runs the CLI or a language's toolchain."""


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects on the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.relative_to(_TESTS_DIR).parts[0]
        if CLI_FIXTURES & set(getattr(item, "fixturenames", ())) or folder in CLI_FOLDERS:
            item.add_marker(pytest.mark.cli)
        if item.get_closest_marker("mlflow2") and on_postgres(item.nodeid):
            item.add_marker(pytest.mark.postgres)
    # The longest first (those given a timeout above the default: the convergence model, the languages), so
    # that with two workers no one of them starts last while the other worker idles. A stable sort: a
    # module's tests stay together and in order.
    items.sort(key=_expected_length, reverse=True)


def _expected_length(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    return float(marker.args[0]) if marker is not None and marker.args else 0.0


def _forget_cached_schema() -> None:
    """The CLI keeps the plugin's schema beside the plugin it found (``<venv>/schema-mlflow-runs.json``) and trusts
    it while the plugin file is older. An editable install's plugin is a script that never changes while the
    schema does, so a stale copy would have the YAML host check programs against an old schema: drop it."""
    (PACKAGE_VENV / "schema-mlflow-runs.json").unlink(missing_ok=True)


def _cli_only(request: pytest.FixtureRequest) -> None:
    """A tool fixture asked for by a test not marked ``cli`` (through ``request.getfixturevalue``, which the
    collection hook cannot see) would put a minutes-long test into the fast tier: refuse it."""
    if request.node.get_closest_marker("cli") is None:
        pytest.fail(f"{request.node.nodeid} uses {request.fixturename} but is not marked cli", pytrace=False)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("mlflow3") is not None and not server_is_mlflow3():
        pytest.skip(f"needs an MLflow 3 server; the test server is MLflow {server_version()} ({SERVER_PYTHON_ENV})")


def _serving(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[MlflowServer]:
    """A server of the session's profile (``MLFLOW_SERVER_PROFILE``: sqlite, or PostgreSQL with S3 artifacts)."""
    with profile_server(tmp_path_factory.mktemp(name), python=server_python()) as server:
        yield server


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """The session's server: this venv's MLflow, or the one beside ``MLFLOW_SERVER_PYTHON``."""
    yield from _serving(tmp_path_factory, "mlflow-server")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server (tests/support/object_stores.py); each test creates the buckets it uses."""
    with start_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server


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
def _pulumi_cli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.pulumi_cli import require_cli

    # scripts/pulumi-cli.sh builds what it cannot find: one worker at a time, so that only one builds.
    with locked(shared_root(tmp_path_factory) / "pulumi-cli.lock"):
        return require_cli()


@pytest.fixture
def pulumi_bin(_pulumi_cli: Path, request: pytest.FixtureRequest) -> Path:
    """The folder of the real Pulumi CLI (scripts/pulumi-cli.sh); skips without one, fails under CI=true."""
    _cli_only(request)
    return _pulumi_cli


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


def _build_wheel(out: Path) -> Path:
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(_TESTS_DIR.parent)],
        check=True, timeout=600,
    )  # fmt: skip
    (built,) = out.glob("pulumi_mlflow_runs-*.whl")
    return built


@pytest.fixture(scope="session")
def _wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_once(tmp_path_factory, "wheel", _build_wheel)


@pytest.fixture
def wheel(_wheel: Path, request: pytest.FixtureRequest) -> Path:
    """The wheel a release would publish, built from this checkout once per run (the README tests install it)."""
    _cli_only(request)
    return _wheel


@pytest.fixture(scope="session")
def _npm_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.sdks import npm_package

    return built_once(tmp_path_factory, "npm", npm_package)


@pytest.fixture
def npm_sdk(_npm_sdk: Path, request: pytest.FixtureRequest) -> Path:
    """The Node.js SDK's npm package as a release packs it (scripts/sdk-nodejs.sh), built once per run."""
    _cli_only(request)
    return _npm_sdk


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """A test that leaves an ``Output`` unstarted fails itself, once its fixtures are torn down: left in the SDK's
    ``SETTINGS.outputs``, it would be collected, and reported as never awaited, in whichever later test clears
    that list."""
    from pulumi.runtime.settings import SETTINGS

    yield None
    left = [output for output in list(getattr(SETTINGS, "outputs", ())) if not output.done()]
    SETTINGS.outputs.clear()
    if left:
        pytest.fail(f"{len(left)} Output task(s) left pending (close the test's loop with support.engine.close_loop)")
