"""The plugin's configuration (``mlflow-runs:*``): the keys users already set, read into the core's settings.

A plugin is handed only its own package's keys, so the connection keys that the dynamic door reads from
the ``mlflow:`` and ``databricks:`` namespaces are keys of this package here (``mlflow-runs:trackingUri``,
``mlflow-runs:databricksHost``, ...); the environment's fallbacks (``MLFLOW_TRACKING_URI``,
``DATABRICKS_HOST``, ``~/.databrickscfg``) are the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_mlflow_runs.core.artifacts.cloud_settings import OBJECT_STORE_CONFIG
from pulumi_mlflow_runs.core.definitions import Prop
from pulumi_mlflow_runs.core.retries import RetryPolicy, retry_policy
from pulumi_mlflow_runs.core.settings import ConfigKeys, StackConfig, check_stack_config

CONNECTION_CONFIG: tuple[Prop, ...] = (
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
RUN_CONFIG: tuple[Prop, ...] = (
    Prop(
        "run_user",
        "string",
        "Who new runs are created by in MLflow's UI (else the OS user running `pulumi`; a Databricks workspace "
        "records its own).",
    ),
)
"""Named alike on the dynamic door (``core.settings.RUN_USER_KEY``)."""
CONFIG = CONNECTION_CONFIG + OBJECT_STORE_CONFIG + RUN_CONFIG
"""Every key of the schema; the object-store and run keys are named alike on the dynamic door (``cloud_settings``)."""
PLUGIN_KEYS = ConfigKeys(**{p.name: f"mlflow-runs:{p.camel}" for p in CONNECTION_CONFIG})
"""The plugin's keys, which the core's messages name: ``mlflow-runs:trackingUri``, ``mlflow-runs:databricksHost``..."""


def read_config(args: Mapping[str, Any]) -> tuple[StackConfig, RetryPolicy]:
    """The settings from Configure's arguments (camelCase keys, secrets unwrapped); contradictions fail."""

    def get(key: str) -> Any:
        return args.get(key.removeprefix("mlflow-runs:"))

    stack = StackConfig.from_config(get, PLUGIN_KEYS)
    check_stack_config(stack)
    return stack, retry_policy(get(PLUGIN_KEYS.retry_deadline), key=PLUGIN_KEYS.retry_deadline)
