"""``metricsFile`` (issue 27): a curve read from the file a training job wrote, on both doors, side by side.

``run.py``'s section ``metrics-file`` (``python benchmarks/run.py --only metrics-file``). The runs have 5 params,
3 tags and 2 metric keys (``loss``, ``accuracy``) whose points are the rows of a CSV file with the header
``key,value,step,timestamp``, every row with its timestamp, as a training job writes it. Both doors play the
engine: the native plugin (``bench_native.NativePlugin``) and the dynamic door's ``python -m pulumi.dynamic``
host, each sent what the engine sends it:

- Check and Create/Update get the file asset whole (signature, path, and the engine's hash: the sha256 of the
  file), Diff gets every asset without its path (``elided``), Update its old outputs and old inputs so too.
  Check gets the old inputs as stored, the asset with the hash of the file when it was last checked.
- The stored inputs are what Check returned, the stored outputs what Create or Update returned.
- Every run is a resource of its own (``Door.resource``: its own URN), as a program's resources are; each timed
  create makes a new one.

Four measures, each in interleaved rounds:

1. **create** of a 20,000-point run from the file (Check before the clock, then the timed Create) against raw
   httpx sending the same points as a script does (``RawSequence``: runs/create, the fewest log-batches, runs/update);
   requests counted through the proxy.
2. **append** of 10 rows to such a run, on each door's own file: the rows are appended to the file, then Check
   and Diff (an update, no replace) before the clock, then the Update, of two runs: one the door makes through
   the proxy (its requests counted), one it makes talking to the server (its Update timed); against raw httpx's
   log-batch of the same 10 points + runs/get on a raw run of the same size, and raw httpx sending the requests
   the provider sends (runs/get, log-batch with the progress tag, runs/get), both talking to the server.
3. **state**: the compact JSON of the stored inputs and outputs (whole numbers without a fraction, as the engine
   writes state) after the create and after every append, and which keys take the bytes.
4. **preview** (Check + Diff per run) of unchanged runs: file-backed (a file of 5 rows each) against the same runs
   with the 5 points inline, and the create's 20,000-row run (its state many times: Check and Diff make no
   request); on the plugin Check gets the old inputs with the same hash, so the file needs no reading: a pass
   with every file moved away must answer the same. The order of the groups rotates from round to round.

``docs/performance.md``, "Curves from a file (metricsFile)", has the figures and what takes the time and bytes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import bench_common as bc
import bench_native
import grpc
import httpx
from bench_contenders import RawSequence
from bench_proxy import CountingProxy, Tally
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import provider_pb2

from pulumi_mlflow_runs.core.metrics_file import PROGRESS_TAG
from pulumi_mlflow_runs.native import wire
from pulumi_mlflow_runs.native.schema import RUN_TOKEN

DIFF_NONE = provider_pb2.DiffResponse.DIFF_NONE
DIFF_SOME = provider_pb2.DiffResponse.DIFF_SOME
DIFF_UNKNOWN = provider_pb2.DiffResponse.DIFF_UNKNOWN
KEYS = ("loss", "accuracy")
PARAMS = 5
TAGS = 3
HEADER = "key,value,step,timestamp\n"
T0 = 1_767_225_600_000
"""The rows' timestamps start here (2026-01-01), one millisecond per step, as a training job stamps them."""
CREATE_GOAL = 1.10
APPEND_GOAL = 2.0
STATE_GOAL_BYTES = 2048
APPEND_ROWS = 10
PREVIEW_POINTS = 5
PLUGIN = bench_native.NAME
HOST = "dynamic host"
_ASSET_CONTENTS = ("path", "text", "uri")


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


# ---- the file ------------------------------------------------------------------------------------------------


def curve(first_step: int, steps: int) -> list[dict[str, Any]]:
    """Points of ``KEYS`` for ``steps`` steps from ``first_step``, step by step, as a training loop logs them."""
    return [
        {"key": key, "value": round(1.0 / (1 + step) + k * 0.5, 6), "step": step, "timestamp": T0 + step}
        for step in range(first_step, first_step + steps)
        for k, key in enumerate(KEYS)
    ]


def rows_text(points: Sequence[Mapping[str, Any]]) -> str:
    return "".join(f"{p['key']},{p['value']},{p['step']},{p['timestamp']}\n" for p in points)


def write_curve(path: Path, points: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text(HEADER + rows_text(points))
    return path


def append_rows(path: Path, points: Sequence[Mapping[str, Any]]) -> None:
    with path.open("a") as f:
        f.write(rows_text(points))


def file_asset(path: Path) -> dict[str, Any]:
    """The asset as the engine sends it to Check, Create and Update: signature, path and its hash of the file."""
    return {wire.SIG: wire.ASSET_SIG, "hash": hashlib.sha256(path.read_bytes()).hexdigest(), "path": str(path)}


def declaration(experiment_id: str, run_name: str, *, path: Path | None = None, **extra: Any) -> dict[str, Any]:
    """A run of 5 params and 3 tags; its points in the file at ``path`` (or in ``extra``'s ``metrics``)."""
    decl: dict[str, Any] = {
        "experiment_id": experiment_id,
        "run_name": run_name,
        "status": "FINISHED",
        "params": {f"param_{i}": f"value-{i}" for i in range(PARAMS)},
        "tags": {f"team.tag_{i}": f"tag value {i}" for i in range(TAGS)},
        **extra,
    }
    if path is not None:
        decl["metrics_file"] = file_asset(path)
    return decl


# ---- the doors, as the engine drives them --------------------------------------------------------------------


def elided(struct: struct_pb2.Struct) -> struct_pb2.Struct:
    """``struct`` with each asset as the engine sends it to Diff (and as old state to Update): its hash alone."""
    out = struct_pb2.Struct()
    out.CopyFrom(struct)
    for value in out.fields.values():
        if value.WhichOneof("kind") == "struct_value" and wire.SIG in value.struct_value.fields:
            for name in _ASSET_CONTENTS:
                if name in value.struct_value.fields:
                    del value.struct_value.fields[name]
    return out


def as_stored(inputs: struct_pb2.Struct, program: struct_pb2.Struct) -> struct_pb2.Struct:
    """Check's inputs as the engine stores them: each asset in the form the program sent, the engine's hash
    included (the dynamic host gives it back without; the plugin as it got it)."""
    out = struct_pb2.Struct()
    out.CopyFrom(inputs)
    for key, value in program.fields.items():
        if value.WhichOneof("kind") == "struct_value" and wire.SIG in value.struct_value.fields and key in out.fields:
            out.fields[key].CopyFrom(value)
    return out


@dataclass
class Door:
    """One door (the plugin or the dynamic host) and the requests the engine sends it."""

    label: str
    urn: str
    type_: str
    name: str
    stub_call: Callable[[str, Any], Any]
    cpu_seconds: Callable[[], float]
    to_program: Callable[[Mapping[str, Any]], struct_pb2.Struct]
    """A declaration as the engine sends it to Check."""

    @classmethod
    def plugin(cls, plugin: bench_native.NativePlugin) -> Door:
        return cls(
            PLUGIN, plugin.urn, RUN_TOKEN, plugin.name, plugin.call, plugin.cpu_seconds, bench_native.inputs_struct
        )

    @classmethod
    def host(cls, host: bc.DynamicHost, blob: str) -> Door:
        def to_program(decl: Mapping[str, Any]) -> struct_pb2.Struct:
            return bc.to_struct(bc.with_provider(decl, blob))

        return cls(
            HOST,
            host.urn,
            bc.RESOURCE_TYPE,
            host.name,
            lambda method, request: bc.rpc_call(host, method, request),
            lambda: bc.process_cpu_seconds(host.process.pid),
            to_program,
        )

    def resource(self, name: str) -> Door:
        """This door as the engine addresses a resource ``name`` of the program: its own URN. The plugin keys a
        run by its resource's URN, and a create takes back a complete run of its key that the state does not
        hold: resources sharing one URN would take each other's runs instead of making their own."""
        return replace(self, urn=f"{self.urn.rsplit('::', 1)[0]}::{name}", name=name)

    def call(self, method: str, request: Any) -> Any:
        return self.stub_call(method, request)

    def check(self, news: struct_pb2.Struct, olds: struct_pb2.Struct | None = None) -> struct_pb2.Struct:
        """Check as the engine sends it; the inputs as the engine then stores them."""
        resp = self.call(
            "Check", provider_pb2.CheckRequest(urn=self.urn, type=self.type_, name=self.name, olds=olds, news=news)
        )
        if resp.failures:
            raise RuntimeError(f"{self.label}: Check failed: {[(f.property, f.reason) for f in resp.failures]}")
        return as_stored(resp.inputs, news)

    def create_request(self, checked: struct_pb2.Struct) -> Any:
        return provider_pb2.CreateRequest(urn=self.urn, type=self.type_, name=self.name, properties=checked)

    def diff(self, id_: str, outputs: Any, news: Any, old_inputs: Any) -> Any:
        return self.call(
            "Diff",
            provider_pb2.DiffRequest(
                id=id_, urn=self.urn, type=self.type_, name=self.name, olds=elided(outputs), news=elided(news),
                old_inputs=elided(old_inputs),
            ),
        )  # fmt: skip

    def update_request(self, id_: str, outputs: Any, news: Any, old_inputs: Any) -> Any:
        return provider_pb2.UpdateRequest(
            id=id_, urn=self.urn, type=self.type_, name=self.name, olds=elided(outputs), news=news,
            old_inputs=elided(old_inputs),
        )  # fmt: skip


@dataclass
class Made:
    """A run a door made, and its state entry as the engine keeps it."""

    name: str
    """Its resource's name (``Door.resource``): every later call about it is addressed to its URN."""
    id: str
    program: struct_pb2.Struct
    """What the program sends (Check's news)."""
    inputs: struct_pb2.Struct
    """Stored inputs (Check's, the asset with its hash)."""
    outputs: struct_pb2.Struct
    """Stored outputs (Create's or Update's)."""
    decl: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def make(door: Door, name: str, decl: Mapping[str, Any], path: Path | None = None) -> Made:
    """Resource ``name``'s run: Check, then Create."""
    door = door.resource(name)
    program = door.to_program(decl)
    inputs = door.check(program)
    resp = door.call("Create", door.create_request(inputs))
    return Made(name, str(resp.id), program, inputs, resp.properties, dict(decl), path)


def create_request(door: Door, name: str, decl: Mapping[str, Any]) -> Any:
    """The Create of resource ``name``, Checked first (Check is not what the create measures)."""
    door = door.resource(name)
    return door.create_request(door.check(door.to_program(decl)))


# ---- state bytes ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntrySize:
    """The compact JSON of a state entry's inputs and outputs, and the keys that take the bytes."""

    inputs: int
    outputs: int
    by_key: list[tuple[str, int]]
    """``inputs.<key>`` and ``outputs.<key>`` with their bytes, largest first."""
    provider_blob: int = 0
    """The dynamic door's ``__provider`` (in both), included in the totals."""
    entry: dict[str, Any] = field(default_factory=dict, compare=False)
    """The inputs and outputs as the engine writes them."""

    @property
    def total(self) -> int:
        return self.inputs + self.outputs

    @classmethod
    def of(cls, inputs: struct_pb2.Struct, outputs: struct_pb2.Struct) -> EntrySize:
        parts = {"inputs": json_format.MessageToDict(inputs), "outputs": json_format.MessageToDict(outputs)}
        by_key = sorted(
            ((f"{where}.{k}", bench_native.json_bytes(v)) for where, d in parts.items() for k, v in d.items()),
            key=lambda kv: -kv[1],
        )
        blob = sum(n for k, n in by_key if k.endswith(f".{bc.PROVIDER_KEY}"))
        sizes = (bench_native.json_bytes(parts["inputs"]), bench_native.json_bytes(parts["outputs"]))
        return cls(*sizes, by_key, blob, parts)

    def describe(self, top: int = 6) -> str:
        return ", ".join(f"{k} {n:,}" for k, n in self.by_key[:top])


# ---- 1. create ------------------------------------------------------------------------------------------------


def _history_length(url: str, run_id: str, key: str) -> int:
    resp = httpx.get(
        f"{url}/api/2.0/mlflow/metrics/get-history",
        params={"run_id": run_id, "metric_key": key, "max_results": 100_000},
        timeout=120,
    )
    resp.raise_for_status()
    return len(resp.json().get("metrics") or [])


def verify_run(url: str, run_id: str, points: int) -> None:
    """The run holds every point of the file, the params and the tags, and is FINISHED."""
    run = httpx.get(f"{url}{bc.RUNS}/get", params={"run_id": run_id}, timeout=60).json()["run"]
    assert run["info"]["status"] == "FINISHED", run["info"]
    assert len(run["data"].get("params", [])) == PARAMS, "params differ"
    held = sum(_history_length(url, run_id, key) for key in KEYS)
    assert held == points, f"the run holds {held} points, not {points}"


@dataclass
class Counted:
    """A door's create through the counting proxy."""

    first: Tally
    steady: Tally
    made: Made


def counted_create(door: Door, decl: Mapping[str, Any], proxy: CountingProxy, verify: Callable[[str], None]) -> Counted:
    """Creates of two resources through ``proxy``: the plugin's first in an experiment also searches it once (for
    a create an interrupted ``up`` left unfinished); the second is the per-create count."""
    tallies, made = [], None
    for i in range(2):
        name = f"{decl['run_name']}-counted-{i}"
        mark = proxy.mark()
        made = make(door, name, decl)
        tallies.append(proxy.tally(mark))
        assert not tallies[-1].failed, f"{door.label}: failed requests {tallies[-1].failed}"
        verify(made.id)
    assert made is not None
    return Counted(tallies[0], tallies[1], made)


def minimum_create_requests(points: int) -> int:
    """runs/create, the fewest log-batches for the points, params and tags, runs/update."""
    return 1 + bc.min_batches(PARAMS, TAGS, points, 0) + 1


# ---- 2. append -------------------------------------------------------------------------------------------------


@dataclass
class AppendRound:
    seconds: float
    cpu: float
    writes: Tally
    """The requests besides the final runs/get."""
    minimal: int
    """The bytes of a bare log-batch of the same points."""
    state: EntrySize


class FileAppend:
    """A door's two runs from one file, which grows by ``APPEND_ROWS`` rows a round: the rows are appended, then
    for each run Check (old inputs with the old hash) and Diff (an update, no replace) before the clock, then the
    Update, as ``pulumi up`` sends them after its preview. The ``timed`` door talks to the server (its Update is
    timed), the ``counted`` one through the proxy (its requests are counted), as in the rest of ``run.py``."""

    def __init__(self, timed: Door, counted: Door, decl: dict[str, Any], path: Path) -> None:
        self.timed, self.counted = timed, counted
        self.path = path
        self.decl = decl
        slug = str(decl["run_name"]).replace(" ", "-")
        self.runs = {
            "timed": make(timed, f"{slug}-timed", decl, path),
            "counted": make(counted, f"{slug}-counted", decl, path),
        }
        self.created = EntrySize.of(self.runs["timed"].inputs, self.runs["timed"].outputs)
        self.rounds: list[AppendRound] = []

    def _prepared(self, door: Door, run: Made) -> tuple[Any, struct_pb2.Struct, struct_pb2.Struct]:
        """(the UpdateRequest, the program's inputs, the checked inputs): Check and Diff done."""
        door = door.resource(run.name)
        program = door.to_program(self.decl)
        news = door.check(program, run.inputs)
        diff = door.diff(run.id, run.outputs, news, run.inputs)
        assert diff.changes in (DIFF_SOME, DIFF_UNKNOWN) and not diff.replaces, (diff.changes, list(diff.replaces))
        return door.update_request(run.id, run.outputs, news, run.inputs), program, news

    def round(self, points: Sequence[Mapping[str, Any]], proxy: CountingProxy) -> str:
        append_rows(self.path, points)
        self.decl["metrics_file"] = file_asset(self.path)
        counted = self.runs["counted"]
        request, program, news = self._prepared(self.counted, counted)
        mark = proxy.mark()
        resp = self.counted.call("Update", request)
        tally = proxy.tally(mark)
        assert not tally.failed and tally.seen and tally.seen[-1].endpoint == "runs/get", tally.describe()
        counted.program, counted.inputs, counted.outputs = program, news, resp.properties
        run, door = self.runs["timed"], self.timed
        request, program, news = self._prepared(door, run)
        cpu0 = door.cpu_seconds()
        seconds, resp = bc.timed(lambda: door.call("Update", request))
        cpu = door.cpu_seconds() - cpu0
        run.program, run.inputs, run.outputs = program, news, resp.properties
        minimal = len(bc.compact({"run_id": run.id, "metrics": list(points)}))
        done = AppendRound(seconds, cpu, tally.without_final_get(), minimal, EntrySize.of(news, resp.properties))
        self.rounds.append(done)
        return f", {door.label} {ms(seconds)} ({done.writes.describe()}, {done.writes.body_bytes} B)"

    def logged_rows(self) -> int:
        rows = set()
        for run in self.runs.values():
            logged = json_format.MessageToDict(run.outputs)
            logged = logged.get("metricsFileLogged", logged.get("metrics_file_logged")) or {}
            rows.add(int(logged.get("rows", 0)))
        (only,) = rows
        return only


def raw_design_append(raw: RawSequence, run_id: str, points: Sequence[Mapping[str, Any]], n: int) -> None:
    """The requests an append of file rows takes on either door, sent by raw httpx: runs/get (the provider reads the
    progress tag there), log-batch of the points with the progress tag (a value as long as the provider's), runs/get.
    """
    progress = bc.compact({"rows": 20_000 + n, "bytes": 700_000 + n, "sha256": "0" * 64, "stamp": bc.now_ms()})
    raw.client.get(f"{bc.RUNS}/get", params={"run_id": run_id}).raise_for_status()
    body = {"run_id": run_id, "metrics": list(points), "tags": [{"key": PROGRESS_TAG, "value": progress.decode()}]}
    raw.client.post(
        f"{bc.RUNS}/log-batch", content=bc.compact(body), headers={"Content-Type": "application/json"}
    ).raise_for_status()
    raw.client.get(f"{bc.RUNS}/get", params={"run_id": run_id}).raise_for_status()


# ---- 4. preview -------------------------------------------------------------------------------------------------


def make_many(door: Door, decls: Sequence[tuple[Mapping[str, Any], Path | None]]) -> list[Made]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda dp: make(door, str(dp[0]["run_name"]), dp[0], dp[1]), decls))


def preview_pass(door: Door, runs: Sequence[Made]) -> None:
    """What ``pulumi preview`` sends for an unchanged resource: Check(old inputs, program inputs), then
    Diff(old outputs, checked inputs, old inputs), assets elided; each addressed to its resource."""
    for run in runs:
        it = door.resource(run.name)
        resp = it.call(
            "Check",
            provider_pb2.CheckRequest(urn=it.urn, type=it.type_, name=it.name, olds=run.inputs, news=run.program),
        )
        assert not resp.failures, [(f.property, f.reason) for f in resp.failures]
        diff = it.diff(run.id, run.outputs, as_stored(resp.inputs, run.program), run.inputs)
        assert diff.changes == DIFF_NONE, (it.label, diff.changes, list(diff.replaces), list(diff.diffs))


def timed_preview(door: Door, runs: Sequence[Made]) -> tuple[float, float]:
    """(wall, the door's CPU) seconds per resource of one preview pass."""
    cpu0, t0 = door.cpu_seconds(), time.perf_counter()
    preview_pass(door, runs)
    return (time.perf_counter() - t0) / len(runs), (door.cpu_seconds() - cpu0) / len(runs)


def moved_away(runs: Sequence[Made]) -> list[tuple[Path, Path]]:
    """Renames every run's file; returns (away, home) pairs for ``moved_back``."""
    moves = []
    for run in runs:
        assert run.path is not None
        away = run.path.with_name(run.path.name + ".away")
        os.replace(run.path, away)
        moves.append((away, run.path))
    return moves


def moved_back(moves: Sequence[tuple[Path, Path]]) -> None:
    for away, home in moves:
        os.replace(away, home)


# ---- the section ------------------------------------------------------------------------------------------------


@dataclass
class Setting:
    """What ``run.py`` hands the section."""

    rounds: int
    points: int
    preview_runs: int
    workdir: Path
    server_url: str
    proxy: CountingProxy
    wide_url: str
    log: Callable[[str], None]


@dataclass
class Doors:
    """Each door three times, as ``run.py`` has them: to the server (timed creates), through the counting proxy
    (counts, appends, previews), and to the 4-worker server (makes the preview's runs)."""

    direct: dict[str, Door]
    counted: dict[str, Door]
    wide: dict[str, Door]


def run_section(s: Setting, doors: Doors, experiment_id: str, create_experiment: Callable[[str, str], str]) -> tuple[
    list[bc.Row], dict[str, Any]
]:  # fmt: skip
    """The four measures, in order: create, append, state, preview; the table's rows and every raw number."""
    section = Section(s, doors, experiment_id, s.workdir / "metrics-file")
    section.folder.mkdir(exist_ok=True)
    created = section.create()
    appends = section.append()
    section.state(created, appends)
    section.preview(create_experiment(s.wide_url, "bench-metrics-file-preview"), created)
    return section.rows, section.details


@dataclass
class Section:
    s: Setting
    doors: Doors
    experiment_id: str
    folder: Path
    rows: list[bc.Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def unpack(self) -> tuple[Setting, Doors, list[bc.Row], dict[str, Any], str, Path]:
        return self.s, self.doors, self.rows, self.details, self.experiment_id, self.folder

    def create(self) -> dict[str, Counted]:
        s, doors, rows, details, experiment_id, folder = self.unpack()
        path = write_curve(folder / "create.csv", curve(0, s.points // len(KEYS)))
        decl = declaration(experiment_id, "file-create", path=path)
        raw_decl = {k: v for k, v in decl.items() if k != "metrics_file"} | {"metrics": curve(0, s.points // len(KEYS))}
        s.log(f"metrics-file create: {s.points:,} points from a file ({path.stat().st_size:,} B); counting requests")
        verify: Callable[[str], None] = lambda run_id: verify_run(s.server_url, run_id, s.points)  # noqa: E731
        counted = {name: counted_create(door, decl, s.proxy, verify) for name, door in doors.counted.items()}
        # The script's requests: the provider no longer reads a created run back where nothing can be cut.
        raw_counted = RawSequence(s.proxy.url, read_back=False)
        mark = s.proxy.mark()
        verify(raw_counted.create(raw_decl))
        raw_tally = s.proxy.tally(mark)
        raw_counted.close()

        raw = RawSequence(s.server_url, read_back=False)
        timed: dict[str, Callable[[], Any]] = {"raw httpx": lambda: raw.create(raw_decl)}
        cpu_of: dict[str, Callable[[], float]] = {"raw httpx": time.process_time}
        for name, door in doors.direct.items():  # Check before the clock: the timed call is the Create
            # of a resource of its own each time (the warm-up, then each round), as a program's resources are
            requests = iter([create_request(door, f"file-create-{i}", decl) for i in range(s.rounds + 1)])
            timed[name] = lambda door=door, requests=requests: door.call("Create", next(requests))
            cpu_of[name] = door.cpu_seconds
        # the warm-up call also makes the plugin's once-per-experiment search
        times, cpu = bc.interleaved(
            timed,
            cpu_of,
            s.rounds,
            lambda r, seen: s.log(
                f"metrics-file create round {r}: " + ", ".join(f"{n} {ms(t[-1])}" for n, t in seen.items())
            ),
        )
        raw.close()
        minimum = minimum_create_requests(s.points)
        details["create"] = {
            "points": s.points,
            "file_bytes": path.stat().st_size,
            "times_s": times,
            "cpu_s": cpu,
            "requests": {n: dict(c.steady.by_endpoint()) for n, c in counted.items()},
            "raw_requests": dict(raw_tally.by_endpoint()),
            "first_create_requests": {n: dict(c.first.by_endpoint()) for n, c in counted.items()},
        }
        med = {name: bc.median(t) for name, t in times.items()}
        for name in doors.direct:
            per_round = [a / b for a, b in zip(times[name], times["raw httpx"], strict=True)]
            ratio = bc.median(per_round)
            rows.append(
                bc.Row(
                    f"metricsFile create ({s.points:,} points): {name} / raw httpx",
                    f"{ratio:.3f}x ({ms(med[name])} vs {ms(med['raw httpx'])})",
                    f"≤ {CREATE_GOAL:.2f}x",
                    bc.verdict(ratio <= CREATE_GOAL),
                    "per round " + ", ".join(f"{x:.2f}" for x in per_round),
                )
            )
        rows.append(
            bc.Row(
                "metricsFile create: CPU per create (info)",
                ", ".join(f"{n} {ms(bc.median(cpu[n]))}" for n in (*doors.direct, "raw httpx"))
                + " (the plugin's and the host's process; this process for raw)",
                "-",
                "info",
                "10 ms clock ticks",
            )
        )
        for name, c in counted.items():
            first = c.first.count - c.steady.count
            rows.append(
                bc.Row(
                    f"metricsFile create: {name} requests",
                    f"{c.steady.count} ({c.steady.describe()}); raw {raw_tally.count} ({raw_tally.describe()})",
                    f"info (the minimum {minimum})",
                    "info",
                    "each log-batch of file rows carries ≤ 999 rows and the progress tag, the last one the params, "
                    "the tags and the completion mark too; no runs/get (the outputs are built from what was sent)"
                    + (
                        f"; its first create in the experiment sent {c.first.count} ({c.first.describe()})"
                        if first
                        else ""
                    ),
                )
            )
        return counted

    def append(self) -> dict[str, FileAppend]:
        s, doors, rows, details, experiment_id, folder = self.unpack()
        steps = s.points // len(KEYS)
        s.log(f"metrics-file append: two runs of {s.points:,} points from one file on each door, and raw ones")
        appends = {}
        for name, door in doors.counted.items():
            path = write_curve(folder / f"append-{name.replace(' ', '-')}.csv", curve(0, steps))
            decl = declaration(experiment_id, f"file-append-{name}", path=path)
            appends[name] = FileAppend(doors.direct[name], door, decl, path)
        raw = RawSequence(s.server_url)
        raw_id = raw.create(declaration(experiment_id, "file-append-raw", metrics=curve(0, steps)))
        design_id = raw.create(declaration(experiment_id, "file-append-raw-design", metrics=curve(0, steps)))
        raw_s: list[float] = []
        design_s: list[float] = []
        per_step = APPEND_ROWS // len(KEYS)
        for r in range(s.rounds):
            points = curve(steps + r * per_step, per_step)
            raw_s.append(bc.timed(lambda pts=points: raw.append(raw_id, pts))[0])
            design_s.append(bc.timed(lambda pts=points, n=r: raw_design_append(raw, design_id, pts, n))[0])
            said = "".join(a.round(points, s.proxy) for a in appends.values())
            s.log(f"metrics-file append round {r + 1}: raw {ms(raw_s[-1])}, raw design {ms(design_s[-1])}{said}")
        raw.close()
        design = [d / r for d, r in zip(design_s, raw_s, strict=True)]
        rows.append(
            bc.Row(
                "metricsFile append: raw httpx sending the provider's requests (runs/get, log-batch of the points "
                "and the progress tag, runs/get) / raw log-batch + get (info)",
                f"{bc.median(design):.2f}x ({ms(bc.median(design_s))} vs {ms(bc.median(raw_s))})",
                "-",
                "info",
                "what the design costs before any CPU of a door; per round " + ", ".join(f"{x:.2f}" for x in design),
            )
        )
        details["append"] = {"raw_s": raw_s, "raw_design_s": design_s} | {
            name: {
                "update_s": [x.seconds for x in a.rounds],
                "cpu_s": [x.cpu for x in a.rounds],
                "requests": [dict(x.writes.by_endpoint()) for x in a.rounds],
                "body_bytes": [x.writes.body_bytes for x in a.rounds],
                "minimal_bytes": [x.minimal for x in a.rounds],
                "state_bytes": [x.state.total for x in a.rounds],
                "logged_rows": a.logged_rows(),
            }
            for name, a in appends.items()
        }
        for name, a in appends.items():
            times = [x.seconds for x in a.rounds]
            per_round = [t / r for t, r in zip(times, raw_s, strict=True)]
            ratio = bc.median(per_round)
            worst = max(x.writes.count for x in a.rounds)
            sent = [x.writes.body_bytes for x in a.rounds]
            minimal = [x.minimal for x in a.rounds]
            bytes_ratio = max(b / m for b, m in zip(sent, minimal, strict=True))
            over_design = bc.median([t / d for t, d in zip(times, design_s, strict=True)])
            rows += [
                bc.Row(
                    f"metricsFile append: {name} Update of {APPEND_ROWS} rows on {s.points:,} / raw log-batch + get",
                    f"{ratio:.2f}x ({ms(bc.median(times))} vs {ms(bc.median(raw_s))})",
                    f"≤ {APPEND_GOAL:.0f}x",
                    bc.verdict(ratio <= APPEND_GOAL),
                    f"{name} CPU per Update {ms(bc.median([x.cpu for x in a.rounds]))}; {over_design:.2f}x raw "
                    "httpx sending the same requests; per round " + ", ".join(f"{x:.2f}" for x in per_round),
                ),
                bc.Row(
                    f"metricsFile append: {name} requests besides the final get",
                    f"{worst} ({a.rounds[-1].writes.describe()})",
                    "≤ 2",
                    bc.verdict(worst <= 2),
                ),
                bc.Row(
                    f"metricsFile append: {name} bytes sent (request bodies, besides the final get)",
                    f"{max(sent):,} B = {bytes_ratio:.2f}x a bare log-batch of the {APPEND_ROWS} points "
                    f"({max(minimal):,} B)",
                    "∝ new rows (≤ 2x that)",
                    bc.verdict(bytes_ratio <= 2.0),
                    f"{a.logged_rows():,} rows logged after the rounds",
                ),
            ]
        return appends

    def state(self, created: Mapping[str, Counted], appends: Mapping[str, FileAppend]) -> None:
        _, _, rows, details, _, _ = self.unpack()
        details["state"] = {}
        for name, c in created.items():
            at_create = EntrySize.of(c.made.inputs, c.made.outputs)
            a = appends[name]
            sizes = [a.created, *(x.state for x in a.rounds)]
            worst = max(sizes, key=lambda e: e.total)
            largest = max(at_create, worst, key=lambda e: e.total)
            details["state"][name] = {
                "create": {"inputs": at_create.inputs, "outputs": at_create.outputs, "by_key": at_create.by_key},
                "append_run": [{"inputs": e.inputs, "outputs": e.outputs} for e in sizes],
                "by_key_after_appends": sizes[-1].by_key,
                "entry_after_appends": sizes[-1].entry,
            }
            blob = f"; of which __provider {largest.provider_blob:,} B (inputs and outputs)"
            blob = blob if largest.provider_blob else ""
            rows.append(
                bc.Row(
                    f"metricsFile state: {name}, inputs + outputs (compact JSON), 5 params, 3 tags, 2 keys",
                    f"{largest.total:,} B at most: after the create {at_create.total:,} B "
                    f"(inputs {at_create.inputs:,}, outputs {at_create.outputs:,}); the append run after its create "
                    f"and each of {len(a.rounds)} appends {', '.join(f'{e.total:,}' for e in sizes)} B{blob}",
                    f"≤ {STATE_GOAL_BYTES:,} B",
                    bc.verdict(largest.total <= STATE_GOAL_BYTES),
                    f"largest: {largest.describe()}",
                )
            )

    def preview(self, exp: str, created: Mapping[str, Counted]) -> None:
        s, doors, rows, details, _, folder = self.unpack()
        n = s.preview_runs
        few = curve(0, 3)[:PREVIEW_POINTS]
        runs: dict[tuple[str, str], list[Made]] = {}
        for name, door in doors.wide.items():
            s.log(f"metrics-file preview: creating {n} file-backed and {n} inline runs with the {name}")
            slug = name.replace(" ", "-")
            with_file = []
            for i in range(n):
                path = write_curve(folder / f"preview-{slug}-{i:03d}.csv", few)
                with_file.append((declaration(exp, f"{slug}-file-{i:03d}", path=path), path))
            inline = [(declaration(exp, f"{slug}-inline-{i:03d}", metrics=few), None) for i in range(n)]
            runs[(name, "file")] = make_many(door, with_file)
            runs[(name, "inline")] = make_many(door, inline)
            # The create's run (its file of s.points rows), unchanged, as many times: Check and Diff make no
            # request, so one run's state stands for many. The dynamic host reads the whole file in every Check
            # (its host is handed no hash): 10 times a round are enough to see it.
            big = created[name].made
            big.path = folder / "create.csv"
            runs[(name, "long file")] = [big] * (n if name == PLUGIN else min(n, 10))
        no_read = None
        if PLUGIN in doors.counted:  # handed the file's unchanged hash, the plugin reads no file: moved away, the
            # pass answers the same
            plugin_files = [*runs[(PLUGIN, "file")], runs[(PLUGIN, "long file")][0]]
            moves = moved_away(plugin_files)
            try:
                preview_pass(doors.counted[PLUGIN], plugin_files)
                no_read = True
            except (AssertionError, RuntimeError, grpc.RpcError):
                no_read = False
            finally:
                moved_back(moves)
        kinds = ("inline", "file", "long file")
        walls: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
        cpus: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
        seen: list[Any] = []
        for name, door in doors.counted.items():  # first calls: imports, the host's unpickling
            for kind in kinds:
                preview_pass(door, runs[(name, kind)][:1])
        for r in range(s.rounds):
            for name, door in doors.counted.items():
                for kind in kinds[r % 3 :] + kinds[: r % 3]:  # the order rotates from round to round
                    mark = s.proxy.mark()
                    wall, cpu = timed_preview(door, runs[(name, kind)])
                    seen += s.proxy.tally(mark).seen
                    walls[(name, kind)].append(wall)
                    cpus[(name, kind)].append(cpu)
            s.log(
                f"metrics-file preview round {r + 1}, per resource: "
                + ", ".join(f"{d} {k} {ms(w[-1])}" for (d, k), w in walls.items())
            )
        tally = Tally(seen)
        details["preview"] = {
            "runs": {f"{d} {k}": len(group) for (d, k), group in runs.items()},
            "wall_per_resource_s": {f"{d} {k}": w for (d, k), w in walls.items()},
            "door_cpu_per_resource_s": {f"{d} {k}": c for (d, k), c in cpus.items()},
            "requests": dict(tally.by_endpoint()),
            "plugin_reads_no_file": no_read,
        }
        for name in doors.counted:
            for kind, label in (("file", f"a {PREVIEW_POINTS}-row file"), ("long file", f"a {s.points:,}-row file")):
                per_round = [f / i for f, i in zip(walls[(name, kind)], walls[(name, "inline")], strict=True)]
                ratio = bc.median(per_round)
                count = len(runs[(name, kind)])
                note = f"{count} Check+Diff of the create's run a round; " if count != n or kind == "long file" else ""
                if name == HOST and kind == "long file":
                    note += "the dynamic host is handed no hash: its Check reads the whole file; "
                rows.append(
                    bc.Row(
                        f"metricsFile preview: unchanged runs, {name}, {label} / {PREVIEW_POINTS} inline points "
                        f"({n} runs)",
                        f"{ratio:.2f}x ({ms(bc.median(walls[(name, kind)]))} vs "
                        f"{ms(bc.median(walls[(name, 'inline')]))} per resource; {name} CPU "
                        f"{ms(bc.median(cpus[(name, kind)]))} vs {ms(bc.median(cpus[(name, 'inline')]))})",
                        "≤ 1.00x",
                        bc.verdict(ratio <= 1.0),
                        note + "per round " + ", ".join(f"{x:.2f}" for x in per_round),
                    )
                )
        if no_read is not None:
            rows.append(
                bc.Row(
                    f"metricsFile preview: files the native plugin reads in a preview of {n + 1} unchanged runs",
                    "none: the same pass with every file moved away answers no change" if no_read else "it read them",
                    "none (hash unchanged)",
                    bc.verdict(no_read),
                )
            )
        rows.append(
            bc.Row(
                f"metricsFile preview: requests for {sum(len(g) for g in runs.values())} Check+Diff x{s.rounds}, "
                "both doors",
                f"{tally.count} ({tally.describe()})",
                "0",
                bc.verdict(tally.count == 0),
            )
        )
