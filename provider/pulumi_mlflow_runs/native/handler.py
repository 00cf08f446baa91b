"""What the plugin's protocol layer asks of each resource: one handler per resource type, as the dynamic door
has one provider per resource.

A handler speaks the core's terms: properties in snake_case with secrets unwrapped, outputs as the core hands
them, in the state form of this door (``native.state``). Decoding, encoding, secrets, previews and errors are
the protocol's (``native.provider``), which picks a handler once per request by the resource's type.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core.client import MlflowApi
    from pulumi_mlflow_runs.core.definitions import Prop

Props = dict[str, Any]


class Kept:
    """What Check adds as ``KEPT``: the input as the old inputs hold it, copied on the wire without being read
    (a table's thousand entries, read from a file the engine says is unchanged)."""


KEPT = Kept()
ApiFor = Callable[[Mapping[str, Any]], "MlflowApi"]
"""The client for a resource's properties (its ``host`` or ``deployment_name``, else the provider's)."""


@dataclass(frozen=True)
class Change:
    """What Diff found. No ``paths``: nothing the program changed, though ``rewrite`` may still ask for an
    update that reads the run and writes the state anew (one a failed step left)."""

    replaces: tuple[str, ...] = ()
    diffs: tuple[str, ...] = ()
    """The changed top-level properties, snake_case."""
    paths: Mapping[str, int] = field(default_factory=dict)
    """The detailed diff: each changed path in the schema's names, with its ``PropertyDiff`` kind."""
    old_inputs: Props = field(default_factory=dict)
    """What ``paths`` are compared against, to tell an edit of the program from drift in the display."""
    rewrite: bool = False
    notes: tuple[str, ...] = ()
    """What a reviewer should read beside the diff (why a run is replaced where the paths cannot say it)."""


@dataclass(frozen=True)
class Session:
    """What a create or an update may use of the engine's session besides the server: ``say`` a line in the
    engine's log beside the resource (a long step's progress), and ``stop``, set once the user pressed Ctrl-C
    (the engine's ``Cancel``): a step made of many may leave the rest for the next ``up``. ``urn``: the
    resource's, which the runs it makes name (``core.run_origin``)."""

    say: Callable[[str], None]
    stop: threading.Event
    urn: str = ""


@dataclass(frozen=True)
class Found:
    """What Read found: the outputs, and the inputs to record (None: keep the stored ones as they are)."""

    outputs: Props
    inputs: Props | None


class Handler(Protocol):
    token: str
    props: tuple[Prop, ...]
    """Every name the resource's properties use on the wire (inputs, outputs, forms it takes over)."""
    computed: tuple[Prop, ...]
    """The outputs only the server knows: unknown in a preview."""

    def check(self, urn: str, news: Props, olds: Mapping[str, Any]) -> tuple[Props, list[tuple[str, str]]]:
        """``(inputs to add, failures)``: the engine keeps the inputs as sent (assets whole, secrets marked), with
        what Check adds (a metrics file's summary); the core normalizes them again where it reads them. An input
        added as ``KEPT`` goes back as the old inputs hold it. ``olds`` decodes a property when it is read."""
        ...

    def diff(self, urn: str, id_: str, olds: Props, old_inputs: Props, news: Props) -> Change: ...

    def create(self, api_for: ApiFor, urn: str, props: Props, *, session: Session) -> tuple[str, Props]: ...

    def read(self, api_for: ApiFor, id_: str, state: Props, stored: Props, *, urn: str) -> Found | None: ...

    def update(
        self, api_for: ApiFor, id_: str, olds: Props, old_inputs: Props, news: Props, *, session: Session
    ) -> Props: ...

    def delete(self, api_for: ApiFor, id_: str, state: Props, old_inputs: Props) -> str | None:
        """Delete the resource; or keep it, and say why (a warning the engine shows). ``old_inputs``: the inputs
        the state was made from, as the engine recorded them (empty from an engine that sends none)."""
        ...

    def secret_outputs(self, secret_inputs: set[str]) -> set[str]:
        """The outputs to mark secret, given which inputs were."""
        ...

    def partial_state(self, left: Props) -> Props:
        """The state of a resource a failed create or update left (``MlflowRunsError.left_behind``)."""
        ...
