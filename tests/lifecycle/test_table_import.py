"""``pulumi import`` of a RunTable through the core, against the real server: which runs an import id names, the
keys they get, and the errors that name what is wrong (the CLI's part: tests/native/test_run_table_cli.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from pulumi_mlflow_runs.core.client import MlflowApi
from pulumi_mlflow_runs.core.errors import InputError
from pulumi_mlflow_runs.core.table_import import import_table, parse_import_id

from support.runs import core_api

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer


@pytest.fixture
def api(mlflow_server: MlflowServer) -> Iterator[MlflowApi]:
    with core_api(mlflow_server.url) as made:
        yield made


@pytest.mark.parametrize("bad", ["", ":", "12:", "12:a,a", " :a"])
def test_an_import_id_not_of_the_forms_says_which_they_are(bad: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_import_id(bad)
    assert "`<experiment id>` (its active runs) or `<experiment id>:<run id>,<run id>,...`" in str(refused.value)


def test_runs_named_alike_get_keys_that_do_not_collide_and_a_listed_run_alone_is_taken(
    api: MlflowApi, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    ids = [mlflow_client.create_run(experiment_id, run_name=name).info.run_id for name in ("a", "a", "b", "c")]
    mlflow_client.delete_run(ids[3])
    table = import_table(api, experiment_id)
    assert table.inputs is not None
    keys = {key: run["run_id"] for key, run in table.state["runs"].items()}
    assert set(keys.values()) == set(ids[:3]), "the active runs"
    assert keys["b"] == ids[2] and "run_name" not in table.inputs["runs"]["b"]
    assert sorted(k for k in keys if k != "b") == sorted(f"a-{run_id[:8]}" for run_id in ids[:2])
    assert all(table.inputs["runs"][k]["run_name"] == "a" for k in keys if k != "b")

    one = import_table(api, f"{experiment_id}:{ids[1]}")
    assert one.inputs is not None and list(one.inputs["runs"]) == ["a"], "alone, its name is its key"


def test_a_missing_or_deleted_run_is_named(api: MlflowApi, mlflow_client: MlflowClient, experiment_id: str) -> None:
    gone = mlflow_client.create_run(experiment_id, run_name="gone").info.run_id
    mlflow_client.delete_run(gone)
    with pytest.raises(InputError) as deleted:
        import_table(api, f"{experiment_id}:{gone}")
    assert f"run {gone} is deleted: restore it first" in str(deleted.value)
    missing = "0" * 32
    with pytest.raises(InputError) as absent:
        import_table(api, f"{experiment_id}:{missing}")
    assert f"no run {missing} in experiment {experiment_id}" in str(absent.value)
