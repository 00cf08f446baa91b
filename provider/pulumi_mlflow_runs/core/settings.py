"""Connection settings and their rules: light enough for Configure and Check, which load no HTTP client."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pulumi_mlflow_runs.core.errors import ConfigurationError
from pulumi_mlflow_runs.core.secret import SecretStr

__all__ = ["SecretStr"]  # its home before core/secret.py: kept importable from here

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core.artifacts.cloud_settings import ObjectStoreSettings

ALLOW_HTTP_ENV = "PULUMI_MLFLOW_RUNS_ALLOW_HTTP"
"""Set to ``1`` to accept plain ``http://`` for a host that is not loopback."""

RUN_USER_KEY = "mlflow-runs:runUser"
"""Who runs are created by in MLflow's UI (``core.run_origin``); the same key on both doors."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)


def validate_deployment_name(name: str) -> str | None:
    """Return the problem with ``name``, or None."""
    if not _DNS_LABEL.match(name):
        return "must be a DNS label: 1-63 letters, digits or '-', not starting or ending with '-'"
    return None


def validate_host(url: str, *, env: Mapping[str, str] | None = None) -> str | None:
    """Return the problem with a host URL, or None."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        _ = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not hostname:
        return "must be an absolute http(s) URL such as https://example.cloud.databricks.com"
    if parts.username is not None or parts.password is not None:
        return "must not carry user info (user:password@); give credentials through a token setting"
    if parts.query or parts.fragment:
        return "must not have a query string or a fragment"
    if parts.scheme == "http" and not _is_loopback(hostname):
        allowed = (env if env is not None else os.environ).get(ALLOW_HTTP_ENV, "") in ("1", "true", "yes")
        if not allowed:
            return f"uses plain http to a host that is not loopback; use https, or set {ALLOW_HTTP_ENV}=1 to allow it"
    return None


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ConfigKeys:
    """The key a user sets each setting under, as the front door reads it. A door passes its own (every
    message of the core names the key from here, never a literal), so the plugin's users read
    ``mlflow-runs:trackingUri`` where the dynamic door's read ``mlflow:trackingUri``."""

    databricks_host: str
    databricks_token: str
    tracking_uri: str
    token: str
    username: str
    password: str
    server_cert_path: str
    client_cert_path: str
    retry_deadline: str


STACK_KEYS = ConfigKeys(
    databricks_host="databricks:host",
    databricks_token="databricks:token",  # noqa: S106 - a config key, not a token
    tracking_uri="mlflow:trackingUri",
    token="mlflow:token",  # noqa: S106 - a config key
    username="mlflow:username",
    password="mlflow:password",  # noqa: S106 - a config key
    server_cert_path="mlflow:serverCertPath",
    client_cert_path="mlflow:clientCertPath",
    retry_deadline="mlflow-runs:retryDeadline",
)
"""The keys of a program's stack config as the dynamic door (and the program functions) read them: the
connection keys are those of the Pulumi Databricks and MLflow packages, so one stack config serves both."""


@dataclass(frozen=True)
class StackConfig:
    """What ``configure`` read from the stack, and the keys it was read under (``keys``, which messages name).

    ``server_cert_path`` and ``client_cert_path`` are the stack forms of ``MLFLOW_TRACKING_SERVER_CERT_PATH``
    and ``MLFLOW_TRACKING_CLIENT_CERT_PATH``.
    """

    host: str | None = None
    token: SecretStr | None = field(default=None, repr=False)
    tracking_uri: str | None = None
    mlflow_token: SecretStr | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: SecretStr | None = field(default=None, repr=False)
    server_cert_path: str | None = None
    client_cert_path: str | None = None
    keys: ConfigKeys = STACK_KEYS
    object_stores: ObjectStoreSettings | None = field(default=None, repr=False)
    """The ``mlflow-runs:`` keys for direct artifact roots on S3, GCS and Azure (the same on both doors)."""
    run_user: str | None = None
    """``mlflow-runs:runUser``: the user new runs name (else the OS user running ``pulumi``)."""

    @classmethod
    def from_config(cls, get: Callable[[str], Any], keys: ConfigKeys = STACK_KEYS) -> StackConfig:
        """Read every key of ``keys`` through ``get`` (``ConfigureRequest.config.get``, ``pulumi.Config``
        lookups, or the plugin's Configure arguments)."""
        from pulumi_mlflow_runs.core.artifacts.cloud_settings import ObjectStoreSettings

        def text(key: str) -> str | None:
            value = get(key)
            return str(value).strip() or None if value is not None else None

        def secret(key: str) -> SecretStr | None:
            value = get(key)
            return SecretStr(str(value)) if value is not None and str(value) != "" else None

        return cls(
            host=text(keys.databricks_host),
            token=secret(keys.databricks_token),
            tracking_uri=text(keys.tracking_uri),
            mlflow_token=secret(keys.token),
            username=text(keys.username),
            password=secret(keys.password),
            server_cert_path=text(keys.server_cert_path),
            client_cert_path=text(keys.client_cert_path),
            keys=keys,
            object_stores=ObjectStoreSettings.from_config(get),
            run_user=text(RUN_USER_KEY),
        )

    def connection_keys(self) -> tuple[list[str], list[str]]:
        """The Databricks and the MLflow connection keys that are set (TLS keys are not connection keys)."""
        k = self.keys
        databricks = [key for key, v in ((k.databricks_host, self.host), (k.databricks_token, self.token)) if v]
        mlflow = [
            key
            for key, v in (
                (k.tracking_uri, self.tracking_uri),
                (k.token, self.mlflow_token),
                (k.username, self.username),
                (k.password, self.password),
            )
            if v
        ]
        return databricks, mlflow


def check_stack_config(stack: StackConfig) -> None:
    """Refuse stack config that contradicts itself, naming the keys (never their values)."""
    if stack.object_stores is not None:
        stack.object_stores.check()
    databricks, mlflow = stack.connection_keys()
    if databricks and mlflow:
        raise ConfigurationError(
            f"stack config sets both Databricks keys ({', '.join(databricks)}) and MLflow keys "
            f"({', '.join(mlflow)}): they are two ways to name one server and its credential; keep one family "
            "(`pulumi config rm KEY`)"
        )
    k = stack.keys
    if stack.mlflow_token is not None and (stack.username or stack.password is not None):
        raise ConfigurationError(
            f"stack config sets both '{k.token}' and '{k.username}'/'{k.password}': a server "
            "takes one kind of credential; remove the one you do not mean (`pulumi config rm KEY`)"
        )
    if bool(stack.username) != (stack.password is not None):
        given, missing = (k.username, k.password) if stack.username else (k.password, k.username)
        raise ConfigurationError(
            f"stack config '{given}' is set without '{missing}': basic auth needs both "
            f"(`pulumi config set {k.username} …; pulumi config set --secret {k.password} …`)"
        )
