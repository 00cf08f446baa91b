"""The ``pulumi-mlflow-runs`` command-line tool: end to end through its entry point against the real MLflow
server (behind a recording proxy, so "nothing was written" is checked on the wire), and the Databricks bulk
endpoints through a stateful fake behind ``httpx.MockTransport``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from pulumi_mlflow_runs.cli import EXIT_API_ERROR, EXIT_CONFIG, EXIT_NO_ENDPOINT, EXIT_OK, EXIT_USAGE, main

from support.fake_workspace import FAKE_TOKEN, FAKE_WORKSPACE, FakeWorkspace
from support.host import isolated_env
from support.mlflow_proxy import RecordingProxy

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return isolated_env(HOME=str(tmp_path), **extra)  # HOME: no ~/.databrickscfg


def _cli(*args: str, env: dict[str, str], module: str = "pulumi_mlflow_runs.cli") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _strict_json(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"not valid JSON: bare {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def seeded(mlflow_client: MlflowClient, experiment_id: str) -> dict[str, str]:
    """Runs r0..r4 with start_time 1000..1004, rmse 0.0..2.0, model y/x; r4 has a NaN metric."""
    ids = {}
    for i in range(5):
        run = mlflow_client.create_run(experiment_id, run_name=f"r{i}", start_time=1000 + i, tags={"team": "a"})
        mlflow_client.log_metric(run.info.run_id, "rmse", i * 0.5, timestamp=5000)
        mlflow_client.log_param(run.info.run_id, "model", "x" if i % 2 else "y")
        ids[f"r{i}"] = run.info.run_id
    mlflow_client.log_metric(ids["r4"], "odd", float("nan"), timestamp=5000)
    return ids


# ---- help and usage ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["runs"],
        ["runs", "get"],
        ["runs", "search"],
        ["runs", "delete-bulk"],
        ["runs", "restore-bulk"],
        ["runs", "restore"],
    ],
)
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--help"]) == EXIT_OK
    assert capsys.readouterr().out.startswith(f"usage: pulumi-mlflow-runs {' '.join(argv)}".rstrip())


@pytest.mark.parametrize("argv", [[], ["runs"]])
def test_a_missing_command_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_USAGE
    assert "usage:" in capsys.readouterr().err


def test_entry_points_help_and_version(tmp_path: Path) -> None:
    for module in ("pulumi_mlflow_runs", "pulumi_mlflow_runs.cli"):
        shown = _cli("--help", env=_env(tmp_path), module=module)
        assert shown.returncode == 0 and "Exit codes: 0 ok" in shown.stdout, shown.stderr
    version = _cli("--version", env=_env(tmp_path))
    assert version.returncode == 0 and version.stdout.startswith("pulumi-mlflow-runs ")
    # the console script that `pip install` puts next to the interpreter
    script = Path(sys.executable).with_name("pulumi-mlflow-runs")
    shown = subprocess.run(
        [str(script), "runs", "--help"], capture_output=True, text=True, env=_env(tmp_path), check=False, timeout=60
    )
    assert shown.returncode == 0 and "delete-bulk" in shown.stdout, shown.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "delete-bulk", "--experiment-id", "1", "--max-timestamp-millis", "5", "--max-runs", "0"],
         "--max-runs: must be between 1 and 10,000, got 0"),
        (["runs", "delete-bulk", "--experiment-id", "1", "--max-timestamp-millis", "5", "--max-runs", "10001"],
         "--max-runs: must be between 1 and 10,000, got 10,001"),
        (["runs", "restore-bulk", "--experiment-id", "1", "--min-timestamp-millis", "5", "--max-runs", "-1"],
         "--max-runs: must be between 1 and 10,000"),
        (["runs", "delete-bulk", "--experiment-id", "1", "--max-timestamp-millis", "soon"],
         "--max-timestamp-millis: must be a whole number"),
        (["runs", "delete-bulk", "--experiment-id", "1"], "--max-timestamp-millis"),
        (["runs", "search", "--experiment-id", "1", "--max-results", "50001"], "between 1 and 50,000"),
        (["runs", "search", "--experiment-id", "1", "--run-view-type", "EVERYTHING"], "invalid choice"),
        (["runs", "search", "--experiment-id", "1", "--page-size", "1001"], "between 1 and 1,000"),
        (["runs", "search"], "--experiment-id"),
        (["runs", "get", "x", "--output", "yaml"], "invalid choice"),
        (["runs", "get", "x", "--host", "h", "--deployment-name", "d"], "not allowed with"),
        (["runs", "get", "x", "--retry-deadline", "0"], "--retry-deadline: must be more than 0"),
    ],
)  # fmt: skip
def test_bad_usage_exits_2_before_any_request(
    argv: list[str], message: str, proxy: RecordingProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    if "--host" not in argv:
        argv = [*argv, "--host", proxy.url]
    assert main(argv) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert proxy.requests == []


# ---- against the real server, through the entry point -------------------------------------------------------


def test_search_json_with_filter_and_order(
    seeded: dict[str, str], experiment_id: str, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    env = _env(tmp_path, MLFLOW_TRACKING_URI=mlflow_server.url)
    done = _cli(
        "runs", "search", "--experiment-id", experiment_id, "--filter", "params.model = 'y' and metrics.rmse > 0",
        "--order-by", "metrics.rmse DESC", "--output", "json", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs = _strict_json(done.stdout)["runs"]
    assert [r["info"]["run_name"] for r in runs] == ["r4", "r2"]
    assert {"key": "odd", "value": "NaN"} in [{k: p[k] for k in ("key", "value")} for p in runs[0]["data"]["metrics"]]
    assert done.stderr == ""


def test_search_table_pages_through_a_proxy(
    seeded: dict[str, str], experiment_id: str, proxy: RecordingProxy, tmp_path: Path
) -> None:
    done = _cli(
        "runs", "search", "--experiment-id", experiment_id, "--page-size", "2", "--host", proxy.url,
        "--filter", "tags.team = 'a'", env=_env(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["RUN_ID", "NAME", "STATUS", "STAGE", "START", "METRICS"]
    assert [line.split()[1] for line in lines[1:-1]] == ["r4", "r3", "r2", "r1", "r0"]
    assert "odd=NaN" in lines[1] and "1970-01-01T00:00:01.004Z" in lines[1]
    assert lines[-1] == "5 run(s)"
    assert [r.endpoint for r in proxy.requests] == ["runs/search"] * 3


def test_get_table_and_json(seeded: dict[str, str], mlflow_server: MlflowServer, tmp_path: Path) -> None:
    env = _env(tmp_path, MLFLOW_TRACKING_URI=mlflow_server.url)
    table = _cli("runs", "get", seeded["r3"], env=env)
    assert table.returncode == 0, table.stderr
    assert f"run_id           {seeded['r3']}" in table.stdout
    assert "  model = x" in table.stdout and "  rmse = 1.5" in table.stdout and "  team = a" in table.stdout
    as_json = _cli("runs", "get", seeded["r3"], "-o", "json", env=env)
    view = _strict_json(as_json.stdout)
    assert view["info"]["run_id"] == seeded["r3"] and view["data"]["params"] == [{"key": "model", "value": "x"}]


@pytest.mark.slow
def test_exit_codes_for_failures(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    missing = _cli("runs", "get", "0" * 32, env=_env(tmp_path, MLFLOW_TRACKING_URI=mlflow_server.url))
    assert missing.returncode == EXIT_API_ERROR and missing.stdout == ""
    assert missing.stderr.startswith("pulumi-mlflow-runs: error: ") and "RESOURCE_DOES_NOT_EXIST" in missing.stderr
    assert missing.stderr.count("\n") == 1

    unconfigured = _cli("runs", "get", "x", env=_env(tmp_path))
    assert unconfigured.returncode == EXIT_CONFIG
    assert "no MLflow tracking server is configured" in unconfigured.stderr and "--host" in unconfigured.stderr

    refused = _cli("runs", "get", "x", "--host", "http://127.0.0.1:9", "--retry-deadline", "0.5", env=_env(tmp_path))
    assert refused.returncode == EXIT_API_ERROR and "cannot connect" in refused.stderr

    bad_deadline = _cli("runs", "get", "x", env=_env(tmp_path, PULUMI_MLFLOW_RUNS_RETRY_DEADLINE="soon"))
    assert bad_deadline.returncode == EXIT_CONFIG and "PULUMI_MLFLOW_RUNS_RETRY_DEADLINE" in bad_deadline.stderr

    plain_http = _cli("runs", "get", "x", "--host", "http://tracking.example.com", env=_env(tmp_path))
    assert plain_http.returncode == EXIT_CONFIG and "--host uses plain http" in plain_http.stderr


def test_delete_bulk_on_an_open_source_server_says_so(
    seeded: dict[str, str], experiment_id: str, proxy: RecordingProxy, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    done = _cli("runs", "delete-bulk", "--experiment-id", experiment_id, "--max-timestamp-millis", "1002",
                "--host", proxy.url, env=_env(tmp_path))  # fmt: skip
    assert done.returncode == EXIT_NO_ENDPOINT
    assert "does not offer the Databricks bulk endpoint POST /api/2.0/mlflow/databricks/runs/delete-runs" in done.stderr
    assert "--fallback-search" in done.stderr and "--dry-run" in done.stderr
    assert [r.endpoint for r in proxy.requests] == ["databricks/runs/delete-runs"]
    assert all(mlflow_client.get_run(rid).info.lifecycle_stage == "active" for rid in seeded.values())


def test_delete_bulk_dry_run_lists_and_writes_nothing(
    seeded: dict[str, str], experiment_id: str, proxy: RecordingProxy, tmp_path: Path
) -> None:
    done = _cli("runs", "delete-bulk", "--experiment-id", experiment_id, "--max-timestamp-millis", "1002",
                "--dry-run", "--fallback-search", "-o", "json", "--host", proxy.url, env=_env(tmp_path))  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    report = _strict_json(done.stdout)
    assert report["dry_run"] is True and report["method"] == "search" and report["runs_deleted"] == 0
    assert report["run_ids"] == [seeded["r0"], seeded["r1"], seeded["r2"]], "oldest first, start_time <= MS"
    assert [r.endpoint for r in proxy.requests] == ["runs/search"]
    assert proxy.writes_since(0) == []

    table = _cli("runs", "delete-bulk", "--experiment-id", experiment_id, "--max-timestamp-millis", "1002",
                 "--dry-run", "--max-runs", "2", "--host", proxy.url, env=_env(tmp_path))  # fmt: skip
    assert table.returncode == EXIT_OK
    assert (
        table.stdout.splitlines()[-1] == f"would delete 2 run(s) of experiment {experiment_id} (found by runs/search)"
    )
    assert proxy.writes_since(0) == []


@pytest.mark.slow
def test_delete_bulk_fallback_then_restore(
    seeded: dict[str, str], experiment_id: str, proxy: RecordingProxy, mlflow_client: MlflowClient, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    done = _cli("runs", "delete-bulk", "--experiment-id", experiment_id, "--max-timestamp-millis", "1003",
                "--max-runs", "3", "--fallback-search", "-o", "json", "--host", proxy.url, env=env)  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    report = _strict_json(done.stdout)
    gone = [seeded["r0"], seeded["r1"], seeded["r2"]]
    assert (report["method"], report["runs_deleted"], report["run_ids"]) == ("search", 3, gone)
    writes = proxy.writes_since(0)
    assert [w.endpoint for w in writes] == ["databricks/runs/delete-runs"] + ["runs/delete"] * 3
    assert [w.run_id for w in writes[1:]] == gone
    stages = {name: mlflow_client.get_run(rid).info.lifecycle_stage for name, rid in seeded.items()}
    assert stages == {"r0": "deleted", "r1": "deleted", "r2": "deleted", "r3": "active", "r4": "active"}

    deleted = _cli("runs", "search", "--experiment-id", experiment_id, "--run-view-type", "DELETED_ONLY",
                   "-o", "json", "--host", proxy.url, env=env)  # fmt: skip
    assert {r["info"]["run_id"] for r in _strict_json(deleted.stdout)["runs"]} == set(gone)

    restored = _cli("runs", "restore", seeded["r1"], "--host", proxy.url, env=env)
    assert restored.returncode == EXIT_OK and restored.stdout == f"restored run {seeded['r1']}\n"
    assert mlflow_client.get_run(seeded["r1"]).info.lifecycle_stage == "active"


def test_restore_bulk_on_an_open_source_server_refuses_with_advice(
    experiment_id: str, proxy: RecordingProxy, tmp_path: Path
) -> None:
    done = _cli("runs", "restore-bulk", "--experiment-id", experiment_id, "--min-timestamp-millis", "0",
                "--host", proxy.url, env=_env(tmp_path))  # fmt: skip
    assert done.returncode == EXIT_NO_ENDPOINT
    assert "databricks/runs/restore-runs" in done.stderr and "--run-view-type DELETED_ONLY" in done.stderr
    assert done.stderr.count("\n") == 1
    assert [r.endpoint for r in proxy.requests] == ["databricks/runs/restore-runs"]


# ---- the Databricks bulk endpoints, through httpx.MockTransport -------------------------------------------

TOKEN = FAKE_TOKEN
WORKSPACE = FAKE_WORKSPACE


@pytest.fixture
def workspace() -> FakeWorkspace:
    return FakeWorkspace()


def _run(workspace: FakeWorkspace, *argv: str, token: str = TOKEN) -> int:
    return main(["runs", *argv, "--host", WORKSPACE, "-o", "json"],
                http_transport=httpx.MockTransport(workspace), env={"DATABRICKS_TOKEN": token})  # fmt: skip


def test_delete_bulk_uses_the_databricks_endpoint(workspace: FakeWorkspace, capsys: pytest.CaptureFixture[str]) -> None:
    old = [workspace.add("7", t) for t in (10, 20, 30)]
    new = workspace.add("7", 40)
    other = workspace.add("8", 10)
    assert (
        _run(workspace, "delete-bulk", "--experiment-id", "7", "--max-timestamp-millis", "30", "--max-runs", "2") == 0
    )
    assert _strict_json(capsys.readouterr().out) == {
        "experiment_id": "7", "max_timestamp_millis": 30, "max_runs": 2, "dry_run": False,
        "method": "bulk", "runs_deleted": 2, "run_ids": None,
    }  # fmt: skip
    assert workspace.bodies("delete-runs") == [{"experiment_id": "7", "max_timestamp_millis": 30, "max_runs": 2}]
    assert len(workspace.requests) == 1, "one request; no search, no per-run delete"
    assert [workspace.stage(r) for r in old] == ["deleted", "deleted", "active"]
    assert workspace.stage(new) == workspace.stage(other) == "active"


def test_delete_bulk_without_max_runs_omits_it(workspace: FakeWorkspace, capsys: pytest.CaptureFixture[str]) -> None:
    workspace.add("7", 10)
    assert _run(workspace, "delete-bulk", "--experiment-id", "7", "--max-timestamp-millis", "10") == 0
    assert workspace.bodies("delete-runs") == [{"experiment_id": "7", "max_timestamp_millis": 10}]
    assert _strict_json(capsys.readouterr().out)["runs_deleted"] == 1


def test_delete_bulk_dry_run_on_a_workspace_only_searches(
    workspace: FakeWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [workspace.add("7", t) for t in (30, 10, 20, 40)]
    assert _run(workspace, "delete-bulk", "--experiment-id", "7", "--max-timestamp-millis", "30", "--dry-run") == 0
    report = _strict_json(capsys.readouterr().out)
    assert report["run_ids"] == [ids[1], ids[2], ids[0]] and report["dry_run"] is True
    assert [r.url.path for r in workspace.requests] == ["/api/2.0/mlflow/runs/search"]
    assert workspace.bodies("runs/search")[0]["max_results"] == 1000, "10,000 wanted, in pages of 1,000"
    assert all(workspace.stage(r) == "active" for r in ids)


def test_restore_bulk_uses_the_databricks_endpoint(
    workspace: FakeWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    early = workspace.add("7", 1, deleted_at=500)
    late = [workspace.add("7", 2, deleted_at=t) for t in (900, 950)]
    assert (
        _run(workspace, "restore-bulk", "--experiment-id", "7", "--min-timestamp-millis", "900", "--max-runs", "5") == 0
    )
    assert _strict_json(capsys.readouterr().out) == {"experiment_id": "7", "runs_restored": 2}
    assert workspace.bodies("restore-runs") == [{"experiment_id": "7", "min_timestamp_millis": 900, "max_runs": 5}]
    assert workspace.stage(early) == "deleted" and [workspace.stage(r) for r in late] == ["active", "active"]


def test_deployment_name_and_token_from_env(workspace: FakeWorkspace, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "runs",
        "restore-bulk",
        "--experiment-id",
        "7",
        "--min-timestamp-millis",
        "0",
        "--deployment-name",
        "dbc-1234",
    ]
    assert main(argv, http_transport=httpx.MockTransport(workspace), env={"DATABRICKS_TOKEN": TOKEN}) == 0
    assert [str(r.url) for r in workspace.requests] == [f"{WORKSPACE}/api/2.0/mlflow/databricks/runs/restore-runs"]
    assert "restored 0 run(s) of experiment 7" in capsys.readouterr().out


def test_a_wrong_token_exits_1_without_showing_any_token(
    workspace: FakeWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "dapi" + "f" * 32
    assert _run(workspace, "delete-bulk", "--experiment-id", "7", "--max-timestamp-millis", "1", token=wrong) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "HTTP 401 UNAUTHENTICATED" in err
    assert wrong not in err and TOKEN not in err


def test_max_runs_is_checked_before_any_request(workspace: FakeWorkspace) -> None:
    for bad in ("0", "10001"):
        assert (
            _run(workspace, "delete-bulk", "--experiment-id", "7", "--max-timestamp-millis", "1", "--max-runs", bad)
            == 2
        )
        assert (
            _run(workspace, "restore-bulk", "--experiment-id", "7", "--min-timestamp-millis", "1", "--max-runs", bad)
            == 2
        )
    assert workspace.requests == []
    assert (
        _run(workspace, "delete-bulk", "--experiment-id", "7", "--max-timestamp-millis", "1", "--max-runs", "10000")
        == 0
    )
