"""Where to send requests and with which credential: the spec's "Connection, first match wins".

Credentials are held only inside ``httpx.Auth`` objects built at resolution time in the provider host;
they never sit on a picklable object, in a repr, or in a message.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from pulumi_mlflow_runs.core.artifacts.cloud_settings import ObjectStoreSettings
from pulumi_mlflow_runs.core.errors import ConfigurationError
from pulumi_mlflow_runs.core.settings import (
    STACK_KEYS,
    ConfigKeys,
    SecretStr,
    StackConfig,
    check_stack_config,
    validate_deployment_name,
    validate_host,
)
from pulumi_mlflow_runs.core.tls import TlsSettings, tls_settings

__all__ = ["Connection", "SecretStr", "StackConfig", "resolve_connection", "validate_deployment_name", "validate_host"]

_DATABRICKS_SUFFIXES = (".cloud.databricks.com", ".azuredatabricks.net", ".gcp.databricks.com")


def stack_config_ways(k: ConfigKeys) -> str:
    """The two families of connection keys, as a door's users set them."""
    return (
        f"stack config '{k.databricks_host}' (with secret '{k.databricks_token}'), or stack config "
        f"'{k.tracking_uri}' (with secret '{k.token}', or '{k.username}' and secret '{k.password}'), not both"
    )


def how_to_connect(k: ConfigKeys) -> str:
    """Every way to name a server, in the order they are tried."""
    return (
        "set one of, first match wins: the resource input 'host' or 'deployment_name'; "
        f"{stack_config_ways(k)}; env MLFLOW_TRACKING_URI (http(s)://… with optional "
        "MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD, or 'databricks' / "
        "'databricks://PROFILE'); env DATABRICKS_HOST with DATABRICKS_TOKEN; or a ~/.databrickscfg profile "
        "(DATABRICKS_CONFIG_PROFILE)"
    )


class BearerAuth(httpx.Auth):
    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.get()}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


class BasicAuth(httpx.Auth):
    def __init__(self, username: str, password: SecretStr) -> None:
        self._inner = httpx.BasicAuth(username, password.get())

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield from self._inner.auth_flow(request)

    def __repr__(self) -> str:
        return "BasicAuth(***)"


class DatabricksSdkAuth(httpx.Auth):
    """Databricks unified auth (profiles, OAuth, Azure, GCP...) delegated to databricks-sdk."""

    def __init__(self, sdk_config: Any) -> None:
        self._cfg = sdk_config

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for key, value in self._cfg.authenticate().items():
            request.headers[key] = value
        yield request

    def __repr__(self) -> str:
        return "DatabricksSdkAuth(***)"


@dataclass(frozen=True)
class Connection:
    base_url: str
    source: str
    """Which setting chose this server; shown in errors instead of any credential."""
    databricks: bool
    auth: httpx.Auth | None = field(default=None, repr=False, compare=False)
    credential_source: str | None = None
    """Which setting gave the credential (never the credential itself); None when none is sent."""
    tls: TlsSettings | None = None
    """A CA bundle and/or client certificate for an https server; None: the defaults."""
    keys: ConfigKeys = field(default=STACK_KEYS, repr=False, compare=False)
    """The stack config keys of the door that resolved this connection, for messages that name a setting."""
    object_stores: ObjectStoreSettings | None = field(default=None, repr=False, compare=False)
    """The stack's settings for runs' artifact roots on S3, GCS and Azure (``Runtime.api`` sets them)."""
    run_user: str | None = field(default=None, compare=False)
    """The stack's ``mlflow-runs:runUser`` (``Runtime.api`` sets it): whom new runs name (``core.run_origin``)."""


def _is_databricks(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host.endswith(_DATABRICKS_SUFFIXES)


def _checked_url(url: str, source: str, env: Mapping[str, str]) -> str:
    problem = validate_host(url, env=env)
    if problem:
        raise ConfigurationError(f"{source} {problem}")
    return url.rstrip("/")


def _sdk_auth(
    host: str | None, profile: str | None, source: str, env: Mapping[str, str], keys: ConfigKeys
) -> tuple[str, httpx.Auth]:
    try:
        from databricks.sdk.core import Config
    except ImportError as exc:
        raise ConfigurationError(
            f"{source} needs Databricks unified auth: install 'pulumi-mlflow-runs[databricks]' "
            "(databricks-sdk), or give a token"
        ) from exc
    try:
        cfg = Config(host=host, profile=profile, config_file=env.get("DATABRICKS_CONFIG_FILE"))
        cfg.authenticate()
    except Exception as exc:  # noqa: BLE001 - any SDK failure means "not authenticated"
        # The SDK's messages name settings, not values; keep only the class to be safe.
        raise ConfigurationError(
            f"{source}: Databricks authentication failed ({type(exc).__name__}); {how_to_connect(keys)}"
        ) from None
    if not cfg.host:
        raise ConfigurationError(f"{source}: the Databricks profile names no host")
    return str(cfg.host).rstrip("/"), DatabricksSdkAuth(cfg)


def _stack_credential(stack: StackConfig) -> tuple[httpx.Auth, str] | None:
    """The stack's credential: its Databricks token, its MLflow token, or its MLflow username and password."""
    k = stack.keys
    if stack.token is not None:
        return BearerAuth(stack.token), f"stack config '{k.databricks_token}'"
    if stack.mlflow_token is not None:
        return BearerAuth(stack.mlflow_token), f"stack config '{k.token}'"
    if stack.username and stack.password is not None:
        return BasicAuth(stack.username, stack.password), f"stack config '{k.username}'/'{k.password}'"
    return None


def _env_tracking_credential(env: Mapping[str, str]) -> tuple[httpx.Auth, str] | None:
    """``MLFLOW_TRACKING_TOKEN`` or ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``; both is an error."""
    token, user, password = (env.get(f"MLFLOW_TRACKING_{k}") for k in ("TOKEN", "USERNAME", "PASSWORD"))
    if token and (user or password):
        raise ConfigurationError(
            "env sets both MLFLOW_TRACKING_TOKEN and MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD: a server "
            "takes one kind of credential; unset the one you do not mean"
        )
    if bool(user) != bool(password):
        given, missing = ("USERNAME", "PASSWORD") if user else ("PASSWORD", "USERNAME")
        raise ConfigurationError(
            f"env MLFLOW_TRACKING_{given} is set without MLFLOW_TRACKING_{missing}: basic auth needs both"
        )
    if token:
        return BearerAuth(SecretStr(token)), "env MLFLOW_TRACKING_TOKEN"
    if user and password:
        return BasicAuth(user, SecretStr(password)), "env MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD"
    return None


def _token_from(env: Mapping[str, str], stack: StackConfig) -> tuple[httpx.Auth, str] | None:
    """Credentials for an explicitly chosen host, in the spec's order of sources: stack config, then env."""
    found = _stack_credential(stack) or _env_tracking_credential(env)
    if found is not None:
        return found
    if env.get("DATABRICKS_TOKEN"):
        return BearerAuth(SecretStr(env["DATABRICKS_TOKEN"])), "env DATABRICKS_TOKEN"
    return None


def resolve_connection(
    *,
    host: str | None,
    deployment_name: str | None,
    stack: StackConfig,
    env: Mapping[str, str] | None = None,
) -> Connection:
    """Pick the server and credential, first match wins (see the spec's Connection section), and the TLS
    settings for it."""
    env = os.environ if env is None else env
    check_stack_config(stack)
    conn = _resolve(host, deployment_name, stack, env)
    return replace(conn, tls=tls_settings(conn.base_url, stack, env), keys=stack.keys)


def _resolve(host: str | None, deployment_name: str | None, stack: StackConfig, env: Mapping[str, str]) -> Connection:
    # 1. the resource's own host or deployment_name
    if host or deployment_name:
        if host:
            source = "resource input 'host'"
            url = _checked_url(host, source, env)
        else:
            assert deployment_name is not None
            source = "resource input 'deployment_name'"
            problem = validate_deployment_name(deployment_name)
            if problem:
                raise ConfigurationError(f"{source} {problem}")
            url = f"https://{deployment_name}.cloud.databricks.com"
        return _with_credentials(url, source, stack, env)
    # 2. stack config: a Databricks host and token, or a tracking URI and its credential
    if stack.host:
        source = f"stack config '{stack.keys.databricks_host}'"
        return _with_credentials(_checked_url(stack.host, source, env), source, stack, env)
    if stack.tracking_uri:
        source = f"stack config '{stack.keys.tracking_uri}'"
        uri = stack.tracking_uri
        if uri == "databricks" or uri.startswith("databricks://"):
            profile = uri.partition("://")[2] or None
            url, auth = _sdk_auth(None, profile, source, env, stack.keys)
            return Connection(_checked_url(url, source, env), source, True, auth, source)
        _require_server_uri(uri, source)
        return _with_credentials(_checked_url(uri, source, env), source, stack, env)
    # 3. MLFLOW_TRACKING_URI
    uri = env.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        source = "env MLFLOW_TRACKING_URI"
        if uri == "databricks" or uri.startswith("databricks://"):
            profile = uri.partition("://")[2] or env.get("DATABRICKS_CONFIG_PROFILE") or None
            if env.get("DATABRICKS_HOST") and env.get("DATABRICKS_TOKEN") and not profile:
                url = _checked_url(env["DATABRICKS_HOST"], "env DATABRICKS_HOST", env)
                token = BearerAuth(SecretStr(env["DATABRICKS_TOKEN"]))
                return Connection(url, source, True, token, "env DATABRICKS_TOKEN")
            url, auth = _sdk_auth(None, profile, source, env, stack.keys)
            return Connection(_checked_url(url, source, env), source, True, auth, source)
        _require_server_uri(uri, source)
        url = _checked_url(uri, source, env)
        # A stack credential comes before env's here too; a Databricks token goes only with a host named in
        # the program or the stack, never to a server named by env alone.
        found = None if stack.token is not None else _stack_credential(stack)
        found = found or _env_tracking_credential(env)
        tracking_auth, credential = found if found is not None else (None, None)
        return Connection(url, source, _is_databricks(url), tracking_auth, credential)
    # 4. DATABRICKS_HOST / DATABRICKS_TOKEN, or a profile
    if env.get("DATABRICKS_HOST") and env.get("DATABRICKS_TOKEN"):
        source = "env DATABRICKS_HOST"
        url = _checked_url(env["DATABRICKS_HOST"], source, env)
        return Connection(url, source, True, BearerAuth(SecretStr(env["DATABRICKS_TOKEN"])), "env DATABRICKS_TOKEN")
    profile = env.get("DATABRICKS_CONFIG_PROFILE")
    cfg_file = env.get("DATABRICKS_CONFIG_FILE") or os.path.expanduser("~/.databrickscfg")
    if env.get("DATABRICKS_HOST") or profile or os.path.exists(cfg_file):
        source = f"Databricks profile '{profile or 'DEFAULT'}'"
        url, sdk_auth = _sdk_auth(env.get("DATABRICKS_HOST"), profile, source, env, stack.keys)
        return Connection(_checked_url(url, source, env), source, True, sdk_auth, source)
    raise ConfigurationError(f"no MLflow tracking server is configured: {how_to_connect(stack.keys)}")


def _require_server_uri(uri: str, source: str) -> None:
    """A tracking URI a provider can use: a server, not a file or a database."""
    if not uri.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"{source} must point at a tracking server (http(s)://…) or 'databricks'; "
            "file and database URIs cannot be used by a provider"
        )


def _with_credentials(url: str, source: str, stack: StackConfig, env: Mapping[str, str]) -> Connection:
    databricks = _is_databricks(url)
    found = _token_from(env, stack)
    if found is not None:
        return Connection(url, source, databricks, found[0], found[1])
    if databricks:
        profile = env.get("DATABRICKS_CONFIG_PROFILE")
        _, auth = _sdk_auth(url, profile, source, env, stack.keys)
        return Connection(url, source, databricks, auth, f"Databricks profile '{profile or 'DEFAULT'}'")
    return Connection(url, source, databricks, None, None)
