"""The provider under the real Pulumi CLI: ``python benchmarks/bench_cli.py [--runs N] [--rounds R] [--json F]``.

Against one local MLflow server (sqlite, one worker, loopback, work files on /dev/shm when there is one),
each contender once per round, the order rotated from round to round:

- ``pulumi up`` of a program with an ``Experiment`` and N ``ExperimentRun`` resources (5 params, 10 metric
  points, 3 tags each) on a fresh stack, through the real CLI (``scripts/pulumi-cli.sh``), the program
  running as an Automation API inline program;
- the same program from a project folder, as users run it: ``pulumi up`` in the folder of its
  ``Pulumi.yaml``, the CLI starting the Python language host, which runs the program in its own process;
- a plain serial ``MlflowClient`` script making the same runs, in its own interpreter (a *subprocess*:
  interpreter start and imports included; an experiment, then per run create_run, log_batch, set_terminated);
- the same program shape on the trivial dynamic provider (``bench_trivial.py``, echoing its inputs): the
  engine's own floor;
- both ``up`` again with ``PULUMI_SKIP_CHECKPOINTS=true`` (the file backend then writes the state once at the
  end instead of after every step), to show what the per-step checkpoints cost;
- ``pulumi preview`` of the provider's (inline and project folder) and the floor's stacks just made (N
  unchanged resources);
- the state bytes of one run, from ``pulumi stack export``, inline and from the project folder;
- once, not timed: the requests per run of an ``up`` through the counting proxy (``bench_proxy.py``);
- with ``--scaling 100,200,400``: ``up`` of the floor once at each size, with and without checkpoints.

The time of an ``up`` or ``preview`` is the CLI command itself, from starting ``pulumi`` to its exit (the
inline program included); the Automation API's follow-up commands (``stack output``, ``stack history``) are
left out. Next to each time, the CPU it cost by process: the CLI, the provider host, this process (the inline
program), the MLflow server. Ratios are medians of the per-round ratios. Nothing here is a timed assertion.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import bench_common as bc
import pulumi.dynamic as dyn
from bench_proxy import CountingProxy
from bench_server import start_server
from bench_trivial import TrivialProvider
from run import _verify_run, log, render

from pulumi_mlflow_runs.core.definitions import camel

from support.mlflow_server import MlflowServer
from support.project import project_folder
from support.pulumi_cli import changes, find_cli, new_stack

SHAPE = bc.Shape(params=5, tags=3, metric_keys=2, steps=5)
"""Each run: 5 params, 10 metric points (2 keys x 5 steps), 3 tags, status FINISHED."""
PROJECT = "mlflow-runs-bench-cli"
RUN_TYPE = ":ExperimentRun"
TRIVIAL_RUN_TYPE = ":TrivialRun"
NO_CHECKPOINTS = {"PULUMI_SKIP_CHECKPOINTS": "true"}
FOLDER = "provider, project folder"
NATIVE = "native plugin, YAML"
UPS = ("provider", FOLDER, NATIVE, "script", "floor", "provider, no checkpoints", "floor, no checkpoints")
PREVIEWS = ("provider", FOLDER, NATIVE, "floor")


def secs(seconds: float) -> str:
    return f"{seconds:.2f} s"


# ---- the programs and the script ----------------------------------------------------------------------------


_BATCH_SETITEMS = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]


def _fresh_process_pickler() -> None:
    """Undo what earlier programs in this process did to ``pickle``, as if this program ran in a fresh process.

    The SDK's ``serialize_provider`` (pulumi 3.272) wraps ``pickle._Pickler._batch_setitems`` once more on every
    call and never unwraps it, so the ~985th dynamic resource serialized in one process fails with
    RecursionError. ``pulumi up`` runs a program in a new process; inline programs here all run in this one.
    """
    pickle._Pickler._batch_setitems = _BATCH_SETITEMS  # type: ignore[attr-defined]


def run_declarations(runs: int) -> list[dict[str, Any]]:
    """The N runs' inputs; ``experiment_id`` is filled in by each contender."""
    return [bc.declaration("", SHAPE, f"run-{i:04d}") for i in range(runs)]


def provider_program(experiment_name: str, decls: Sequence[Mapping[str, Any]]) -> Callable[[], None]:
    def program() -> None:
        from pulumi_mlflow_runs import Experiment, ExperimentRun

        _fresh_process_pickler()
        exp = Experiment("experiment", name=experiment_name)
        for decl in decls:
            ExperimentRun(str(decl["run_name"]), **{**decl, "experiment_id": exp.experiment_id})

    return program


class TrivialExperiment(dyn.Resource, module="bench", name="TrivialExperiment"):
    pass


class TrivialRun(dyn.Resource, module="bench", name="TrivialRun"):
    pass


def trivial_program(experiment_name: str, decls: Sequence[Mapping[str, Any]]) -> Callable[[], None]:
    """The same resources, inputs and dependency on the experiment; the provider echoes its inputs."""

    def program() -> None:
        _fresh_process_pickler()
        provider = TrivialProvider()
        provider.serialize_as_secret_always = False  # a plain blob in state, as ExperimentRunProvider's
        exp = TrivialExperiment(provider, "experiment", {"name": experiment_name})
        for decl in decls:
            TrivialRun(provider, str(decl["run_name"]), {**decl, "experiment_id": exp.id})

    return program


_SERIAL_SCRIPT = r"""
import json, sys, time
started = time.perf_counter()
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
spec = json.loads(sys.stdin.read())
client = MlflowClient(tracking_uri=spec["tracking_uri"])
ready = time.perf_counter()
experiment_id = client.create_experiment(spec["experiment_name"])
run_ids = []
for d in spec["runs"]:
    now = time.time_ns() // 1_000_000
    run_id = client.create_run(experiment_id, start_time=now, run_name=d["run_name"]).info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric(p["key"], p["value"], now, p["step"]) for p in d["metrics"]],
        params=[Param(k, v) for k, v in d["params"].items()],
        tags=[RunTag(k, v) for k, v in d["tags"].items()],
    )
    client.set_terminated(run_id, d["status"])
    run_ids.append(run_id)
done = time.perf_counter()
print(json.dumps({"startup_s": ready - started, "work_s": done - ready, "run_ids": run_ids}))
"""


def serial_script(tracking_uri: str, experiment_name: str, decls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The plain serial MlflowClient script in its own interpreter; ``wall_s`` from its start to its exit."""
    spec = json.dumps({"tracking_uri": tracking_uri, "experiment_name": experiment_name, "runs": list(decls)})
    started = time.perf_counter()
    proc = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", _SERIAL_SCRIPT], input=spec, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"the MlflowClient script failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


# ---- stacks, and the time and CPU of one CLI command ----------------------------------------------------------


class TimedStack:
    """An ``auto.Stack`` whose CLI commands are timed one by one (``pulumi up``, not the follow-up queries)."""

    def __init__(self, bin_dir: Path, work: Path, name: str, program: Callable[[], None], env: Mapping[str, str]):
        self.stack = new_stack(bin_dir, work, program, env, project=PROJECT, stack=name)
        self.commands: list[tuple[str, float]] = []
        command = self.stack.workspace.pulumi_command
        run = command.run

        def timed_run(args: list[str], *rest: Any, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return run(args, *rest, **kw)
            finally:
                verb = next(a for a in args if not a.startswith("-"))
                self.commands.append((verb, time.perf_counter() - started))

        command.run = timed_run

    def _last(self, verb: str) -> float:
        return next(t for v, t in reversed(self.commands) if v == verb)

    def up(self, expected: int) -> float:
        result = self.stack.up()
        made = changes(result.summary.resource_changes)
        if made != {"create": expected}:
            raise RuntimeError(f"up: expected {expected} creates, got {made}\n{result.stdout[-3000:]}")
        return self._last("up")

    def preview(self, expected: int) -> float:
        result = self.stack.preview()
        seen = changes(result.change_summary)
        if seen != {"same": expected}:
            raise RuntimeError(f"preview: expected {expected} unchanged, got {seen}\n{result.stdout[-3000:]}")
        return self._last("preview")

    def resources(self) -> list[dict[str, Any]]:
        return list(self.stack.export_stack().deployment.get("resources") or [])


_FOLDER_PROGRAM = """\
import json
from pathlib import Path

from pulumi_mlflow_runs import Experiment, ExperimentRun

spec = json.loads((Path(__file__).parent / "bench.json").read_text())
exp = Experiment("experiment", name=spec["experiment"])
for decl in spec["runs"]:
    ExperimentRun(decl["run_name"], **{**decl, "experiment_id": exp.experiment_id})
"""


class FolderStack:
    """The provider's program in a project folder of its own, run as a user runs it (``support.project``).

    The folder holds ``Pulumi.yaml`` (``virtualenv: .venv``, a link to this checkout's), ``__main__.py`` and
    the declarations; the time is the ``pulumi`` command from start to exit.
    """

    def __init__(
        self, bench: Bench, name: str, decls: Sequence[Mapping[str, Any]], extra_env: Mapping[str, str] | None = None
    ) -> None:
        folder = bench.work / "folders" / name
        folder.mkdir(parents=True)
        (folder / ".venv").symlink_to(bc.REPO_DIR / ".venv")
        (folder / "Pulumi.yaml").write_text(
            f"name: {PROJECT}\nruntime:\n  name: python\n  options:\n    toolchain: pip\n    virtualenv: .venv\n"
        )
        (folder / "__main__.py").write_text(_FOLDER_PROGRAM)
        (folder / "bench.json").write_text(json.dumps({"experiment": f"bench-cli-{name}", "runs": list(decls)}))
        env = {"MLFLOW_TRACKING_URI": bench.server.url, **(extra_env or {})}  # extra: another state backend
        self.project = project_folder(folder, bench.bin_dir, bench.work / "folders-home", name, env)
        self.project.init()

    def _timed(self, *args: str) -> tuple[float, str]:
        started = time.perf_counter()
        out = self.project.pulumi(*args).stdout
        return time.perf_counter() - started, out

    def up(self, expected: int) -> float:
        wall, out = self._timed("up", "--yes", "--skip-preview")
        if f"+ {expected} created" not in out:
            raise RuntimeError(f"up: expected {expected} creates\n{out[-3000:]}")
        return wall

    def preview(self, expected: int) -> float:
        wall, out = self._timed("preview")
        if not out.rstrip().endswith(f"{expected} unchanged"):
            raise RuntimeError(f"preview: expected {expected} unchanged\n{out[-3000:]}")
        return wall

    def resources(self) -> list[dict[str, Any]]:
        return list(self.project.exported()["deployment"].get("resources") or [])


class NativeStack(FolderStack):
    """The same resources as a YAML program on the native plugin (``pulumi-resource-mlflow-runs``, found on
    PATH in this checkout's virtualenv): no SDK, no program process of Python."""

    def __init__(
        self, bench: Bench, name: str, decls: Sequence[Mapping[str, Any]], extra_env: Mapping[str, str] | None = None
    ) -> None:
        folder = bench.work / "folders" / name
        folder.mkdir(parents=True)
        resources: dict[str, Any] = {
            "experiment": {"type": "mlflow-runs:index:Experiment", "properties": {"name": f"bench-cli-{name}"}}
        }
        for decl in decls:
            props = {camel(k): v for k, v in decl.items() if k != "experiment_id"}
            props["experimentId"] = "${experiment.experimentId}"
            resources[str(decl["run_name"])] = {"type": "mlflow-runs:index:ExperimentRun", "properties": props}
        program = {"name": PROJECT, "runtime": "yaml", "resources": resources}
        (folder / "Pulumi.yaml").write_text(json.dumps(program))  # JSON is YAML
        env = {"MLFLOW_TRACKING_URI": bench.server.url, **(extra_env or {})}  # extra: another state backend
        venv = bc.REPO_DIR / ".venv"
        self.project = project_folder(folder, bench.bin_dir, bench.work / "folders-home", name, env, venv=venv)
        self.project.init()


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_stats() -> dict[int, tuple[int, int, float]]:
    """pid: (parent pid, process group, CPU seconds) of every process (Linux /proc)."""
    stats = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), int(fields[2]), (int(fields[11]) + int(fields[12])) / _TICK)
    return stats


def _descends_from(pid: int, ancestor: int, stats: Mapping[int, tuple[int, int, float]]) -> bool:
    for _ in range(16):
        if pid not in stats:
            return False
        pid = stats[pid][0]
        if pid == ancestor:
            return True
    return False


def _is_provider_host(pid: int) -> bool:
    try:
        return b"pulumi.dynamic" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class CpuMeter:
    """CPU seconds spent while a block runs, by process.

    ``program``: this process (the inline program and the Automation API); ``children``: the children that
    finished meanwhile with their own children (the CLI and the provider host it started, or the script);
    ``host``: the provider hosts among them, sampled from /proc while they live (up to ``period`` late);
    ``server``: the MLflow server's process group. The sampling itself costs this process ~3 ms per period.
    """

    def __init__(self, server: MlflowServer, period: float = 0.25) -> None:
        self.server_pgid = server.process.pid  # start_new_session: the group is the server's pid
        self.period = period
        self.cpu: dict[str, float] = {}
        self._hosts: dict[int, float] = {}
        self._others: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _server_cpu(self, stats: Mapping[int, tuple[int, int, float]]) -> float:
        return sum(cpu for _ppid, pgid, cpu in stats.values() if pgid == self.server_pgid)

    def _sample(self) -> None:
        me = os.getpid()
        while True:
            stats = _proc_stats()
            for pid, (_ppid, _pgid, cpu) in stats.items():
                if pid in self._hosts:
                    self._hosts[pid] = cpu
                elif pid not in self._others:  # the CLI starts the host in a process group of its own
                    if not _descends_from(pid, me, stats):
                        self._others.add(pid)
                    elif _is_provider_host(pid):  # checked again next time: a fork may not have exec'd yet
                        self._hosts[pid] = cpu
            if self._stop.wait(self.period):
                return

    @staticmethod
    def _children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> CpuMeter:
        self._program0, self._children0 = time.process_time(), self._children_cpu()
        self._server0 = self._server_cpu(_proc_stats())
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        children = self._children_cpu() - self._children0
        host = sum(self._hosts.values())
        self.cpu = {
            "program": time.process_time() - self._program0,
            "children": children,
            "host": host,
            "cli": max(children - host, 0.0),
            "server": self._server_cpu(_proc_stats()) - self._server0,
        }


# ---- state size ----------------------------------------------------------------------------------------------


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


@dataclass
class StateSize:
    resource: int
    inputs: int
    outputs: int
    stack_trace: int
    """The engine's record of where the program registered the resource (an inline program's is deep)."""


def state_sizes(resources: Sequence[Mapping[str, Any]], type_suffix: str) -> list[StateSize]:
    """Compact JSON size of each resource of that type in an exported deployment, and of its parts."""
    return [
        StateSize(
            _json_bytes(r),
            _json_bytes(r.get("inputs") or {}),
            _json_bytes(r.get("outputs") or {}),
            _json_bytes(r.get("stackTrace") or []),
        )
        for r in resources
        if str(r.get("type", "")).endswith(type_suffix)
    ]


# ---- the benchmark ---------------------------------------------------------------------------------------------


@dataclass
class Sample:
    wall: float
    cpu: dict[str, float]


@dataclass
class Results:
    up: dict[str, list[Sample]] = field(default_factory=lambda: {name: [] for name in UPS})
    preview: dict[str, list[Sample]] = field(default_factory=lambda: {name: [] for name in PREVIEWS})
    script_work: list[float] = field(default_factory=list)
    script_startup: list[float] = field(default_factory=list)

    def walls(self, kind: str, name: str) -> list[float]:
        return [s.wall for s in getattr(self, kind)[name]]

    def ratio(self, kind: str, a: str, b: str) -> float:
        return bc.median([x / y for x, y in zip(self.walls(kind, a), self.walls(kind, b), strict=True)])

    def wall(self, kind: str, name: str) -> float:
        return bc.median(self.walls(kind, name))

    def cpu(self, kind: str, name: str, part: str) -> float:
        return bc.median([s.cpu[part] for s in getattr(self, kind)[name]])


@dataclass
class Bench:
    bin_dir: Path
    work: Path
    server: MlflowServer
    decls: list[dict[str, Any]]
    results: Results = field(default_factory=Results)
    _last_script_run: str = ""

    def stack(self, name: str, program: Callable[[str, Sequence[Mapping[str, Any]]], Callable[[], None]]) -> TimedStack:
        env = {**bc.host_env(self.server.url), **(NO_CHECKPOINTS if "no checkpoints" in name else {})}
        tag = f"{name.replace(', ', '-').replace(' ', '-')}-{time.time_ns() % 10**9}"
        return TimedStack(self.bin_dir, self.work, tag, program(f"bench-cli-{tag}", self.decls), env)

    def folder_stack(self, decls: Sequence[Mapping[str, Any]] | None = None) -> FolderStack:
        return FolderStack(self, f"folder-{time.time_ns() % 10**9}", self.decls if decls is None else decls)

    def native_stack(self, decls: Sequence[Mapping[str, Any]] | None = None) -> NativeStack:
        return NativeStack(self, f"native-{time.time_ns() % 10**9}", self.decls if decls is None else decls)

    def measured(self, fn: Callable[[], float]) -> Sample:
        with CpuMeter(self.server) as meter:
            wall = fn()
        return Sample(wall, meter.cpu)

    def script(self) -> float:
        res = serial_script(self.server.url, f"bench-cli-script-{time.time_ns()}", self.decls)
        assert len(res["run_ids"]) == len(self.decls), len(res["run_ids"])
        self.results.script_work.append(res["work_s"])
        self.results.script_startup.append(res["startup_s"])
        self._last_script_run = str(res["run_ids"][-1])
        return float(res["wall_s"])

    def one_round(self, r: int) -> tuple[TimedStack, TimedStack, FolderStack, NativeStack]:
        n = len(self.decls) + 2  # the runs, the experiment, the stack
        stacks: dict[str, TimedStack | FolderStack] = {
            name: self.stack(name, trivial_program if name.startswith("floor") else provider_program)
            for name in UPS
            if name not in ("script", FOLDER, NATIVE)
        }
        folder = stacks[FOLDER] = self.folder_stack()
        native = stacks[NATIVE] = self.native_stack()
        order = UPS[r % len(UPS) :] + UPS[: r % len(UPS)]
        for name in order:
            fn: Callable[[], float] = self.script if name == "script" else functools.partial(stacks[name].up, n)
            self.results.up[name].append(self.measured(fn))
        last = self.decls[-1]
        _verify_run(self.server.url, self._last_script_run, last)
        for name in ("provider", FOLDER, NATIVE, "provider, no checkpoints"):
            made = {
                x["outputs"].get("run_name", x["outputs"].get("runName")): x["id"]
                for x in stacks[name].resources()
                if x["type"].endswith(RUN_TYPE)
            }
            assert len(made) == len(self.decls), len(made)
            _verify_run(self.server.url, made[last["run_name"]], last)
        for name in PREVIEWS if r % 2 == 0 else PREVIEWS[::-1]:
            self.results.preview[name].append(self.measured(functools.partial(stacks[name].preview, n)))
        log(
            f"round {r + 1}: up "
            + ", ".join(f"{name} {secs(self.results.up[name][-1].wall)}" for name in UPS)
            + f" (script work {secs(self.results.script_work[-1])}); preview "
            + ", ".join(f"{name} {secs(self.results.preview[name][-1].wall)}" for name in PREVIEWS)
        )
        provider, floor = stacks["provider"], stacks["floor"]
        assert isinstance(provider, TimedStack) and isinstance(floor, TimedStack)
        return provider, floor, folder, native

    def warm_up(self) -> None:
        """A small up + preview of each program and one script run: caches, plugin discovery, first imports."""
        decls = self.decls[:3]
        for name, program in (("warm-provider", provider_program), ("warm-floor", trivial_program)):
            stack = TimedStack(
                self.bin_dir, self.work, name, program(f"bench-cli-{name}", decls), bc.host_env(self.server.url)
            )
            stack.up(len(decls) + 2)
            stack.preview(len(decls) + 2)
        for stack in (self.folder_stack(decls), self.native_stack(decls)):
            stack.up(len(decls) + 2)
            stack.preview(len(decls) + 2)
        serial_script(self.server.url, "bench-cli-warm-script", decls)


# ---- report ----------------------------------------------------------------------------------------------------


def _per_run_ms(seconds: float, n: int) -> str:
    return f"{seconds / n * 1e3:.0f}"


def report(
    res: Results, n: int, run_sizes: list[StateSize], floor_sizes: list[StateSize], folder_sizes: list[StateSize]
) -> list[bc.Row]:
    up_vs_script = res.ratio("up", "provider", "script")
    pre_vs_floor = res.ratio("preview", "provider", "floor")

    def up_cpu(name: str, parts: Sequence[tuple[str, str]]) -> str:
        return ", ".join(f"{label} {_per_run_ms(res.cpu('up', name, part), n)}" for label, part in parts)

    pulumi_parts = (("CLI", "cli"), ("host", "host"), ("program", "program"), ("server", "server"))

    def med(part: str, sizes: Sequence[StateSize] = run_sizes) -> float:
        return bc.median([getattr(s, part) for s in sizes])

    size = med("resource")
    folder_size = med("resource", folder_sizes)
    return [
        bc.Row(
            f"up: {n} runs, `pulumi up` / serial MlflowClient script (subprocess)",
            f"{up_vs_script:.2f}x ({secs(res.wall('up', 'provider'))} vs {secs(res.wall('up', 'script'))})",
            "< 1x",
            bc.verdict(up_vs_script < 1.0),
        ),
        bc.Row(
            f"up: {n} runs, provider / trivial provider (the engine's floor, info)",
            f"{res.ratio('up', 'provider', 'floor'):.2f}x "
            f"({secs(res.wall('up', 'provider'))} vs {secs(res.wall('up', 'floor'))})",
            "-",
            "info",
        ),
        bc.Row(
            f"up: {n} runs from a project folder (language host) / the same program inline (info)",
            f"{res.ratio('up', FOLDER, 'provider'):.2f}x "
            f"({secs(res.wall('up', FOLDER))} vs {secs(res.wall('up', 'provider'))}); CPU per run, ms: "
            f"{up_cpu(FOLDER, (('CLI, language host and program', 'cli'), ('host', 'host'), ('server', 'server')))}",
            "-",
            "info",
            "the program runs in the language host's Python process, a child of the CLI, counted with it",
        ),
        bc.Row(
            f"up: {n} runs, native plugin (YAML program) / dynamic provider (inline) / the floor (info)",
            f"{res.ratio('up', NATIVE, 'provider'):.2f}x, {res.ratio('up', NATIVE, 'floor'):.2f}x "
            f"({secs(res.wall('up', NATIVE))} vs {secs(res.wall('up', 'provider'))} vs {secs(res.wall('up', 'floor'))})"
            f"; against the dynamic provider from a project folder {res.ratio('up', NATIVE, FOLDER):.2f}x",
            "-",
            "info",
        ),
        bc.Row(
            "up: the script without interpreter start and imports (info)",
            f"{secs(bc.median(res.script_work))} ({bc.median(res.script_work) / n * 1e3:.0f} ms per run); "
            f"start + imports {secs(bc.median(res.script_startup))}",
            "-",
            "info",
        ),
        bc.Row(
            "up: CPU per run, ms (info)",
            f"provider: {up_cpu('provider', pulumi_parts)}; floor: {up_cpu('floor', pulumi_parts[:3])}; "
            f"script: {up_cpu('script', (('script', 'children'), ('server', 'server')))}",
            "-",
            "info",
            "CLI = the `pulumi` process; host = `python -m pulumi.dynamic`; program = the inline program's process",
        ),
        bc.Row(
            "up with `PULUMI_SKIP_CHECKPOINTS=true`: provider / script, provider / floor (info)",
            f"{res.ratio('up', 'provider, no checkpoints', 'script'):.2f}x, "
            f"{res.ratio('up', 'provider, no checkpoints', 'floor, no checkpoints'):.2f}x "
            f"({secs(res.wall('up', 'provider, no checkpoints'))} vs {secs(res.wall('up', 'script'))} vs "
            f"{secs(res.wall('up', 'floor, no checkpoints'))}); CPU per run, ms: provider "
            f"{up_cpu('provider, no checkpoints', pulumi_parts)}; floor "
            f"{up_cpu('floor, no checkpoints', pulumi_parts[:3])}",
            "-",
            "info",
            "the file backend writes the state once at the end instead of after every step",
        ),
        bc.Row(
            f"preview: {n} unchanged runs, provider / trivial provider",
            f"{pre_vs_floor:.2f}x ({secs(res.wall('preview', 'provider'))} vs {secs(res.wall('preview', 'floor'))})",
            "≤ 1.5x",
            bc.verdict(pre_vs_floor <= 1.5),
        ),
        bc.Row(
            f"preview: {n} unchanged runs, project folder / inline (info)",
            f"{res.ratio('preview', FOLDER, 'provider'):.2f}x "
            f"({secs(res.wall('preview', FOLDER))} vs {secs(res.wall('preview', 'provider'))})",
            "-",
            "info",
        ),
        bc.Row(
            f"preview: {n} unchanged runs, native plugin (YAML) / dynamic provider (project folder) / floor (info)",
            f"{res.ratio('preview', NATIVE, FOLDER):.2f}x, {res.ratio('preview', NATIVE, 'floor'):.2f}x "
            f"({secs(res.wall('preview', NATIVE))} vs {secs(res.wall('preview', FOLDER))} vs "
            f"{secs(res.wall('preview', 'floor'))})",
            "-",
            "info",
        ),
        bc.Row(
            "preview: CPU per run, ms (info)",
            "provider: "
            + ", ".join(f"{lbl} {_per_run_ms(res.cpu('preview', 'provider', p), n)}" for lbl, p in pulumi_parts[:3])
            + "; floor: "
            + ", ".join(f"{lbl} {_per_run_ms(res.cpu('preview', 'floor', p), n)}" for lbl, p in pulumi_parts[:3]),
            "-",
            "info",
        ),
        bc.Row(
            "state: bytes per ExperimentRun (compact JSON of the resource in `pulumi stack export`, median)",
            f"{size:,.0f} B: inputs {med('inputs'):,.0f}, outputs {med('outputs'):,.0f}, the engine's stackTrace "
            f"{med('stack_trace'):,.0f}, the rest (URNs, dependencies, times) "
            f"{size - med('inputs') - med('outputs') - med('stack_trace'):,.0f}",
            "-",
            "info",
            f"the floor's resource with the same inputs: {bc.median([s.resource for s in floor_sizes]):,.0f} B",
        ),
        bc.Row(
            "state: bytes per ExperimentRun from a project folder (the language host's program, median)",
            f"{folder_size:,.0f} B: inputs {med('inputs', folder_sizes):,.0f}, outputs "
            f"{med('outputs', folder_sizes):,.0f}, the engine's stackTrace {med('stack_trace', folder_sizes):,.0f}, "
            f"the rest {folder_size - sum(med(p, folder_sizes) for p in ('inputs', 'outputs', 'stack_trace')):,.0f}",
            "-",
            "info",
            f"{size - folder_size:,.0f} B less than inline",
        ),
    ]


def native_state(sizes: Sequence[StateSize]) -> bc.Row:
    """The plugin's state per run against its goal: the inputs plus at most 1 KB. What the provider adds to
    the inputs is its outputs; the rest of the entry (URN, type, provider reference, parent, times) is the
    engine's, the same for any resource, and is shown beside it, not counted against the provider."""
    extra = bc.median([x.resource - x.inputs for x in sizes])
    outputs = bc.median([x.outputs for x in sizes])
    return bc.Row(
        "state: bytes per ExperimentRun on the native plugin (median)",
        f"{bc.median([x.resource for x in sizes]):,.0f} B: inputs {bc.median([x.inputs for x in sizes]):,.0f}, "
        f"outputs {outputs:,.0f}, the engine's own fields {extra - outputs:,.0f}",
        "inputs + ≤ 1 KB of outputs",
        bc.verdict(outputs <= 1024),
    )


def floor_scaling(bench: Bench, sizes: Sequence[int]) -> bc.Row:
    """``up`` of the trivial program at several sizes, with and without the per-step checkpoints (once each)."""
    parts = []
    for n in sizes:
        sized = Bench(bench.bin_dir, bench.work, bench.server, run_declarations(n))
        cells = []
        for name in ("floor", "floor, no checkpoints"):
            stack = sized.stack(name, trivial_program)
            sample = sized.measured(functools.partial(stack.up, n + 2))
            cells.append(f"{secs(sample.wall)} (CLI CPU {secs(sample.cpu['cli'])})")
            log(f"scaling: {n} trivial resources, {name}: {cells[-1]}")
        parts.append(f"{n}: {cells[0]} / {cells[1]}")
    return bc.Row(
        "scaling of the floor: `pulumi up` of N trivial resources, with / without per-step checkpoints (info)",
        "; ".join(parts),
        "-",
        "info",
        "one run each",
    )


def counted_requests(bench: Bench, n: int) -> bc.Row:
    """The requests one ``up`` of the provider's program sends, through the counting proxy (not timed)."""
    proxy = CountingProxy(bench.server.url)
    with proxy:
        decls = run_declarations(n)
        env = bc.host_env(proxy.url)
        name = f"counted-{time.time_ns() % 10**9}"
        stack = TimedStack(bench.bin_dir, bench.work, name, provider_program(f"bench-cli-{name}", decls), env)
        mark = proxy.mark()
        stack.up(n + 2)
        tally = proxy.tally(mark)
    assert not tally.failed, tally.describe()
    per_run = {k: v for k, v in tally.by_endpoint().items() if v >= n}
    return bc.Row(
        f"up: requests per run ({n} runs through a counting proxy, info)",
        f"{sum(per_run.values()) / n:.0f}: "
        + ", ".join(f"{k} x{v / n:.0f}" for k, v in sorted(per_run.items()))
        + "; the script sends 3 (runs/create, runs/log-batch, runs/update)",
        "-",
        "info",
        "once per up besides: " + ", ".join(f"{k} x{v}" for k, v in sorted(tally.by_endpoint().items()) if v < n),
    )


def provider_commit() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=bc.REPO_DIR, capture_output=True, text=True, check=False)  # noqa: S603, S607
        return proc.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + uncommitted changes in provider/" if git("status", "--porcelain", "provider") else "")


def cli_version(bin_dir: Path) -> str:
    out = subprocess.run([str(bin_dir / "pulumi"), "version"], capture_output=True, text=True, check=True)  # noqa: S603
    return out.stdout.strip()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--runs", type=int, default=200, help="ExperimentRun resources in the program (default 200)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, each contender once per round (default 3)")
    p.add_argument("--json", type=Path, help="also write the rows, every per-round number and the machine here")
    p.add_argument(
        "--scaling",
        default="",
        help="also time `up` of the trivial program once at these sizes (e.g. 100,200,400), with/without checkpoints",
    )
    args = p.parse_args(argv)
    if args.runs < 1 or args.rounds < 1:
        p.error("--runs and --rounds must be at least 1")
    try:
        args.scaling = [int(x) for x in args.scaling.split(",") if x.strip()]
    except ValueError:
        p.error("--scaling takes sizes separated by commas")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    found = find_cli()
    if found.bin_dir is None:
        print(f"no Pulumi CLI (scripts/pulumi-cli.sh):\n{found.log}", file=sys.stderr)
        return 2
    machine = {**bc.machine(), "pulumi CLI": cli_version(found.bin_dir), "provider": provider_commit()}
    shm = Path("/dev/shm")  # noqa: S108 - tmpfs keeps disk noise out of sqlite and the state files
    workdir = Path(tempfile.mkdtemp(prefix="mlflow-runs-bench-cli-", dir=shm if shm.is_dir() else None))
    log(f"work files in {workdir}; {args.runs} runs ({SHAPE.label()}), {args.rounds} rounds; machine: {machine}")
    server = start_server(workdir / "server")
    try:
        bench = Bench(found.bin_dir, workdir / "pulumi", server, run_declarations(args.runs))
        bench.warm_up()
        log("warm-up done")
        for r in range(args.rounds):
            provider, floor, folder, native = bench.one_round(r)
        run_sizes = state_sizes(provider.resources(), RUN_TYPE)
        floor_sizes = state_sizes(floor.resources(), TRIVIAL_RUN_TYPE)
        folder_sizes = state_sizes(folder.resources(), RUN_TYPE)
        native_sizes = state_sizes(native.resources(), RUN_TYPE)
        assert len(run_sizes) == len(floor_sizes) == len(folder_sizes) == args.runs, (len(run_sizes), len(floor_sizes))
        extra = [counted_requests(bench, min(args.runs, 20))]
        extra += [floor_scaling(bench, args.scaling)] if args.scaling else []
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    rows = [*report(bench.results, args.runs, run_sizes, floor_sizes, folder_sizes), *extra, native_state(native_sizes)]
    command = "python benchmarks/bench_cli.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(render(rows, machine, command.strip()))
    if args.json:
        details = {
            "rows": [asdict(r) for r in rows],
            "results": asdict(bench.results),
            "state": {
                "runs": [asdict(s) for s in run_sizes],
                "floor": [asdict(s) for s in floor_sizes],
                "project folder": [asdict(s) for s in folder_sizes],
            },
            "machine": machine,
        }
        args.json.write_text(json.dumps(details, indent=1))
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
