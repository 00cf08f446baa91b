"""``pulumi-mlflow-runs``: the seed's housekeeping methods for operators and scripts.

Commands: ``runs get``, ``runs search``, ``runs delete-bulk``, ``runs restore-bulk``, ``runs restore``.
The server is chosen by the provider's rules (``--host`` / ``--deployment-name``, then env
``MLFLOW_TRACKING_URI``, then ``DATABRICKS_HOST`` / ``DATABRICKS_TOKEN`` or a profile); there is no stack
outside a program, so stack config does not apply here. Retries follow the provider's policy: a
deadline of 120 s, or ``--retry-deadline`` / env ``PULUMI_MLFLOW_RUNS_RETRY_DEADLINE``.

Exit codes, for scripts: 0 done; 1 the server or the network failed; 2 bad usage or input (nothing sent);
3 no usable connection settings (nothing sent); 4 the server does not offer the endpoint (the bulk ones
exist on Databricks only). ``--output json`` prints one JSON document on stdout; errors are one line on
stderr and never contain a credential.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import httpx
import pydantic

from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.auth import StackConfig, resolve_connection, stack_config_ways
from pulumi_mlflow_runs.core.client import ENDPOINTS, MlflowApi
from pulumi_mlflow_runs.core.errors import ConfigurationError, EndpointNotFound, InputError, MlflowRunsError
from pulumi_mlflow_runs.core.retries import RETRY_DEADLINE_ENV, RetryPolicy, retry_policy
from pulumi_mlflow_runs.core.search import (
    MAX_PAGE_SIZE,
    MAX_SEARCH_RESULTS,
    VIEW_TYPES,
    RunResult,
    checked_run_id,
    count,
    iter_search_runs,
    search_request,
)
from pulumi_mlflow_runs.core.transport import TransportPool

PROG = "pulumi-mlflow-runs"

EXIT_OK = 0
EXIT_API_ERROR = 1
"""The server answered with an error, or the network failed."""
EXIT_USAGE = 2
"""Bad arguments (argparse's own code): nothing was sent."""
EXIT_CONFIG = 3
"""No usable connection settings: nothing was sent."""
EXIT_NO_ENDPOINT = 4
"""The server does not offer the endpoint (bulk delete/restore on an open-source server)."""

MAX_BULK_RUNS = 10_000
"""The seed's upper bound for ``max_runs`` of delete-bulk / restore-bulk."""


class _Failure(Exception):
    """A failure with its exit code, reported as one line on stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# ---- argument types: checked before any request ------------------------------------------------------


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:,} and {high:,}, got {value:,}")
        return value

    return number


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3,600 seconds, got {text}")
    return value


_max_runs = _bounded(1, MAX_BULK_RUNS)
_timestamp = _bounded(0, 2**63 - 1)


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


# ---- the parser ------------------------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    one = common.add_mutually_exclusive_group()
    one.add_argument("--host", type=_non_empty, help="base URL of the tracking server or workspace (default: from env)")
    one.add_argument(
        "--deployment-name", type=_non_empty, help="Databricks workspace https://<name>.cloud.databricks.com"
    )
    common.add_argument(
        "--retry-deadline",
        type=_seconds,
        metavar="SECONDS",
        help=f"give up retrying after this long (default: env {RETRY_DEADLINE_ENV}, else 120)",
    )
    common.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="output format (default: table)"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; every level has ``--help``."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Query and tidy MLflow runs on Databricks or an open-source MLflow tracking server.",
        epilog="Exit codes: 0 ok, 1 server/network error, 2 bad usage, 3 no connection settings, "
        "4 endpoint not offered by this server.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND")
    runs = groups.add_parser("runs", help="MLflow runs", description="MLflow runs.")
    cmds = runs.add_subparsers(dest="command", metavar="SUBCOMMAND")

    get = cmds.add_parser("get", parents=[common], help="show one run", description="Show one run (runs/get).")
    get.add_argument("run_id", metavar="RUN_ID", type=_non_empty)

    search = cmds.add_parser(
        "search",
        parents=[common],
        help="search runs",
        description="Search runs (runs/search), following page tokens. Filter examples: "
        "\"metrics.rmse < 1 and params.model = 'x'\", \"tags.team = 'a'\", \"attributes.run_name = 'r'\".",
    )
    search.add_argument(
        "--experiment-id",
        dest="experiment_ids",
        action="append",
        required=True,
        type=_non_empty,
        metavar="ID",
        help="experiment to search (repeatable)",
    )
    search.add_argument("--filter", help="MLflow search filter expression")
    search.add_argument(
        "--order-by",
        action="append",
        metavar="COLUMN",
        help="e.g. 'metrics.rmse ASC' (repeatable; default: start_time DESC, then run_id)",
    )
    search.add_argument(
        "--max-results",
        type=_bounded(1, MAX_SEARCH_RESULTS),
        metavar="N",
        help=f"at most N runs (1-{MAX_SEARCH_RESULTS:,}; default: all matching runs)",
    )
    search.add_argument("--run-view-type", choices=VIEW_TYPES, default="ACTIVE_ONLY", help="default: %(default)s")
    search.add_argument(
        "--page-size",
        type=_bounded(1, MAX_PAGE_SIZE),
        metavar="N",
        help=f"runs per request (1-{MAX_PAGE_SIZE:,}; default: {MAX_PAGE_SIZE:,})",
    )

    delete_bulk = cmds.add_parser(
        "delete-bulk",
        parents=[common],
        help="delete the runs created up to a time (Databricks)",
        description="Delete the runs of an experiment created at or before --max-timestamp-millis, through "
        "Databricks' bulk endpoint (databricks/runs/delete-runs). Open-source servers do not have it: there, "
        "--fallback-search deletes the active runs whose start_time <= the timestamp one by one (runs/search "
        "+ runs/delete; start_time is the closest attribute the REST API has to a creation time). "
        "--dry-run lists those runs and sends no write request.",
    )
    delete_bulk.add_argument("--experiment-id", required=True, type=_non_empty, metavar="ID")
    delete_bulk.add_argument("--max-timestamp-millis", required=True, type=_timestamp, metavar="MS")
    delete_bulk.add_argument(
        "--max-runs", type=_max_runs, metavar="N", help=f"delete at most N runs (1-{MAX_BULK_RUNS:,})"
    )
    delete_bulk.add_argument(
        "--dry-run", action="store_true", help="only list the runs (start_time <= MS) that would be deleted"
    )
    delete_bulk.add_argument(
        "--fallback-search",
        action="store_true",
        help="if the server has no bulk endpoint, search and delete run by run instead",
    )

    restore_bulk = cmds.add_parser(
        "restore-bulk",
        parents=[common],
        help="restore the runs deleted since a time (Databricks)",
        description="Restore the runs of an experiment deleted at or after --min-timestamp-millis, through "
        "Databricks' bulk endpoint (databricks/runs/restore-runs). Open-source servers do not have it, and "
        "their REST API does not say when a run was deleted, so there is no faithful fallback: list deleted "
        "runs with 'runs search --run-view-type DELETED_ONLY' and restore them with 'runs restore'.",
    )
    restore_bulk.add_argument("--experiment-id", required=True, type=_non_empty, metavar="ID")
    restore_bulk.add_argument("--min-timestamp-millis", required=True, type=_timestamp, metavar="MS")
    restore_bulk.add_argument(
        "--max-runs", type=_max_runs, metavar="N", help=f"restore at most N runs (1-{MAX_BULK_RUNS:,})"
    )

    restore = cmds.add_parser(
        "restore", parents=[common], help="restore a deleted run", description="Restore a deleted run (runs/restore)."
    )
    restore.add_argument("run_id", metavar="RUN_ID", type=_non_empty)

    for sub in (parser, runs):
        sub.set_defaults(usage_of=sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pulumi-mlflow-runs")
    except PackageNotFoundError:
        return "unknown"


# ---- rendering -------------------------------------------------------------------------------------------


def _json(data: Any, out: TextIO) -> None:
    # allow_nan=False: the document must be valid JSON; non-finite metrics are already MLflow's strings.
    out.write(json.dumps(data, indent=2, allow_nan=False, sort_keys=False) + "\n")


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _num(value: float) -> str:
    text = json.dumps(m.encode_float(value))
    return text.strip('"')


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _print_run(run: RunResult, out: TextIO) -> None:
    info = run.info
    rows = [
        ("run_id", run.run_id),
        ("experiment_id", info.experiment_id),
        ("run_name", info.run_name or ""),
        ("status", info.status or ""),
        ("lifecycle_stage", info.lifecycle_stage or ""),
        ("start_time", f"{_when(info.start_time)} ({info.start_time})" if info.start_time is not None else ""),
        ("end_time", f"{_when(info.end_time)} ({info.end_time})" if info.end_time is not None else ""),
        ("user_id", info.user_id or ""),
        ("artifact_uri", info.artifact_uri or ""),
    ]
    _table(rows, out)
    for title, values in (("params", run.params), ("tags", run.tags)):
        out.write(f"{title}:\n")
        for key, value in sorted(values.items()):
            out.write(f"  {key} = {value}\n")
    out.write("metrics (latest):\n")
    for key, number in sorted(run.metrics.items()):
        out.write(f"  {key} = {_num(number)}\n")
    out.write(
        f"inputs: {len(run.inputs.dataset_inputs)} dataset(s), {len(run.inputs.model_inputs)} model(s); "
        f"outputs: {len(run.outputs.model_outputs)} model(s)\n"
    )


def _print_runs(runs: Sequence[RunResult], out: TextIO) -> None:
    rows: list[Sequence[str]] = [("RUN_ID", "NAME", "STATUS", "STAGE", "START", "METRICS")]
    for run in runs:
        metrics = ", ".join(f"{k}={_num(v)}" for k, v in sorted(run.metrics.items()))
        rows.append(
            (
                run.run_id,
                run.info.run_name or "",
                run.info.status or "",
                run.info.lifecycle_stage or "",
                _when(run.info.start_time),
                metrics if len(metrics) <= 60 else metrics[:57] + "...",
            )
        )
    _table(rows, out)
    out.write(f"{len(runs)} run(s)\n")


# ---- commands --------------------------------------------------------------------------------------------


def _cmd_get(api: MlflowApi, args: argparse.Namespace, out: TextIO) -> None:
    run = RunResult.from_run(api.get_run(checked_run_id(args.run_id)))
    if args.output == "json":
        _json(run.to_dict(), out)
    else:
        _print_run(run, out)


def _cmd_search(api: MlflowApi, args: argparse.Namespace, out: TextIO) -> None:
    req = search_request(args.experiment_ids, args.filter, args.order_by, args.max_results, args.run_view_type)
    count("page_size", args.page_size, MAX_PAGE_SIZE)
    runs = [RunResult.from_run(run) for run in iter_search_runs(api, req, page_size=args.page_size)]
    if args.output == "json":
        _json({"runs": [run.to_dict() for run in runs]}, out)
    else:
        _print_runs(runs, out)


def _deletable(api: MlflowApi, args: argparse.Namespace) -> list[m.Run]:
    """The search equivalent of delete-runs: active runs with start_time <= the timestamp, oldest first."""
    req = m.SearchRuns(
        experiment_ids=[args.experiment_id],
        filter=f"attributes.start_time <= {args.max_timestamp_millis}",
        run_view_type="ACTIVE_ONLY",
        order_by=["attributes.start_time ASC"],
        max_results=args.max_runs or MAX_BULK_RUNS,
    )
    return list(iter_search_runs(api, req))


def _no_endpoint(api: MlflowApi, name: str, advice: str) -> _Failure:
    ep = ENDPOINTS[name]
    return _Failure(
        EXIT_NO_ENDPOINT,
        f"{api.transport.connection.base_url} does not offer the Databricks bulk endpoint {ep.method} {ep.path} "
        f"(open-source MLflow servers do not have it); {advice}",
    )


def _cmd_delete_bulk(api: MlflowApi, args: argparse.Namespace, out: TextIO) -> None:
    report: dict[str, Any] = {
        "experiment_id": args.experiment_id,
        "max_timestamp_millis": args.max_timestamp_millis,
        "max_runs": args.max_runs,
        "dry_run": args.dry_run,
    }
    if args.dry_run:  # read-only on every server: the bulk endpoint has no dry run of its own
        runs = _deletable(api, args)
        report.update(method="search", runs_deleted=0, run_ids=[r.info.run_id for r in runs])
        _emit_bulk(report, runs, out, args.output, "would delete")
        return
    try:
        deleted = api.delete_runs_bulk(
            m.DeleteRuns(
                experiment_id=args.experiment_id,
                max_timestamp_millis=args.max_timestamp_millis,
                max_runs=args.max_runs,
            )
        )
    except EndpointNotFound:
        if not args.fallback_search:
            raise _no_endpoint(
                api,
                "runs.delete_bulk",
                "rerun with --fallback-search to delete the active runs whose start_time <= "
                f"{args.max_timestamp_millis} one by one (add --dry-run first to list them)",
            ) from None
    else:
        report.update(method="bulk", runs_deleted=deleted, run_ids=None)
        _emit_bulk(report, [], out, args.output, "deleted")
        return
    runs = _deletable(api, args)
    done: list[str] = []
    for run in runs:
        try:
            api.delete_run(run.info.run_id)
        except MlflowRunsError as exc:
            exc.add_note(f"{len(done)} of {len(runs)} run(s) were deleted before this failure")
            raise
        done.append(run.info.run_id)
    report.update(method="search", runs_deleted=len(done), run_ids=done)
    _emit_bulk(report, runs, out, args.output, "deleted")


def _emit_bulk(report: dict[str, Any], runs: Sequence[m.Run], out: TextIO, output: str, verb: str) -> None:
    if output == "json":
        _json(report, out)
        return
    if runs:
        _print_runs([RunResult.from_run(r) for r in runs], out)
    how = "through the bulk endpoint" if report["method"] == "bulk" else "found by runs/search"
    count = len(report["run_ids"]) if report["dry_run"] else report["runs_deleted"]
    out.write(f"{verb} {count} run(s) of experiment {report['experiment_id']} ({how})\n")


def _cmd_restore_bulk(api: MlflowApi, args: argparse.Namespace, out: TextIO) -> None:
    req = m.RestoreRuns(
        experiment_id=args.experiment_id, min_timestamp_millis=args.min_timestamp_millis, max_runs=args.max_runs
    )
    try:
        restored = api.restore_runs_bulk(req)
    except EndpointNotFound:
        raise _no_endpoint(
            api,
            "runs.restore_bulk",
            "its REST API does not say when a run was deleted, so there is no equivalent by search: list "
            f"deleted runs with `{PROG} runs search --experiment-id {args.experiment_id} --run-view-type "
            f"DELETED_ONLY` and restore each with `{PROG} runs restore RUN_ID`",
        ) from None
    if args.output == "json":
        _json({"experiment_id": args.experiment_id, "runs_restored": restored}, out)
    else:
        out.write(f"restored {restored} run(s) of experiment {args.experiment_id}\n")


def _cmd_restore(api: MlflowApi, args: argparse.Namespace, out: TextIO) -> None:
    api.restore_run(args.run_id)
    if args.output == "json":
        _json({"run_id": args.run_id, "restored": True}, out)
    else:
        out.write(f"restored run {args.run_id}\n")


_COMMANDS: dict[str, Callable[[MlflowApi, argparse.Namespace, TextIO], None]] = {
    "get": _cmd_get,
    "search": _cmd_search,
    "delete-bulk": _cmd_delete_bulk,
    "restore-bulk": _cmd_restore_bulk,
    "restore": _cmd_restore,
}


# ---- entry point -----------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = " ".join([str(exc), *getattr(exc, "__notes__", [])])
    return " ".join(text.split())


def main(
    argv: Sequence[str] | None = None,
    *,
    http_transport: httpx.BaseTransport | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run one command and return its exit code.

    :param http_transport: an httpx transport to send requests through (tests: ``httpx.MockTransport``).
    :param env: the environment for connection resolution (default ``os.environ``).
    """
    try:
        args = build_parser().parse_args(argv)  # bad usage: 2, before any request
    except SystemExit as exc:  # --help, --version and usage errors: a code, not an exception
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if getattr(args, "command", None) is None:
        usage: argparse.ArgumentParser = args.usage_of
        usage.print_help(sys.stderr)
        return EXIT_USAGE
    pool: TransportPool | None = None
    try:
        policy = retry_policy(None, dict(env) if env is not None else None)
        if args.retry_deadline is not None:
            policy = RetryPolicy(deadline=args.retry_deadline)
        pool = TransportPool(policy=policy, http_transport=http_transport)
        connection = resolve_connection(
            host=args.host, deployment_name=args.deployment_name, stack=StackConfig(), env=env
        )
        _COMMANDS[args.command](MlflowApi(pool.get(connection)), args, sys.stdout)
    except _Failure as exc:
        return _fail(exc.code, exc)
    except ConfigurationError as exc:
        return _fail(EXIT_CONFIG, _as_cli_settings(_one_line(exc)))
    except InputError as exc:
        return _fail(EXIT_USAGE, exc)
    except EndpointNotFound as exc:
        return _fail(EXIT_NO_ENDPOINT, exc)
    except MlflowRunsError as exc:
        return _fail(EXIT_API_ERROR, exc)
    except pydantic.ValidationError as exc:
        return _fail(EXIT_API_ERROR, f"the server's answer is not what MLflow sends ({exc.error_count()} problem(s))")
    finally:
        if pool is not None:
            pool.close()
    return EXIT_OK


def _as_cli_settings(message: str) -> str:
    """The resolver names the resource's inputs; on the command line they are options."""
    return (
        message.replace("the resource input 'host' or 'deployment_name'", "--host or --deployment-name")
        .replace("resource input 'host'", "--host")
        .replace("resource input 'deployment_name'", "--deployment-name")
        .replace(f"; {stack_config_ways(StackConfig().keys)}", "")  # the CLI runs outside any stack
    )


def _fail(code: int, problem: BaseException | str) -> int:
    text = problem if isinstance(problem, str) else _one_line(problem)
    sys.stderr.write(f"{PROG}: error: {text}\n")
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
