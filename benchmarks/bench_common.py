"""Shared pieces of the benchmark: environment, run shapes, engine-like gRPC requests, statistics, machine."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
TESTS_DIR = REPO_DIR / "tests"
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))  # support.host, support.mlflow_server

from support.host import isolated_env  # noqa: E402

# Loopback only, and nothing ambient may pick the connection instead of MLFLOW_TRACKING_URI.
_ENV = isolated_env(
    MLFLOW_DISABLE_TELEMETRY="true",
    DO_NOT_TRACK="true",
    MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true",  # else MlflowClient.set_terminated adds a runs/get
)
os.environ.clear()
os.environ.update(_ENV)

from pulumi.dynamic.dynamic import serialize_provider  # noqa: E402
from pulumi.runtime.proto import provider_pb2  # noqa: E402

from support.host import PROVIDER_KEY, RESOURCE_TYPE, DynamicHost, from_struct, to_struct  # noqa: E402, F401

# MLflow log-batch limits (the provider's README and MLflow's REST docs).
BATCH_MAX_ITEMS = 1000
BATCH_MAX_PARAMS = 100
BATCH_MAX_TAGS = 100
BATCH_MAX_BYTES = 1_000_000

RUNS = "/api/2.0/mlflow/runs"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---- run shapes ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    params: int
    tags: int
    metric_keys: int
    steps: int

    @property
    def points(self) -> int:
        return self.metric_keys * self.steps

    def label(self) -> str:
        return f"{self.params} params, {self.points:,} points ({self.metric_keys} keys), {self.tags} tags"


BIG = Shape(params=50, tags=20, metric_keys=20, steps=100)
"""The create benchmark's run: 50 params, 2,000 metric points over 20 keys, 20 tags."""
SMALL = Shape(params=10, tags=5, metric_keys=5, steps=10)
"""A typical run for the preview and scale benchmarks: 10 params, 50 points, 5 tags."""


def metric_points(shape: Shape, first_step: int = 0, steps: int | None = None) -> list[dict[str, Any]]:
    """Points as a program declares them (no timestamp: the provider stamps them when it logs them)."""
    last = first_step + (shape.steps if steps is None else steps)
    return [
        {"key": f"metric_{k:02d}", "value": round(1.0 / (1 + step) + k * 0.001, 6), "step": step}
        for step in range(first_step, last)
        for k in range(shape.metric_keys)
    ]


def declaration(experiment_id: str, shape: Shape, run_name: str, **extra: Any) -> dict[str, Any]:
    """The inputs of an ``ExperimentRun`` as the SDK registers them (None values never reach the wire)."""
    return {
        "experiment_id": experiment_id,
        "run_name": run_name,
        "status": "FINISHED",
        "params": {f"param_{i:02d}": f"value-{i}-{'x' * (i % 7)}" for i in range(shape.params)},
        "tags": {f"team.tag_{i:02d}": f"tag value {i}" for i in range(shape.tags)},
        "metrics": metric_points(shape),
        **extra,
    }


def with_provider(props: Mapping[str, Any], provider_blob: str) -> dict[str, Any]:
    return {**props, PROVIDER_KEY: provider_blob}


def provider_blob(provider: object) -> str:
    return serialize_provider(provider)


# ---- engine-like requests: built once, outside the timed sections -------------------------------------------


def check_request(host: DynamicHost, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Any:
    return provider_pb2.CheckRequest(
        urn=host.urn, type=RESOURCE_TYPE, name=host.name, olds=to_struct(olds), news=to_struct(news)
    )


def diff_request(host: DynamicHost, id_: str, olds: Any, news: Any, old_inputs: Any) -> Any:
    """``olds``/``news``/``old_inputs`` are Structs (prior outputs, checked inputs, prior inputs)."""
    return provider_pb2.DiffRequest(
        id=id_, urn=host.urn, type=RESOURCE_TYPE, name=host.name, olds=olds, news=news, old_inputs=old_inputs
    )


def create_request(host: DynamicHost, checked: Any) -> Any:
    return provider_pb2.CreateRequest(urn=host.urn, type=RESOURCE_TYPE, name=host.name, properties=checked)


def update_request(host: DynamicHost, id_: str, olds: Any, news: Any, old_inputs: Any) -> Any:
    return provider_pb2.UpdateRequest(
        id=id_, urn=host.urn, type=RESOURCE_TYPE, name=host.name, olds=olds, news=news, old_inputs=old_inputs
    )


def rpc_call(host: DynamicHost, method: str, request: Any) -> Any:
    return getattr(host.stub, method)(request, timeout=host.rpc_timeout)


def host_env(tracking_uri: str) -> dict[str, str]:
    """The host reaches MLflow at ``tracking_uri`` and can import ``benchmarks/`` (the trivial provider)."""
    path = os.pathsep.join(p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH")) if p)
    return {"MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": path}


def open_host(tracking_uri: str) -> DynamicHost:
    """A real ``python -m pulumi.dynamic`` host that reaches MLflow at ``tracking_uri``, configured."""
    host = DynamicHost(extra_env=host_env(tracking_uri))
    host.configure({})
    return host


def checked_inputs(host: DynamicHost, decl: Mapping[str, Any], olds: Mapping[str, Any] | None = None) -> Any:
    """Check as the engine does; the returned Struct is what Create/Diff/Update are then sent."""
    resp = rpc_call(host, "Check", check_request(host, olds or {}, decl))
    if resp.failures:
        raise RuntimeError(f"Check failed: {[(f.property, f.reason) for f in resp.failures]}")
    return resp.inputs


# ---- the minimal raw request sequence ------------------------------------------------------------------------


def compact(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def minimal_batches(
    run_id: str, params: Mapping[str, str], tags: Mapping[str, str], metrics: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """log-batch bodies in the fewest requests the limits allow (our shapes never reach the byte limit)."""
    queue_p = [{"key": k, "value": v} for k, v in params.items()]
    queue_t = [{"key": k, "value": v} for k, v in tags.items()]
    queue_m = list(metrics)
    bodies: list[dict[str, Any]] = []
    while queue_p or queue_t or queue_m:
        p, queue_p = queue_p[:BATCH_MAX_PARAMS], queue_p[BATCH_MAX_PARAMS:]
        t, queue_t = queue_t[:BATCH_MAX_TAGS], queue_t[BATCH_MAX_TAGS:]
        room = BATCH_MAX_ITEMS - len(p) - len(t)
        m, queue_m = queue_m[:room], queue_m[room:]
        body: dict[str, Any] = {"run_id": run_id}
        if m:
            body["metrics"] = m
        if p:
            body["params"] = p
        if t:
            body["tags"] = t
        bodies.append(body)
    return bodies


def min_batches(params: int, tags: int, points: int, payload_bytes: int) -> int:
    return max(
        math.ceil((params + tags + points) / BATCH_MAX_ITEMS),
        math.ceil(params / BATCH_MAX_PARAMS),
        math.ceil(tags / BATCH_MAX_TAGS),
        math.ceil(payload_bytes / BATCH_MAX_BYTES),
        1,
    )


def held_points(outputs: Mapping[str, Any]) -> int:
    """The metric points a dynamic run's outputs record as logged: ``logged_points``, per key a column each of
    step, value and timestamp; or the ``metrics`` list of older state (the plugin's: ``bench_native``)."""
    logged = outputs.get("logged_points", outputs.get("loggedPoints"))
    if isinstance(logged, Mapping):
        return sum(len(columns.get("step") or []) for columns in logged.values())
    return len(outputs.get("metrics") or [])


def stamped(points: Iterable[Mapping[str, Any]], ts: int) -> list[dict[str, Any]]:
    return [{"key": p["key"], "value": p["value"], "timestamp": ts, "step": p["step"]} for p in points]


# ---- statistics and reporting ---------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def interleaved(
    timed_calls: Mapping[str, Callable[[], Any]],
    cpu_of: Mapping[str, Callable[[], float]],
    rounds: int,
    say: Callable[[int, Mapping[str, list[float]]], None],
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """``(seconds, cpu seconds)`` per contender: each called once a round, in turn, so that the machine's noise
    falls on all of them alike; ``say(round, seconds so far)`` after each round."""
    for fn in timed_calls.values():
        fn()  # warm-up: connection pools, first-use imports
    times: dict[str, list[float]] = {name: [] for name in timed_calls}
    cpu: dict[str, list[float]] = {name: [] for name in timed_calls}
    for r in range(rounds):
        for name, fn in timed_calls.items():
            cpu0 = cpu_of[name]()
            times[name].append(timed(fn)[0])
            cpu[name].append(cpu_of[name]() - cpu0)
        say(r + 1, times)
    return times, cpu


@dataclass
class Row:
    benchmark: str
    measured: str
    goal: str
    verdict: str  # PASS, FAIL or "info"
    note: str = ""


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine() -> dict[str, str]:
    import mlflow
    import pulumi

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        pulumi_version = version("pulumi")
    except Exception:  # noqa: BLE001 - informative only
        pulumi_version = getattr(pulumi, "__version__", "?")
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": _mem_total(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "mlflow": mlflow.__version__,
        "pulumi": pulumi_version,
    }


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return "unknown"
