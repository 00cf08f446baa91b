"""What a user reads when ``pulumi up`` fails, through the real Pulumi CLI (issue 9 §3e).

Three failures, each read from the CLI's own output: a bad input (Check), a 500 that outlives the retries,
and a 401. Each must name the resource, the property or endpoint, and the fix; show no Python traceback;
never print the credential; and leave nothing active on the server. A secret input named by a Check failure
must not be printed either (the engine prints it as ``[secret]``; the provider must not quote it back).

The last tests drive ``_host_errors`` under the SDK's own ``_abort_with_traceback`` (its source, read from the
installed host module) without a CLI: our errors become the message, any other exception keeps its traceback.
"""

from __future__ import annotations

import ast
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pulumi_mlflow_runs import ExperimentRun, ExperimentRunProvider
from pulumi_mlflow_runs.core.errors import InternalError, Unauthenticated
from pulumi_mlflow_runs.dynamic.provider_base import user_facing

from support.fault_proxy import FaultProxy
from support.pulumi_cli import new_stack

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

TOKEN = "tok-e9c1-never-print-me"
TRACEBACK = "Traceback (most recent call last)"


@pytest.fixture
def experiment(mlflow_client: MlflowClient) -> str:
    return mlflow_client.create_experiment(f"cli-errors-{uuid.uuid4().hex[:10]}")


def _up_fails(
    bin_dir: Path, work: Path, program: Callable[[], None], env: dict[str, str], config: dict[str, str] | None = None
) -> str:
    """Run ``pulumi up`` on a fresh stack; return everything the CLI printed (it must fail)."""
    from pulumi import automation as auto

    stack = new_stack(bin_dir, work, program, env, config=config)
    printed: list[str] = []
    with pytest.raises(auto.errors.CommandError) as info:
        stack.up(on_output=printed.append)
    return "\n".join([*printed, str(info.value)])  # CommandError holds the CLI's stdout and stderr


def _run(experiment_id: str, **inputs: Any) -> Callable[[], None]:
    def program() -> None:
        ExperimentRun("my-run", experiment_id=experiment_id, **inputs)

    return program


def _assert_clean(out: str) -> None:
    assert TRACEBACK not in out, out
    assert "pulumi_mlflow_runs.core.errors" not in out and '.py", line' not in out, out
    assert TOKEN not in out, "the credential was printed"


def _active_runs(client: MlflowClient, experiment_id: str) -> list[Any]:
    from mlflow.entities import ViewType

    return list(client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY))


def test_bad_input_names_resource_property_and_allowed_values(
    pulumi_bin: Path, mlflow_env: str, tmp_path: Path, experiment: str, mlflow_client: MlflowClient
) -> None:
    out = _up_fails(
        pulumi_bin,
        tmp_path,
        _run(experiment, status="DONE", metrics=[{"value": 1.0}]),
        {"MLFLOW_TRACKING_URI": mlflow_env, "MLFLOW_TRACKING_TOKEN": TOKEN},
    )
    _assert_clean(out)
    assert "resource 'my-run': property status" in out
    assert "must be one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED" in out  # the fix: what is allowed
    assert "resource 'my-run': property metrics[0].key" in out and "is required" in out
    assert "got 'DONE'" not in out  # the reason never quotes the value back (the engine shows it, redacted)
    assert _active_runs(mlflow_client, experiment) == []


def test_a_secret_input_named_by_a_check_failure_is_not_printed(
    pulumi_bin: Path, mlflow_env: str, tmp_path: Path, experiment: str, mlflow_client: MlflowClient
) -> None:
    import pulumi

    hush = "DONE-hush-8d2f"

    def program() -> None:
        ExperimentRun("my-run", experiment_id=experiment, status=pulumi.Output.secret(hush))

    out = _up_fails(pulumi_bin, tmp_path, program, {"MLFLOW_TRACKING_URI": mlflow_env})
    _assert_clean(out)
    assert "resource 'my-run': property status value {[secret]} has a problem: must be one of" in out
    assert hush not in out
    assert _active_runs(mlflow_client, experiment) == []


def test_a_500_that_outlives_the_retries(
    pulumi_bin: Path,
    mlflow_env: str,
    tmp_path: Path,
    experiment: str,
    mlflow_client: MlflowClient,
    fault_proxy: FaultProxy,
) -> None:
    fault_proxy.fail("runs/log-batch", "500", times=1000)
    out = _up_fails(
        pulumi_bin,
        tmp_path,
        _run(experiment, status="FINISHED", params={"p": "1"}),
        {"MLFLOW_TRACKING_URI": fault_proxy.url, "MLFLOW_TRACKING_TOKEN": TOKEN},
        config={"mlflow-runs:retryDeadline": "2"},
    )
    _assert_clean(out)
    assert "could not create ExperimentRun 'my-run': POST /api/2.0/mlflow/runs/log-batch failed with HTTP 500" in out
    assert "retry deadline (2s)" in out
    assert "the half-created run" in out and "was deleted" in out
    assert f"fix: the server at {fault_proxy.url} (from env MLFLOW_TRACKING_URI) is failing" in out
    assert "mlflow-runs:retryDeadline" in out.split("fix:", 1)[1]
    # the rollback happened on the wire, and nothing is left active
    assert fault_proxy.reached_server("runs/create") and fault_proxy.reached_server("runs/delete")
    assert _active_runs(mlflow_client, experiment) == []


def test_a_401_names_the_endpoint_and_where_the_token_comes_from(
    pulumi_bin: Path, mlflow_env: str, tmp_path: Path, experiment: str, mlflow_client: MlflowClient, mlflow_server: Any
) -> None:
    with FaultProxy(mlflow_server.url, require_token="the-right-token-0a1b") as guarded:
        out = _up_fails(
            pulumi_bin,
            tmp_path,
            _run(experiment, status="FINISHED"),
            {"MLFLOW_TRACKING_URI": guarded.url, "MLFLOW_TRACKING_TOKEN": TOKEN},
        )
        seen = guarded.requests
    assert seen and {r.status for r in seen} == {401}
    _assert_clean(out)
    assert "the-right-token-0a1b" not in out
    # the refused request is named (the provider's first request may be a search before the create)
    assert f"could not create ExperimentRun 'my-run': {seen[0].method} {seen[0].path} failed with HTTP 401" in out
    fix = out.split("fix:", 1)[1]
    assert "did not accept the credential" in fix and "MLFLOW_TRACKING_TOKEN" in fix
    assert _active_runs(mlflow_client, experiment) == []


# ---- under the SDK's own wrapper, without a CLI ------------------------------------------------------------


class _Context:
    """Like grpc's servicer context: ``abort`` records the details and raises."""

    def __init__(self) -> None:
        self.details: str | None = None

    def abort(self, code: Any, details: str) -> None:
        self.details = details
        raise Exception()  # what grpc's abort does


class _Request:
    urn = "urn:pulumi:dev::proj::pulumi-python:dynamic/mlflow:ExperimentRun::my-run"


def _sdk_wrapper() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``_abort_with_traceback`` compiled from the installed host module's source (the module runs a server)."""
    import grpc
    import pulumi.dynamic

    source = (Path(pulumi.dynamic.__file__).parent / "__main__.py").read_text()
    node = next(
        n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "_abort_with_traceback"
    )
    namespace: dict[str, Any] = {"grpc": grpc, "traceback": traceback}
    exec(compile(ast.Module(body=[node], type_ignores=[]), "pulumi/dynamic/__main__.py", "exec"), namespace)
    return namespace["_abort_with_traceback"]  # type: ignore[no-any-return]


_SDK_WRAPPER = _sdk_wrapper()
"""Compiled once, at collection, while no other thread runs: CPython 3.11's ``ast.parse`` keeps its recursion
depth in shared state, and one in a thread a previous test left (a plugin's server) can make it fail with
"AST constructor recursion depth mismatch"."""


class _Failing(ExperimentRunProvider):
    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    @user_facing
    def create(self, props: dict[str, Any]) -> Any:
        raise self.exc


def _call_through_host(provider: ExperimentRunProvider, context: Any) -> None:
    @_SDK_WRAPPER
    def Create(_servicer: Any, request: Any, context: Any) -> Any:
        return provider.create({})

    with pytest.raises(Exception):  # noqa: B017 - grpc's abort raises a bare Exception
        Create(None, _Request(), context)


def test_our_error_becomes_the_message_under_the_sdk_wrapper() -> None:
    context = _Context()
    exc = Unauthenticated(status=401, error_code="UNAUTHENTICATED", message="no", endpoint="POST /x/runs/create")
    _call_through_host(_Failing(exc), context)
    assert context.details is not None and TRACEBACK not in context.details
    head = "could not create ExperimentRun 'my-run': POST /x/runs/create failed with HTTP 401"
    assert context.details.startswith(head)
    assert "\nfix: " in context.details


def test_any_other_exception_keeps_its_traceback() -> None:
    context = _Context()
    _call_through_host(_Failing(KeyError("a bug")), context)
    assert context.details is not None and TRACEBACK in context.details and "KeyError" in context.details


def test_a_context_that_refuses_the_patch_keeps_the_traceback() -> None:
    class Slotted:
        __slots__ = ("details",)

        def __init__(self) -> None:
            self.details: str | None = None

        def abort(self, code: Any, details: str) -> None:
            self.details = details
            raise Exception()

    context = Slotted()
    _call_through_host(_Failing(InternalError(status=500, error_code="E", message="m", endpoint="POST /x")), context)
    assert context.details is not None and TRACEBACK in context.details


def test_without_the_host_the_error_is_raised_unchanged() -> None:
    exc = InternalError(status=500, error_code="E", message="m", endpoint="POST /x")
    with pytest.raises(InternalError) as info:
        _Failing(exc).create({})
    assert info.value is exc and not getattr(exc, "__notes__", None)


def test_check_failures_never_quote_an_input_value() -> None:
    checked = ExperimentRunProvider().check(
        {},
        {
            "experiment_id": "1",
            "status": "s3cr3t-status",
            "start_time": 1.5,
            "end_time": -7.0,
            "model_outputs": [{"model_id": "m-s3cr3t", "step": 1}] * 2,
            "tags": {"k": "NaN", "j": "_"},
            "metrics": [{"key": "a b!", "value": 1.0}],
        },
    )
    reasons = {f.property: f.reason for f in checked.failures}
    assert reasons["status"] == "must be one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED"
    assert reasons["start_time"] == "must be a whole number (not a fraction, NaN or infinity)"
    assert reasons["end_time"] == "must be between 0 and 9223372036854775807 (a 64-bit integer)"
    assert reasons["model_outputs[1]"] == "is the same as model_outputs[0]: list a model once"
    # fixed text that happens to equal another input's value is left alone
    assert "'_', '-', '.'" in reasons["metrics[0].key"]
    joined = repr(reasons)
    assert "s3cr3t" not in joined and "1.5" not in joined and "-7" not in joined


