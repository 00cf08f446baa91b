"""What a long table apply tells the user while it runs: a line per tenth of the runs written. Each door says the
line its own way (the plugin to the engine's log, the dynamic door's host on its stderr)."""

from __future__ import annotations

import threading
from collections.abc import Callable

PROGRESS_FROM = 50
"""Runs to write from which a table's apply reports its progress: a smaller one is over before a line helps."""


class TenthsProgress:
    """A table apply's ``progress`` (``core.run_table.Progress``): ``say`` a line at each tenth of ``(done,
    total)``, nothing for fewer than ``PROGRESS_FROM`` runs to write. Called from the apply's threads."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._lock = threading.Lock()
        self._tenth = 0

    def __call__(self, done: int, total: int) -> None:
        tenth = done * 10 // total
        with self._lock:
            if total < PROGRESS_FROM or tenth <= self._tenth:
                return
            self._tenth = tenth
        self._say(f"RunTable: {done} of {total} runs written")
