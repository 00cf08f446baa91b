"""The stacks the convergence model (``support.convergence``) drives: one program, three ways to run it.

* ``EngineStack``: the stand-in engine (``support.engine``) with a real dynamic provider host; fast, so many
  histories. It cannot be killed halfway the way a CLI can, so it draws no kills.
* ``CliStack``: ``pulumi`` from a project folder, through the Python language host, as a user runs it; on
  the dynamic provider (``door="dynamic"``) or on the native plugin (``door="native"``), which the engine
  finds on PATH in the activated virtualenv. It can be killed at a chosen request: the CLI with SIGKILL
  (and everything under it, as a lost machine), the CLI with SIGINT (Ctrl-C), or the provider's process
  with SIGKILL or SIGINT.

Each ``up`` is ``pulumi up --refresh``: a refresh first is what brings a colleague's drift into the plan.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse
from urllib.request import url2pathname

from .convergence import spec_json, write_metrics_files
from .engine import Engine, EngineError
from .host import HostError
from .project import PACKAGE_VENV, ProjectFolder, project_folder
from .pulumi_cli import descendants_of, kill_tree
from .runs import unique

PROGRAM = Path(__file__).with_name("model_program")
DEADLINE = "2"
"""The provider's retry deadline in seconds (``PULUMI_MLFLOW_RUNS_RETRY_DEADLINE``): an outage ends an
``up`` quickly instead of after the default's minutes."""
UP_TIMEOUT = 600.0


class ModelStack(Protocol):
    can_kill: bool

    def write(self, spec: dict[str, Any]) -> None: ...
    def up(self) -> bool: ...
    def kill(self, how: str) -> None: ...
    def kills_done(self) -> list[str]: ...
    def recover(self) -> None: ...
    def managed(self) -> dict[str, str]: ...
    def pending(self) -> list[Any]: ...
    def changes(self) -> str: ...
    def destroy(self) -> bool: ...
    def last_output(self) -> str: ...
    def close(self) -> None: ...


StackFactory = Callable[[Path, Any], ModelStack]


def managed_runs(resources: Iterable[Mapping[str, Any]], name_of: Callable[[Mapping[str, Any]], str]) -> dict[str, str]:
    """The runs a state holds, by name: each ``ExperimentRun``'s id, and each run of a ``RunTable`` (its
    ``runIds``, ``run_ids`` on the dynamic door, by key: the run's name in the model)."""
    runs: dict[str, str] = {}
    for r in resources:
        if r.get("delete"):
            continue
        if r["type"].endswith(":ExperimentRun"):
            runs[name_of(r)] = r["id"]
        elif r["type"].endswith(":RunTable"):
            outputs = r.get("outputs") or {}
            runs.update(outputs.get("runIds") or outputs.get("run_ids") or {})
    return runs
"""``(an empty folder, the fault proxy) -> a new stack`` of the model's program in that folder."""


PROJECT = "name: model-convergence\nruntime: python\n"
"""The copy's ``Pulumi.yaml``, written with it: the program folder holds none, so that the test of every
project in the repository (``test_example_projects.py``) does not take this fixture for a user's project."""


def _copy_program(folder: Path) -> Path:
    shutil.copytree(PROGRAM, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "model.json"))
    (folder / "Pulumi.yaml").write_text(PROJECT)
    return folder


class EngineStack:
    """The stand-in engine: refresh, then up, each step through a new dynamic provider host."""

    can_kill = False

    def __init__(self, folder: Path, proxy: Any) -> None:
        self.folder = _copy_program(folder)
        env = {"MLFLOW_TRACKING_URI": proxy.url, "PULUMI_MLFLOW_RUNS_RETRY_DEADLINE": DEADLINE}
        self.engine = Engine(self.folder / "__main__.py", self.folder / "state.json", env)
        self.output = ""

    def write(self, spec: dict[str, Any]) -> None:
        (self.folder / "model.json").write_text(spec_json(spec, "dynamic"))
        write_metrics_files(self.folder, spec)

    def up(self) -> bool:
        try:
            if self.engine.state_file.exists():
                self.engine.refresh()
            self.engine.up()
        except (EngineError, HostError) as exc:  # the stand-in's refresh raises the host's error as it is
            self.output = f"{exc}\n{self.engine.last_host_stderr}"
            return False
        return True

    def kill(self, how: str) -> None:
        raise AssertionError("the stand-in engine draws no kills")

    def kills_done(self) -> list[str]:
        return []

    def recover(self) -> None:
        pass  # nothing to clear: the next up is the user's next step

    def managed(self) -> dict[str, str]:
        if not self.engine.state_file.exists():
            return {}
        return managed_runs(self.engine.resources(), lambda r: str(r["name"]))

    def pending(self) -> list[Any]:
        return (
            [r["name"] for r in self.engine.resources() if r.get("delete")] if self.engine.state_file.exists() else []
        )

    def changes(self) -> str:
        changed = self.engine.preview().changed()
        return "\n".join(step.summary() for step in changed)

    def destroy(self) -> bool:
        try:
            self.engine.destroy()
        except (EngineError, HostError) as exc:
            self.output = str(exc)
            return False
        return True

    def last_output(self) -> str:
        return self.output

    def close(self) -> None:
        pass


_PROVIDER_MARKS = ("pulumi.dynamic", "pulumi-resource-mlflow-runs")
"""How the provider's process is told among the CLI's descendants, by its command line."""


class CliStack:
    """A new stack of the model's program in a project folder; every command as a user types it."""

    can_kill = True

    def __init__(self, folder: Path, proxy: Any, *, door: str, bin_dir: Path, home: Path) -> None:
        self.door = door
        env = {"MLFLOW_TRACKING_URI": proxy.url, "PULUMI_MLFLOW_RUNS_RETRY_DEADLINE": DEADLINE}
        self.project: ProjectFolder = project_folder(
            _copy_program(folder), bin_dir, home, unique("model"), env, venv=PACKAGE_VENV
        )
        self.project.init()
        self.process: subprocess.Popen[str] | None = None
        self.killed: list[str] = []
        self.output = ""
        self._managed: dict[str, str] = {}
        self._pending: list[Any] = []

    def write(self, spec: dict[str, Any]) -> None:
        (self.project.folder / "model.json").write_text(spec_json(spec, self.door))
        write_metrics_files(self.project.folder, spec)

    def _run(self, *args: str, reads_only: bool = False) -> bool:
        """``pulumi ARGS --non-interactive`` in the folder, killable while it runs; True when it exited 0.
        Unless it ``reads_only``, the checkpoint is read again afterwards."""
        log = self.project.folder / "last-command.log"
        with log.open("w") as out:
            self.process = subprocess.Popen(
                ["pulumi", *args, "--non-interactive"], cwd=self.project.folder, env=self.project.env,
                stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            )  # fmt: skip
            try:
                code = self.process.wait(timeout=UP_TIMEOUT)
            finally:
                process, self.process = self.process, None
                if process.poll() is None:
                    kill_tree(process.pid, signal.SIGKILL)
        self.output = f"$ pulumi {' '.join(args)}  (exit {code})\n{log.read_text(errors='replace')}"
        if not reads_only:
            self._read_state()
        return code == 0

    def up(self) -> bool:
        return self._run("up", "--yes", "--skip-preview", "--refresh")

    def kill(self, how: str) -> None:
        """Called in the proxy's thread while a request of the ``up`` is in flight. The kill is recorded before
        the signal goes: the ``up`` may end, and be looked at, before this thread runs again."""
        process = self.process
        if process is None:
            return
        if how.endswith("cli"):
            self.killed.append(how)
            if how == "SIGKILL cli":
                kill_tree(process.pid, signal.SIGKILL)
            else:
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGINT)
            return
        providers = [pid for pid in descendants_of(process.pid) if _is_provider(pid)]
        if providers:
            self.killed.append(how)
        for pid in providers:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL if how.startswith("SIGKILL") else signal.SIGINT)

    def kills_done(self) -> list[str]:
        done, self.killed = self.killed, []
        return done

    def recover(self) -> None:
        """What a user does after an ``up`` that did not finish. A stack still locked by a killed CLI: the next
        command says to delete the lock with ``pulumi cancel``. A create the killed ``up`` left pending: the
        CLI goes on without a word in a non-interactive ``up`` but keeps the entry in the checkpoint for good;
        ``pulumi refresh`` asks what to do with it, and ``--clear-pending-creates`` is the answer here, since
        the next create finds and finishes the half-made run."""
        if any(self._backend().glob(f".pulumi/locks/**/{self.project.stack}/*.json")):
            assert self._run("cancel", "--yes"), self.output
        if any(op.get("type") == "creating" for op in self._pending):
            assert self._run("refresh", "--clear-pending-creates", "--yes"), self.output

    def _backend(self) -> Path:
        return Path(url2pathname(urlparse(self.project.env["PULUMI_BACKEND_URL"]).path))

    def _read_state(self) -> None:
        """The stack's last checkpoint, read from the local backend's file: what ``pulumi stack export`` prints,
        without starting the CLI once more per command (it is this model's bookkeeping, not a user's view)."""
        checkpoint = self._backend() / ".pulumi" / "stacks" / "model-convergence" / f"{self.project.stack}.json"
        if not checkpoint.exists():
            self._managed, self._pending = {}, []  # no checkpoint yet (a first up killed at once)
            return
        deployment = json.loads(checkpoint.read_text()).get("checkpoint", {}).get("latest") or {}
        self._pending = list(deployment.get("pending_operations") or [])
        self._managed = managed_runs(deployment.get("resources") or [], lambda r: str(r["urn"]).rsplit("::", 1)[-1])

    def managed(self) -> dict[str, str]:
        return dict(self._managed)

    def pending(self) -> list[Any]:
        return list(self._pending)

    def changes(self) -> str:
        """What ``pulumi preview --expect-no-changes`` shows when it finds a change; empty when none."""
        return "" if self._run("preview", "--expect-no-changes", "--diff", reads_only=True) else self.output

    def destroy(self) -> bool:
        return self._run("destroy", "--yes")

    def last_output(self) -> str:
        return self.output

    def close(self) -> None:
        self.project.pulumi("stack", "rm", "--yes", "--force", ok=False)


def _is_provider(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return any(mark in command for mark in _PROVIDER_MARKS)
