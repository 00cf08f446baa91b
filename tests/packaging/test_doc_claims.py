"""Claims of README.md and docs/*.md that no other test covered, each proven against the real server.

One test per claim; each docstring quotes the doc text it guards (by file and section: line numbers
move). Where a claim turned out false, the test states the documented behaviour and is a strict xfail
whose reason says what is true instead, so it turns red (XPASS) the day the behaviour and the docs agree
and the marker must go.

Not here: that Retry-After is what is waited for (docs/reliability.md, "One retry policy") is
``tests/connection/test_retry_policy.py::test_retry_after_is_what_is_waited`` (through the real Transport) and
``tests/connection/test_retry_helper.py::test_retry_after_replaces_the_growing_backoff``.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pulumi
import pytest

from pulumi_mlflow_runs import ExperimentProvider, ExperimentRun, ExperimentRunProvider
from pulumi_mlflow_runs.core.runtime import Runtime
from pulumi_mlflow_runs.core.settings import StackConfig
from pulumi_mlflow_runs.dynamic.functions import get_run_output, search_runs_output

from support.engine import UNKNOWN, Engine
from support.fault_proxy import FaultProxy
from support.host import DynamicHost, HostError, isolated_env, with_provider
from support.runs import endpoints, run_props, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_proxy import RecordingProxy
    from support.mlflow_server import MlflowServer

TERMINAL = ["FINISHED", "FAILED", "KILLED"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _run_inputs(host: DynamicHost, **inputs: Any) -> dict[str, Any]:
    checked = host.check({}, run_props(**inputs))
    assert checked.failures == []
    return checked.inputs


def _host_via(proxy: FaultProxy, config: dict[str, Any] | None = None, **env: str) -> DynamicHost:
    h = DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=proxy.url, **env))
    try:
        h.configure(config or {})
    except BaseException:
        h.close()
        raise
    return h


# ---- 1. removing description deletes the tag ------------------------------------------------------------


def test_removing_description_deletes_the_note_tag_on_the_server(
    host: DynamicHost, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    """docs/reference.md, ExperimentRun inputs, `description` row: "Removing it deletes the tag"."""
    base = {"experiment_id": experiment_id, "run_name": unique("desc"), "tags": {"team": "a"}}
    run_id, outs = host.create(_run_inputs(host, **base, description="about this run"))
    assert mlflow_client.get_run(run_id).data.tags["mlflow.note.content"] == "about this run"

    news = _run_inputs(host, **base)
    assert host.diff(run_id, outs, news).changes != "none"
    host.update(run_id, outs, news)

    tags = mlflow_client.get_run(run_id).data.tags
    assert "mlflow.note.content" not in tags, tags
    assert tags["team"] == "a"  # only the description's tag went


# ---- 2. end_time is "now" for a terminal status without one ---------------------------------------------


@pytest.mark.parametrize("status", TERMINAL)
def test_a_terminal_status_without_end_time_ends_the_run_now(
    host: DynamicHost, mlflow_client: MlflowClient, experiment_id: str, status: str
) -> None:
    """README.md "What a change does" and docs/reference.md ExperimentRun inputs, `end_time` row: "now" when
    the run becomes FINISHED/FAILED/KILLED without one. Both ways: created so, and updated to it from RUNNING."""
    before = _now_ms()
    created, _ = host.create(_run_inputs(host, experiment_id=experiment_id, run_name=unique("end"), status=status))
    after = _now_ms()
    info = mlflow_client.get_run(created).info
    assert info.status == status
    assert info.end_time is not None and before <= info.end_time <= after, (before, info.end_time, after)

    running = {"experiment_id": experiment_id, "run_name": unique("end"), "status": "RUNNING"}
    run_id, outs = host.create(_run_inputs(host, **running))
    assert not mlflow_client.get_run(run_id).info.end_time  # still running: no end yet
    before = _now_ms()
    host.update(run_id, outs, _run_inputs(host, **{**running, "status": status}))
    after = _now_ms()
    info = mlflow_client.get_run(run_id).info
    assert info.status == status
    assert info.end_time is not None and before <= info.end_time <= after, (before, info.end_time, after)


# ---- 3. stack config retryDeadline wins over the env variable -------------------------------------------


def test_stack_config_retry_deadline_wins_over_env(fault_proxy: FaultProxy) -> None:
    """docs/reliability.md, "One retry policy": the deadline is "set with stack config
    `mlflow-runs:retryDeadline` (seconds) or env `PULUMI_MLFLOW_RUNS_RETRY_DEADLINE` (config wins)".

    A server answering 503 forever: the provider gives up at the deadline and says which one it used.
    Config says 1 s, env 4 s: the error must name 1 s (with env winning it would name 4 s).
    """
    fault_proxy.fail("runs/get", "503", times=10_000)
    config = {"mlflow-runs:retryDeadline": "1"}
    with _host_via(fault_proxy, config, PULUMI_MLFLOW_RUNS_RETRY_DEADLINE="4") as h, pytest.raises(HostError) as info:
        h.read("0" * 32, with_provider({"experiment_id": "0"}, ExperimentRunProvider()))  # runs/get: retried
    details = info.value.details
    assert "HTTP 503" in details
    assert "would pass the retry deadline (1s)" in details, details
    attempts = [r for r in fault_proxy.requests if r.endpoint.startswith("runs/get")]
    assert 2 <= len(attempts) <= 3, endpoints(fault_proxy.requests)  # 503 is retried, within 1 s only


# ---- 5. the rollback's message --------------------------------------------------------------------------


@pytest.mark.parametrize("delete_fails", [False, True], ids=["rollback-deletes", "rollback-fails"])
def test_a_failed_create_says_whether_its_half_created_run_was_deleted(
    fault_proxy: FaultProxy, mlflow_client: MlflowClient, experiment_id: str, delete_fails: bool
) -> None:
    """docs/reliability.md, "Rollback and partial updates": "if any step after runs/create fails, the run is
    deleted before the error is raised, and the error says so (or says it could not, with the run id)"."""
    from mlflow.entities import ViewType

    name = unique("rollback")
    fault_proxy.fail("runs/log-batch", "503", times=10_000)
    if delete_fails:
        fault_proxy.fail("runs/delete", "503", times=10_000)
    with _host_via(fault_proxy, PULUMI_MLFLOW_RUNS_RETRY_DEADLINE="1") as h:
        inputs = _run_inputs(h, experiment_id=experiment_id, run_name=name, params={"lr": "0.1"})
        with pytest.raises(HostError) as info:
            h.create(inputs)
    details = info.value.details
    runs = mlflow_client.search_runs([experiment_id], f"attributes.run_name = '{name}'", run_view_type=ViewType.ALL)
    assert len(runs) == 1, "runs/create reached the server once"
    run_id, stage = runs[0].info.run_id, runs[0].info.lifecycle_stage
    assert "runs/log-batch failed with HTTP 503" in details
    assert "runs/delete" in endpoints(fault_proxy.requests), "the rollback was tried"
    if delete_fails:
        assert stage == "active"
        assert f"the half-created run {run_id} could not be deleted" in details, details
        # A 503 may come after the server acted: the log-batch that failed was the create's last, which carries
        # the completion mark, so the run may be complete.
        assert "it may be marked complete (the answer to its last request was lost)" in details, details
        assert "was deleted" not in details
    else:
        assert stage == "deleted"
        assert f"the half-created run {run_id} was deleted" in details, details
        assert "could not be deleted" not in details


# ---- 6. faults on experiments/create --------------------------------------------------------------------

EXPERIMENT_FAULTS = ["429", "503", "500-after", "drop-after"]


@pytest.mark.parametrize("fault", EXPERIMENT_FAULTS)
def test_experiment_create_survives_a_fault(fault_proxy: FaultProxy, mlflow_client: MlflowClient, fault: str) -> None:
    """README.md, "Connecting": "Throttling (429), outages (5xx), refused or reset connections and timeouts
    are retried until a deadline"; docs/reliability.md, first paragraph: "a write that could do harm is
    first checked against what the server already holds".

    A 429 or 503 is answered before the request reaches the server: it is sent again. After a 500 or a
    dropped connection once the server acted, the experiment is found by its name and this create's token,
    not created a second time (which the server would refuse: the name is taken).
    """
    name = unique("exp-fault")
    fault_proxy.fail("experiments/create", fault, retry_after=0.1 if fault == "429" else None)
    with _host_via(fault_proxy, PULUMI_MLFLOW_RUNS_RETRY_DEADLINE="5") as h:
        inputs = h.check({}, with_provider({"name": name, "tags": {"owner": "ml"}}, ExperimentProvider())).inputs
        exp_id, outs = h.create(inputs)
        refreshed = h.read(exp_id, outs).outs
    assert fault_proxy.fired() == 1
    sent = [r for r in fault_proxy.requests if r.endpoint == "experiments/create"]
    assert len(sent) == (1 if fault.endswith("-after") else 2), endpoints(fault_proxy.requests)
    assert len(fault_proxy.reached_server("experiments/create")) == 1
    exp = mlflow_client.get_experiment_by_name(name)
    assert exp is not None and exp.experiment_id == exp_id == outs["experiment_id"]
    assert exp.lifecycle_stage == "active" == outs["lifecycle_stage"]
    assert exp.tags["owner"] == "ml" and "pulumi.creation_token" in exp.tags  # the token stays, as on a run
    assert outs["tags"] == refreshed["tags"] == {"owner": "ml"}  # and is the provider's, not a managed tag


# ---- 7. the debug log carries no credential ------------------------------------------------------------

SECRET = "s3cr3t-token-XYZ"
_LOG_LINE = re.compile(r"(GET|POST) /api/2\.0/mlflow/[\w/-]+ -> \d{3} in \d+\.\d ms")


@pytest.mark.parametrize("auth", ["token", "basic"])
def test_the_debug_log_prints_no_credential(
    mlflow_server: MlflowServer,
    mlflow_env: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    experiment_id: str,
    auth: str,
) -> None:
    """docs/reliability.md, "Secrets": "The logger (`pulumi_mlflow_runs`, debug level) logs method, path,
    status and time only"; README.md, "Connecting": credentials are "never in ... logs".

    Every logger at DEBUG (what `logging.basicConfig(level=DEBUG)` turns on, httpx's included) while a run
    is created, updated and read with the credential.
    """
    forms = [SECRET]
    if auth == "token":
        # the proxy refuses any other token: the credential is proven to be on the requests logged
        proxy = FaultProxy(mlflow_server.url, require_token=SECRET)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", SECRET)
    else:
        proxy = FaultProxy(mlflow_server.url)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
        forms.append(base64.b64encode(f"alice:{SECRET}".encode()).decode())
    caplog.set_level(logging.DEBUG)
    provider = ExperimentRunProvider()
    connections = httpx.HTTPTransport()  # the provider's pool, ours to close: no socket outlives the test
    provider._runtime = Runtime(StackConfig(), http_transport=connections)  # what api_for builds, env rules
    try:
        inputs = provider.check({}, {"experiment_id": experiment_id, "run_name": unique("log"), "status": "RUNNING",
                                     "tags": {"team": "a"}}).inputs  # fmt: skip
        created = provider.create(inputs)
        news = provider.check({}, {**inputs, "status": "FINISHED"}).inputs
        provider.update(created.id, created.outs, news)
        provider.read(created.id, created.outs)
    finally:
        connections.close()
        proxy.close()

    ours = [r.getMessage() for r in caplog.records if r.name == "pulumi_mlflow_runs"]
    assert any(line.startswith("POST /api/2.0/mlflow/runs/create -> 200") for line in ours), ours
    assert len(ours) >= 4  # create, log-batch, update, get, ...: the test sees what it checks
    for line in ours:
        assert _LOG_LINE.fullmatch(line), f"more than method, path, status and time: {line!r}"
    everything = caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records)
    for form in forms:
        assert form not in everything


# ---- 8. Output forms send nothing while an input is unknown ---------------------------------------------


def test_output_forms_send_nothing_while_an_input_is_unknown(
    proxy: RecordingProxy, mlflow_env: str, experiment_id: str, tmp_path: Path
) -> None:
    """docs/reference.md, "Program functions": "While an argument of an `*_output` form is unknown (a run not
    created yet, during a preview), its result stays unknown and nothing is sent" (functions.py says so too).

    A whole program under the engine stand-in, connected to the recording proxy by stack config: in the
    preview of a new stack the run's id is unknown, and the proxy must see no request at all (the provider
    host's Check and Diff send none either). The `up` then shows that both calls do go through this proxy.
    """

    def program() -> None:
        made = ExperimentRun("made", experiment_id=experiment_id, run_name="made-here", params={"model": "z"})
        pulumi.export("model", get_run_output(made.run_id).apply(lambda r: r.params["model"]))
        found = search_runs_output(experiment_id, filter=made.run_id.apply(lambda rid: f"attributes.run_id = '{rid}'"))
        pulumi.export("found", found.apply(len))

    engine = Engine(program, tmp_path / "state.json", {}, {"mlflow:trackingUri": proxy.url})
    preview = engine.preview()
    assert proxy.requests == [], [(r.endpoint, r.body) for r in proxy.requests]
    assert preview.ops() == {"made": "create"}
    assert preview.outputs["model"] == UNKNOWN and preview.outputs["found"] == UNKNOWN

    try:
        up = engine.up()
        assert (up.outputs["model"], up.outputs["found"]) == ("z", 1)
        searches = [r.body.get("filter") for r in proxy.requests if r.endpoint == "runs/search"]
        run_id = up.step("made").id
        assert f"attributes.run_id = '{run_id}'" in searches, searches
        gets = [r.path for r in proxy.requests if r.endpoint.startswith("runs/get")]
        # The create reads nothing back (core.created_run): the one runs/get is get_run_output's, once run_id is known.
        assert gets == ["/api/2.0/mlflow/runs/get"], gets
    finally:
        engine.destroy()
