"""``pulumi-resource-mlflow-runs``: the plugin process the engine starts (or attaches to).

The engine starts it with its own address as the argument and reads the port from the first line of
stdout. ``pip install pulumi-mlflow-runs`` puts this command on PATH, where the engine finds it; with
``PULUMI_DEBUG_PROVIDERS=mlflow-runs:<port>`` the engine attaches to one started by hand instead.

SIGINT or SIGTERM stops it: new calls are refused (UNAVAILABLE), the calls in flight end (for at most
``GRACE_SECONDS``), their answers are sent, then it exits; a second signal exits at once. The signals are
blocked in every thread and taken by the main thread with ``sigwait``, so no handler runs in the middle of
the server's work. (Before, SIGINT raised ``KeyboardInterrupt`` in the main thread and ended it: the
interpreter's shutdown then refused the next call and waited for it for good, and the engine for the plugin.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
from pulumi.runtime.proto import provider_pb2_grpc

from pulumi_mlflow_runs.native.provider import Provider

WORKERS = 32
"""Calls served at once: the engine's default parallelism on these machines is 4 per core, and a call that
waits on a throttled server must not hold back the others."""
MAX_MESSAGE_BYTES = 400 << 20
"""The engine's own limit for a message (a run of many thousand points is a large one)."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_SECONDS = 20.0
"""How long the calls in flight have to end once the plugin is told to stop, before they are cut and it exits.

Who stops it: the engine, as it closes the plugin after each command (with no call in flight: it sends
``Cancel``, then SIGINT, and SIGKILL 5 s later), and whoever signals the process itself (a user's ``kill``, a
supervisor, a terminal's Ctrl-C when the plugin was started by hand in it; the CLI's own Ctrl-C does not
signal plugins, which the engine starts in process groups of their own, but sends ``Cancel``). Once stopping,
a failed request is not sent again (``Provider.stop``), so a call in flight has only its remaining requests
to send, each once: on a working server a create completes within a few seconds, and 20 s leaves a slow one
room. A longer grace would only keep whoever stopped the plugin waiting on a server that does not answer (one
request may wait out its 60 s read timeout), past the usual supervisor's bound before its SIGKILL (Kubernetes
gives 30 s); a call cut at the end is one the provider recovers from as from any interrupted ``up``."""
FLUSH_SECONDS = 5.0
"""Once the calls in flight have ended: the bound for their answers to be sent, before the process exits."""


class Calls:
    """The calls in flight, counted by the server's one interceptor; once ``stopping``, a new call is refused
    with UNAVAILABLE before it reaches the provider."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._in_flight = 0
        self._stopping = False

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:  # every method the provider serves is unary
            return handler
        serve = handler.unary_unary

        def counted(request: Any, context: grpc.ServicerContext) -> Any:
            with self._changed:
                if self._stopping:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "the mlflow-runs plugin is stopping")
                self._in_flight += 1
            try:
                return serve(request, context)
            finally:
                with self._changed:
                    self._in_flight -= 1
                    self._changed.notify_all()

        return handler._replace(unary_unary=counted)

    def drain(self, grace: float) -> bool:
        """Refuse new calls from now on and wait, at most ``grace`` seconds, for those in flight: True if all
        ended."""
        with self._changed:
            self._stopping = True
            return self._changed.wait_for(lambda: self._in_flight == 0, timeout=grace)


@dataclass(frozen=True)
class Serving:
    server: Any  # grpc.Server
    port: int
    provider: Provider
    calls: Calls

    def stop(self) -> bool:
        """Stop as ``GRACE_SECONDS`` says; True if no call in flight had to be cut."""
        self.provider.stop()  # no failed request is sent again
        drained = self.calls.drain(GRACE_SECONDS)
        self.server.stop(FLUSH_SECONDS if drained else 0).wait()  # the answers sent (or the calls cut)
        return drained


def serve(port: int = 0, engine_address: str | None = None) -> Serving:
    """Serve the provider on a free port of loopback; ``engine_address`` is the engine's, where the plugin logs
    (the engine passes it as the first argument, and again in ``Handshake``)."""
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    calls = Calls()
    executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="mlflow-runs")
    server = grpc.server(executor, interceptors=[calls], options=options)
    provider = Provider()
    provider.log.address = engine_address
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(provider, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return Serving(server, bound, provider, calls)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return
    # Blocked before the server's threads start, so that every thread inherits the mask: the signals wait for
    # this thread's sigwait.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    serving = serve(engine_address=args[0] if args else None)
    print(serving.port, flush=True)  # the engine reads the port from the first line
    signal.sigwait(STOP_SIGNALS)
    threading.Thread(target=lambda: _exit(0 if serving.stop() else 1), name="mlflow-runs-stop", daemon=True).start()
    _exit(128 + signal.sigwait(STOP_SIGNALS))  # a second signal: at once


def _exit(code: int) -> None:
    """Exit now, without the interpreter's shutdown: the server has stopped (or a second signal came), and a
    call still running (cut) must not hold the process, as the executor's exit hook would."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
