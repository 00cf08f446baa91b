"""Connection resolution: the spec's order, first match wins, and no credential in any repr."""

from __future__ import annotations

import pickle

import httpx
import pytest

from pulumi_mlflow_runs import ConfigurationError, StackConfig, resolve_connection
from pulumi_mlflow_runs.core.auth import SecretStr

TOKEN = "dapi-test-" + "0" * 20


def _header(conn) -> str | None:
    req = httpx.Request("GET", conn.base_url)
    if conn.auth is None:
        return None
    flow = conn.auth.auth_flow(req)
    return next(flow).headers.get("Authorization")


def test_resource_host_wins_over_everything() -> None:
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:1", "DATABRICKS_HOST": "https://b.cloud.databricks.com",
           "DATABRICKS_TOKEN": TOKEN}
    conn = resolve_connection(host="https://a.cloud.databricks.com/", deployment_name=None,
                              stack=StackConfig(host="https://c.cloud.databricks.com"), env=env)
    assert conn.base_url == "https://a.cloud.databricks.com"
    assert conn.databricks and conn.source == "resource input 'host'"
    assert _header(conn) == f"Bearer {TOKEN}"


def test_deployment_name_builds_the_workspace_url() -> None:
    conn = resolve_connection(host=None, deployment_name="dbc-1234", stack=StackConfig(token=SecretStr(TOKEN)),
                              env={})
    assert conn.base_url == "https://dbc-1234.cloud.databricks.com"
    assert _header(conn) == f"Bearer {TOKEN}"


def test_stack_config_is_read_with_every_key() -> None:
    config = {"mlflow:trackingUri": " https://m.example.com ", "mlflow:token": TOKEN, "mlflow:username": "",
              "mlflow:serverCertPath": "/etc/ca.pem", "mlflow:clientCertPath": "/etc/client.pem"}
    stack = StackConfig.from_config(config.get)
    assert stack.tracking_uri == "https://m.example.com" and stack.username is None and stack.password is None
    assert stack.mlflow_token is not None and stack.mlflow_token.get() == TOKEN
    assert (stack.server_cert_path, stack.client_cert_path) == ("/etc/ca.pem", "/etc/client.pem")
    assert stack.connection_keys() == ([], ["mlflow:trackingUri", "mlflow:token"])


def test_stack_config_comes_before_env() -> None:
    conn = resolve_connection(host=None, deployment_name=None,
                              stack=StackConfig(host="https://s.cloud.databricks.com", token=SecretStr(TOKEN)),
                              env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert conn.base_url == "https://s.cloud.databricks.com"
    assert conn.source == "stack config 'databricks:host'"


def test_tracking_uri_with_basic_auth() -> None:
    conn = resolve_connection(host=None, deployment_name=None, stack=StackConfig(), env={
        "MLFLOW_TRACKING_URI": "http://localhost:5000", "MLFLOW_TRACKING_USERNAME": "u",
        "MLFLOW_TRACKING_PASSWORD": "pw-secret"})
    assert conn.base_url == "http://localhost:5000" and not conn.databricks
    assert (_header(conn) or "").startswith("Basic ")


def test_tracking_uri_alone_means_no_credential() -> None:
    conn = resolve_connection(host=None, deployment_name=None, stack=StackConfig(),
                              env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert conn.auth is None


def test_databricks_env_pair() -> None:
    conn = resolve_connection(host=None, deployment_name=None, stack=StackConfig(),
                              env={"DATABRICKS_HOST": "https://w.cloud.databricks.com", "DATABRICKS_TOKEN": TOKEN})
    assert conn.base_url == "https://w.cloud.databricks.com" and conn.databricks


def test_databricks_profile_through_the_sdk(tmp_path, monkeypatch) -> None:
    from databricks.sdk.config import Config

    # The SDK probes the workspace for metadata at start; these tests reach no host but loopback.
    monkeypatch.setattr(Config, "_resolve_host_metadata", lambda self: None)
    cfg = tmp_path / "databrickscfg"
    cfg.write_text(f"[team]\nhost = https://p.cloud.databricks.com\ntoken = {TOKEN}\n")
    conn = resolve_connection(host=None, deployment_name=None, stack=StackConfig(), env={
        "MLFLOW_TRACKING_URI": "databricks://team", "DATABRICKS_CONFIG_FILE": str(cfg)})
    assert conn.base_url == "https://p.cloud.databricks.com"
    assert _header(conn) == f"Bearer {TOKEN}"
    assert TOKEN not in repr(conn) and TOKEN not in repr(conn.auth)


def test_nothing_configured_lists_every_way(tmp_path) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_connection(host=None, deployment_name=None, stack=StackConfig(),
                           env={"DATABRICKS_CONFIG_FILE": str(tmp_path / "none")})
    msg = str(info.value)
    for way in ("'host'", "'deployment_name'", "databricks:host", "mlflow:trackingUri", "mlflow:token",
                "mlflow:username", "mlflow:password", "MLFLOW_TRACKING_URI", "DATABRICKS_HOST", "databrickscfg"):
        assert way in msg
    assert msg.index("databricks:host") < msg.index("mlflow:trackingUri") < msg.index("MLFLOW_TRACKING_URI")


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("ftp://x", r"absolute http\(s\) URL"),
        ("https://user:pw@x.example.com", "user info"),
        ("https://x.example.com?a=1", "query string"),
        ("https://x.example.com#frag", "fragment"),
        ("http://mlflow.internal:5000", "plain http"),
    ],
)
def test_bad_hosts_are_refused(host: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as info:
        resolve_connection(host=host, deployment_name=None, stack=StackConfig(), env={})
    assert "pw" not in str(info.value).replace("plain", "")


def test_plain_http_can_be_allowed_explicitly() -> None:
    conn = resolve_connection(host="http://mlflow.internal:5000", deployment_name=None, stack=StackConfig(),
                              env={"PULUMI_MLFLOW_RUNS_ALLOW_HTTP": "1"})
    assert conn.base_url == "http://mlflow.internal:5000"


def test_bad_deployment_name() -> None:
    with pytest.raises(ConfigurationError, match="DNS label"):
        resolve_connection(host=None, deployment_name="evil.com/x", stack=StackConfig(), env={})


def test_credentials_never_pickle_or_print() -> None:
    secret = SecretStr(TOKEN)
    assert TOKEN not in repr(secret) and TOKEN not in str(secret)
    assert TOKEN not in repr(StackConfig(host="https://h", token=secret))
    assert TOKEN not in repr(StackConfig(tracking_uri="https://h", mlflow_token=secret))
    assert TOKEN not in repr(StackConfig(tracking_uri="https://h", username="u", password=secret))
    with pytest.raises(TypeError):
        pickle.dumps(secret)
