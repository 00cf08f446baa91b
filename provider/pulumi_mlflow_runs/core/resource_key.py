"""The key a create marks its run with, the same for a resource whichever front door serves it.

A create tags its run ``pulumi.resource_key = creating:<key>`` until it has written everything
(``run_apply``), so the next create of the same resource after a killed ``up`` finishes that run instead of
making a second one. That works only if the next create computes the same key, also when the stack has
moved from the dynamic resources to the plugin in between (the README's ``aliases=[….FROM_DYNAMIC]``).

The key is therefore made from what both doors know of a resource and what a move keeps: the URN without
the resource's own type. A URN is ``urn:pulumi:<stack>::<project>::<qualified type>::<name>``, the
qualified type ``<parent's qualified type>$<own type>`` (a child of the root stack has no ``Stack``
prefix), and the name may hold ``::``. The own type is the one part that differs between the doors
(``pulumi-python:dynamic/mlflow:ExperimentRun`` against ``mlflow-runs:index:ExperimentRun``), so the key
hashes the stack, the project, the parent's type chain and the name. The plugin receives the URN
(``of_urn``); the dynamic door's program never sees its own URN but knows the same parts
(``of_parts``: ``pulumi.get_stack()``, ``pulumi.get_project()``, the parent's URN, the name).

Earlier versions used other keys, and a server may hold runs a killed ``up`` left marked with them:
``legacy_keys`` and ``legacy_dynamic_key`` compute those, and a create looks for runs marked with any of
them. A front door hands the core its keys as one text, the ``resource_key`` input (``as_input``): the
key, then the legacy keys, separated by spaces. It is one line in the dynamic door's preview, and it
passes ``run_spec``'s check as the single string it always was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core import models as m

UNFINISHED = "creating:"
"""Before the key in a run's mark while its create has not written everything."""


def mark_of(run: m.Run) -> str:
    """The run's ``pulumi.resource_key`` tag as it stands: ``creating:<key>``, ``<key>``, or "" (none)."""
    from pulumi_mlflow_runs.core.run_spec import RESOURCE_KEY_TAG

    return next((t.value for t in run.data.tags if t.key == RESOURCE_KEY_TAG), "")


ROOT_STACK_TYPE = "pulumi:pulumi:Stack"
"""A resource whose parent is the root stack has no parent type in its URN."""
_URN_PREFIX = "urn:pulumi:"
_LEGACY_DYNAMIC_TYPE = "mlflow:ExperimentRun"
"""What the dynamic door's old formula hashed as the type (not the URN's type, which it never knew)."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def of_parts(stack: str, project: str, parent_types: Sequence[str], name: str) -> str:
    """The key of resource ``name`` of ``project``'s ``stack`` under parents of types ``parent_types``
    (outermost first, as in the URN; empty under the root stack). The same as ``of_urn`` of its URN."""
    return _digest("\0".join((stack, project, "$".join(parent_types), name)))


def split_urn(urn: str) -> tuple[str, str, list[str], str]:
    """``(stack, project, qualified type's segments, name)`` of ``urn``; the name may hold ``::``."""
    if not urn.startswith(_URN_PREFIX):
        raise ValueError(f"not a Pulumi URN: {urn!r}")
    parts = urn.removeprefix(_URN_PREFIX).split("::", 3)
    if len(parts) != 4:
        raise ValueError(f"not a Pulumi URN: {urn!r}")
    stack, project, qualified_type, name = parts
    return stack, project, qualified_type.split("$"), name


def of_urn(urn: str) -> str:
    """The key of the resource of ``urn``: its URN without the own (last) type segment, hashed."""
    stack, project, types, name = split_urn(urn)
    return of_parts(stack, project, types[:-1], name)


def parent_types(parent_urn: str) -> list[str]:
    """The parent chain in the URN of a child of ``parent_urn`` ("" or the root stack: none)."""
    if not parent_urn:
        return []
    _, _, types, _ = split_urn(parent_urn)
    return [] if types == [ROOT_STACK_TYPE] else types


def legacy_dynamic_key(project: str, stack: str, parent_urn: str, name: str) -> str:
    """The key the dynamic door's program used up to this version: project, stack, the parent's whole URN
    ("" without an explicit parent), a fixed type and the name. The parent's name is in it, and a child's URN
    holds only its parent's type: so the plugin can compute it for resources without a parent only
    (``legacy_keys``), the dynamic program for every resource."""
    return _digest("\0".join((project, stack, parent_urn, _LEGACY_DYNAMIC_TYPE, name)))


def legacy_keys(urn: str) -> list[str]:
    """Keys earlier versions gave the resource of ``urn`` that can be computed from it: the plugin's (the
    whole URN hashed) and, for a resource without a parent, the dynamic door's (``legacy_dynamic_key``).
    A run a killed ``up`` of an earlier version left marked with one is still found and finished."""
    stack, project, types, name = split_urn(urn)
    keys = [_digest(urn)]
    if len(types) == 1:
        keys.append(legacy_dynamic_key(project, stack, "", name))
    return keys


def as_input(key: str, legacy: Iterable[str] = ()) -> str:
    """The ``resource_key`` input a front door hands the core: ``key`` first, then the legacy keys, one line."""
    keys = [key, *(k for k in legacy if k != key)]
    if any(not k or any(c.isspace() for c in k) for k in keys):
        raise ValueError(f"a resource key is one word: {keys!r}")
    return " ".join(dict.fromkeys(keys))


def input_of_urn(urn: str) -> str:
    """The plugin's ``resource_key`` input for the resource of ``urn``: its key and every legacy key."""
    return as_input(of_urn(urn), legacy_keys(urn))


def keys_of(value: str | None) -> list[str]:
    """Every key of a ``resource_key`` input, the key first; none for None (no mark, no search). A value
    written by an earlier version is a single key, and reads as one."""
    return value.split() if value else []


def key_of(value: str | None) -> str | None:
    """The key of a ``resource_key`` input (the first), the one a new run is marked with; None for None."""
    keys = keys_of(value)
    return keys[0] if keys else None
