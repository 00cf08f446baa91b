"""MLflow's basic-auth app, for real: ``mlflow server --app-name basic-auth``.

Username and password from env and from stack config (through Configure as the engine sends it, and
through ``pulumi config set`` with the real CLI); a wrong password is one clear 401 that never echoes it; a
second user, created through the auth API and given only READ on an experiment, gets a clear 403 that
names the experiment. A counting relay in front of the server counts the requests that reach it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pulumi_mlflow_runs import ExperimentRunProvider

from support.host import DynamicHost, HostError, isolated_env, secret, with_provider
from support.mlflow_server import MlflowServer, start_mlflow_server
from support.tls_proxy import TlsProxy

pytestmark = pytest.mark.slow  # a basic-auth server of its own

ADMIN = "admin"
ADMIN_PASSWORD = "admin-pw-" + uuid.uuid4().hex
USER = "bob"
USER_PASSWORD = "bob-pw-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = start_mlflow_server(
        tmp_path_factory.mktemp("mlflow-basic-auth"),
        app_name="basic-auth",
        extra_env={"MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def admin(auth_server: MlflowServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=auth_server.url, auth=(ADMIN, ADMIN_PASSWORD), timeout=30) as client:
        created = client.post("/api/2.0/mlflow/users/create", json={"username": USER, "password": USER_PASSWORD})
        assert created.status_code == 200, created.text
        yield client


@pytest.fixture
def relay(auth_server: MlflowServer) -> Iterator[TlsProxy]:
    """Plain relay to the server that counts the HTTP requests passing through it."""
    with TlsProxy(auth_server.port, None) as proxy:
        yield proxy


def _experiment(admin: httpx.Client) -> str:
    resp = admin.post("/api/2.0/mlflow/experiments/create", json={"name": f"auth-{uuid.uuid4().hex}"})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["experiment_id"])


def _props(experiment_id: str, **extra: Any) -> dict[str, Any]:
    return with_provider({"experiment_id": experiment_id, **extra}, ExperimentRunProvider())


def _run_name(admin: httpx.Client, run_id: str) -> str:
    resp = admin.get("/api/2.0/mlflow/runs/get", params={"run_id": run_id})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["run"]["info"]["run_name"])


def test_username_and_password_from_env(relay: TlsProxy, admin: httpx.Client) -> None:
    exp = _experiment(admin)
    env = isolated_env(MLFLOW_TRACKING_URI=relay.url, MLFLOW_TRACKING_USERNAME=ADMIN,
                       MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD)
    with DynamicHost(env=env) as host:
        host.configure({})
        run_id, outs = host.create(host.check({}, _props(exp, run_name="from-env")).inputs)
        assert ADMIN_PASSWORD not in host.stderr_text()
    assert _run_name(admin, run_id) == "from-env" and ADMIN_PASSWORD not in repr(outs)


def test_username_and_password_from_stack_config(relay: TlsProxy, admin: httpx.Client) -> None:
    exp = _experiment(admin)
    with DynamicHost(env=isolated_env()) as host:
        host.configure({"mlflow:trackingUri": relay.url, "mlflow:username": ADMIN,
                        "mlflow:password": secret(ADMIN_PASSWORD)})
        run_id, _ = host.create(host.check({}, _props(exp, run_name="from-stack")).inputs)
    assert _run_name(admin, run_id) == "from-stack"


def test_wrong_password_is_one_clear_401_that_never_echoes_it(relay: TlsProxy, admin: httpx.Client) -> None:
    exp = _experiment(admin)
    wrong = "wrong-pw-" + uuid.uuid4().hex
    with DynamicHost(env=isolated_env()) as host:
        host.configure({"mlflow:trackingUri": relay.url, "mlflow:username": ADMIN, "mlflow:password": secret(wrong)})
        checked = host.check({}, _props(exp))
        relay.reset_counts()
        with pytest.raises(HostError) as info:
            host.create(checked.inputs)
        stderr = host.stderr_text()
    assert relay.requests == 1, "a 401 is not retried"
    details = info.value.details
    assert "HTTP 401" in details and "Traceback" not in details
    assert "did not accept the credential from stack config 'mlflow:username'/'mlflow:password'" in details
    assert "pulumi config set --secret mlflow:password" in details
    assert wrong not in details and wrong not in stderr and ADMIN_PASSWORD not in details


def test_user_without_edit_permission_gets_a_403_naming_the_experiment(relay: TlsProxy, admin: httpx.Client) -> None:
    exp = _experiment(admin)
    # New users get the server's default permission (READ) on others' experiments; grant READ explicitly
    # anyway, so the test does not lean on the default: MLflow 3's unified grant API, else MLflow 2's.
    granted = admin.post("/api/3.0/mlflow/users/permissions/grant", json={
        "username": USER, "resource_type": "experiment", "resource_id": exp, "permission": "READ"})
    if granted.status_code == 404:
        granted = admin.post("/api/2.0/mlflow/experiments/permissions/create",
                             json={"experiment_id": exp, "username": USER, "permission": "READ"})
    assert granted.status_code == 200, granted.text
    env = isolated_env(MLFLOW_TRACKING_URI=relay.url, MLFLOW_TRACKING_USERNAME=USER,
                       MLFLOW_TRACKING_PASSWORD=USER_PASSWORD)
    with DynamicHost(env=env) as host:
        host.configure({})
        checked = host.check({}, _props(exp))
        relay.reset_counts()
        with pytest.raises(HostError) as info:
            host.create(checked.inputs)
    assert relay.requests == 1, "a 403 is not retried"
    details = info.value.details
    assert "HTTP 403" in details and f"(experiment '{exp}')" in details
    assert "EDIT or MANAGE with MLflow's basic-auth app" in details
    assert USER_PASSWORD not in details
    runs = admin.post("/api/2.0/mlflow/runs/search", json={"experiment_ids": [exp]}).json()
    assert runs.get("runs", []) == []


def test_pulumi_config_set_with_the_real_cli(pulumi_bin: Path, tmp_path: Path, auth_server: MlflowServer,
                                             admin: httpx.Client) -> None:
    """`pulumi config set mlflow:trackingUri/username` and `--secret mlflow:password`, then `pulumi up`."""
    from pulumi_mlflow_runs import ExperimentRun

    from support.pulumi_cli import cli, exported_state, new_stack

    exp = _experiment(admin)
    name = f"cli-{uuid.uuid4().hex[:8]}"

    def program() -> None:
        import pulumi

        run = ExperimentRun("configured-run", experiment_id=exp, run_name=name)
        pulumi.export("run_id", run.run_id)

    stack = new_stack(pulumi_bin, tmp_path, program, {})  # no MLFLOW_* env: only stack config names the server
    cli(stack, "config", "set", "mlflow:trackingUri", auth_server.url)
    cli(stack, "config", "set", "mlflow:username", ADMIN)
    cli(stack, "config", "set", "--secret", "mlflow:password", ADMIN_PASSWORD)
    up = stack.up()
    run_id = up.outputs["run_id"].value
    assert _run_name(admin, run_id) == name
    assert ADMIN_PASSWORD not in up.stdout + up.stderr
    assert ADMIN_PASSWORD not in exported_state(stack)
    assert ADMIN_PASSWORD not in (tmp_path / "Pulumi.test.yaml").read_text()
    stack.destroy()
