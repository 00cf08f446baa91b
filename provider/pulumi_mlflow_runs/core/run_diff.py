"""What a change means: each input's rule (``change_rules``) asked in turn, pure and local (no request, no
HTTP or pydantic import).

``diff_run`` compares the old *outputs* with the new checked inputs, as the engine passes them to Diff;
``diff_props`` is the same loop for any resource, over the definitions of its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_mlflow_runs.core.change_rules import restore_if_deleted
from pulumi_mlflow_runs.core.definitions import RUN_INPUTS, Prop
from pulumi_mlflow_runs.core.run_spec import is_unknown

DRIFT = (("lifecycle_stage", restore_if_deleted),)
"""Rules on outputs alone, asked before the inputs' (what changed outside Pulumi that an update undoes)."""


@dataclass(frozen=True)
class RunDiff:
    replaces: tuple[str, ...] = ()
    updates: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        return bool(self.replaces or self.updates)


def diff_props(props: Sequence[Prop], olds: Mapping[str, Any], news: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """``(replaces, updates)``: the drift rules, then each input's rule; a value unknown in a preview is what
    its rule says of an unknown (a replace where every change replaces, else an update)."""
    verdicts: dict[str, list[str]] = {"replace": [], "update": []}
    for name, drift in DRIFT:
        verdict = drift(olds.get(name), None)
        if verdict:
            verdicts[verdict].append(name)
    for prop in props:
        rule = prop.change
        if rule is None:
            raise TypeError(f"input {prop.name!r} has no change rule (definitions: Prop.change)")
        new = news.get(prop.name)
        if is_unknown(new):
            verdicts[rule.on_unknown].append(prop.name)
            continue
        said = rule(olds.get(rule.stored or prop.name), news.get(rule.checked) if rule.checked else new)
        if said:
            verdicts[said].append(prop.name)
    return verdicts["replace"], verdicts["update"]


def diff_run(olds: Mapping[str, Any], news: Mapping[str, Any]) -> RunDiff:
    replaces, updates = diff_props(RUN_INPUTS, olds, news)
    return RunDiff(tuple(replaces), tuple(updates))
