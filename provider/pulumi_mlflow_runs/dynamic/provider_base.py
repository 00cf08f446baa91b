"""What both dynamic providers share: configuration, connection resolution, clean errors.

A provider object is pickled into every resource's state (``__provider``), so it carries nothing
until ``configure`` runs in the provider host: no client, no lock, no credential.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pulumi.dynamic as dyn

from pulumi_mlflow_runs.core.errors import MlflowRunsError
from pulumi_mlflow_runs.core.retries import RETRY_DEADLINE_CONFIG, retry_policy
from pulumi_mlflow_runs.core.runtime import Runtime
from pulumi_mlflow_runs.core.settings import StackConfig, check_stack_config
from pulumi_mlflow_runs.dynamic.host_errors import deliver, describe, host_call, resource_of
from pulumi_mlflow_runs.dynamic.host_pool import widen

if TYPE_CHECKING:  # the HTTP side is loaded on the first request, not by Configure, Check or Diff
    from pulumi_mlflow_runs.core.client import MlflowApi

F = TypeVar("F", bound=Callable[..., Any])

_BATCH_SETITEMS = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]


def fresh_pickler() -> None:
    """Undo what serializing earlier dynamic resources did to ``pickle``; call before each one is made.

    The SDK's ``serialize_provider`` (pulumi 3.272) wraps ``pickle._Pickler._batch_setitems`` once more
    every time it runs and never unwraps it, so a program with about 950 dynamic resources fails with
    RecursionError. It sets its own wrapper anew each time, so putting back the original first keeps
    the nesting at one.
    """
    pickle._Pickler._batch_setitems = _BATCH_SETITEMS  # type: ignore[attr-defined]


def user_facing(method: F) -> F:
    """What the user reads when a provider method fails: our own errors as one message, not a traceback.

    A ``MlflowRunsError`` is re-raised without our frames and, under the SDK's provider host, reported
    as a message that names the resource, the property or endpoint, the server and the fix
    (``host_errors``; any other exception keeps its full traceback). Check failures never quote an
    input's value back (``core.run_spec``), since the value may be a secret the engine has unwrapped.
    """
    action = method.__name__

    @functools.wraps(method)
    def wrapper(self: BaseProvider, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except MlflowRunsError as exc:
            _report(self, exc, action, [*args, *kwargs.values()])
            raise exc.with_traceback(None) from None

    return cast(F, wrapper)


def _report(provider: BaseProvider, exc: MlflowRunsError, action: str, args: list[Any]) -> None:
    """Hand the host our message for ``exc`` instead of its traceback, where the host lets us."""
    try:
        found = host_call()
        if found is None:
            return
        context, request = found
        props = next((a for a in reversed(args) if isinstance(a, Mapping)), {})
        runtime = provider._runtime
        connection = runtime.cached_connection(props) if runtime is not None else None
        deliver(context, exc, describe(exc, action=action, resource=resource_of(request), connection=connection))
    except Exception:  # noqa: BLE001, S110 - never let the report replace the error: the traceback stays
        pass


class BaseProvider(dyn.ResourceProvider):
    """Configuration and connection handling for the providers of this package."""

    serialize_as_secret_always = False
    """The pickle holds no secret (see ``__getstate__``), so it need not be encrypted in state."""

    def __init__(self) -> None:
        super().__init__()
        self._runtime: Runtime | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # runtime state never travels; the host rebuilds it in configure()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._runtime = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @user_facing
    def configure(self, req: dyn.ConfigureRequest) -> None:
        widen()  # the host configures the provider in one of its workers, once per process
        stack = StackConfig.from_config(req.config.get)
        check_stack_config(stack)  # a contradiction fails Configure, before any resource is touched
        self._runtime = Runtime(stack, retry_policy(req.config.get(RETRY_DEADLINE_CONFIG)))

    def api_for(self, props: dict[str, Any]) -> MlflowApi:
        if self._runtime is None:  # used without a host (tests, scripts): no stack config
            self._runtime = Runtime(StackConfig(), retry_policy(None))
        return self._runtime.api(props.get("host"), props.get("deployment_name"))
