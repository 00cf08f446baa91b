"""More than four calls at once in the SDK's provider host.

The dynamic provider host serves every resource of an update from one ``ThreadPoolExecutor`` of four
workers, and the provider API is synchronous: a create that waits out a 429's Retry-After holds its
worker, and Check and Diff of other resources queue behind it, whatever ``--parallel`` says. The
waits are spent sleeping, not working, so more workers cost little. ``widen`` raises the pool's size
from inside one of its own workers (the executor is the target's first argument, a weak reference);
anywhere else (a test calling the provider directly, another host) it finds no executor and does
nothing.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

HOST_WORKERS_ENV = "PULUMI_MLFLOW_RUNS_HOST_WORKERS"
HOST_WORKERS = 32
"""As many calls as ``pulumi up --parallel 32`` sends; each extra worker is a thread that mostly sleeps."""


def widen(workers: int | None = None) -> bool:
    """Let the executor running this thread start up to ``workers`` threads; True if it could.

    The default is ``HOST_WORKERS``, or env ``PULUMI_MLFLOW_RUNS_HOST_WORKERS`` (4 keeps the SDK's size).
    """
    if workers is None:
        raw = os.environ.get(HOST_WORKERS_ENV, "")
        workers = int(raw) if raw.isdigit() and int(raw) > 0 else HOST_WORKERS
    args = getattr(threading.current_thread(), "_args", None)
    ref = args[0] if isinstance(args, tuple) and args and callable(args[0]) else None
    executor = ref() if ref is not None else None
    if not isinstance(executor, ThreadPoolExecutor):
        return False
    current = getattr(executor, "_max_workers", None)
    if not isinstance(current, int):
        return False
    executor._max_workers = max(current, workers)
    return True
