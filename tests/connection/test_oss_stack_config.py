"""Stack config for open-source servers: ``mlflow:trackingUri``, secret ``mlflow:token``, ``mlflow:username``,
secret ``mlflow:password``.

Precedence: the resource's ``host``/``deployment_name``, then stack config (``databricks:*`` or ``mlflow:*``,
not both), then env. Checked on the resolver, then through Configure exactly as the engine sends it (the
real provider host), against the real test server and a token-guarded proxy in front of it. The real CLI's
``pulumi config set`` path is in ``test_basic_auth.py`` (against a basic-auth server).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pulumi_mlflow_runs import ConfigurationError, ExperimentRunProvider, StackConfig, resolve_connection
from pulumi_mlflow_runs.core.auth import SecretStr, how_to_connect
from pulumi_mlflow_runs.core.settings import STACK_KEYS

from support.fault_proxy import FaultProxy
from support.host import DynamicHost, HostError, isolated_env, secret, with_provider

TOKEN = "mlflow-test-token-" + "5" * 16
PASSWORD = "pw-" + "7" * 20
DEAD = "http://127.0.0.1:9"  # discard port: nothing listens on loopback


def _header(conn: Any) -> str | None:
    if conn.auth is None:
        return None
    return next(conn.auth.auth_flow(httpx.Request("GET", conn.base_url))).headers.get("Authorization")


def _resolve(stack: StackConfig, env: dict[str, str] | None = None, host: str | None = None) -> Any:
    return resolve_connection(host=host, deployment_name=None, stack=stack, env=env or {})


# ---- the resolver's rules -------------------------------------------------------------------------------------


def test_mlflow_stack_config_with_a_token() -> None:
    conn = _resolve(StackConfig(tracking_uri="http://127.0.0.1:5000/", mlflow_token=SecretStr(TOKEN)))
    assert conn.base_url == "http://127.0.0.1:5000" and not conn.databricks
    assert conn.source == "stack config 'mlflow:trackingUri'"
    assert conn.credential_source == "stack config 'mlflow:token'"
    assert _header(conn) == f"Bearer {TOKEN}"


def test_mlflow_stack_config_with_username_and_password() -> None:
    conn = _resolve(StackConfig(tracking_uri="http://localhost:5000", username="alice", password=SecretStr(PASSWORD)))
    assert (_header(conn) or "").startswith("Basic ")
    assert conn.credential_source == "stack config 'mlflow:username'/'mlflow:password'"
    assert PASSWORD not in repr(conn) and "alice" not in repr(StackConfig(username="alice"))


def test_resource_host_comes_first_and_takes_the_stack_credential() -> None:
    stack = StackConfig(tracking_uri=DEAD, mlflow_token=SecretStr(TOKEN))
    conn = _resolve(stack, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:7"}, host="http://127.0.0.1:5000")
    assert conn.base_url == "http://127.0.0.1:5000" and conn.source == "resource input 'host'"
    assert _header(conn) == f"Bearer {TOKEN}"


def test_stack_config_comes_before_env_credentials_and_all() -> None:
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:7", "MLFLOW_TRACKING_TOKEN": "env-token-xyz"}
    conn = _resolve(StackConfig(tracking_uri="http://127.0.0.1:5000", username="u", password=SecretStr(PASSWORD)),
                    env)
    assert conn.base_url == "http://127.0.0.1:5000" and (_header(conn) or "").startswith("Basic ")


def test_stack_uri_without_a_stack_credential_takes_env_credentials() -> None:
    conn = _resolve(StackConfig(tracking_uri="http://127.0.0.1:5000"), {"MLFLOW_TRACKING_TOKEN": TOKEN})
    assert _header(conn) == f"Bearer {TOKEN}" and conn.credential_source == "env MLFLOW_TRACKING_TOKEN"


def test_mlflow_stack_credential_also_goes_to_a_server_named_by_env() -> None:
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "MLFLOW_TRACKING_USERNAME": "u",
           "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    conn = _resolve(StackConfig(mlflow_token=SecretStr(TOKEN)), env)
    assert conn.source == "env MLFLOW_TRACKING_URI" and _header(conn) == f"Bearer {TOKEN}"
    assert conn.credential_source == "stack config 'mlflow:token'"


def test_databricks_stack_token_never_goes_to_a_server_named_by_env_alone() -> None:
    conn = _resolve(StackConfig(token=SecretStr(TOKEN)), {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert conn.auth is None


def test_env_is_last() -> None:
    conn = _resolve(StackConfig(), {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert conn.source == "env MLFLOW_TRACKING_URI" and conn.auth is None


@pytest.mark.parametrize(
    ("stack", "says"),
    [
        (StackConfig(host="https://a.cloud.databricks.com", tracking_uri="http://127.0.0.1:5000"),
         "both Databricks keys (databricks:host) and MLflow keys (mlflow:trackingUri)"),
        (StackConfig(token=SecretStr(TOKEN), mlflow_token=SecretStr(TOKEN)),
         "both Databricks keys (databricks:token) and MLflow keys (mlflow:token)"),
        (StackConfig(tracking_uri=DEAD, mlflow_token=SecretStr(TOKEN), username="u", password=SecretStr(PASSWORD)),
         "both 'mlflow:token' and 'mlflow:username'/'mlflow:password'"),
        (StackConfig(tracking_uri=DEAD, username="u"), "'mlflow:username' is set without 'mlflow:password'"),
        (StackConfig(tracking_uri=DEAD, password=SecretStr(PASSWORD)),
         "'mlflow:password' is set without 'mlflow:username'"),
        (StackConfig(tracking_uri="file:///tmp/mlruns"), "must point at a tracking server"),
        (StackConfig(tracking_uri="http://mlflow.internal:5000"), "stack config 'mlflow:trackingUri' uses plain http"),
    ],
)
def test_contradictions_and_bad_values_are_clear_errors(stack: StackConfig, says: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        _resolve(stack, host=None)
    assert says in str(info.value)
    assert TOKEN not in str(info.value) and PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"MLFLOW_TRACKING_TOKEN": TOKEN, "MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": PASSWORD},
         "both MLFLOW_TRACKING_TOKEN and MLFLOW_TRACKING_USERNAME"),
        ({"MLFLOW_TRACKING_USERNAME": "u"}, "MLFLOW_TRACKING_USERNAME is set without MLFLOW_TRACKING_PASSWORD"),
    ],
)
def test_env_contradictions_are_clear_errors(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says) as info:
        _resolve(StackConfig(), {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", **env})
    assert TOKEN not in str(info.value) and PASSWORD not in str(info.value)


def test_nothing_configured_lists_the_ways_in_order(tmp_path) -> None:
    with pytest.raises(ConfigurationError) as info:
        _resolve(StackConfig(), {"DATABRICKS_CONFIG_FILE": str(tmp_path / "none")})
    msg = str(info.value)
    assert how_to_connect(STACK_KEYS) in msg
    order = ["'host' or 'deployment_name'", "'databricks:host'", "'mlflow:trackingUri'", "'mlflow:token'",
             "'mlflow:username'", "'mlflow:password'", "not both", "MLFLOW_TRACKING_URI", "DATABRICKS_HOST",
             "databrickscfg"]
    positions = [msg.index(way) for way in order]
    assert positions == sorted(positions), msg


# ---- through Configure, as the engine sends it ------------------------------------------------------------


def _props(experiment_id: str, **extra: Any) -> dict[str, Any]:
    return with_provider({"experiment_id": experiment_id, **extra}, ExperimentRunProvider())


@pytest.fixture
def bare_host() -> Iterator[DynamicHost]:
    """A provider host whose env names no server: stack config (or the resource) must."""
    with DynamicHost(env=isolated_env()) as h:
        yield h


def test_configure_with_mlflow_keys_reaches_the_server(bare_host: DynamicHost, mlflow_server, mlflow_client,
                                                      experiment_id: str) -> None:
    with FaultProxy(mlflow_server.url, require_token=TOKEN) as guarded:
        bare_host.configure({"mlflow:trackingUri": guarded.url, "mlflow:token": secret(TOKEN)})
        name = f"cfg-{uuid.uuid4().hex[:8]}"
        run_id, outs = bare_host.create(bare_host.check({}, _props(experiment_id, run_name=name)).inputs)
        assert guarded.requests and all(r.fault != "auth" for r in guarded.requests)
    assert mlflow_client.get_run(run_id).info.run_name == name
    assert TOKEN not in repr(outs) and TOKEN not in bare_host.stderr_text()


def test_configure_stack_config_beats_env(mlflow_server, experiment_id: str) -> None:
    with DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=DEAD)) as h:
        h.configure({"mlflow:trackingUri": mlflow_server.url, "mlflow-runs:retryDeadline": "5"})
        run_id, _ = h.create(h.check({}, _props(experiment_id)).inputs)
    assert run_id


def test_configure_resource_host_beats_stack_config(bare_host: DynamicHost, mlflow_server,
                                                    experiment_id: str) -> None:
    bare_host.configure({"mlflow:trackingUri": DEAD, "mlflow-runs:retryDeadline": "5"})
    run_id, outs = bare_host.create(bare_host.check({}, _props(experiment_id, host=mlflow_server.url)).inputs)
    assert run_id and outs["host"] == mlflow_server.url


def test_configure_refuses_both_families(bare_host: DynamicHost, mlflow_server, experiment_id: str) -> None:
    """The host configures the provider when the first resource call arrives (Check): it fails there."""
    bare_host.configure({"databricks:host": mlflow_server.url, "mlflow:trackingUri": mlflow_server.url,
                         "mlflow:password": secret(PASSWORD), "mlflow:username": "u"})
    with pytest.raises(HostError) as info:
        bare_host.check({}, _props(experiment_id))
    details = info.value.details
    assert details.startswith("could not configure the provider of ")
    assert "both Databricks keys (databricks:host) and MLflow keys" in details
    assert "\nfix: " in details and "Traceback" not in details and PASSWORD not in details


def test_configure_refuses_a_token_and_a_username(bare_host: DynamicHost, experiment_id: str) -> None:
    bare_host.configure({"mlflow:trackingUri": DEAD, "mlflow:token": secret(TOKEN), "mlflow:username": "u",
                         "mlflow:password": secret(PASSWORD)})
    with pytest.raises(HostError) as info:
        bare_host.check({}, _props(experiment_id))
    details = info.value.details
    assert "both 'mlflow:token' and 'mlflow:username'/'mlflow:password'" in details
    assert TOKEN not in details and PASSWORD not in details


def test_wrong_mlflow_token_names_the_stack_keys(bare_host: DynamicHost, mlflow_server, experiment_id: str) -> None:
    wrong = "mlflow-wrong-" + uuid.uuid4().hex
    with FaultProxy(mlflow_server.url, require_token=TOKEN) as guarded:
        bare_host.configure({"mlflow:trackingUri": guarded.url, "mlflow:token": secret(wrong)})
        with pytest.raises(HostError) as info:
            bare_host.create(bare_host.check({}, _props(experiment_id)).inputs)
        assert len([r for r in guarded.requests if r.fault == "auth"]) == 1, "a 401 is not retried"
    details = info.value.details
    assert "401" in details and wrong not in details
    assert "did not accept the credential from stack config 'mlflow:token'" in details
    assert "pulumi config set --secret mlflow:token" in details
