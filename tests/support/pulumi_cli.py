"""The real Pulumi CLI for tests, scripts and benchmarks: found or built by ``scripts/pulumi-cli.sh``.

Programs here run as Automation API *inline* programs: the Python process that calls the CLI hosts the
language runtime itself, which lets a test reach inside (inject faults, kill the CLI at a chosen request,
follow the event stream). A program file runs with ``runpy``, as the language host would run it, with
``__file__`` pointing at the file. ``support.project`` runs ``pulumi`` from a project folder instead, as
users do, through the language host the script puts beside the CLI.

Under ``CI=true`` a CLI that cannot be had fails the tests that need it instead of skipping them, so a
broken build cannot hide behind a skip.
"""

from __future__ import annotations

import contextlib
import functools
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pulumi-cli.sh"
PASSPHRASE = "not-a-secret-test-passphrase"


@dataclass(frozen=True)
class CliLookup:
    bin_dir: Path | None
    log: str
    """What the script printed on stderr: why there is no CLI, or how it was found."""


@functools.cache
def find_cli(echo: bool = False) -> CliLookup:
    """Run the script once per process; its last line of stdout is the folder that holds ``pulumi``.

    ``echo``: also copy the script's progress (its stderr: a line as each build stage starts and ends) to
    this process's stderr as it comes, as the quickstart shows it; ``log`` keeps it either way.
    """
    return run_cli_script(SCRIPT, echo=_to_stderr if echo else None)


def _to_stderr(line: str) -> None:
    sys.stderr.write(line)
    sys.stderr.flush()


def run_cli_script(
    script: Path,
    env: Mapping[str, str] | None = None,
    echo: Callable[[str], object] | None = None,
    timeout: float = 1800,
) -> CliLookup:
    """``find_cli``'s run of ``script`` (``env``: instead of this process's), each line of its stderr
    handed to ``echo`` as soon as the script writes it."""
    with subprocess.Popen(
        ["bash", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        out: list[str] = []
        err: list[str] = []

        def pump(stream: Any, sink: list[str], each: Callable[[str], object] | None) -> None:
            for line in stream:
                sink.append(line)
                if each is not None:
                    each(line)

        pumps = [
            threading.Thread(target=pump, args=(proc.stdout, out, None), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, err, echo), daemon=True),
        ]
        for thread in pumps:
            thread.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            for thread in pumps:
                thread.join(timeout=10)  # a killed script's children may hold the pipes open
    lines = "".join(out).strip().splitlines()
    log = "".join(err)
    if proc.returncode != 0 or not lines or not (Path(lines[-1]) / "pulumi").exists():
        return CliLookup(None, log)
    return CliLookup(Path(lines[-1]), log)


def require_cli() -> Path:
    """The CLI's folder; otherwise skip the test, or fail it under CI."""
    from .ci import unavailable

    found = find_cli()
    if found.bin_dir is None:
        message = f"no Pulumi CLI could be found or built by scripts/pulumi-cli.sh:\n{found.log}"
        unavailable(message, "the real-CLI tests")
    return found.bin_dir


def program_from_file(main: Path) -> Callable[[], None]:
    """A Pulumi program file (``__main__.py``) as an inline program."""

    def program() -> None:
        runpy.run_path(str(main), run_name="__main__")

    return program


def many_runs(experiment_id: str, count: int) -> Callable[[], None]:
    """A program of ``count`` small runs (a param, one point) in one experiment."""
    from pulumi_mlflow_runs import ExperimentRun

    def program() -> None:
        for i in range(count):
            ExperimentRun(
                f"run-{i:02d}",
                experiment_id=experiment_id,
                run_name=f"run-{i:02d}",
                params={"i": str(i)},
                metrics=[{"key": "m", "value": float(i), "step": 0}],
            )

    return program


def cli_env(bin_dir: Path, backend: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Env for the CLI: local file backend, passphrase secrets, and this interpreter for the provider host.

    The dynamic-provider launcher runs ``$PULUMI_PYTHON_CMD -m pulumi.dynamic`` (``python3`` by default);
    pointing it at this interpreter is what a virtualenv in ``Pulumi.yaml`` does for a user.
    """
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(bin_dir), os.environ.get("PATH", "")]),
        "PULUMI_PYTHON_CMD": sys.executable,
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
        **(extra or {}),
    }


def new_stack(
    bin_dir: Path,
    work: Path,
    program: Callable[[], None],
    env: Mapping[str, str],
    *,
    project: str = "mlflow-runs-test",
    stack: str = "test",
    config: Mapping[str, str] | None = None,
    secret_config: Mapping[str, str] | None = None,
) -> Any:
    """A fresh stack (``auto.Stack``) in a local file backend under ``work``."""
    from pulumi import automation as auto

    backend = work / ".state"
    backend.mkdir(parents=True, exist_ok=True)
    command = auto.PulumiCommand(root=str(bin_dir.parent), skip_version_check=False)
    opts = auto.LocalWorkspaceOptions(
        work_dir=str(work),
        pulumi_home=str(work / ".pulumi-home"),
        pulumi_command=command,
        env_vars=cli_env(bin_dir, backend, env),
        secrets_provider="passphrase",
        project_settings=auto.ProjectSettings(name=project, runtime=auto.ProjectRuntimeInfo("python", {})),
    )
    s = auto.create_stack(stack_name=stack, project_name=project, program=program, opts=opts)
    for key, value in (config or {}).items():
        s.set_config(key, auto.ConfigValue(value=value))
    for key, value in (secret_config or {}).items():
        s.set_config(key, auto.ConfigValue(value=value, secret=True))
    return s


class Ops:
    """``on_event`` callback: the operations the engine reports per resource (the Stack and providers left out)."""

    def __init__(self) -> None:
        self.by_name: dict[str, list[str]] = {}

    def __call__(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is None or pre.metadata.type.startswith(("pulumi:pulumi:Stack", "pulumi:providers:")):
            return
        op = str(getattr(pre.metadata.op, "value", pre.metadata.op))
        self.by_name.setdefault(pre.metadata.urn.rsplit("::", 1)[-1], []).append(op)

    def summary(self) -> dict[str, str]:
        """One word per resource, in the engine stand-in's vocabulary (a replace's steps fold into one)."""
        out = {}
        for name, ops in self.by_name.items():
            out[name] = "replace" if "replace" in ops or "create-replacement" in ops else ops[-1]
        return out


def run_with_ops(step: Callable[..., Any], **kwargs: Any) -> tuple[Any, dict[str, str]]:
    """Run ``stack.up`` / ``preview`` / … and return its result with the operation per resource."""
    ops = Ops()
    result = step(on_event=ops, **kwargs)
    return result, ops.summary()


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def _descendants(pid: int, children: Mapping[int, list[int]]) -> list[int]:
    out, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        out.append(child)
        todo += children.get(child, [])
    return out


def cli_processes() -> list[int]:
    """The ``pulumi`` CLI processes this process started (through the Automation API)."""
    found = []
    for pid in _descendants(os.getpid(), _children()):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "pulumi":
                found.append(pid)
    return found


def descendants_of(pid: int) -> list[int]:
    """Every process under ``pid``, as ``/proc`` has them now."""
    return _descendants(pid, _children())


def interrupter(matches: Callable[[list[bytes]], bool], sent: list[int]) -> Callable[[], None]:
    """An action that sends SIGINT to each process under this one whose command line (its arguments) ``matches``,
    as a Ctrl-C would, noting each in ``sent``: for a proxy to fire as a chosen request arrives."""

    def interrupt() -> None:
        for pid in descendants_of(os.getpid()):
            with contextlib.suppress(OSError):
                if matches(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")):
                    os.kill(pid, signal.SIGINT)
                    sent.append(pid)

    return interrupt


def kill_tree(pid: int, sig: signal.Signals = signal.SIGKILL) -> int:
    """Send ``sig`` to ``pid`` and everything under it (the tree read before the first signal goes);
    how many processes it reached."""
    reached = 0
    for victim in [pid, *descendants_of(pid)]:
        with contextlib.suppress(OSError):
            os.kill(victim, sig)
            reached += 1
    return reached


def kill_cli() -> int:
    """SIGKILL the CLI and everything under it (the provider hosts too), as a lost machine would."""
    return sum(kill_tree(pid) for pid in cli_processes())


def interrupted_up(
    stack: Any, sent: Callable[[], list[Any]], creates: int, interrupt: Callable[[], object]
) -> BaseException | None:
    """Run ``stack.up()`` in a thread, call ``interrupt`` once ``creates`` runs/create requests were sent
    (``sent`` lists the requests so far), and return how the ``up`` ended (None: it succeeded)."""
    outcome: list[BaseException] = []

    def up() -> None:
        try:
            stack.up()
        except BaseException as exc:  # an interrupted update fails: that is what the caller looks at
            outcome.append(exc)

    worker = threading.Thread(target=up)
    worker.start()
    deadline = time.monotonic() + 120
    while sum(r.endpoint == "runs/create" for r in sent()) < creates and time.monotonic() < deadline:
        time.sleep(0.05)
    interrupt()
    worker.join(timeout=180)
    assert not worker.is_alive(), "the interrupted up did not end"
    return outcome[0] if outcome else None


def changes(summary: Mapping[Any, int] | None) -> dict[str, int]:
    """``{op: count}`` with plain string keys (the Automation API may key them by ``OpType``)."""
    return {str(getattr(op, "value", op)): n for op, n in (summary or {}).items() if n}


def cli(stack: Any, *args: str) -> Any:
    """Run ``pulumi ARGS --stack NAME`` in the stack's workspace (``CommandResult``)."""
    ws = stack.workspace
    env = {"PULUMI_HOME": ws.pulumi_home, **ws.env_vars} if ws.pulumi_home else dict(ws.env_vars)
    return ws.pulumi_command.run([*args, "--stack", stack.name], ws.work_dir, env)


def exported_state(stack: Any) -> str:
    """``pulumi stack export`` as a user runs it: secrets stay ciphertext.

    (The Automation API's ``export_stack`` passes ``--show-secrets``, so it cannot show a leak.)
    """
    return str(cli(stack, "stack", "export").stdout)


def state_resources(stack: Any) -> dict[str, dict[str, Any]]:
    """The exported state's resources by name (the last part of the URN)."""
    deployment = stack.export_stack().deployment
    return {r["urn"].rsplit("::", 1)[-1]: r for r in deployment.get("resources") or []}
