"""Behaviour the mutation run (docs/mutation-testing.md) found untested: each test names what a user would see
go wrong. Pure functions, a fake clock and a transport that is never reached: no server, no sleep.

The diff rules and the write plan (``_run_diff``, ``plan_writes``, chunking, timestamps), the retry helper
(``_retries``) and the exactly-once sender (``_exactly_once``). Nothing here pins the resource's outputs.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator

import httpx
import pytest

from pulumi_mlflow_runs import Connection
from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.change_rules import match_points
from pulumi_mlflow_runs.core.errors import (
    BadGateway,
    BadRequest,
    ConfigurationError,
    Conflict,
    GatewayTimeout,
    InternalError,
    NotFound,
    PermissionDenied,
    RequestTimeout,
    ServiceUnavailable,
    TooManyRequests,
    TransportError,
    Unauthenticated,
)
from pulumi_mlflow_runs.core.exactly_once import send_exactly_once
from pulumi_mlflow_runs.core.retries import (
    RETRY_DEADLINE_CONFIG,
    RETRY_DEADLINE_ENV,
    RetryPolicy,
    SystemClock,
    retry_call,
    retry_policy,
)
from pulumi_mlflow_runs.core.run_diff import diff_run
from pulumi_mlflow_runs.core.run_plan import assign_timestamps, chunk_log_batch, plan_writes
from pulumi_mlflow_runs.core.run_spec import DESCRIPTION_TAG, UNKNOWN, check_inputs
from pulumi_mlflow_runs.core.transport import Transport

from support.fake_clock import FakeClock


def _checked(**inputs):
    out, failures = check_inputs({"experiment_id": "1", **inputs})
    assert failures == []
    return out


def _state(**inputs):
    """Outputs in state as diff and update see them: the checked inputs plus what the server said."""
    return {**_checked(**inputs), "run_id": "r", "lifecycle_stage": "active"}


def _verdict(olds, news) -> tuple[tuple[str, ...], tuple[str, ...]]:
    d = diff_run(olds, news)
    return d.replaces, d.updates


POINT = {"key": "loss", "value": 1.0, "step": 0, "timestamp": 5}
DATASET = {"dataset": {"name": "d1", "digest": "abc", "source_type": "local", "source": "s"}, "tags": {}}


# ---- diff rules ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["dataset_name", "dataset_digest", "model_id"])
def test_a_logged_point_given_another_dataset_or_model_is_a_replace(field: str) -> None:
    """MLflow cannot move a logged point to another dataset or model: a new run, not a silent no-op."""
    olds = _state(metrics=[{**POINT, field: "a"}])
    assert _verdict(olds, _checked(metrics=[{**POINT, field: "b"}])) == (("metrics",), ())
    assert _verdict(olds, _checked(metrics=[POINT])) == (("metrics",), ())
    assert _verdict(_state(metrics=[POINT]), _checked(metrics=[{**POINT, field: "a"}])) == (("metrics",), ())


@pytest.mark.parametrize(
    "declared",
    [
        {"key": "loss", "value": 2.0, "step": 0},  # another value, no timestamp declared
        {**POINT, "timestamp": 6},  # another timestamp
        {**POINT, "step": 1, "timestamp": None},
    ],
    ids=["value", "timestamp", "step"],
)
def test_the_only_logged_point_altered_is_a_replace(declared: dict) -> None:
    declared = {k: v for k, v in declared.items() if v is not None}
    assert _verdict(_state(metrics=[POINT]), _checked(metrics=[declared])) == (("metrics",), ())


def test_a_timestamped_point_is_paired_before_one_without_timestamp() -> None:
    """The point without timestamp may pair with either logged point; the timestamped one needs its own."""
    logged = [POINT, {**POINT, "timestamp": 6}]
    declared = [{k: v for k, v in POINT.items() if k != "timestamp"}, POINT]
    assert _verdict(_state(metrics=logged), _checked(metrics=declared)) == ((), ())


def test_a_point_without_timestamp_declared_before_the_logged_one_is_logged() -> None:
    """Declared: a new point (no timestamp), then the logged loss@5. Only the new one is sent (the
    in-order shortcut once paired the new point with loss@5 and sent loss@5 again)."""
    declared = [{k: v for k, v in POINT.items() if k != "timestamp"}, POINT]
    paired, unpaired = match_points([POINT], _checked(metrics=declared)["metrics"])
    assert (paired, unpaired) == ([None, POINT], 0)


def test_key_order_in_state_does_not_matter() -> None:
    """State read back from the engine need not keep the key order of the checked inputs."""
    olds = {
        **_state(),
        "model_outputs": [{"step": 1, "model_id": "a"}],
        "model_inputs": [{"model_id": "b"}],
        "dataset_inputs": [{"tags": {"y": "2", "x": "1"}, "dataset": dict(reversed(DATASET["dataset"].items()))}],
    }
    news = _checked(
        model_outputs=[{"model_id": "a", "step": 1}],
        model_inputs=[{"model_id": "b"}],
        dataset_inputs=[{**DATASET, "tags": {"x": "1", "y": "2"}}],
    )
    assert _verdict(olds, news) == ((), ())
    w = plan_writes("r", olds, news, 1)
    assert (w.inputs, w.outputs) == (None, None)


@pytest.mark.parametrize("old, new", [(None, {}), ({}, None), (None, []), ([], None)])
def test_undeclared_and_empty_are_the_same(old, new) -> None:
    key = "tags" if isinstance(old, dict) or isinstance(new, dict) else "model_inputs"
    assert _verdict({**_state(), key: old}, {**_checked(), key: new}) == ((), ())


BASE = {"run_name": "r", "start_time": 1, "end_time": 10, "status": "FINISHED", "description": "d",
        "tags": {"a": "1"}, "params": {"p": "1"}, "metrics": [POINT]}


@pytest.mark.parametrize(
    ("left_out", "change", "replaces", "updates"),
    [
        # MLflow cannot unset these: leaving one out accepts whatever the run has ...
        (("run_name",), {}, (), ()),
        (("start_time",), {}, (), ()),
        (("end_time",), {}, (), ()),
        (("status",), {}, (), ()),
        (("run_name", "start_time", "end_time", "status"), {}, (), ()),
        # ... and does not hide a change to the keys after it
        (("run_name",), {"tags": {"a": "2"}}, (), ("tags",)),
        (("start_time",), {"params": {"p": "1", "q": "2"}}, (), ("params",)),
        (("run_name", "start_time", "end_time", "status"), {"metrics": [POINT, {**POINT, "step": 1}]}, (),
         ("metrics",)),
        (("run_name",), {"experiment_id": "2"}, ("experiment_id",), ()),
        # the others can be left out, which removes what the run has (or cannot: params are write-once)
        (("description",), {}, (), ("description",)),
        (("tags",), {}, (), ("tags",)),
        (("params",), {}, ("params",), ()),
        (("metrics",), {}, ("metrics",), ()),
    ],
)
def test_inputs_left_out(left_out: tuple, change: dict, replaces: tuple, updates: tuple) -> None:
    olds = _state(**BASE)
    news = _checked(**{**{k: v for k, v in BASE.items() if k not in left_out}, **change})
    assert _verdict(olds, news) == (replaces, updates)


@pytest.mark.parametrize(
    ("key", "replaces", "updates"),
    [
        ("params", (), ("params",)),
        ("metrics", (), ("metrics",)),
        ("tags", (), ("tags",)),
        ("dataset_inputs", (), ("dataset_inputs",)),
        ("start_time", ("start_time",), ()),
        ("run_name", (), ("run_name",)),
    ],
)
def test_a_whole_input_unknown_in_preview(key: str, replaces: tuple, updates: tuple) -> None:
    olds = _state(**BASE, dataset_inputs=[DATASET])
    news = {**_checked(**BASE, dataset_inputs=[DATASET]), key: UNKNOWN}
    assert _verdict(olds, news) == (replaces, updates)


# ---- write plan ----------------------------------------------------------------------------------------


def test_declared_timestamps_are_kept_and_missing_ones_are_now() -> None:
    points = [POINT, {"key": "loss", "value": 2.0, "step": 1}]
    stamped = assign_timestamps(points, 99)
    assert [p["timestamp"] for p in stamped] == [5, 99]
    assert stamped[1] == {"key": "loss", "value": 2.0, "step": 1, "timestamp": 99}
    assert "timestamp" not in points[1], "the declared points are left as they were"


def test_a_deleted_run_is_restored() -> None:
    new = _checked(tags={"a": "1"})
    w = plan_writes("r1", {**new, "lifecycle_stage": "deleted"}, new, 1)
    assert w.restore and w.run_id == "r1"
    assert not plan_writes("r1", {**new, "lifecycle_stage": "active"}, new, 1).restore


def _batched(w) -> tuple[dict, dict]:
    params = {p.key: p.value for b in w.batches for p in b.params or []}
    tags = {t.key: t.value for b in w.batches for t in b.tags or []}
    return params, tags


def test_removing_the_description_deletes_the_note_and_an_unchanged_one_is_not_sent() -> None:
    old = _state(description="d", tags={"a": "1"})
    w = plan_writes("r", old, _checked(tags={"a": "1"}), 1)
    assert [t.key for t in w.deleted_tags] == [DESCRIPTION_TAG]
    w = plan_writes("r", old, _checked(description="d", tags={"a": "1", "b": "2"}), 1)
    assert _batched(w) == ({}, {"b": "2"}) and w.deleted_tags == [] and w.long_tags == []
    w = plan_writes("r", old, _checked(description="e", tags={"a": "1"}), 1)
    assert _batched(w) == ({}, {DESCRIPTION_TAG: "e"}) and w.deleted_tags == []


def test_values_up_to_250_characters_go_in_the_batch_once_with_their_values() -> None:
    params = {"p250": "p" * 250, "p251": "q" * 251, "short": "s"}
    tags = {"t250": "t" * 250, "t251": "u" * 251, "short": "v"}
    w = plan_writes("r", {}, _checked(params=params, tags=tags), 1)
    assert _batched(w) == ({"p250": "p" * 250, "short": "s"}, {"t250": "t" * 250, "short": "v"})
    assert [(p.key, p.value) for p in w.long_params] == [("p251", "q" * 251)]
    assert [(t.key, t.value) for t in w.long_tags] == [("t251", "u" * 251)]


def test_dataset_inputs_are_sent_with_their_tags_and_only_the_new_ones() -> None:
    d2 = {"dataset": {**DATASET["dataset"], "name": "d2", "schema": "{}"}, "tags": {"mlflow.data.context": "eval"}}
    old = _state(dataset_inputs=[DATASET])
    w = plan_writes("r", old, _checked(dataset_inputs=[DATASET, d2], model_inputs=[{"model_id": "x"}]), 1)
    assert w.inputs is not None and w.inputs.run_id == "r"
    assert [d.model_dump(mode="json", exclude_none=True, by_alias=True) for d in w.inputs.datasets or []] == [
        {
            "dataset": {"name": "d2", "digest": "abc", "source_type": "local", "source": "s", "schema": "{}"},
            "tags": [{"key": "mlflow.data.context", "value": "eval"}],
        }
    ]
    assert [x.model_id for x in w.inputs.models or []] == ["x"]
    w = plan_writes("r", {}, _checked(dataset_inputs=[DATASET]), 1)
    assert w.inputs is not None and [d.dataset.name for d in w.inputs.datasets or []] == ["d1"]
    assert w.inputs.models is None


def test_run_name_and_end_time_changes_are_sent() -> None:
    old = _state(run_name="r", end_time=10, status="FINISHED")
    w = plan_writes("r1", old, _checked(run_name="s", end_time=20, status="FINISHED"), 777)
    assert w.update == m.UpdateRun(run_id="r1", run_name="s", end_time=20)


def test_a_run_that_ends_keeps_its_declared_end_time() -> None:
    old = _state(status="RUNNING", end_time=50)
    assert plan_writes("r", old, _checked(status="FINISHED", end_time=60), 777).update == m.UpdateRun(
        run_id="r", status="FINISHED", end_time=60)
    assert plan_writes("r", old, _checked(status="KILLED", end_time=50), 777).update == m.UpdateRun(
        run_id="r", status="KILLED")


def _as_sent(batch: m.LogBatch) -> bytes:
    """The request body exactly as the client and transport send it."""
    body = batch.model_dump(mode="json", exclude_none=True, by_alias=True)
    return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()


def test_non_finite_points_are_sent_as_mlflow_strings() -> None:
    points = [{**POINT, "value": math.nan}, {**POINT, "value": math.inf, "step": 1}, {**POINT, "value": -math.inf}]
    w = plan_writes("r", {}, _checked(metrics=points), 1)
    sent = json.loads(_as_sent(w.batches[0]))
    assert [p["value"] for p in sent["metrics"]] == ["NaN", "Infinity", "-Infinity"]


MAX_BODY_BYTES = 1_000_000
"""MLflow's MAX_BATCH_LOG_REQUEST_SIZE: the server refuses a longer log-batch body."""


@pytest.mark.parametrize(
    "name",
    ["n" * 1000, "n" * 1020, "n" * 1037, "n" * 1050, "n" * 1100, "n" * 1400, "\U0001f600" * 80, "\U0001f600" * 95],
    ids=["1000", "1020", "1037", "1050", "1100", "1400", "80-emoji", "95-emoji"],
)
def test_every_log_batch_body_fits_the_server_limit(name: str) -> None:
    """Points large enough that the byte limit, not the count, ends each batch (an emoji takes 12 bytes)."""
    metrics = [m.Metric(key="loss", value=0.5, timestamp=1_700_000_000_000, step=i, dataset_name=name)
               for i in range(2500)]
    batches = chunk_log_batch("0123456789abcdef0123456789abcdef", metrics, [], [])
    assert [x.step for b in batches for x in b.metrics or []] == list(range(2500))
    sizes = [len(_as_sent(b)) for b in batches]
    assert max(sizes) <= MAX_BODY_BYTES, sizes
    assert len(batches[0].metrics or []) < 1000, "the byte limit, not the count, ends a batch"


def test_a_thousand_points_take_one_request_and_the_next_a_second() -> None:
    metrics = [m.Metric(key="loss", value=i, timestamp=1, step=i) for i in range(1001)]
    assert [len(b.metrics or []) for b in chunk_log_batch("r", metrics[:1000], [], [])] == [1000]
    assert [len(b.metrics or []) for b in chunk_log_batch("r", metrics, [], [])] == [1000, 1]


# ---- retry helper --------------------------------------------------------------------------------------

POLICY = RetryPolicy(deadline=10, initial_backoff=1, multiplier=2, jitter=0)


def _failing(errors: list[Exception]):
    calls = []

    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "ok"

    return fn, calls


def test_the_deadline_counts_from_the_first_attempt_whatever_the_clock_says() -> None:
    clock = FakeClock()
    clock.now = 5000.0  # a monotonic clock starts anywhere
    fn, calls = _failing([ServiceUnavailable(status=503, error_code="X", message="", endpoint="e")] * 9)
    with pytest.raises(ServiceUnavailable):
        retry_call(fn, should_retry=lambda e: (True, None), policy=POLICY, clock=clock)
    assert (len(calls), clock.sleeps) == (4, [1, 2, 4])


@pytest.mark.parametrize(
    ("config", "env", "deadline"),
    [
        (None, {}, 120.0),
        (None, {RETRY_DEADLINE_ENV: ""}, 120.0),
        (None, {RETRY_DEADLINE_ENV: "30"}, 30.0),
        (None, {RETRY_DEADLINE_ENV: "0.5"}, 0.5),
        ("45", {RETRY_DEADLINE_ENV: "30"}, 45.0),  # stack config wins over the environment
        (45, {}, 45.0),
        ("3600", {}, 3600.0),
    ],
)
def test_retry_deadline_setting(config, env, deadline: float) -> None:
    assert retry_policy(config, env) == RetryPolicy(deadline=deadline)


@pytest.mark.parametrize("raw", ["0", "-1", "3600.5", "soon", "nan", "inf", "1e9"])
@pytest.mark.parametrize("source", ["config", "env"])
def test_a_bad_retry_deadline_names_its_setting_and_value(raw: str, source: str) -> None:
    config, env, name = (raw, {}, RETRY_DEADLINE_CONFIG) if source == "config" else (None, {RETRY_DEADLINE_ENV: raw},
                                                                                    RETRY_DEADLINE_ENV)
    with pytest.raises(ConfigurationError) as info:
        retry_policy(config, env)
    assert str(info.value) == f"{name} must be a number of seconds between 0 and 3600, got {raw!r}"


def test_retry_deadline_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RETRY_DEADLINE_ENV, "7")
    assert retry_policy(None) == RetryPolicy(deadline=7.0)
    monkeypatch.delenv(RETRY_DEADLINE_ENV)
    assert retry_policy(None) == RetryPolicy()


def test_the_system_clock_sleeps() -> None:
    clock = SystemClock()
    start = clock.monotonic()
    clock.sleep(0.01)
    assert clock.monotonic() - start >= 0.01
    assert abs(clock.monotonic() - time.monotonic()) < 1


# ---- exactly-once writes -------------------------------------------------------------------------------


@contextlib.contextmanager
def _transport(clock: FakeClock) -> Iterator[Transport]:
    """A transport with the test's policy and clock; ``send_exactly_once`` sends through the callable it is given."""

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request {request.url}")

    connection = Connection("http://127.0.0.1:5000", "test", False)
    with httpx.Client(transport=httpx.MockTransport(unreachable)) as client:
        yield Transport(connection, client, policy=POLICY, clock=clock)


def _exactly_once(errors: list[Exception], rest: object = "rest") -> tuple[list, list, FakeClock]:
    """``send_exactly_once("whole", ...)`` whose sends fail with ``errors`` in turn: (sent, asked, clock)."""
    sent: list = []
    asked: list = []
    clock = FakeClock()

    def send(request: object) -> None:
        sent.append(request)
        if errors:
            raise errors.pop(0)

    def remaining(request: object) -> object:
        asked.append(request)
        return rest

    with _transport(clock) as transport:
        send_exactly_once(transport, "whole", send, remaining)
    return sent, asked, clock


def _api(cls: type, status: int, retry_after: float | None = None) -> Exception:
    return cls(status=status, error_code=f"HTTP_{status}", message="no", endpoint="POST /x", retry_after=retry_after)


UNCERTAIN = {
    "500": lambda: _api(InternalError, 500),
    "502": lambda: _api(BadGateway, 502),
    "503 Retry-After: 3": lambda: _api(ServiceUnavailable, 503, retry_after=3.0),
    "504": lambda: _api(GatewayTimeout, 504),
    "reset after sending": lambda: TransportError("reset", endpoint="POST /x", sent=True),
    "read timeout": lambda: RequestTimeout("slow", endpoint="POST /x", sent=True),
}


@pytest.mark.parametrize("answer", list(UNCERTAIN))
def test_after_an_answer_that_may_have_been_applied_only_the_rest_is_sent(answer: str) -> None:
    """The server may have acted on the first request: sending it whole again would log points twice."""
    sent, asked, clock = _exactly_once([UNCERTAIN[answer]()])
    assert (sent, asked) == (["whole", "rest"], ["whole"])
    assert clock.sleeps == ([3.0] if "Retry-After" in answer else [1.0])


def test_when_the_server_has_everything_nothing_more_is_sent() -> None:
    sent, asked, _ = _exactly_once([_api(InternalError, 500)], rest=None)
    assert (sent, asked) == (["whole"], ["whole"])


CERTAIN = {
    "429 Retry-After: 2": lambda: _api(TooManyRequests, 429, retry_after=2.0),
    "connection refused": lambda: TransportError("refused", endpoint="POST /x", sent=False),
    "connect timeout": lambda: RequestTimeout("slow", endpoint="POST /x", sent=False),
}


@pytest.mark.parametrize("answer", list(CERTAIN))
def test_after_an_answer_that_was_not_applied_the_whole_request_is_sent_again(answer: str) -> None:
    sent, asked, clock = _exactly_once([CERTAIN[answer]()])
    assert (sent, asked) == (["whole", "whole"], [])
    assert clock.sleeps == ([2.0] if "Retry-After" in answer else [1.0])


def test_once_uncertain_every_later_attempt_asks_first() -> None:
    """A 429 on the rest does not make the first request certain: the next attempt asks the server again."""
    sent, asked, clock = _exactly_once([_api(ServiceUnavailable, 503), _api(TooManyRequests, 429)])
    assert (sent, asked) == (["whole", "rest", "rest"], ["whole", "whole"])
    assert clock.sleeps == [1.0, 2.0]


@pytest.mark.parametrize(
    "error",
    [_api(BadRequest, 400), _api(Unauthenticated, 401), _api(PermissionDenied, 403), _api(NotFound, 404),
     _api(Conflict, 409)],
    ids=["400", "401", "403", "404", "409"],
)
def test_an_answer_that_retrying_cannot_mend_is_raised_at_once(error: Exception) -> None:
    sent: list = []
    clock = FakeClock()

    def send(request: object) -> None:
        sent.append(request)
        raise error

    with _transport(clock) as transport, pytest.raises(type(error)):
        send_exactly_once(transport, "whole", send, lambda r: pytest.fail("nothing to ask"))
    assert (sent, clock.sleeps) == (["whole"], [])


def test_an_uncertain_answer_until_the_deadline_gives_up_with_a_note() -> None:
    errors = [_api(InternalError, 500) for _ in range(9)]
    with pytest.raises(InternalError) as info:
        _exactly_once(errors)
    assert any("gave up after 4 attempt(s)" in note for note in info.value.__notes__)
