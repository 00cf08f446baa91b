"""One provider host serves every resource of an update: throttling and Ctrl-C under the real Pulumi CLI.

The SDK's host runs four calls at once; a create waiting out a 429's Retry-After holds one of them.
These tests check what must hold whatever the timing: each run is created exactly once, and an update
stopped with Ctrl-C leaves no run on the server that the state does not know. How long a throttled
``up`` takes is measured by ``benchmarks/bench_cli.py``, not asserted here.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.fault_proxy import Throttling
from support.pulumi_cli import changes, cli, cli_processes, interrupted_up, many_runs, new_stack, state_resources

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer


@pytest.fixture
def throttling(mlflow_server: MlflowServer) -> Iterator[Throttling]:
    with Throttling(mlflow_server.url, retry_after=0.5) as proxy:
        yield proxy


def test_fifty_runs_under_throttling_at_parallel_32_are_created_exactly_once(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, throttling: Throttling, mlflow_client: MlflowClient
) -> None:
    from mlflow.entities import ViewType

    experiment_id = mlflow_client.create_experiment(f"throttled-{tmp_path.name}")
    stack = new_stack(pulumi_bin, tmp_path, many_runs(experiment_id, 50), {"MLFLOW_TRACKING_URI": throttling.url})
    try:
        up = stack.up(parallel=32)
        assert changes(up.summary.resource_changes) == {"create": 51}, up.stdout
        assert throttling.throttled >= 50, "the server throttled throughout"
        runs = mlflow_client.search_runs([experiment_id], run_view_type=ViewType.ALL)
        assert sorted(r.info.run_name for r in runs) == [f"run-{i:02d}" for i in range(50)], "each exactly once"
        assert all(r.info.lifecycle_stage == "active" for r in runs)
        created = [r for r in throttling.requests if r.endpoint == "runs/create" and r.status == 200]
        assert len(created) == 50
    finally:
        throttling.retry_after = 0.0
        stack.destroy()


def test_ctrl_c_stops_the_update_without_an_orphaned_run(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, throttling: Throttling, mlflow_client: MlflowClient
) -> None:
    from mlflow.entities import ViewType
    from pulumi.automation.errors import CommandError

    throttling.retry_after = 0.0
    throttling.delay = {"runs/log-batch": 1.0}  # each create takes a while: Ctrl-C lands among them
    experiment_id = mlflow_client.create_experiment(f"interrupted-{tmp_path.name}")
    stack = new_stack(pulumi_bin, tmp_path, many_runs(experiment_id, 30), {"MLFLOW_TRACKING_URI": throttling.url})
    try:
        def ctrl_c() -> None:
            (pid,) = cli_processes()
            os.kill(pid, signal.SIGINT)

        ended = interrupted_up(stack, lambda: throttling.requests, 3, ctrl_c)
        assert isinstance(ended, CommandError), "the update stopped early"
        throttling.delay = {}

        in_state = {r["id"] for r in state_resources(stack).values() if r["type"].endswith("ExperimentRun")}
        runs = mlflow_client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY)
        assert 0 < len(runs) < 30, "some runs were made before the interrupt, not all"
        assert {r.info.run_id for r in runs} == in_state, "every run on the server is one the state knows"
        cli(stack, "refresh", "--yes", "--non-interactive")  # nothing pending: Ctrl-C lets in-flight calls end
        up = stack.up()
        assert changes(up.summary.resource_changes).get("create") == 30 - len(runs), up.stdout
        runs = mlflow_client.search_runs([experiment_id], run_view_type=ViewType.ALL)
        assert sorted(r.info.run_name for r in runs) == [f"run-{i:02d}" for i in range(30)]
    finally:
        throttling.delay = {}
        stack.destroy()
