"""A run made by a stack says who manages it where a person looks: what MLflow's UI reads for "Source" and
"Created by" (the ``mlflow.source.*`` and ``mlflow.user`` tags, the run's ``user_id``) and tags a person can
read, all sent in the ``runs/create`` body (no request more), none of them an input: the outputs built without a
``runs/get`` are a ``runs/get``'s, and an import of such a run adopts none of them. On MLflow 3 and 2.22."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from pulumi_mlflow_runs.core import run_apply, state_seen
from pulumi_mlflow_runs.core.auth import Connection
from pulumi_mlflow_runs.core.client import MlflowApi
from pulumi_mlflow_runs.core.run_lifecycle import checked_inputs, create, now_ms, read_existing
from pulumi_mlflow_runs.core.run_origin import ORIGIN_TAGS, RunOrigin, create_fields, run_user
from pulumi_mlflow_runs.core.run_plan import outputs_for
from pulumi_mlflow_runs.core.run_table import apply_table
from pulumi_mlflow_runs.core.table_spec import check_table
from pulumi_mlflow_runs.core.transport import TransportPool

from support.mlflow_proxy import RecordingProxy
from support.runs import endpoints, unique

pytestmark = pytest.mark.mlflow2
ORIGIN = RunOrigin("quickstart", "dev", "bert/sst2")


@pytest.fixture
def pool() -> Iterator[TransportPool]:
    pool = TransportPool()
    try:
        yield pool
    finally:
        pool.close()


def _api(pool: TransportPool, proxy: RecordingProxy, user: str | None = None) -> MlflowApi:
    return MlflowApi(pool.get(replace(Connection(proxy.url, "test", False), run_user=user)))


def _create(api: MlflowApi, experiment_id: str, origin: RunOrigin | None, **props: Any) -> tuple[str, dict[str, Any]]:
    run_apply.forget_searches()
    state_seen.forget()
    inputs = checked_inputs({"experiment_id": experiment_id, "resource_key": unique("key"), **props})
    run_id, outputs = create(api, inputs, now_ms(), state_runs=None, origin=origin)
    assert outputs == outputs_for(inputs, api.get_run(run_id), outputs.get("artifact_files"))  # as read back
    return run_id, outputs


def test_the_ui_fields_name_the_stack_and_the_user(
    pool: TransportPool, proxy: RecordingProxy, experiment_id: str
) -> None:
    api = _api(pool, proxy, "ml-platform@example.com")
    props = {"params": {"lr": "0.1"}, "tags": {"team": "evals"}, "status": "FINISHED", "run_name": unique("run")}
    mark = proxy.mark()
    run_id, outputs = _create(api, experiment_id, ORIGIN, **props)
    sent = proxy.since(mark)
    run = api.get_run(run_id)
    tags = {t.key: t.value for t in run.data.tags}
    assert run.info.user_id == "ml-platform@example.com" == outputs["user_id"]
    assert tags["mlflow.user"] == "ml-platform@example.com"
    # The UI shows the source name after its last "/": the resource's own "/" is a division slash there.
    assert tags["mlflow.source.name"] == "pulumi · quickstart · dev · bert\u2215sst2"
    assert tags["mlflow.source.type"] == "LOCAL"
    assert (tags["pulumi.project"], tags["pulumi.stack"], tags["pulumi.resource"]) == ("quickstart", "dev", "bert/sst2")
    assert "next `pulumi up --refresh`" in tags["pulumi.note"] and "pulumi.table_entry" not in tags
    assert {"pulumi.resource_key", "pulumi.creation_token"} <= set(tags)  # what exactly-once needs stays
    # The state keeps them nowhere: the `run` output leaves the provider's own tags out (`user_id` holds the user).
    assert not {t["key"] for t in outputs["run"].get("data", {}).get("tags", [])} & set(ORIGIN_TAGS), outputs["run"]
    # All of it in the runs/create body: the same requests as a create without it.
    (made,) = [r for r in sent if r.endpoint == "runs/create"]
    assert made.body["user_id"] == "ml-platform@example.com"
    assert {t["key"] for t in made.body["tags"]} >= {"mlflow.source.name", "pulumi.stack", "mlflow.user"}
    mark = proxy.mark()
    _create(_api(pool, proxy), experiment_id, None, **{**props, "run_name": unique("run")})
    plain = proxy.since(mark)
    assert endpoints(plain) == endpoints(sent), endpoints(sent)
    (bare,) = [r for r in plain if r.endpoint == "runs/create"]
    print(f"runs/create body: {bare.body_bytes} bytes without the origin, {made.body_bytes} with it")

    # None of it is an input: an import of the run declares only what the program did.
    found = read_existing(api, run_id)
    assert found is not None and found.inputs is not None
    assert found.inputs["tags"] == {"team": "evals"}, found.inputs


def test_the_user_defaults_to_the_one_running_pulumi(
    pool: TransportPool, proxy: RecordingProxy, experiment_id: str
) -> None:
    run_id, _ = _create(_api(pool, proxy), experiment_id, ORIGIN)
    run = _api(pool, proxy).get_run(run_id)
    assert run.info.user_id == getpass.getuser()
    assert {t.key: t.value for t in run.data.tags}["mlflow.user"] == getpass.getuser()


def test_each_run_of_a_table_names_the_table_and_its_entry(
    pool: TransportPool, proxy: RecordingProxy, experiment_id: str
) -> None:
    api = _api(pool, proxy, "evals-bot")
    news, failures = check_table({"experiment_id": experiment_id, "runs": {"seed-1": {}, "seed-2": {}}}, ())
    assert not failures
    state_seen.forget()
    origin = RunOrigin("quickstart", "dev", "sweep")
    applied = apply_table(api, news, {}, unique("table"), now_ms(), origin=origin)
    for key, run in applied.state["runs"].items():
        tags = {t.key: t.value for t in api.get_run(run["run_id"]).data.tags}
        assert tags["mlflow.source.name"] == f"pulumi · quickstart · dev · sweep · {key}"
        assert (tags["pulumi.resource"], tags["pulumi.table_entry"], tags["mlflow.user"]) == ("sweep", key, "evals-bot")


def test_a_databricks_workspace_names_its_own_user() -> None:
    """The workspace records the caller: neither ``user_id`` nor ``mlflow.user`` is sent there."""
    assert run_user("someone", databricks=True) is None
    tags, user_id = create_fields(ORIGIN, None)
    assert user_id is None and "mlflow.user" not in {t.key for t in tags} and "pulumi.stack" in {t.key for t in tags}
    assert RunOrigin.of_urn("urn:pulumi:dev::quickstart::mlflow-runs:index:ExperimentRun::a::b") == RunOrigin(
        "quickstart", "dev", "a::b"
    )
    assert RunOrigin.of_urn(None) is None and RunOrigin.of_urn("not a urn") is None
