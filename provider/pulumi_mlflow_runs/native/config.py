"""The plugin's configuration (``mlflow-runs:*``): the keys users already set, read into the core's settings.

A plugin is handed only its own package's keys, so the connection keys that the dynamic door reads from
the ``mlflow:`` and ``databricks:`` namespaces are keys of this package here (``mlflow-runs:trackingUri``,
``mlflow-runs:databricksHost``, ...); the environment's fallbacks (``MLFLOW_TRACKING_URI``,
``DATABRICKS_HOST``, ``~/.databrickscfg``) are the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_mlflow_runs.core import settings
from pulumi_mlflow_runs.core.definitions import Prop
from pulumi_mlflow_runs.core.retries import RETRY_DEADLINE_CONFIG, RetryPolicy, retry_policy
from pulumi_mlflow_runs.core.settings import StackConfig, check_stack_config

CONFIG: tuple[Prop, ...] = (
    Prop("tracking_uri", "string", "The MLflow tracking server (`http(s)://...`), or `databricks`."),
    Prop("token", "string", "A bearer token for the tracking server.", secret=True),
    Prop("username", "string", "A user of a tracking server with basic auth."),
    Prop("password", "string", "That user's password.", secret=True),
    Prop("server_cert_path", "string", "A CA bundle for the tracking server's certificate (a private CA)."),
    Prop("client_cert_path", "string", "One PEM file with a client certificate and its key, for mutual TLS."),
    Prop("databricks_host", "string", "A Databricks workspace URL."),
    Prop("databricks_token", "string", "A Databricks token.", secret=True),
    Prop("retry_deadline", "number", "Seconds to keep retrying throttling and outages (default 120)."),
)
_CORE_KEYS = {
    "tracking_uri": settings.TRACKING_URI_CONFIG,
    "token": settings.MLFLOW_TOKEN_CONFIG,
    "username": settings.USERNAME_CONFIG,
    "password": settings.PASSWORD_CONFIG,
    "server_cert_path": settings.SERVER_CERT_CONFIG,
    "client_cert_path": settings.CLIENT_CERT_CONFIG,
    "databricks_host": settings.DATABRICKS_HOST_CONFIG,
    "databricks_token": settings.DATABRICKS_TOKEN_CONFIG,
    "retry_deadline": RETRY_DEADLINE_CONFIG,
}


def read_config(args: Mapping[str, Any]) -> tuple[StackConfig, RetryPolicy]:
    """The settings from Configure's arguments (camelCase keys, secrets unwrapped); contradictions fail."""
    by_core_key = {_CORE_KEYS[p.name]: args.get(p.camel) for p in CONFIG}
    stack = StackConfig.from_config(by_core_key.get)
    check_stack_config(stack)
    return stack, retry_policy(by_core_key.get(RETRY_DEADLINE_CONFIG))


_PLUGIN_KEY = {_CORE_KEYS[p.name]: f"mlflow-runs:{p.camel}" for p in CONFIG}
_LONGEST_FIRST = sorted(_PLUGIN_KEY, key=len, reverse=True)
_CORE_KEY = re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, _LONGEST_FIRST)) + r")\b")


def in_plugin_keys(text: str) -> str:
    """A message of the core with the plugin's config keys (``mlflow-runs:trackingUri``) where it names the
    dynamic door's (``mlflow:trackingUri``, ``databricks:host``): the user of a plugin sets those."""
    return _CORE_KEY.sub(lambda m: _PLUGIN_KEY[m.group(0)], text)
