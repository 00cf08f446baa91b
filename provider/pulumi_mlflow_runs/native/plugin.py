"""``pulumi-resource-mlflow-runs``: the plugin process the engine starts (or attaches to).

The engine starts it with its own address as the argument and reads the port from the first line of
stdout. ``pip install pulumi-mlflow-runs`` puts this command on PATH, where the engine finds it; with
``PULUMI_DEBUG_PROVIDERS=mlflow-runs:<port>`` the engine attaches to one started by hand instead.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import grpc
from pulumi.runtime.proto import provider_pb2_grpc

from pulumi_mlflow_runs.native.provider import Provider

WORKERS = 32
"""Calls served at once: the engine's default parallelism on these machines is 4 per core, and a call that
waits on a throttled server must not hold back the others."""
MAX_MESSAGE_BYTES = 400 << 20
"""The engine's own limit for a message (a run of many thousand points is a large one)."""


def serve(port: int = 0, engine_address: str | None = None) -> tuple[grpc.Server, int]:
    """Serve the provider on a free port of loopback; ``engine_address`` is the engine's, where the plugin logs
    (the engine passes it as the first argument, and again in ``Handshake``)."""
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    server = grpc.server(ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="mlflow-runs"), options=options)
    provider = Provider()
    provider.log.address = engine_address
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(provider, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, bound


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return
    server, port = serve(engine_address=args[0] if args else None)
    print(port, flush=True)  # the engine reads the port from the first line
    server.wait_for_termination()


if __name__ == "__main__":
    main()
