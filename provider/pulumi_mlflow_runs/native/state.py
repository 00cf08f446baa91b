"""The plugin's state of a run, and the other forms it reads: what it stores, and how it takes over the
dynamic door's state and the state a failed step left.

The engine hands Diff, Update and Read the old inputs, so the state need not repeat the metric points
(the dynamic door's ``logged_points``): ``stamped_at`` keeps only the timestamps the plugin chose, and the
``run`` view leaves out what the other outputs hold. The core works on its own form (``run_plan.outputs_for``'s,
every point as logged); ``run_state`` gives it that, ``plugin_state`` turns the core's outputs into this one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi.asset import Archive

from pulumi_mlflow_runs.core import definitions as d
from pulumi_mlflow_runs.core.artifacts.files import Elided
from pulumi_mlflow_runs.core.run_spec import checked_points
from pulumi_mlflow_runs.core.state import from_state, logged_from, stamps_of, with_columns

MOVED_FROM_DYNAMIC = "__provider"
"""The key of the dynamic door's pickled provider, in the state of every dynamic resource: state of this
form is a resource moved to the plugin with an alias (README, "Moving a stack to the plugin"). Its other
keys are the core's own snake_case names, which ``_snake`` passes through as they are."""

STATE_OUTPUTS: tuple[d.Prop, ...] = (*d.RUN_OUTPUTS, d.STAMPED_AT)
"""The outputs of the plugin's run: the core's, and the timestamps it chose (the schema's outputs)."""
RUN_PROPS: tuple[d.Prop, ...] = (
    *d.RUN_INPUTS,
    *d.RUN_CREATE_ONLY,
    d.METRICS_FILE_SUMMARY,
    *STATE_OUTPUTS,
    d.LOGGED_POINTS,
)
"""Every name a run's properties use on the wire: what Check adds, and ``logged_points`` too, in a moved dynamic
resource's state and in the state a failed step left (``unread_form``)."""


def as_uploaded(declared: Mapping[str, Any] | None, uploaded: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The old files, each asset the engine sent with its contents (the dynamic door's state stores them
    so, without the engine's hash) as the hash of what was uploaded: the same sha256 the engine gives the
    new asset, so an unchanged file of a moved resource compares equal."""
    if declared is None:
        return None
    out = dict(declared)
    for path, value in declared.items():
        sha = ((uploaded or {}).get(path) or {}).get("sha256")
        if not isinstance(value, Elided) and not isinstance(value, Archive) and sha:
            out[path] = Elided("asset", sha)
    return out


def run_state(olds: Mapping[str, Any], old_inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Old outputs in the core's state form, every point as logged: the old inputs' points with the
    timestamps ``stamped_at`` kept. A state that holds ``logged_points`` (a moved dynamic resource's, or one
    a failed step left) has them already; one whose stamps do not fit its inputs is marked unread, so the
    next update asks the server."""
    state = from_state(olds)
    stamps = state.pop("stamped_at", None)
    if "logged_points" in olds:
        return state
    declared = checked_points(old_inputs.get("metrics"))
    logged = logged_from(declared, stamps) if declared is not None else None
    if logged is None:
        state["run"] = None
    state["metrics"] = logged or []
    return state


def plugin_state(outputs: Mapping[str, Any], declared: list[Any]) -> dict[str, Any]:
    """The core's outputs in the plugin's state form: the timestamps it gave ``declared`` (the normal-form
    points, in the order of the outputs' logged ``metrics``) instead of every logged point again."""
    out = dict(outputs)
    logged = out.pop("metrics", None)
    out["stamped_at"] = stamps_of(declared, logged) if declared and logged is not None else None
    return out


def unread_form(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The state of a run whose points the inputs and stamps cannot give (a failed step's, one read whole):
    every logged point kept, in the dynamic door's columns, which ``run_state`` reads back. It holds until
    the next update writes the plugin's form."""
    return with_columns(outputs)
