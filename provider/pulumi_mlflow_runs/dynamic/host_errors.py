"""What a user reads when a provider call fails under ``pulumi up``: one message, no Python traceback.

Why this module exists. The SDK's dynamic provider host (``python -m pulumi.dynamic``) wraps every RPC in
``_abort_with_traceback``, which answers any exception with ``context.abort(UNKNOWN, traceback.format_exc())``.
The engine prints those gRPC details verbatim, so a wrong token or a server outage shows up as a stack of
host and provider frames ending in ``pulumi_mlflow_runs.core.errors.Unauthenticated: ...``. The provider API
offers no way to return an error message instead, and no exception can be raised without passing
through the host's frames.

So, for this package's own errors only, ``deliver`` finds that wrapper's frame on the current thread's
stack and shadows the RPC's ``context.abort`` (a per-RPC object) with one that sends ``describe``'s text
instead of the traceback, when (and only when) the exception being handled is the very one we raised.
The wrapper is recognised by its code object, which must be a constant of the host module's
``_abort_with_traceback``; anything else (another SDK version, another host, a call from a test or a
script) finds nothing and keeps today's behaviour: the host's traceback. A bug (any exception that is
not a ``MlflowRunsError``) is never touched and keeps its full traceback.

The engine prints a top-level property's value beside each Check failure (``[secret]`` for a secret
one unless ``--show-secrets``; for a nested path like ``tags.t`` it looks the path up as a top-level key
and prints ``<nil>``); the reasons themselves never quote a value (``core.run_spec``).
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from pulumi_mlflow_runs.core.errors import MlflowRunsError
from pulumi_mlflow_runs.core.messages import describe, resource_of

__all__ = ["deliver", "describe", "host_call", "resource_of"]

_HOST_DECORATOR = "_abort_with_traceback"
_MAX_DEPTH = 64


def host_call() -> tuple[Any, Any] | None:
    """``(context, request)`` of the dynamic host's RPC wrapper on this thread's stack, or None."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_MAX_DEPTH):
        if frame is None:
            return None
        decorator = frame.f_globals.get(_HOST_DECORATOR)
        code = getattr(decorator, "__code__", None)
        if code is not None and any(const is frame.f_code for const in code.co_consts):
            local = frame.f_locals
            return local.get("context"), local.get("request")
        frame = frame.f_back
    return None


def deliver(context: Any, exc: MlflowRunsError, text: str) -> bool:
    """Make the host's ``context.abort`` for this RPC send ``text`` if it is aborting because of ``exc``."""
    original = getattr(context, "abort", None)
    if not callable(original):
        return False

    def abort(code: Any, details: str) -> None:
        original(code, text if sys.exc_info()[1] is exc else details)

    try:
        context.abort = abort
    except (AttributeError, TypeError):  # a context that does not take attributes: keep the traceback
        return False
    return True
