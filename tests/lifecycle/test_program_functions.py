"""Program functions against the real MLflow server: filters, order, paging, get, and the Output forms
inside a whole program (preview and up) under the engine stand-in, connected through stack config."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pulumi
import pytest

from pulumi_mlflow_runs import ConfigurationError, ExperimentRun, InputError, MlflowApi, ResourceDoesNotExist
from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.auth import Connection
from pulumi_mlflow_runs.core.transport import TransportPool
from pulumi_mlflow_runs.dynamic.functions import (
    RunResult,
    get_run,
    get_run_output,
    search_runs,
    search_runs_output,
)

from support.engine import UNKNOWN, Engine
from support.mlflow_proxy import RecordingProxy
from support.runs import core_api

if TYPE_CHECKING:
    from support.mlflow_server import MlflowServer


@dataclass
class Seeded:
    experiment_id: str
    ids: dict[str, str]
    """run name -> run id"""


@pytest.fixture(scope="module")
def seeded(mlflow_server: MlflowServer) -> Seeded:
    """Three runs with metrics, params and tags, start times 1000/2000/3000 (a, b, c)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url)
    exp = client.create_experiment(f"functions-{uuid.uuid4().hex}")
    spec = {
        "a": (1000, "x", "a", [0.9, 0.5]),  # rmse falls: latest 0.5
        "b": (2000, "y", "b", [1.5]),
        "c": (3000, "x", "b", [2.5]),
    }
    ids = {}
    for name, (start, model, team, points) in spec.items():
        run = client.create_run(exp, run_name=f"r-{name}", start_time=start, tags={"team": team})
        rid = run.info.run_id
        client.log_param(rid, "model", model)
        for i, value in enumerate(points):
            client.log_metric(rid, "rmse", value, timestamp=10_000 + i, step=i)
        ids[name] = rid
    client.log_metric(ids["c"], "odd", math.nan, timestamp=1)
    return Seeded(exp, ids)


@pytest.fixture
def via_proxy(proxy: RecordingProxy) -> Iterator[MlflowApi]:
    """An API client whose every request the proxy records."""
    with core_api(proxy.url) as made:
        yield made


def _names(runs: list[RunResult]) -> list[str | None]:
    return [r.info.run_name for r in runs]


# ---- search ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ("metrics.rmse < 1", {"r-a"}),
        ("metrics.rmse >= 1.5", {"r-b", "r-c"}),
        ("params.model = 'x'", {"r-a", "r-c"}),
        ("tags.team = 'b'", {"r-b", "r-c"}),
        ("attributes.run_name = 'r-b'", {"r-b"}),
        ("attributes.start_time <= 2000", {"r-a", "r-b"}),
        ("params.model = 'x' and metrics.rmse > 1", {"r-c"}),
        ("tags.team = 'nobody'", set()),
    ],
)
def test_search_filters_on_metrics_params_tags_and_attributes(
    seeded: Seeded, mlflow_env: str, filter_: str, expected: set[str]
) -> None:
    assert set(_names(search_runs([seeded.experiment_id], filter=filter_))) == expected


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (None, ["r-c", "r-b", "r-a"]),  # the server's default: start_time DESC
        (["attributes.start_time ASC"], ["r-a", "r-b", "r-c"]),
        (["metrics.rmse DESC"], ["r-c", "r-b", "r-a"]),
        (["params.model ASC", "metrics.rmse ASC"], ["r-a", "r-c", "r-b"]),
        ("tags.team DESC", ["r-c", "r-b", "r-a"]),  # a bare string is one column; ties by start_time DESC
    ],
)
def test_search_order_by(seeded: Seeded, mlflow_env: str, order_by: Any, expected: list[str]) -> None:
    assert _names(search_runs(seeded.experiment_id, order_by=order_by)) == expected


def test_results_are_typed(seeded: Seeded, mlflow_env: str) -> None:
    (run,) = search_runs([seeded.experiment_id], filter="attributes.run_name = 'r-a'")
    assert isinstance(run.info, m.RunInfo)
    assert run.run_id == run.info.run_id == seeded.ids["a"]
    assert run.info.experiment_id == seeded.experiment_id
    assert run.info.start_time == 1000 and run.info.lifecycle_stage == "active"
    assert run.params == {"model": "x"}
    assert run.tags["team"] == "a" and run.tags["mlflow.runName"] == "r-a"
    assert run.metrics == {"rmse": 0.5}, "the latest point, not the first"
    assert run.run.data.metrics[0].step == 1


def test_non_finite_metrics_survive_and_to_dict_is_valid_json(seeded: Seeded, mlflow_env: str) -> None:
    run = get_run(seeded.ids["c"])
    assert math.isnan(run.metrics["odd"])
    text = json.dumps(run.to_dict(), allow_nan=False)
    assert {"key": "odd", "value": "NaN"} in [
        {k: p[k] for k in ("key", "value")} for p in json.loads(text)["data"]["metrics"]
    ]


def test_paging_follows_tokens_over_several_pages(
    mlflow_server: MlflowServer, mlflow_env: str, proxy: RecordingProxy, via_proxy: MlflowApi
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url)
    exp = client.create_experiment(f"paging-{uuid.uuid4().hex}")
    created = {client.create_run(exp, start_time=1000 + i).info.run_id for i in range(25)}

    mark = proxy.mark()
    runs = search_runs(exp, page_size=10, client=via_proxy)
    assert [r.run_id for r in runs] and {r.run_id for r in runs} == created and len(runs) == 25
    bodies = [r.body for r in proxy.since(mark)]
    assert [b["max_results"] for b in bodies] == [10, 10, 10]
    assert "page_token" not in bodies[0] and bodies[1]["page_token"] and bodies[2]["page_token"]
    assert [r.info.start_time for r in runs] == sorted((r.info.start_time for r in runs), reverse=True)

    mark = proxy.mark()
    first = search_runs(exp, order_by=["attributes.start_time ASC"], max_results=12, page_size=5, client=via_proxy)
    assert [r.info.start_time for r in first] == list(range(1000, 1012))
    assert [b["max_results"] for b in (r.body for r in proxy.since(mark))] == [5, 5, 2], "never more than asked"

    # the default path (connection from env, 1000 per page) gives the same runs
    assert {r.run_id for r in search_runs([exp])} == created
    assert len(search_runs([exp], max_results=7)) == 7


def test_run_view_type(mlflow_server: MlflowServer, mlflow_env: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url)
    exp = client.create_experiment(f"views-{uuid.uuid4().hex}")
    keep, gone = (client.create_run(exp).info.run_id for _ in range(2))
    client.delete_run(gone)
    assert [r.run_id for r in search_runs(exp)] == [keep]
    assert [r.run_id for r in search_runs(exp, run_view_type="DELETED_ONLY")] == [gone]
    assert {r.run_id for r in search_runs(exp, run_view_type="ALL")} == {keep, gone}
    assert get_run(gone).info.lifecycle_stage == "deleted"


# ---- get -------------------------------------------------------------------------------------------------


def test_get_run(seeded: Seeded, mlflow_env: str) -> None:
    run = get_run(seeded.ids["b"])
    assert (run.info.run_name, run.params, run.metrics) == ("r-b", {"model": "y"}, {"rmse": 1.5})
    assert run == RunResult.from_run(run.run)


def test_get_missing_run_raises_not_found(mlflow_env: str) -> None:
    with pytest.raises(ResourceDoesNotExist):
        get_run("0" * 32)


def test_explicit_host_wins_over_env(
    seeded: Seeded, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")  # would refuse connections
    assert get_run(seeded.ids["a"], host=mlflow_server.url).info.run_name == "r-a"


def test_no_connection_settings_is_a_configuration_error(
    mlflow_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.databrickscfg
    with pytest.raises(ConfigurationError, match="no MLflow tracking server is configured"):
        search_runs(["0"])


def test_the_provider_retry_deadline_setting_applies(mlflow_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_MLFLOW_RUNS_RETRY_DEADLINE", "forever")
    with pytest.raises(ConfigurationError, match="PULUMI_MLFLOW_RUNS_RETRY_DEADLINE"):
        search_runs(["0"])


# ---- validation: before any request ----------------------------------------------------------------------


def _refusing_client() -> tuple[MlflowApi, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    pool = TransportPool(http_transport=httpx.MockTransport(handler))
    return MlflowApi(pool.get(Connection("http://127.0.0.1:9", "test", False))), sent


@pytest.mark.parametrize(
    ("kwargs", "prop", "reason"),
    [
        ({"max_results": 0}, "max_results", "between 1 and 50000"),
        ({"max_results": 50_001}, "max_results", "between 1 and 50000"),
        ({"max_results": True}, "max_results", "whole number"),
        ({"max_results": "5"}, "max_results", "whole number"),
        ({"max_results": 2.5}, "max_results", "whole number"),
        ({"run_view_type": "active_only"}, "run_view_type", "ACTIVE_ONLY, DELETED_ONLY, ALL"),
        ({"experiment_ids": []}, "experiment_ids", "at least one"),
        ({"experiment_ids": [""]}, "experiment_ids[0]", "non-empty string"),
        ({"experiment_ids": ["1", 2]}, "experiment_ids[1]", "non-empty string"),
        ({"experiment_ids": None}, "experiment_ids", "required"),
        ({"order_by": [""]}, "order_by[0]", "non-empty string"),
        ({"filter": 3}, "filter", "string"),
        ({"page_size": 1001}, "page_size", "between 1 and 1000"),
    ],
)
def test_bad_arguments_are_refused_before_any_request(kwargs: dict[str, Any], prop: str, reason: str) -> None:
    api, sent = _refusing_client()
    args: dict[str, Any] = {"experiment_ids": ["1"], **kwargs}
    with pytest.raises(InputError) as info:
        search_runs(args.pop("experiment_ids"), **args, client=api)
    assert info.value.prop == prop and reason in info.value.reason
    assert sent == []


def test_get_run_refuses_an_empty_id_before_any_request() -> None:
    api, sent = _refusing_client()
    with pytest.raises(InputError, match="run_id"):
        get_run("", client=api)
    assert sent == []


def test_whole_floats_are_counts() -> None:
    """Numbers that travelled through the engine arrive as floats."""
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["max_results"])
        return httpx.Response(200, json={"runs": []})

    api = MlflowApi(TransportPool(http_transport=httpx.MockTransport(handler)).get(Connection("http://x", "t", False)))
    assert search_runs(["1"], max_results=3.0, client=api) == []  # type: ignore[arg-type]
    assert seen == [3]


# ---- Output forms in a whole program: preview and up ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("config_key", ["databricks:host", "mlflow:trackingUri"])
def test_output_forms_run_in_preview_and_up_with_stack_config(
    seeded: Seeded,
    mlflow_server: MlflowServer,
    mlflow_env: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    config_key: str,
) -> None:
    # No env connection: the functions (in the program) and the provider host both use stack config.
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("HOME", str(tmp_path))
    exp = seeded.experiment_id

    def program() -> None:
        found = search_runs_output(
            pulumi.Output.from_input(exp), filter="params.model = 'x'", order_by=["attributes.start_time ASC"]
        )
        pulumi.export("names", found.apply(lambda rs: [r.info.run_name for r in rs]))
        first = get_run_output(found.apply(lambda rs: rs[0].run_id))
        pulumi.export("first_rmse", first.apply(lambda r: r.metrics["rmse"]))
        pulumi.export("first_view", first.apply(lambda r: r.to_dict()["info"]["run_name"]))
        made = ExperimentRun("made", experiment_id=exp, run_name="made-here", params={"model": "z"})
        pulumi.export("made_model", get_run_output(made.run_id).apply(lambda r: r.params["model"]))
        recount = search_runs_output([exp], filter=made.run_id.apply(lambda rid: f"attributes.run_id = '{rid}'"))
        pulumi.export("made_found", recount.apply(len))

    engine = Engine(program, tmp_path / "state.json", {}, {config_key: mlflow_server.url})
    preview = engine.preview()
    assert preview.ops() == {"made": "create"}
    assert preview.outputs["names"] == ["r-a", "r-c"], "read-only functions run during preview"
    assert preview.outputs["first_rmse"] == 0.5
    assert preview.outputs["first_view"] == "r-a"
    assert preview.outputs["made_model"] == UNKNOWN, "an unknown input keeps the result unknown"
    assert preview.outputs["made_found"] == UNKNOWN

    up = engine.up()
    assert up.outputs["made_model"] == "z"
    assert up.outputs["made_found"] == 1
    engine.destroy()


def test_output_forms_carry_failures(seeded: Seeded, mlflow_env: str, tmp_path: Path) -> None:
    def program() -> None:
        pulumi.export("bad", search_runs_output([seeded.experiment_id], max_results=0).apply(len))

    with pytest.raises(Exception, match="max_results: must be between 1 and 50000"):
        Engine(program, tmp_path / "state.json", {}).preview()
