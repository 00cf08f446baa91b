"""The resource key behind exactly-once create: one function for both front doors, the old keys still known.

A create marks its run ``creating:<key>`` until it has written everything; the next create of the same
resource finds that run by the key. So the key must not change when a stack moves from the dynamic
resources to the plugin (the URN's own type changes, nothing else), and the keys earlier versions used must
still be computed exactly as they were (copied here as literal formulas, not through the code under test).
"""

from __future__ import annotations

import hashlib

import pytest

from pulumi_mlflow_runs.core import resource_key as rk

DYNAMIC_TYPE = "pulumi-python:dynamic/mlflow:ExperimentRun"
PLUGIN_TYPE = "mlflow-runs:index:ExperimentRun"
COMPONENT = "acme:evals:Suite"
OUTER = "acme:evals:Campaign"


def urn(own_type: str, name: str = "train", *, parents: tuple[str, ...] = (), stack: str = "dev") -> str:
    """A URN as the engine makes it: a child of the root stack has no parent type."""
    return f"urn:pulumi:{stack}::evals::{'$'.join((*parents, own_type))}::{name}"


def old_plugin_key(u: str) -> str:
    """The plugin's key up to this version (native/provider.py ``_resource_key``), verbatim."""
    return hashlib.sha256(u.encode()).hexdigest()[:32]


def old_dynamic_key(project: str, stack: str, parent_urn: str, name: str) -> str:
    """The dynamic program's key up to this version (dynamic/experiment_run.py ``_resource_key``), verbatim."""
    text = "\0".join((project, stack, parent_urn, "mlflow:ExperimentRun", name))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@pytest.mark.parametrize(
    ("parents", "name"),
    [((), "train"), ((COMPONENT,), "train"), ((OUTER, COMPONENT), "train"), ((COMPONENT,), "a::b::c")],
)
def test_the_key_of_a_urn_is_the_key_of_its_parts_and_the_same_on_both_doors(
    parents: tuple[str, ...], name: str
) -> None:
    dynamic, plugin = urn(DYNAMIC_TYPE, name, parents=parents), urn(PLUGIN_TYPE, name, parents=parents)
    key = rk.of_parts("dev", "evals", list(parents), name)
    assert rk.of_urn(dynamic) == rk.of_urn(plugin) == key
    assert len(key) == 32 and int(key, 16) >= 0


def test_the_program_finds_the_parent_chain_in_its_parents_urn() -> None:
    """The dynamic program knows its parent's URN, not its own: the parent's qualified type is the chain."""
    assert rk.parent_types("") == []
    assert rk.parent_types("urn:pulumi:dev::evals::pulumi:pulumi:Stack::evals-dev") == []
    assert rk.parent_types(f"urn:pulumi:dev::evals::{COMPONENT}::suite") == [COMPONENT]
    assert rk.parent_types(f"urn:pulumi:dev::evals::{OUTER}${COMPONENT}::a::suite") == [OUTER, COMPONENT]
    parent = f"urn:pulumi:dev::evals::{OUTER}${COMPONENT}::suite"
    child = urn(PLUGIN_TYPE, parents=(OUTER, COMPONENT))
    assert rk.of_parts("dev", "evals", rk.parent_types(parent), "train") == rk.of_urn(child)


def test_different_resources_have_different_keys() -> None:
    keys = {
        rk.of_urn(urn(PLUGIN_TYPE)),
        rk.of_urn(urn(PLUGIN_TYPE, "eval")),
        rk.of_urn(urn(PLUGIN_TYPE, stack="prod")),
        rk.of_urn(urn(PLUGIN_TYPE).replace("::evals::", "::other::")),
        rk.of_urn(urn(PLUGIN_TYPE, parents=(COMPONENT,))),
        rk.of_urn(urn(PLUGIN_TYPE, parents=(OUTER,))),
        rk.of_urn(urn(PLUGIN_TYPE, parents=(OUTER, COMPONENT))),
        rk.of_parts("dev", "evals", ["a"], "b"),
        rk.of_parts("dev", "evals", [], "a\0b"),
    }
    assert len(keys) == 9


def test_the_keys_earlier_versions_used_are_computed_as_they_were() -> None:
    top, child = urn(PLUGIN_TYPE), urn(PLUGIN_TYPE, parents=(COMPONENT,))
    assert rk.legacy_keys(top) == [old_plugin_key(top), old_dynamic_key("evals", "dev", "", "train")]
    # A child's URN names its parent's type only; the old dynamic key hashed the parent's whole URN.
    assert rk.legacy_keys(child) == [old_plugin_key(child)]
    parent = f"urn:pulumi:dev::evals::{COMPONENT}::suite"
    assert rk.legacy_dynamic_key("evals", "dev", parent, "train") == old_dynamic_key("evals", "dev", parent, "train")
    assert rk.legacy_dynamic_key("evals", "dev", "", "x::y") == old_dynamic_key("evals", "dev", "", "x::y")


def test_the_input_carries_the_key_first_then_the_legacy_keys_on_one_line() -> None:
    top = urn(PLUGIN_TYPE)
    value = rk.input_of_urn(top)
    assert "\n" not in value
    assert rk.keys_of(value) == [rk.of_urn(top), *rk.legacy_keys(top)]
    assert rk.key_of(value) == rk.of_urn(top)
    assert rk.keys_of("7d7f156a69f12394156b12de5f6074c7") == ["7d7f156a69f12394156b12de5f6074c7"]  # as stored before
    assert rk.keys_of(None) == [] and rk.key_of(None) is None
    assert rk.as_input("a", ["b", "a", "b"]) == "a b"
    with pytest.raises(ValueError, match="one word"):
        rk.as_input("a b")


@pytest.mark.parametrize("text", ["", "urn:pulumi:dev::evals::train", "arn:aws:x::y::z::w"])
def test_a_urn_it_cannot_read_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a Pulumi URN"):
        rk.of_urn(text)


def test_the_mark_a_new_run_gets_is_the_key_alone() -> None:
    """A run is marked with the new key only, whatever legacy keys the input carries, and completes with it."""
    from pulumi_mlflow_runs.core import models as m
    from pulumi_mlflow_runs.core.run_apply import completion_tag, unfinished_tag
    from pulumi_mlflow_runs.core.run_plan import Writes

    value = rk.input_of_urn(urn(PLUGIN_TYPE))
    key = rk.key_of(value)
    assert unfinished_tag(value) == [m.RunTag(key="pulumi.resource_key", value=f"creating:{key}")]
    writes = Writes(run_id="r")
    completion_tag(writes, value)
    assert [t for b in writes.batches for t in b.tags or []] == [m.RunTag(key="pulumi.resource_key", value=key)]
