"""The change rules (``core.change_rules``), each as a unit, and the definitions that carry them.

Which change of an input is an update and which a replace is decided by the rule its definition names and by
nothing else: ``diff_run`` and ``diff_experiment`` ask the rules in turn, the schema's ``replaceOnChanges`` is
read off them. Pure: no server, no host.
"""

from __future__ import annotations

import dataclasses

import pytest
from pulumi.asset import StringAsset

from pulumi_mlflow_runs.core import definitions as d
from pulumi_mlflow_runs.core.artifacts.files import Source, digest
from pulumi_mlflow_runs.core.change_rules import (
    ChangeRule,
    append_only,
    append_only_points,
    by_stored_hash,
    empty_is_unset,
    replace_on_change,
    restore_if_deleted,
    rule,
    unset_accepts_any,
    update_on_change,
    write_once_map,
)
from pulumi_mlflow_runs.core.run_diff import diff_props
from pulumi_mlflow_runs.core.run_spec import UNKNOWN

RESOURCES = {"ExperimentRun": d.RUN_INPUTS, "Experiment": d.EXPERIMENT_INPUTS}


# ---- each rule --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        ("1", "1", False),
        ("1", "2", True),
        (None, "2", True),
        ("1", None, True),
        (None, {}, False),  # None, {} and [] are all no value
        ([], None, False),
        (3.0, 3, False),  # the engine's state carries whole numbers as floats
        ("", None, True),  # an empty string is a value (``empty_is_unset`` makes it none)
    ],
)
def test_replace_on_change_and_update_on_change(old: object, new: object, changed: bool) -> None:
    assert replace_on_change(old, new) == ("replace" if changed else None)
    assert update_on_change(old, new) == ("update" if changed else None)


def test_only_replace_on_change_requires_replace() -> None:
    assert replace_on_change.requires_replace and replace_on_change.on_unknown == "replace"
    for other in (update_on_change, write_once_map, append_only, append_only_points, by_stored_hash):
        assert not other.requires_replace and other.on_unknown == "update", other.name


@pytest.mark.parametrize(
    ("old", "new", "verdict"),
    [
        ({"lr": "0.1"}, {"lr": "0.1"}, None),
        ({"lr": "0.1"}, {"lr": "0.1", "epochs": "3"}, "update"),  # a new key
        ({"lr": "0.1"}, {"lr": "0.2"}, "replace"),  # a logged param cannot change
        ({"lr": "0.1"}, {}, "replace"),  # nor be removed
        ({"lr": "0.1"}, {"lr": "0.2", "epochs": "3"}, "replace"),
        (None, {"lr": "0.1"}, "update"),
        (None, None, None),
    ],
)
def test_write_once_map(old: object, new: object, verdict: str | None) -> None:
    assert write_once_map(old, new) == verdict


A, B = {"model_id": "a"}, {"model_id": "b", "step": 1}


@pytest.mark.parametrize(
    ("old", "new", "verdict"),
    [
        ([A], [A], None),
        ([A], [A, B], "update"),  # appended
        ([A, B], [B, A], None),  # order does not count
        ([A, B], [A], "replace"),  # dropped
        ([A], [{"model_id": "c"}], "replace"),  # altered
        ([B], [{"step": 1.0, "model_id": "b"}], None),  # as the engine hands state back
        (None, [A], "update"),
        ([], None, None),
    ],
)
def test_append_only(old: object, new: object, verdict: str | None) -> None:
    assert append_only(old, new) == verdict


P0 = {"key": "loss", "value": 1.0, "step": 0, "timestamp": 5}
P1 = {"key": "loss", "value": 0.5, "step": 1, "timestamp": 6}


@pytest.mark.parametrize(
    ("old", "new", "verdict"),
    [
        ([P0], [P0], None),
        ([P0], [P0, P1], "update"),
        ([P0, P1], [P1, P0], None),
        ([P0, P1], [P0], "replace"),
        ([P0], [{**P0, "value": 2.0}], "replace"),
        ([P0], [{**P0, "timestamp": 7}], "replace"),
        ([P0], [{k: v for k, v in P0.items() if k != "timestamp"}], None),  # no timestamp pairs with any
        (None, [P0], "update"),
    ],
)
def test_append_only_points(old: object, new: object, verdict: str | None) -> None:
    assert append_only_points(old, new) == verdict


def test_by_stored_hash_reads_the_stored_hashes_not_the_input() -> None:
    assert by_stored_hash.stored == "artifact_files"
    text = "hello"
    stored = {"a.txt": {**digest(Source(text=text)), "uri": "runs:/r/a.txt"}}
    assert by_stored_hash(stored, {"a.txt": StringAsset(text)}) is None
    assert by_stored_hash(stored, {"a.txt": StringAsset("changed")}) == "update"
    assert by_stored_hash(stored, {}) == "update"  # a removed file is deleted: an update
    assert by_stored_hash(None, None) is None
    assert by_stored_hash({}, {"b.txt": StringAsset("new")}) == "update"


def test_unset_accepts_any_keeps_the_inner_rule_for_a_declared_value() -> None:
    start = unset_accepts_any(replace_on_change)
    assert start(1000, None) is None  # undeclared: whatever the run has
    assert start(1000, 2000) == "replace" and start(1000, 1000) is None
    assert start.requires_replace and start.name == "unset_accepts_any(replace_on_change)"
    name = unset_accepts_any(update_on_change)
    assert name("a", None) is None and name("a", "b") == "update" and not name.requires_replace


def test_empty_is_unset_takes_an_empty_value_as_none() -> None:
    location = empty_is_unset(replace_on_change)
    assert location("", None) is None and location(None, "") is None and location({}, "") is None
    assert location("s3://a", "") == "replace" and location("", "s3://b") == "replace"
    assert location.requires_replace and not empty_is_unset(update_on_change).requires_replace


def test_restore_if_deleted_judges_the_state_alone() -> None:
    assert restore_if_deleted("deleted", None) == "update"
    assert restore_if_deleted("active", None) is None and restore_if_deleted(None, None) is None


def test_a_rule_is_named_after_its_function() -> None:
    @rule(requires_replace=True)
    def never(old: object, new: object) -> None:
        return None

    assert isinstance(never, ChangeRule) and never.name == "never" and never.on_unknown == "replace"


# ---- the definitions carry them ---------------------------------------------------------------------------


@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_every_input_carries_a_rule(resource: str) -> None:
    for prop in RESOURCES[resource]:
        assert isinstance(prop.change, ChangeRule), f"{resource}.{prop.name} has no change rule"
        assert prop.replaces == prop.change.requires_replace  # one source: ``replaces`` is read off the rule


def test_the_run_inputs_rules_by_name() -> None:
    assert {p.name: p.change.name for p in d.RUN_INPUTS if p.change} == {
        "experiment_id": "replace_on_change",
        "run_name": "unset_accepts_any(update_on_change)",
        "start_time": "unset_accepts_any(replace_on_change)",
        "end_time": "unset_accepts_any(update_on_change)",
        "status": "unset_accepts_any(update_on_change)",
        "params": "write_once_map",
        "tags": "update_on_change",
        "description": "update_on_change",
        "metrics": "append_only_points",
        "dataset_inputs": "append_only",
        "model_inputs": "append_only",
        "model_outputs": "append_only",
        "artifacts": "by_stored_hash",
        "deployment_name": "replace_on_change",
        "host": "replace_on_change",
        "metrics_file": "logged_file_rows",
    }


def test_the_schemas_replace_on_changes_is_read_off_the_rules() -> None:
    from pulumi_mlflow_runs.native.schema import EXPERIMENT_TOKEN, RUN_TOKEN, schema

    resources = schema()["resources"]
    for token, inputs in ((RUN_TOKEN, d.RUN_INPUTS), (EXPERIMENT_TOKEN, d.EXPERIMENT_INPUTS)):
        marked = {k for k, v in resources[token]["inputProperties"].items() if v.get("replaceOnChanges")}
        assert marked == {p.camel for p in inputs if p.change and p.change.requires_replace}, token
    assert {"experimentId", "startTime", "host", "deploymentName"} <= {
        k for k, v in resources[RUN_TOKEN]["inputProperties"].items() if v.get("replaceOnChanges")
    }


# ---- the loop that asks them ------------------------------------------------------------------------------


def test_a_new_property_needs_only_its_definition_and_rule() -> None:
    """What adding an input takes: a ``Prop`` with its rule; the diff asks it without another line."""
    props = (
        *d.EXPERIMENT_INPUTS,
        d.Prop("retention", "integer", "Days to keep.", change=replace_on_change),
        d.Prop("owner", "string", "Who answers for it.", change=unset_accepts_any(update_on_change)),
    )
    olds = {"name": "e", "retention": 30, "owner": "ann"}
    assert diff_props(props, olds, {"name": "e", "retention": 30}) == ([], [])
    assert diff_props(props, olds, {"name": "e", "retention": 60, "owner": "bo"}) == (["retention"], ["owner"])


def test_an_unknown_is_what_its_rule_says_of_one() -> None:
    """In a preview: a replace where every change replaces, else an update (it may turn out to be none)."""
    olds = {"experiment_id": "1", "start_time": 5, "params": {"a": "1"}, "artifact_files": {}}
    news = {"experiment_id": UNKNOWN, "start_time": UNKNOWN, "params": {"a": UNKNOWN}, "artifacts": UNKNOWN}
    assert diff_props(d.RUN_INPUTS, olds, news) == (["experiment_id", "start_time"], ["params", "artifacts"])


def test_drift_comes_first_and_a_stored_rule_reads_its_own_output() -> None:
    olds = {"lifecycle_stage": "deleted", "notes": "x", "hashes": {"n": 1}}
    seen: list[tuple[object, object]] = []

    def compare(old: object, new: object) -> None:
        seen.append((old, new))

    by_hashes = dataclasses.replace(update_on_change, name="compare", judge=compare, stored="hashes")
    props = (d.Prop("notes", "string", "", change=by_hashes),)
    assert diff_props(props, olds, {"notes": "y"}) == ([], ["lifecycle_stage"])
    assert seen == [({"n": 1}, "y")]


def test_an_input_without_a_rule_is_refused() -> None:
    with pytest.raises(TypeError, match="'loose' has no change rule"):
        diff_props((d.Prop("loose", "string", ""),), {}, {"loose": "x"})
