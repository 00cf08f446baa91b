"""What a user reads when a call fails, whichever front door it came through: what failed and for which
resource, the error and its notes, and a ``fix:`` line that names the setting or the step that mends it,
by the key the door's users set it under (``keys``). Reasons never quote an input's value (``run_spec``),
since it may be a secret the engine has unwrapped."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pulumi_mlflow_runs.core.errors import (
    ApiError,
    BadGateway,
    ConfigurationError,
    ConnectionSetupError,
    EndpointNotFound,
    GatewayTimeout,
    InputError,
    InternalError,
    MlflowRunsError,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    TooManyRequests,
    TransportError,
    Unauthenticated,
)
from pulumi_mlflow_runs.core.settings import STACK_KEYS, ConfigKeys

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core.auth import Connection

_VERBS = {"check": "check", "diff": "diff", "create": "create", "read": "read", "update": "update",
          "delete": "delete", "configure": "configure the provider of"}  # fmt: skip
_RETRIED = (TooManyRequests, InternalError, BadGateway, ServiceUnavailable, GatewayTimeout, TransportError)
_RERUN = "then run `pulumi up` again"
_GAVE_UP = re.compile(r"would pass the retry deadline \((\d+)s\)")
"""The end of ``retries.retry_call``'s note when it gives up."""
_MAX_DEADLINE = 3600


def resource_of(request: Any) -> str | None:
    """``ExperimentRun 'my-run'`` from the request's URN (``urn:pulumi:stack::project::type::name``)."""
    urn = getattr(request, "urn", None)
    if not isinstance(urn, str) or urn.count("::") < 3:
        return None
    type_, name = urn.split("::")[-2:]
    return f"{type_.rsplit(':', 1)[-1].rsplit('$', 1)[-1]} {name!r}"


def describe(
    exc: MlflowRunsError,
    *,
    action: str,
    resource: str | None,
    connection: Connection | None = None,
    keys: ConfigKeys = STACK_KEYS,
) -> str:
    """The whole message: what failed and for which resource, the error and its notes, and the fix."""
    verb = _VERBS.get(action, action)
    head = f"could not {verb} {resource}: {exc}" if resource else f"{exc}"
    lines = [head, *(str(note) for note in getattr(exc, "__notes__", ()))]
    fix = _fix(exc, connection, keys)
    if fix:
        lines.append(f"fix: {fix}")
    return "\n".join(lines)


def _fix(exc: MlflowRunsError, connection: Connection | None, keys: ConfigKeys) -> str | None:
    server = "the server"
    if connection is not None:
        server = f"the server at {connection.base_url} (from {connection.source})"
    if isinstance(exc, InputError):
        return f"change `{exc.prop}` in the program, {_RERUN}"
    if isinstance(exc, ConnectionSetupError):
        return f"correct the setting as the message says (no retry can help: nothing reached the server), {_RERUN}"
    if isinstance(exc, ConfigurationError):
        return f"give or correct the setting as the message says, {_RERUN}"
    if isinstance(exc, Unauthenticated):
        if connection is not None and connection.auth is None:
            problem = f"{server} wants a credential and none was sent"
        else:
            given = getattr(connection, "credential_source", None)
            sent = f"the credential from {given}" if given else "the credential"
            problem = f"{server} did not accept {sent} (wrong, expired, or for another server)"
        return f"{problem}: set a valid one in {_token_settings(connection, keys)}; {_RERUN}"
    if isinstance(exc, PermissionDenied):
        return (
            f"the credential is valid but may not do this: grant it access to the experiment "
            f"(CAN_EDIT or CAN_MANAGE on Databricks; EDIT or MANAGE with MLflow's basic-auth app, which an admin "
            f"grants in its permissions API or UI) or use another identity; {_RERUN}"
        )
    if isinstance(exc, EndpointNotFound):
        return f"check that {server} is an MLflow tracking server new enough to offer this endpoint"
    if isinstance(exc, NotFound):
        return "it is gone from the server: run `pulumi refresh`, then `pulumi up`"
    if isinstance(exc, _RETRIED):
        fix = f"{server} is failing or out of reach: check that it is up and healthy (its logs), {_RERUN}"
        deadline = _deadline_reached(exc)
        if deadline is None or deadline >= _MAX_DEADLINE:
            return fix
        longer = min(_MAX_DEADLINE, max(600, 2 * deadline))
        return (
            f"{fix}. Retries stopped at the retry deadline in force ({deadline}s); raise it to ride out longer "
            f"outages (`pulumi config set {keys.retry_deadline} {longer}`)"
        )
    if isinstance(exc, ApiError):
        return f"the server refused the request for the reason above; correct what it names, {_RERUN}"
    return None


def _deadline_reached(exc: BaseException) -> int | None:
    """The deadline that ended this error's retries, from ``retry_call``'s note; None if it was not retried
    until one (a write that is sent once), so that the fix speaks of a deadline only where one was met."""
    for note in getattr(exc, "__notes__", ()):
        found = _GAVE_UP.search(str(note))
        if found:
            return int(found.group(1))
    return None


def _token_settings(connection: Connection | None, k: ConfigKeys) -> str:
    """Where a credential for this server is read from, by the setting that chose the server."""
    source = connection.source if connection is not None else ""
    databricks = connection is not None and connection.databricks
    credential = getattr(connection, "credential_source", None) or ""
    by_tracking_uri = f"stack config '{k.tracking_uri}'"
    if credential in (f"stack config '{k.token}'", f"stack config '{k.username}'/'{k.password}'"):
        source = by_tracking_uri
    if source == "env MLFLOW_TRACKING_URI" and not databricks:
        return "env MLFLOW_TRACKING_TOKEN (or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
    if source == "env MLFLOW_TRACKING_URI":
        return (
            "env MLFLOW_TRACKING_TOKEN, or (with MLFLOW_TRACKING_URI=databricks) DATABRICKS_TOKEN or a fresh "
            "login of the Databricks profile (`databricks auth login`)"
        )
    if source.startswith(("env DATABRICKS_HOST", "Databricks profile")):
        return "env DATABRICKS_TOKEN, or log the Databricks profile in again (`databricks auth login`)"
    if source == by_tracking_uri and not databricks:
        return (
            f"the stack secret `{k.token}` (`pulumi config set --secret {k.token} …`), or `{k.username}` "
            f"and the stack secret `{k.password}` (`pulumi config set --secret {k.password} …`)"
        )
    return (
        f"the stack secret `{k.databricks_token}` (`pulumi config set --secret {k.databricks_token} …`) or "
        f"`{k.token}` (or `{k.username}` and secret `{k.password}`), or env MLFLOW_TRACKING_TOKEN, "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or DATABRICKS_TOKEN"
    )
