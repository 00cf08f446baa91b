"""The native front door: ``pulumi-resource-mlflow-runs``, a provider plugin with a schema (package
``mlflow-runs``), for programs in every Pulumi language, previews that name what changes, and ``pulumi
import``. It serves the same core as the dynamic door, and mirrors it: one handler per resource (``run``,
``experiment``; the contract in ``handler``) with check, diff, create, read, update and delete on the core's
types, and ``functions`` for the invokes. ``provider`` is the protocol only: it decodes each request, picks
the handler once, and encodes the answer (secrets, previews, partial failures in ``status``). ``schema``
and ``names`` carry ``core.definitions`` into the schema's camelCase, ``diff`` names the changed paths,
``wire`` reads and writes the engine's values, ``config`` reads ``mlflow-runs:*`` (and names those keys to
the core's messages), ``state`` is the form of the plugin's state (and of the states it takes over).
``resources`` holds the classes Python programs declare (``ExperimentRun``, ``Experiment``, ``RunTable``), re-exported
here; they run in the program, not in the plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulumi_mlflow_runs.native.resources import Experiment, ExperimentRun, RunTable

__all__ = ["Experiment", "ExperimentRun", "RunTable"]


def __getattr__(name: str) -> Any:
    """The classes on first use: the plugin process imports this package and never needs them."""
    if name in __all__:
        from pulumi_mlflow_runs.native import resources

        return getattr(resources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
