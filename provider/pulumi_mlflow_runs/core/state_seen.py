"""What this provider host has learned, from the engine's calls, of the runs the stack's state holds.

A create marks its run complete in its last write. If the provider dies after that write (or the create fails
after it and cannot delete the run), the engine records nothing, and the next ``up`` creates the resource again:
that create must take the complete run back instead of making a second one. It cannot tell that run from the
one a replace replaces (complete too, with the same key), and the engine does not name that one in Create. The
engine tells the same host elsewhere (one host serves a whole ``up``, on both doors), as its step generator
does it (v3.274.1, proven through the CLI):

- Check gets the resource's old inputs when the state holds it (and again none, after Diff decided a
  replace: ``in_state`` stays once seen); Diff then names the run it holds. A replace calls Check, Diff,
  Create, so its create knows which run not to take.
- ``replaceWith``, ``deletedWith`` and a changed provider force a replace without Diff: Check had old inputs,
  so the host knows the state holds a run but not which, and the create takes no complete run
  (``state_runs`` is None).
- ``pulumi up --replace`` sends Check no old inputs and skips Diff, as for a new resource: the create takes
  back the complete run the state holds if it is exactly what the program declares, and the engine, replacing
  that run with itself, then asks to delete it: ``was_taken_back`` says to keep it (``run_lifecycle.delete``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pulumi_mlflow_runs.core.resource_key import key_of


@dataclass
class _Seen:
    in_state: bool = False
    runs: set[str] = field(default_factory=set)


_SEEN: dict[str, _Seen] = {}
_TAKEN_BACK: set[str] = set()
_LOCK = threading.Lock()


def checked(resource_key: str | None, *, in_state: bool) -> None:
    """Check of the resource of ``resource_key`` (the input, ``core.resource_key.as_input``): ``in_state``
    when the engine sent old inputs, which it does only when its state holds the resource."""
    key = key_of(resource_key)
    if key is None:
        return
    with _LOCK:
        seen = _SEEN.setdefault(key, _Seen())
        seen.in_state = seen.in_state or in_state


def holds(resource_key: str | None, run_id: str | None) -> None:
    """The engine's state holds run ``run_id`` for the resource of ``resource_key`` (Diff names it; the
    doors call this from Diff, which a replace that Diff decides always comes through)."""
    key = key_of(resource_key)
    if key is None or not run_id:
        return
    with _LOCK:
        seen = _SEEN.setdefault(key, _Seen())
        seen.in_state = True
        seen.runs.add(run_id)


def state_runs(resource_key: str | None) -> frozenset[str] | None:
    """The runs the state holds for the resource of ``resource_key``, as far as this host can tell: none when
    its Check got no old inputs, the ones named when it did, None when it cannot tell (no Check seen, or a
    resource in the state whose run no call named)."""
    key = key_of(resource_key)
    if key is None:
        return None
    with _LOCK:
        seen = _SEEN.get(key)
        if seen is None or (seen.in_state and not seen.runs):
            return None
        return frozenset(seen.runs)


def taken_back(run_id: str) -> None:
    """A create of this host took back complete run ``run_id`` instead of making a new one."""
    with _LOCK:
        _TAKEN_BACK.add(run_id)


def was_taken_back(run_id: str) -> bool:
    """Whether a create of this host took back run ``run_id``: the engine's state now holds it as the new
    resource, so a delete of it in the same ``up`` is of the resource it replaced (``pulumi up --replace``)."""
    with _LOCK:
        return run_id in _TAKEN_BACK


def forget() -> None:
    """Forget everything (a test that plays several ``up``s in one process)."""
    with _LOCK:
        _SEEN.clear()
        _TAKEN_BACK.clear()
