"""The provider against the minimal request sequence, side by side: ``python benchmarks/run.py [--rounds N] [--quick]``.

Starts its own MLflow servers (sqlite, loopback, work files on /dev/shm when there is one), its own
``python -m pulumi.dynamic`` hosts, native plugins (``pulumi-resource-mlflow-runs``, ``bench_native.py``) for
create, preview, append and metrics-file, and a counting proxy; interleaves the contenders round by round
(A B C A B C …) and reports medians of the per-round ratios. Prints a table with each goal and PASS/FAIL,
and the machine it ran on. Never used by the tests: nothing here is a timed assertion.

``--only run-table`` runs ``bench_run_table.py`` (a RunTable of 1,000 runs and 1,000 ExperimentRuns through the
CLI against a serial MlflowClient script; ``--quick``, ``--runs``, ``--rounds``, ``--workers``, ``--profile``).

``--only metrics-file`` runs the ``metricsFile`` benchmarks alone (``bench_metrics_file.py``: create, append,
state and preview of runs whose points are read from a CSV file, on both doors, against raw httpx).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bench_common as bc
import bench_metrics_file as bmf
import bench_native
import httpx
from bench_contenders import ClientSequence, HostCreate, RawSequence
from bench_proxy import CountingProxy, Seen, Tally
from bench_server import create_experiment, start_server
from bench_trivial import TrivialProvider
from google.protobuf import struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2

from pulumi_mlflow_runs import ExperimentRunProvider

from support.host import DynamicHost
from support.mlflow_server import MlflowServer

DIFF_NONE = provider_pb2.DiffResponse.DIFF_NONE
DIFF_SOME = provider_pb2.DiffResponse.DIFF_SOME
DIFF_UNKNOWN = provider_pb2.DiffResponse.DIFF_UNKNOWN
SECTIONS = ("create", "preview", "append", "cold", "scale", "metrics-file")


@dataclass
class Settings:
    rounds: int
    preview_runs: int
    append_points: int
    scale_runs: int
    scale_workers: int
    sections: tuple[str, ...]
    file_points: int = 20_000
    """The metrics-file section's run: points in its file (2 keys)."""
    file_preview_runs: int = 100


@dataclass
class Ctx:
    settings: Settings
    workdir: Path
    server: MlflowServer
    proxy: CountingProxy
    experiment_id: str
    blob: str
    host: bc.DynamicHost
    """Talks to the server directly: the timed runs."""
    counted_host: bc.DynamicHost
    """Talks through the counting proxy."""
    wide_server: MlflowServer
    """The same kind of server with ``--workers 4``: makes the preview's runs, and the scale benchmark."""
    wide_host: bc.DynamicHost
    """Talks to ``wide_server`` directly."""
    trivial_blob: str = ""
    rows: list[bc.Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    big_state: tuple[Any, Any, Any, str] | None = None
    """(checked inputs, outputs, program inputs, id) of one created 2,000-point run, for the preview."""
    native: bench_native.Natives | None = None
    """The native plugin contender (create, preview, append, metrics-file); None with ``--no-native``."""


_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


# ---- 1. create -----------------------------------------------------------------------------------------------


def _verify_run(url: str, run_id: str, decl: Mapping[str, Any]) -> None:
    """The three contenders must have made the same run."""
    run = httpx.get(f"{url}{bc.RUNS}/get", params={"run_id": run_id}, timeout=60).json()["run"]
    params = {p["key"]: p["value"] for p in run["data"].get("params", [])}
    tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
    keys = {m["key"] for m in run["data"].get("metrics", [])}
    assert run["info"]["status"] == decl["status"], run["info"]
    assert params == decl["params"], "params differ"
    assert all(tags.get(k) == v for k, v in decl["tags"].items()), "tags differ"
    assert keys == {p["key"] for p in decl["metrics"]}, "metric keys differ"


def _minimum_requests(decl: Mapping[str, Any]) -> int:
    items = [*decl["params"].items(), *decl["tags"].items(), *bc.stamped(decl["metrics"], bc.now_ms())]
    batches = bc.min_batches(len(decl["params"]), len(decl["tags"]), len(decl["metrics"]), len(bc.compact(items)))
    return 1 + batches + 1 + 1  # runs/create, log-batch xn, runs/update, runs/get


def bench_create(ctx: Ctx) -> None:
    s = ctx.settings
    decl = bc.declaration(ctx.experiment_id, bc.BIG, "bench-create")
    news = bc.with_provider(decl, ctx.blob)
    log(f"create: {bc.BIG.label()}; counting requests through the proxy")
    counted = {
        "provider": HostCreate(ctx.counted_host, bc.checked_inputs(ctx.counted_host, news)),
        "raw httpx": RawSequence(ctx.proxy.url),
        "MlflowClient": ClientSequence(ctx.proxy.url),
    }
    tallies = {}
    for name, contender in counted.items():
        mark = ctx.proxy.mark()
        run_id = contender.create(decl)
        tallies[name] = ctx.proxy.tally(mark)
        assert not tallies[name].failed, f"{name}: failed requests {tallies[name].failed}"
        _verify_run(ctx.server.url, run_id, decl)
    native_counted = None
    if ctx.native is not None:
        verify = functools.partial(_verify_run, ctx.server.url, decl=decl)
        native_counted = bench_native.counted_creates(ctx.native.counted, decl, ctx.proxy, verify)
    host_create = counted["provider"]
    assert isinstance(host_create, HostCreate)
    checked = bc.checked_inputs(ctx.counted_host, news)
    ctx.big_state = (checked, host_create.last_response.properties, news, host_create.last_response.id)

    direct = HostCreate(ctx.host, bc.checked_inputs(ctx.host, news))
    raw, client = RawSequence(ctx.server.url), ClientSequence(ctx.server.url)
    # The host's own cost for these properties: the trivial provider, handed the same checked inputs, echoes them.
    floor = HostCreate(
        ctx.host, bc.to_struct(bc.with_provider(bc.from_struct(direct.request.properties), ctx.trivial_blob))
    )
    timed: dict[str, Callable[[], Any]] = {
        "provider": direct.create,
        "raw httpx": lambda: raw.create(decl),
        "MlflowClient": lambda: client.create(decl),
        "host floor": floor.create,
    }
    # CPU on our side of the wire: the host process for the provider, this process for the others
    host_pid = ctx.host.process.pid
    cpu_of: dict[str, Callable[[], float]] = {name: time.process_time for name in timed}
    cpu_of["provider"] = cpu_of["host floor"] = lambda: bc.process_cpu_seconds(host_pid)
    if ctx.native is not None:  # the plugin process for the plugin
        native_direct = bench_native.NativeCreate(ctx.native.direct, decl, creates=s.rounds + 1)
        timed[bench_native.NAME] = native_direct.create
        cpu_of[bench_native.NAME] = ctx.native.direct.cpu_seconds
    times, cpu = bc.interleaved(
        timed,
        cpu_of,
        s.rounds,
        lambda r, seen: log(f"create round {r}: " + ", ".join(f"{n} {ms(t[-1])}" for n, t in seen.items())),
    )
    raw.close()
    vs_raw = bc.median([a / b for a, b in zip(times["provider"], times["raw httpx"], strict=True)])
    vs_client = bc.median([a / b for a, b in zip(times["provider"], times["MlflowClient"], strict=True)])
    med = {name: bc.median(t) for name, t in times.items()}
    floor_ratio = bc.median([(r + f) / r for r, f in zip(times["raw httpx"], times["host floor"], strict=True)])
    minimum = _minimum_requests(decl)
    ctx.details["create"] = {
        "times_s": times,
        "client_side_cpu_s": cpu,
        "requests": {n: dict(t.by_endpoint()) for n, t in tallies.items()},
        "minimum_requests": minimum,
    }
    ctx.rows += [
        bc.Row(
            "create: provider via host / minimal raw httpx",
            f"{vs_raw:.3f}x ({ms(med['provider'])} vs {ms(med['raw httpx'])})",
            "≤ 1.05x",
            bc.verdict(vs_raw <= 1.05),
        ),
        bc.Row(
            "create: provider via host / MlflowClient",
            f"{vs_client:.3f}x ({ms(med['provider'])} vs {ms(med['MlflowClient'])})",
            "≤ 0.90x",
            bc.verdict(vs_client <= 0.90),
        ),
        bc.Row(
            "create: CPU on the client side of the wire per create (info)",
            f"provider host {ms(bc.median(cpu['provider']))}, raw httpx {ms(bc.median(cpu['raw httpx']))}, "
            f"MlflowClient {ms(bc.median(cpu['MlflowClient']))}",
            "-",
            "info",
            "host = gRPC + (de)serializing properties + the provider; 10 ms clock ticks",
        ),
        bc.Row(
            "create: host floor, the trivial provider echoing the same properties (info)",
            f"{ms(med['host floor'])} wall, {ms(bc.median(cpu['host floor']))} host CPU: "
            f"raw + floor = {floor_ratio:.3f}x raw",
            "-",
            "info",
            "what any dynamic provider pays for these properties",
        ),
        bc.Row(
            "create: requests",
            f"{tallies['provider'].count} ({tallies['provider'].describe()}); raw {tallies['raw httpx'].count}, "
            f"MlflowClient {tallies['MlflowClient'].count}",
            f"= {minimum} (the minimum)",
            bc.verdict(tallies["provider"].count == minimum),
        ),
    ]
    if native_counted is not None:
        ctx.details["create"]["native"] = native_counted.details()
        ctx.rows += bench_native.create_rows(times, cpu, native_counted, minimum=minimum, points=bc.BIG.points)


# ---- 2. preview ----------------------------------------------------------------------------------------------


@dataclass
class Existing:
    id: str
    news: Any
    """Program inputs (Struct)."""
    checked: Any
    """Checked inputs at create = the old inputs in state (Struct)."""
    outputs: Any
    """Outputs in state (Struct)."""


def _create_many(host: bc.DynamicHost, decls: Sequence[Mapping[str, Any]], blob: str) -> list[Existing]:
    def make(decl: Mapping[str, Any]) -> Existing:
        news = bc.to_struct(bc.with_provider(decl, blob))
        resp = bc.rpc_call(host, "Check", provider_pb2.CheckRequest(urn=host.urn, type=bc.RESOURCE_TYPE, news=news))
        made = bc.rpc_call(host, "Create", bc.create_request(host, resp.inputs))
        return Existing(made.id, news, resp.inputs, made.properties)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(make, decls))


def _preview_pass(host: bc.DynamicHost, runs: Sequence[Existing]) -> None:
    """What ``pulumi preview`` sends for an unchanged resource: Check(old inputs, program inputs), Diff."""
    for run in runs:
        chk = bc.rpc_call(
            host,
            "Check",
            provider_pb2.CheckRequest(urn=host.urn, type=bc.RESOURCE_TYPE, olds=run.checked, news=run.news),
        )
        assert not chk.failures, chk.failures
        diff = bc.rpc_call(host, "Diff", bc.diff_request(host, run.id, run.outputs, chk.inputs, run.checked))
        assert diff.changes == DIFF_NONE, (diff.changes, list(diff.replaces), list(diff.diffs))


def _provider_seconds(runs: Sequence[Existing], rounds: int) -> list[float]:
    """Per round, the time in ``check`` + ``diff`` themselves per resource, with the arguments the host passes."""
    provider = ExperimentRunProvider()
    calls = []
    for run in runs:
        olds, news = rpc.deserialize_properties(run.checked, True), rpc.deserialize_properties(run.news, True)
        checked = provider.check(olds, news).inputs
        checked[bc.PROVIDER_KEY] = news[bc.PROVIDER_KEY]
        diff_news = rpc.deserialize_properties(bc.to_struct(checked), True)
        calls.append((run.id, olds, news, rpc.deserialize_properties(run.outputs, True), diff_news))
    totals = []
    for _ in range(rounds):
        started = time.perf_counter()
        for id_, olds, news, outs, diff_news in calls:
            provider.check(olds, news)
            assert not provider.diff(id_, outs, diff_news).changes
        totals.append((time.perf_counter() - started) / len(runs))
    return totals


def bench_preview(ctx: Ctx) -> None:
    s = ctx.settings
    log(f"preview: creating {s.preview_runs} runs ({bc.SMALL.label()})")
    # Made on the 4-worker server (faster); Check and Diff then go through the host behind the counting proxy,
    # so any request the provider made during the preview would be counted (and fail: the run is elsewhere).
    exp = create_experiment(ctx.wide_server.url, "bench-preview")
    decls = [bc.declaration(exp, bc.SMALL, f"preview-{i:03d}") for i in range(s.preview_runs)]
    runs = _create_many(ctx.wide_host, decls, ctx.blob)
    native_runs: list[bench_native.Existing] = []
    if ctx.native is not None:  # the same runs made by the native plugin, on the same server
        log(f"preview: creating {s.preview_runs} runs with the native plugin")
        native_decls = [bc.declaration(exp, bc.SMALL, f"native-preview-{i:03d}") for i in range(s.preview_runs)]
        native_runs = bench_native.create_many(ctx.native.wide, native_decls)
    host = ctx.counted_host
    seen: dict[str, list[Seen]] = {"dynamic": [], "native": []}

    def counting(kind: str, fn: Callable[[], Any]) -> Any:
        mark = ctx.proxy.mark()
        try:
            return fn()
        finally:
            seen[kind] += ctx.proxy.tally(mark).seen

    counting("dynamic", lambda: _preview_pass(host, runs[:1]))  # the host's first call: unpickle + configure
    if ctx.native is not None:
        plugin = ctx.native.counted
        counting("native", lambda: bench_native.preview_pass(plugin, native_runs[:1]))  # first call: imports
    walls, cpus, native_walls, native_cpus = [], [], [], []
    for r in range(s.rounds):
        cpu0, t0 = bc.process_cpu_seconds(host.process.pid), time.perf_counter()
        counting("dynamic", lambda: _preview_pass(host, runs))
        walls.append((time.perf_counter() - t0) / len(runs))
        cpus.append((bc.process_cpu_seconds(host.process.pid) - cpu0) / len(runs))
        native_log = ""
        if ctx.native is not None:
            wall, cpu = counting("native", lambda: bench_native.timed_preview(plugin, native_runs))
            native_walls.append(wall)
            native_cpus.append(cpu)
            native_log = f"; native plugin {ms(wall)} wall, {ms(cpu)} plugin CPU"
        log(f"preview round {r + 1}: {ms(walls[-1])} wall, {ms(cpus[-1])} host CPU per resource{native_log}")
    tally = Tally(seen["dynamic"])
    provider_rounds = _provider_seconds(runs, s.rounds)
    provider_s = bc.median(provider_rounds)
    ctx.details["preview"] = {
        "wall_per_resource_s": walls,
        "host_cpu_per_resource_s": cpus,
        "provider_per_resource_s": provider_rounds,
        "native_wall_per_resource_s": native_walls,
        "native_plugin_cpu_per_resource_s": native_cpus,
    }
    ctx.rows += [
        bc.Row(
            f"preview: requests for Check+Diff of {len(runs)} unchanged runs x{s.rounds}",
            f"{tally.count} ({tally.describe()})",
            "0",
            bc.verdict(tally.count == 0),
        ),
        bc.Row(
            "preview: provider time per resource (check+diff)",
            f"{provider_s * 1e3:.3f} ms",
            "< 0.5 ms",
            bc.verdict(provider_s < 0.0005),
            f"median of {s.rounds} rounds of {len(runs)}; least disturbed round {min(provider_rounds) * 1e3:.3f} ms",
        ),
        bc.Row(
            "preview: host round trip per resource (gRPC Check+Diff, info)",
            f"{ms(bc.median(walls))} wall, {ms(bc.median(cpus))} host CPU",
            "-",
            "info",
        ),
    ]
    if ctx.native is not None:
        native_tally = Tally(seen["native"])
        ctx.rows += bench_native.preview_rows(
            native_runs, s.rounds, tally=native_tally, walls=native_walls, cpus=native_cpus, host_walls=walls
        )
    if ctx.big_state is not None:
        checked, outputs, news, id_ = ctx.big_state
        big = Existing(id_, bc.to_struct(news), checked, outputs)
        big_s = bc.median(_provider_seconds([big] * 20, s.rounds))
        ctx.details["preview"]["provider_s_big"] = big_s
        ctx.rows.append(
            bc.Row(
                f"preview: provider time per resource, the create run ({bc.BIG.points:,} points, info)",
                f"{big_s * 1e3:.3f} ms",
                "(< 0.5 ms)",
                "info",
            )
        )


# ---- 3. append -----------------------------------------------------------------------------------------------


def _new_points(step: int) -> list[dict[str, Any]]:
    return [{"key": f"metric_{k:02d}", "value": 0.5 + k / 100, "step": step} for k in range(10)]


def bench_append(ctx: Ctx) -> None:
    s = ctx.settings
    shape = bc.Shape(params=bc.BIG.params, tags=bc.BIG.tags, metric_keys=20, steps=s.append_points // 20)
    decl = bc.declaration(ctx.experiment_id, shape, "bench-append")
    host = ctx.counted_host
    log(f"append: creating a run with {shape.points:,} points")
    checked = bc.checked_inputs(host, bc.with_provider(decl, ctx.blob))
    made = bc.rpc_call(host, "Create", bc.create_request(host, checked))
    run_id, outputs = made.id, made.properties
    native = None
    if ctx.native is not None:  # its own run of the same shape, made and updated through the proxy too
        log(f"append: creating a run with {shape.points:,} points with the native plugin")
        native = bench_native.NativeAppend(ctx.native.counted, bc.declaration(ctx.experiment_id, shape, "native"))
    raw = RawSequence(ctx.proxy.url)
    step = shape.steps
    host_t, raw_t, floor_t, counts, sent, minimal = [], [], [], [], [], []
    for r in range(s.rounds):
        points = _new_points(step)
        step += 1
        decl["metrics"] = [*decl["metrics"], *points]
        news = bc.with_provider(decl, ctx.blob)
        chk = bc.rpc_call(host, "Check", bc.check_request(host, bc.from_struct(checked), news))
        diff = bc.rpc_call(host, "Diff", bc.diff_request(host, run_id, outputs, chk.inputs, checked))
        # "unknown" (since c5ea513): the engine diffs the old and new inputs itself, and sees the new points
        assert diff.changes in (DIFF_SOME, DIFF_UNKNOWN) and not diff.replaces, (diff.changes, list(diff.replaces))
        request = bc.update_request(host, run_id, outputs, chk.inputs, checked)
        mark = ctx.proxy.mark()
        elapsed, resp = bc.timed(lambda req=request: bc.rpc_call(host, "Update", req))
        tally = ctx.proxy.tally(mark)
        assert not tally.failed and tally.seen[-1].endpoint == "runs/get", tally.describe()
        writes = tally.without_final_get()
        host_t.append(elapsed)
        counts.append(writes)
        sent.append(writes.body_bytes)
        minimal.append(len(bc.compact({"run_id": run_id, "metrics": bc.stamped(points, bc.now_ms())})))
        outputs, checked = resp.properties, chk.inputs
        raw_t.append(bc.timed(lambda pts=points: raw.append(run_id, pts))[0])
        # the host's own cost for the same Update: the trivial provider, handed the same properties, echoes them
        trivial_news = bc.to_struct(bc.with_provider(bc.from_struct(request.news), ctx.trivial_blob))
        floor = bc.update_request(host, run_id, request.olds, trivial_news, request.old_inputs)
        floor_t.append(bc.timed(lambda req=floor: bc.rpc_call(host, "Update", req))[0])
        native_log = native.round(points, ctx.proxy) if native is not None else ""
        log(
            f"append round {r + 1}: provider {ms(host_t[-1])} ({writes.describe()}, {sent[-1]} B), "
            f"raw {ms(raw_t[-1])}, host floor {ms(floor_t[-1])}{native_log}"
        )
    raw.close()
    held = bc.held_points(bc.from_struct(outputs))
    worst_count = max(c.count for c in counts)
    ratio = max(a / b for a, b in zip(sent, minimal, strict=True))
    ctx.details["append"] = {
        "host_s": host_t,
        "raw_s": raw_t,
        "host_floor_s": floor_t,
        "body_bytes": sent,
        "minimal_bytes": minimal,
    }
    ctx.rows += [
        bc.Row(
            f"append: requests to add 10 points to {shape.points:,}, besides the final get",
            f"{worst_count} ({counts[-1].describe()})",
            "≤ 2",
            bc.verdict(worst_count <= 2),
        ),
        bc.Row(
            "append: bytes sent (request bodies, besides the final get)",
            f"{max(sent):,} B = {ratio:.2f}x a bare log-batch of the 10 points ({max(minimal):,} B)",
            "∝ new points (≤ 2x that)",
            bc.verdict(ratio <= 2.0),
            f"state held {held:,} points after the rounds",
        ),
        bc.Row(
            "append: Update via host / raw log-batch + get (info)",
            f"{bc.median([a / b for a, b in zip(host_t, raw_t, strict=True)]):.2f}x "
            f"({ms(bc.median(host_t))} vs {ms(bc.median(raw_t))})",
            "-",
            "info",
            f"host floor (trivial provider, same properties) {ms(bc.median(floor_t))}",
        ),
    ]
    if native is not None:
        ctx.details["append"]["native"] = native.details()
        ctx.rows += native.rows(raw_t, shape.points)


# ---- 4. cold start -------------------------------------------------------------------------------------------


def _cold_call(tracking_uri: str, news: struct_pb2.Struct) -> tuple[float, float]:
    """Host start, Configure, and a first Check that unpickles the provider: (total, first Check) seconds."""
    started = time.perf_counter()
    host = DynamicHost(extra_env=bc.host_env(tracking_uri))
    try:
        host.configure({})
        check_started = time.perf_counter()
        resp = bc.rpc_call(host, "Check", provider_pb2.CheckRequest(urn=host.urn, type=bc.RESOURCE_TYPE, news=news))
        ended = time.perf_counter()
        assert not resp.failures
    finally:
        host.close()
    return ended - started, ended - check_started


def bench_cold(ctx: Ctx) -> None:
    s = ctx.settings
    contenders = {
        "trivial provider": bc.to_struct(bc.with_provider({"x": 1}, bc.provider_blob(TrivialProvider()))),
        "provider": bc.to_struct(bc.with_provider(bc.declaration(ctx.experiment_id, bc.SMALL, "cold"), ctx.blob)),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    first: dict[str, list[float]] = {name: [] for name in contenders}
    _cold_call(ctx.server.url, contenders["provider"])  # warm the page cache once
    for r in range(s.rounds):
        for name, news in contenders.items():
            total, check = _cold_call(ctx.server.url, news)
            times[name].append(total)
            first[name].append(check)
        log(f"cold start round {r + 1}: " + ", ".join(f"{n} {ms(t[-1])}" for n, t in times.items()))
    extra = bc.median([a - b for a, b in zip(times["provider"], times["trivial provider"], strict=True)])
    ctx.details["cold"] = {"total_s": times, "first_check_s": first}
    ctx.rows.append(
        bc.Row(
            "cold start: host start + Configure + first Check, over the trivial provider",
            f"+{ms(extra)} ({ms(bc.median(times['provider']))} vs {ms(bc.median(times['trivial provider']))})",
            "≤ 150 ms",
            bc.verdict(extra <= 0.150),
            f"the first Check alone: {ms(bc.median(first['provider']))} vs {ms(bc.median(first['trivial provider']))}"
            " (unpickling imports the package)",
        )
    )


# ---- 5. scale ------------------------------------------------------------------------------------------------


def _throughput(fn: Callable[[], Any], runs: int, threads: int) -> float:
    started = time.perf_counter()
    if threads == 1:
        for _ in range(runs):
            fn()
    else:
        with ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(fn) for _ in range(runs)]:
                future.result()
    return runs / (time.perf_counter() - started)


def bench_scale(ctx: Ctx) -> None:
    s = ctx.settings
    per_round = math.ceil(s.scale_runs / s.rounds)
    log(f"scale: the server with {s.scale_workers} uvicorn workers; {per_round} runs per contender and round")
    server, host = ctx.wide_server, ctx.wide_host
    exp = create_experiment(server.url, "bench-scale")
    decl = bc.declaration(exp, bc.SMALL, "bench-scale")
    raw = RawSequence(server.url)
    creator = HostCreate(host, bc.checked_inputs(host, bc.with_provider(decl, ctx.blob)))
    contenders: dict[str, tuple[Callable[[], Any], int]] = {
        "host, 4 threads": (creator.create, 4),
        "host, sequential": (creator.create, 1),
        "raw httpx, 4 threads": (lambda: raw.create(decl), 4),
        "raw httpx, sequential": (lambda: raw.create(decl), 1),
    }
    thr: dict[str, list[float]] = {name: [] for name in contenders}
    try:
        for fn, threads in contenders.values():
            _throughput(fn, 4, threads)  # warm-up
        for r in range(s.rounds):
            for name, (fn, threads) in contenders.items():
                thr[name].append(_throughput(fn, per_round, threads))
            log(f"scale round {r + 1}: " + ", ".join(f"{n} {t[-1]:.1f}/s" for n, t in thr.items()))
    finally:
        raw.close()
    host_ratio = bc.median([a / b for a, b in zip(thr["host, 4 threads"], thr["host, sequential"], strict=True)])
    raw_ratio = bc.median(
        [a / b for a, b in zip(thr["raw httpx, 4 threads"], thr["raw httpx, sequential"], strict=True)]
    )
    med = {name: bc.median(t) for name, t in thr.items()}
    ctx.details["scale"] = {"runs_per_s": thr, "per_round": per_round}
    note = "" if host_ratio >= 2 else f"server limit: the raw sequence itself scales {raw_ratio:.2f}x"
    ctx.rows += [
        bc.Row(
            f"scale: {per_round * s.rounds} runs, host with 4 threads / sequential",
            f"{host_ratio:.2f}x ({med['host, 4 threads']:.1f} vs {med['host, sequential']:.1f} runs/s)",
            "≥ 2x (the server permitting)",
            bc.verdict(host_ratio >= 2.0),
            note,
        ),
        bc.Row(
            f"scale: server limit, raw httpx 4 threads / sequential ({s.scale_workers} workers, info)",
            f"{raw_ratio:.2f}x ({med['raw httpx, 4 threads']:.1f} vs {med['raw httpx, sequential']:.1f} runs/s)",
            "-",
            "info",
            f"provider keeps {host_ratio / raw_ratio:.0%} of the server's concurrent speed-up",
        ),
    ]


# ---- 6. metrics file ------------------------------------------------------------------------------------------


def bench_metrics_file(ctx: Ctx) -> None:
    """``metricsFile`` on both doors against raw httpx: create, append, state, preview (``bench_metrics_file``)."""
    s = ctx.settings
    hosts = {"direct": ctx.host, "counted": ctx.counted_host, "wide": ctx.wide_host}
    doors = {where: {bmf.HOST: bmf.Door.host(host, ctx.blob)} for where, host in hosts.items()}
    if ctx.native is not None:  # the plugin first, as in the other sections' rows
        plugins = {"direct": ctx.native.direct, "counted": ctx.native.counted, "wide": ctx.native.wide}
        doors = {where: {bmf.PLUGIN: bmf.Door.plugin(plugins[where]), **d} for where, d in doors.items()}
    setting = bmf.Setting(
        s.rounds, s.file_points, s.file_preview_runs, ctx.workdir, ctx.server.url, ctx.proxy, ctx.wide_server.url, log
    )
    experiment = create_experiment(ctx.server.url, "bench-metrics-file")
    rows, details = bmf.run_section(setting, bmf.Doors(**doors), experiment, create_experiment)
    ctx.rows += rows
    ctx.details["metrics-file"] = details


# ---- driver --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7; 3 with --quick)")
    p.add_argument("--quick", action="store_true", help="fewer rounds and smaller sizes: a smoke run")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--json", type=Path, help="also write the rows, raw timings and machine here")
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal fails")
    p.add_argument("--scale-workers", type=int, default=4, help="uvicorn workers of the scale benchmark's server")
    p.add_argument(
        "--no-native", action="store_true", help="leave out the native plugin (create, preview, append, metrics-file)"
    )
    args = p.parse_args(argv)
    sections = tuple(x.strip() for x in args.only.split(",") if x.strip())
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}")
    rounds = args.rounds or (3 if args.quick else 7)
    if args.quick:
        settings = Settings(
            rounds, preview_runs=100, append_points=2_000, scale_runs=40, scale_workers=4, sections=(),
            file_points=2_000,
        )  # fmt: skip
    else:
        settings = Settings(
            rounds, preview_runs=500, append_points=20_000, scale_runs=200, scale_workers=4, sections=()
        )
    settings.scale_workers = args.scale_workers
    settings.sections = sections
    return settings, args


def render(rows: Sequence[bc.Row], machine: Mapping[str, str], command: str) -> str:
    lines = [
        "| benchmark | measured | goal | PASS/FAIL |",
        "|---|---|---|---|",
    ]
    for row in rows:
        measured = row.measured + (f"; {row.note}" if row.note else "")
        lines.append(f"| {row.benchmark} | {measured} | {row.goal} | {row.verdict} |")
    lines += [
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
        f"Command: `{command}`",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if "run-table" in given:  # --only run-table: the table through the CLI, its own options (bench_run_table.py)
        import bench_run_table

        return bench_run_table.main(given)
    settings, args = parse_args(argv)
    shm = Path("/dev/shm")  # noqa: S108 - tmpfs keeps disk noise out of the server's sqlite writes
    workdir = Path(tempfile.mkdtemp(prefix="mlflow-runs-bench-", dir=shm if shm.is_dir() else None))
    machine = bc.machine()
    log(f"work files in {workdir}; machine: {machine}")
    with ThreadPoolExecutor(2) as pool:  # both servers start at once
        starting = [
            pool.submit(start_server, workdir / name, workers)
            for name, workers in (("server", 1), ("wide", settings.scale_workers))
        ]
        server, wide_server = (f.result() for f in starting)
    try:
        with CountingProxy(server.url) as proxy:
            host, counted_host, wide_host = (bc.open_host(u) for u in (server.url, proxy.url, wide_server.url))
            natives = None
            try:
                if not args.no_native and {"create", "preview", "append", "metrics-file"} & set(settings.sections):
                    natives = bench_native.Natives.start(server.url, proxy.url, wide_server.url)
                ctx = Ctx(
                    settings, workdir, server, proxy, create_experiment(server.url, "bench"),
                    bc.provider_blob(ExperimentRunProvider()), host, counted_host, wide_server, wide_host,
                    trivial_blob=bc.provider_blob(TrivialProvider()), native=natives,
                )  # fmt: skip
                benches = {
                    "create": bench_create,
                    "preview": bench_preview,
                    "append": bench_append,
                    "cold": bench_cold,
                    "scale": bench_scale,
                    "metrics-file": bench_metrics_file,
                }
                for name in SECTIONS:
                    if name in settings.sections:
                        benches[name](ctx)
            finally:
                if natives is not None:
                    natives.close()
                for h in (host, counted_host, wide_host):
                    h.close()
    finally:
        server.stop()
        wide_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(render(ctx.rows, machine, command.strip()))
    if args.json:
        args.json.write_text(
            json.dumps({"rows": [asdict(r) for r in ctx.rows], "details": ctx.details, "machine": machine}, indent=1)
        )
    log("done")
    return 1 if args.strict and any(r.verdict == "FAIL" for r in ctx.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
