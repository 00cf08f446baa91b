"""A tool build once per test run, however many pytest-xdist workers ask for it.

Session fixtures run once per worker; a build (the npm package, the wheel, the plugin archive) must not.
The first worker to ask builds into a folder under the run's shared base temp, holding a file lock while
it does; the others wait on the lock and take the path it wrote. A failed build writes nothing, so each
worker that asks fails (or skips) with its own error instead of a stale one.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base temp of the whole run: the parent of a worker's own (``.../pytest-N/popen-gw0``)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if missing), released when the block ends or the process dies."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)``'s result, built by the first worker that asks and reused by every other one."""
    root = shared_root(tmp_path_factory)
    folder = root / f"built-{name}"
    result = root / f"built-{name}.path"
    with locked(root / f"built-{name}.lock"):
        if result.exists():
            return Path(result.read_text())
        folder.mkdir(exist_ok=True)
        built = build(folder)
        result.write_text(str(built))
        return built
