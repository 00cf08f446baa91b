"""A RunTable's Diff and Delete on the plugin at table scale: the detailed diff compares each property once, not
once per path, and Delete writes at most the table's ``maxParallel`` at a time (found by the issue 28 benchmark)."""

from __future__ import annotations

from typing import Any

import pytest

from pulumi_mlflow_runs.core.table_spec import MAX_PARALLEL_DEFAULT
from pulumi_mlflow_runs.native import provider as plugin
from pulumi_mlflow_runs.native import table as native_table
from pulumi_mlflow_runs.native.handler import ApiFor
from pulumi_mlflow_runs.native.table import TableHandler


def test_the_detailed_diff_compares_a_property_once_however_many_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    old = {"runs": {f"r{i}": {"tags": {"t": "a"}} for i in range(300)}, "max_parallel": 2}
    new = {"runs": {f"r{i}": {"tags": {"t": "b"}} for i in range(300)}, "max_parallel": 2}
    paths = {f'runs["r{i}"].tags["t"]': plugin.provider_pb2.PropertyDiff.UPDATE for i in range(300)}
    calls = []
    real = plugin.canonical

    def counted(value: Any) -> Any:
        calls.append(1)
        return real(value)

    monkeypatch.setattr(plugin, "canonical", counted)
    out = plugin._detailed(paths, old, new, TableHandler.props)
    assert len(calls) == 2, "the runs map is compared once (it was once per path: quadratic in a large edit)"
    assert set(out) == set(paths) and all(d.inputDiff for d in out.values())
    unchanged = plugin._detailed(paths, old, old, TableHandler.props)
    assert not any(d.inputDiff for d in unchanged.values()), "drift against the state: no input changed"


@pytest.mark.parametrize(("old_inputs", "expected"), [({"max_parallel": 1}, 1), ({"max_parallel": 12}, 12), ({}, None)])
def test_delete_writes_at_most_the_tables_max_parallel(
    monkeypatch: pytest.MonkeyPatch, old_inputs: dict[str, Any], expected: int | None
) -> None:
    seen: list[int] = []

    def delete_table(api: Any, state: Any, parallel: int) -> list[str]:
        seen.append(parallel)
        return []

    monkeypatch.setattr(native_table, "delete_table", delete_table)
    api_for: ApiFor = lambda props: None  # noqa: E731 - delete_table is replaced
    state = {"experiment_id": "1", "run_ids": {"a": "r1"}, "table_key": "k", "run_states": {}}
    assert TableHandler().delete(api_for, "id", state, old_inputs) is None
    assert seen == [expected or MAX_PARALLEL_DEFAULT]
