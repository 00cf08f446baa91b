"""The native plugin as a contender: ``pulumi-resource-mlflow-runs`` started as the engine starts it, driven over gRPC.

The benchmark plays the engine: it starts the venv's console script, reads the port from the first line of
its stdout, sends Configure with ``trackingUri``, and then the same calls a ``pulumi up`` or ``preview`` of a
YAML program sends: Check with the program's inputs in camelCase (numbers as floats, as every Struct holds
them), Create/Update with the inputs Check returned, Diff with the old outputs, the checked inputs and the
old inputs. Requests are built before the clock starts. ``run.py`` interleaves these calls with its other
contenders round by round; the rows for the plugin are built here.

No test helper starts the plugin over gRPC (``tests/support/host.py`` starts ``python -m pulumi.dynamic``,
the CLI tests let the engine start the plugin), so the launcher is here; it reads the port as the host's
does (``support.host.first_line``).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bench_common as bc
import grpc
from bench_proxy import CountingProxy, Tally
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from pulumi_mlflow_runs.core import definitions as d
from pulumi_mlflow_runs.native.names import convert
from pulumi_mlflow_runs.native.plugin import MAX_MESSAGE_BYTES
from pulumi_mlflow_runs.native.schema import RUN_TOKEN

from support.host import first_line

PLUGIN = bc.REPO_DIR / ".venv" / "bin" / "pulumi-resource-mlflow-runs"
"""Where ``pip install -e .`` put the plugin; the engine finds the same file on PATH."""
NAME = "native plugin"
"""The contender's name in ``run.py``'s tables and raw timings."""
RUN_PROPS = (*d.RUN_INPUTS, *d.RUN_CREATE_ONLY, *d.RUN_OUTPUTS)
STATE_GOAL_BYTES = 1024
"""The state goal: a run's state holds its inputs plus at most this much."""
DIFF_NONE = provider_pb2.DiffResponse.DIFF_NONE
DIFF_SOME = provider_pb2.DiffResponse.DIFF_SOME
_STARTUP_TIMEOUT = 30.0
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


# ---- the plugin process -------------------------------------------------------------------------------------


class NativePlugin:
    """One ``pulumi-resource-mlflow-runs`` process, configured with a tracking URI, and a stub to call it."""

    def __init__(self, tracking_uri: str, *, name: str = "bench", rpc_timeout: float = 600.0) -> None:
        self.tracking_uri = tracking_uri
        self.name = name
        self.urn = f"urn:pulumi:bench::bench::{RUN_TOKEN}::{name}"
        self.rpc_timeout = rpc_timeout
        fd, stderr_name = tempfile.mkstemp(prefix="native-plugin-", suffix=".stderr")
        self.stderr_path = Path(stderr_name)
        self._channel: grpc.Channel | None = None
        self._pump: threading.Thread | None = None
        # The engine passes its own address as the argument; the plugin needs none to serve (``plugin.main``).
        with os.fdopen(fd, "wb") as stderr_file:
            self.process = subprocess.Popen(  # noqa: S603 - the venv's own console script
                [str(PLUGIN)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr_file,
                env=dict(os.environ),
            )
        try:
            self.port = self._read_port()
            self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=_CHANNEL_OPTIONS)
            grpc.channel_ready_future(self._channel).result(timeout=_STARTUP_TIMEOUT)
            self.stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
            self.call("Configure", configure_request(tracking_uri))
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return bc.process_cpu_seconds(self.process.pid)

    def _read_port(self) -> int:
        line, self._pump = first_line(self.process, "native-plugin-stdout")
        if line is None or not line.strip().isdigit():
            raise RuntimeError(f"the plugin did not print its port (got {line!r}):\n{self.stderr_text()}")
        return int(line)

    def call(self, method: str, request: Any) -> Any:
        return getattr(self.stub, method)(request, timeout=self.rpc_timeout)

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        """Close the channel and stop the plugin (it serves until killed, as under the engine)."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._pump is not None:
            self._pump.join(timeout=5)
        if self.process.stdout is not None and not (self._pump and self._pump.is_alive()):
            self.process.stdout.close()
        self.stderr_path.unlink(missing_ok=True)


@dataclass
class Natives:
    """The plugins of one benchmark run, as ``run.py``'s dynamic hosts: ``direct`` talks to the server (timed
    creates), ``counted`` through the counting proxy, ``wide`` to the 4-worker server (makes the preview's runs).
    """

    direct: NativePlugin
    counted: NativePlugin
    wide_uri: str
    _wide: NativePlugin | None = field(default=None, repr=False)

    @classmethod
    def start(cls, server_uri: str, proxy_uri: str, wide_uri: str) -> Natives:
        with ThreadPoolExecutor(2) as pool:
            direct, counted = pool.submit(NativePlugin, server_uri), pool.submit(NativePlugin, proxy_uri)
            try:
                return cls(direct.result(), counted.result(), wide_uri)
            except BaseException:
                for started in (direct, counted):
                    if started.exception() is None:
                        started.result().close()
                raise

    @property
    def wide(self) -> NativePlugin:
        if self._wide is None:
            self._wide = NativePlugin(self.wide_uri)
        return self._wide

    def close(self) -> None:
        for plugin in (self.direct, self.counted, self._wide):
            if plugin is not None:
                plugin.close()


# ---- engine-like requests -----------------------------------------------------------------------------------


def inputs_struct(decl: Mapping[str, Any]) -> struct_pb2.Struct:
    """A run's inputs as the engine sends a YAML program's: the schema's camelCase names, numbers as floats."""
    out = struct_pb2.Struct()
    out.update(convert(decl, RUN_PROPS, to_snake=False))
    return out


def configure_request(tracking_uri: str) -> Any:
    return provider_pb2.ConfigureRequest(
        variables={"mlflow-runs:config:trackingUri": tracking_uri},
        args=struct_pb2.Struct(fields={"trackingUri": struct_pb2.Value(string_value=tracking_uri)}),
        acceptSecrets=True,
        acceptResources=True,
        sends_old_inputs=True,
        sends_old_inputs_to_delete=True,
    )


def check_request(plugin: NativePlugin, olds: struct_pb2.Struct | None, news: struct_pb2.Struct) -> Any:
    return provider_pb2.CheckRequest(urn=plugin.urn, type=RUN_TOKEN, name=plugin.name, olds=olds, news=news)


def diff_request(plugin: NativePlugin, id_: str, olds: Any, news: Any, old_inputs: Any) -> Any:
    """``olds``/``news``/``old_inputs`` are Structs (prior outputs, checked inputs, prior inputs)."""
    return provider_pb2.DiffRequest(
        id=id_, urn=plugin.urn, type=RUN_TOKEN, name=plugin.name, olds=olds, news=news, old_inputs=old_inputs
    )


def create_request(plugin: NativePlugin, checked: Any) -> Any:
    return provider_pb2.CreateRequest(urn=plugin.urn, type=RUN_TOKEN, name=plugin.name, properties=checked)


def update_request(plugin: NativePlugin, id_: str, olds: Any, news: Any, old_inputs: Any) -> Any:
    return provider_pb2.UpdateRequest(
        id=id_, urn=plugin.urn, type=RUN_TOKEN, name=plugin.name, olds=olds, news=news, old_inputs=old_inputs
    )


def checked(plugin: NativePlugin, news: struct_pb2.Struct, olds: struct_pb2.Struct | None = None) -> Any:
    """Check as the engine does; the returned Struct is what Create/Diff/Update are then sent."""
    resp = plugin.call("Check", check_request(plugin, olds, news))
    if resp.failures:
        raise RuntimeError(f"Check failed: {[(f.property, f.reason) for f in resp.failures]}")
    return resp.inputs


# ---- state bytes ----------------------------------------------------------------------------------------------


def _as_stored(value: Any) -> Any:
    """A Struct's JSON as the engine writes state: whole numbers without a fraction (Go prints 3.0 as 3)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _as_stored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_stored(v) for v in value]
    return value


def json_bytes(value: Any) -> int:
    if isinstance(value, struct_pb2.Struct):
        value = json_format.MessageToDict(value)
    return len(bc.compact(_as_stored(value)))


@dataclass(frozen=True)
class StateSize:
    inputs: int
    outputs: int
    largest: list[tuple[str, int]]
    """The largest output keys, bytes each."""

    @classmethod
    def of(cls, inputs: struct_pb2.Struct, outputs: struct_pb2.Struct) -> StateSize:
        by_key = json_format.MessageToDict(outputs)
        largest = sorted(((k, json_bytes(v)) for k, v in by_key.items()), key=lambda kv: -kv[1])
        return cls(json_bytes(inputs), json_bytes(outputs), largest[:4])


# ---- 1. create ------------------------------------------------------------------------------------------------


class NativeCreate:
    """The plugin's Create as the engine sends it: the CreateRequest (the inputs Check returned) built beforehand.

    Each create is of a resource of its own (its own URN, Checked first, as the engine does): a create of the same
    resource again would take back the complete run the one before made (``core.state_seen``), not make a run.
    ``creates``: how many requests to build before the clock (one more is built, and checked, inside it)."""

    def __init__(self, plugin: NativePlugin, decl: Mapping[str, Any], creates: int = 2) -> None:
        self.plugin, self.news = plugin, inputs_struct(decl)
        self.made = 0
        self.pending = [self._request() for _ in range(creates)]
        self.inputs = self.pending[0].properties
        self.last_response: Any = None

    def _request(self) -> Any:
        self.made += 1
        urn = f"{self.plugin.urn}-{self.made}"
        resp = self.plugin.call("Check", provider_pb2.CheckRequest(urn=urn, type=RUN_TOKEN, news=self.news))
        if resp.failures:
            raise RuntimeError(f"Check failed: {[(f.property, f.reason) for f in resp.failures]}")
        return provider_pb2.CreateRequest(urn=urn, type=RUN_TOKEN, name=urn.rsplit("::", 1)[-1], properties=resp.inputs)

    def create(self, _decl: Mapping[str, Any] | None = None) -> str:
        resp = self.plugin.call("Create", self.pending.pop(0) if self.pending else self._request())
        assert resp.id
        self.last_response = resp
        return str(resp.id)


@dataclass(frozen=True)
class CountedCreates:
    """Two creates of the same declaration (two resources) through the counting proxy: the plugin's first create in
    an experiment also searches it once for a create that an interrupted ``up`` left unfinished; the second is the
    per-create count, with its one search for a complete run a killed ``up`` made (docs/reliability.md, finding 6)."""

    first: Tally
    steady: Tally
    state: StateSize
    """Of the second create's request and response."""

    def details(self) -> dict[str, Any]:
        return {
            "first_create_requests": dict(self.first.by_endpoint()),
            "requests": dict(self.steady.by_endpoint()),
            "state_bytes": asdict(self.state),
        }


def counted_creates(
    plugin: NativePlugin, decl: Mapping[str, Any], proxy: CountingProxy, verify: Callable[[str], None]
) -> CountedCreates:
    """Creates the run twice through ``plugin`` (which talks through ``proxy``); ``verify(run_id)`` checks each."""
    contender = NativeCreate(plugin, decl)
    tallies = []
    for _ in range(2):
        mark = proxy.mark()
        run_id = contender.create()
        tallies.append(proxy.tally(mark))
        assert not tallies[-1].failed, f"{NAME}: failed requests {tallies[-1].failed}"
        verify(run_id)
    return CountedCreates(tallies[0], tallies[1], StateSize.of(contender.inputs, contender.last_response.properties))


def create_rows(
    times: Mapping[str, Sequence[float]],
    cpu: Mapping[str, Sequence[float]],
    counts: CountedCreates,
    *,
    minimum: int,
    points: int,
) -> list[bc.Row]:
    """``times``/``cpu`` by contender name as ``run.py`` measured them, round by round."""
    first, counted, state = counts.first, counts.steady, counts.state
    mine = times[NAME]
    vs_raw = bc.median([a / b for a, b in zip(mine, times["raw httpx"], strict=True)])
    vs_host = bc.median([a / b for a, b in zip(mine, times["provider"], strict=True)])
    med = {name: bc.median(t) for name, t in times.items()}
    extra_first = first.count - counted.count
    first_note = f"the plugin's first create in the experiment sent {first.count} ({first.describe()})" + (
        ": the once-per-experiment-and-process search for a create an interrupted up left unfinished"
        if extra_first
        else ""
    )
    return [
        bc.Row(
            "create: native plugin Create over gRPC / minimal raw httpx",
            f"{vs_raw:.3f}x ({ms(med[NAME])} vs {ms(med['raw httpx'])})",
            "≤ 1.05x",
            bc.verdict(vs_raw <= 1.05),
            f"per round {', '.join(f'{a / b:.2f}' for a, b in zip(mine, times['raw httpx'], strict=True))}",
        ),
        bc.Row(
            "create: native plugin / provider via host (info)",
            f"{vs_host:.3f}x ({ms(med[NAME])} vs {ms(med['provider'])})",
            "-",
            "info",
        ),
        bc.Row(
            "create: CPU of the native plugin process per create (info)",
            f"plugin {ms(bc.median(cpu[NAME]))}, provider host {ms(bc.median(cpu['provider']))}, "
            f"raw httpx {ms(bc.median(cpu['raw httpx']))}",
            "-",
            "info",
            "plugin = gRPC + Struct (de)coding + the core; 10 ms clock ticks",
        ),
        bc.Row(
            "create: native plugin requests",
            f"{counted.count} ({counted.describe()})",
            f"= {minimum + 1} (the minimum, and the search for a run a killed up made whole)",
            bc.verdict(counted.count == minimum + 1),
            first_note,
        ),
        bc.Row(
            f"state: the native plugin's create run ({points:,} points), inputs + outputs (compact JSON)",
            f"{state.inputs + state.outputs:,} B: inputs {state.inputs:,}, outputs {state.outputs:,} "
            f"(largest {', '.join(f'{k} {n:,}' for k, n in state.largest)})",
            "inputs + ≤ 1 KB",
            bc.verdict(state.outputs <= STATE_GOAL_BYTES),
        ),
    ]


# ---- 2. preview -----------------------------------------------------------------------------------------------


@dataclass
class Existing:
    id: str
    news: struct_pb2.Struct
    """Program inputs."""
    checked: struct_pb2.Struct
    """Checked inputs at create = the old inputs in state."""
    outputs: struct_pb2.Struct
    """Outputs in state."""


def create_many(plugin: NativePlugin, decls: Sequence[Mapping[str, Any]]) -> list[Existing]:
    def make(decl: Mapping[str, Any]) -> Existing:
        news = inputs_struct(decl)
        inputs = checked(plugin, news)
        made = plugin.call("Create", create_request(plugin, inputs))
        return Existing(made.id, news, inputs, made.properties)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(make, decls))


def preview_pass(plugin: NativePlugin, runs: Sequence[Existing]) -> None:
    """What ``pulumi preview`` sends the plugin for an unchanged resource: Check(old inputs, program inputs),
    then Diff(old outputs, checked inputs, old inputs)."""
    for run in runs:
        chk = plugin.call("Check", check_request(plugin, run.checked, run.news))
        assert not chk.failures, chk.failures
        diff = plugin.call("Diff", diff_request(plugin, run.id, run.outputs, chk.inputs, run.checked))
        assert diff.changes == DIFF_NONE, (diff.changes, list(diff.replaces), list(diff.diffs))


def timed_preview(plugin: NativePlugin, runs: Sequence[Existing]) -> tuple[float, float]:
    """(wall, plugin CPU) seconds per resource of one preview pass."""
    cpu0, t0 = plugin.cpu_seconds(), time.perf_counter()
    preview_pass(plugin, runs)
    return (time.perf_counter() - t0) / len(runs), (plugin.cpu_seconds() - cpu0) / len(runs)


def preview_rows(
    runs: Sequence[Existing],
    rounds: int,
    *,
    tally: Tally,
    walls: Sequence[float],
    cpus: Sequence[float],
    host_walls: Sequence[float],
) -> list[bc.Row]:
    """``walls``/``cpus``: the plugin's per resource, round by round; ``host_walls``: the dynamic host's."""
    ratio = bc.median([a / b for a, b in zip(walls, host_walls, strict=True)])
    return [
        bc.Row(
            f"preview: native plugin requests for Check+Diff of {len(runs)} unchanged runs x{rounds}",
            f"{tally.count} ({tally.describe()})",
            "0",
            bc.verdict(tally.count == 0),
        ),
        bc.Row(
            "preview: native plugin round trip per resource (gRPC Check+Diff, info)",
            f"{ms(bc.median(walls))} wall, {ms(bc.median(cpus))} plugin CPU; "
            f"{ratio:.2f}x the dynamic host's {ms(bc.median(host_walls))}",
            "-",
            "info",
            f"per round {', '.join(f'{w * 1e3:.2f}' for w in walls)} ms",
        ),
    ]


# ---- 3. append ------------------------------------------------------------------------------------------------


@dataclass
class Appended:
    """One round of the append benchmark on the plugin."""

    seconds: float
    cpu: float
    """The plugin process's CPU during the Update."""
    writes: Tally
    """The requests besides the final runs/get."""
    minimal: int
    """The bytes of a bare log-batch of the same points."""


class NativeAppend:
    """A run of the plugin's that grows by a few points a round: Check and Diff (an update, no replace) before the
    clock, then the timed Update, as ``pulumi up`` sends them after its preview."""

    def __init__(self, plugin: NativePlugin, decl: dict[str, Any]) -> None:
        self.plugin = plugin
        self.decl = decl
        self.inputs = checked(plugin, inputs_struct(decl))
        made = plugin.call("Create", create_request(plugin, self.inputs))
        self.run_id, self.outputs = str(made.id), made.properties
        self.rounds: list[Appended] = []

    def prepare(self, points: Sequence[Mapping[str, Any]]) -> tuple[Any, Any]:
        """The UpdateRequest that appends ``points``, and the inputs it makes the old inputs."""
        self.decl["metrics"] = [*self.decl["metrics"], *points]
        news = checked(self.plugin, inputs_struct(self.decl), self.inputs)
        diff = self.plugin.call("Diff", diff_request(self.plugin, self.run_id, self.outputs, news, self.inputs))
        assert diff.changes == DIFF_SOME and not diff.replaces, (diff.changes, list(diff.replaces))
        return update_request(self.plugin, self.run_id, self.outputs, news, self.inputs), news

    def append(self, points: Sequence[Mapping[str, Any]], proxy: CountingProxy) -> Appended:
        """Appends ``points`` (the plugin talks to the server through ``proxy``, which counts the requests)."""
        request, news = self.prepare(points)
        mark, cpu0 = proxy.mark(), self.plugin.cpu_seconds()
        seconds, resp = bc.timed(lambda: self.plugin.call("Update", request))
        cpu = self.plugin.cpu_seconds() - cpu0
        tally = proxy.tally(mark)
        assert not tally.failed and tally.seen and tally.seen[-1].endpoint == "runs/get", tally.describe()
        self.outputs, self.inputs = resp.properties, news
        minimal = len(bc.compact({"run_id": self.run_id, "metrics": bc.stamped(points, bc.now_ms())}))
        return Appended(seconds, cpu, tally.without_final_get(), minimal)

    def round(self, points: Sequence[Mapping[str, Any]], proxy: CountingProxy) -> str:
        """``append`` kept as a round of the benchmark; a few words for the log."""
        done = self.append(points, proxy)
        self.rounds.append(done)
        return f", {NAME} {ms(done.seconds)} ({done.writes.describe()}, {done.writes.body_bytes} B)"

    def details(self) -> dict[str, Any]:
        return {
            "update_s": [r.seconds for r in self.rounds],
            "plugin_cpu_s": [r.cpu for r in self.rounds],
            "body_bytes": [r.writes.body_bytes for r in self.rounds],
            "minimal_bytes": [r.minimal for r in self.rounds],
        }

    def rows(self, raw_s: Sequence[float], points: int) -> list[bc.Row]:
        return append_rows(self.rounds, raw_s, points, self.held_points())

    def held_points(self) -> int:
        """The points the plugin's state records as logged: the inputs' points, each one declared without a
        timestamp with one in ``stampedAt`` (the plugin keeps no second copy of the points)."""
        points = json_format.MessageToDict(self.inputs).get("metrics") or []
        stamps = json_format.MessageToDict(self.outputs).get("stampedAt") or []
        unstamped = sum(1 for p in points if p.get("timestamp") is None)
        assert sum(int(count) for _, count in stamps) == unstamped, (len(stamps), unstamped)
        return len(points)


def append_rows(rounds: Sequence[Appended], raw_s: Sequence[float], points: int, held: int) -> list[bc.Row]:
    worst = max(r.writes.count for r in rounds)
    sent = [r.writes.body_bytes for r in rounds]
    minimal = [r.minimal for r in rounds]
    ratio_bytes = max(a / b for a, b in zip(sent, minimal, strict=True))
    times = [r.seconds for r in rounds]
    per_round = [a / b for a, b in zip(times, raw_s, strict=True)]
    vs_raw = bc.median(per_round)
    return [
        bc.Row(
            f"append: native plugin requests to add 10 points to {points:,}, besides the final get",
            f"{worst} ({rounds[-1].writes.describe()})",
            "≤ 2",
            bc.verdict(worst <= 2),
        ),
        bc.Row(
            "append: native plugin bytes sent (request bodies, besides the final get)",
            f"{max(sent):,} B = {ratio_bytes:.2f}x a bare log-batch of the 10 points ({max(minimal):,} B)",
            "∝ new points (≤ 2x that)",
            bc.verdict(ratio_bytes <= 2.0),
            f"the plugin's state held {held:,} points after the rounds",
        ),
        bc.Row(
            "append: native plugin Update over gRPC / raw log-batch + get",
            f"{vs_raw:.2f}x ({ms(bc.median(times))} vs {ms(bc.median(raw_s))})",
            "≤ 2x",
            bc.verdict(vs_raw <= 2.0),
            f"plugin CPU per Update {ms(bc.median([r.cpu for r in rounds]))}; per round "
            + ", ".join(f"{x:.2f}" for x in per_round),
        ),
    ]


# ---- formatting -----------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"
