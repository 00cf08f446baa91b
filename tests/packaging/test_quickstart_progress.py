"""The quickstart's progress: each stage's start and end with its time, live; the tools' own output in logs.

A first quickstart builds the Pulumi CLI and three language hosts from Go modules (minutes), after pip has
made the venv. Each stage gets one line as it starts (naming its log) and one as it ends (with its time), on
the terminal as it happens; `go: downloading …`, compiler and pip output go to the log, and a failure
prints the log's last 30 lines and its path. Run here on copies of the scripts with stand-ins for `go`,
`python` (pip) and `pulumi`, so nothing real is built; the quickstart's own stages start a real MLflow server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.pulumi_cli import run_cli_script

ROOT = Path(__file__).resolve().parents[2]
VERSION = re.findall(r"github.com/pulumi/pulumi/pkg/v3 (v\S+)", (ROOT / "tools/pulumi-cli/go.mod").read_text())[0]
DOWNLOADS = 40  # `go: downloading` lines per build, then (failing) 50 compiler lines: the tail is errors 21-50

# `go` as the scripts call it: build (-o OUT), install (GOBIN), list -m (the sdk module's folder), mod download
# -json. A build's module downloads on stderr first; FAKE_GO_FAIL (a part of the arguments) fails that call
# after them; FAKE_GO_GATE holds the CLI's build until that file exists (the test makes it when it sees the
# start line, so the build cannot end unless the line reached the reader while it ran).
FAKE_GO = r"""#!/usr/bin/env bash
set -euo pipefail
args=" $* "
case $1 in
  build | install) for i in $(seq 1 __DOWNLOADS__); do echo "go: downloading example.com/m$i v1.0.$i" >&2; done ;;
esac
if [ -n "${FAKE_GO_FAIL:-}" ] && [[ $args == *"$FAKE_GO_FAIL"* ]]; then
  for i in $(seq 1 50); do echo "compile error $i" >&2; done
  exit 2
fi
if [ -n "${FAKE_GO_GATE:-}" ] && [[ $args == *" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi "* ]]; then
  for _ in $(seq 1 600); do [ -e "$FAKE_GO_GATE" ] && break; sleep 0.1; done
  [ -e "$FAKE_GO_GATE" ] || { echo "fake go: the start line never reached the reader" >&2; exit 3; }
fi
executable() { printf '#!/bin/sh\necho %s\n' "$2" >"$1"; chmod +x "$1"; }
case $1 in
  build)
    out=$(sed -n 's/.* -o \([^ ]*\) .*/\1/p' <<<"$args")
    version=$(sed -n 's/.*Version=\(v[^ ]*\) .*/\1/p' <<<"$args")
    executable "$out" "$version" ;;
  install) executable "$GOBIN/pulumi-language-yaml" v1.25.0 ;;
  list) echo "$FAKE_SDK" ;;
  mod) printf '{\n\t"Dir": "%s",\n}\n' "$FAKE_SDK" ;;
  *) echo "fake go: unexpected $*" >&2; exit 1 ;;
esac
""".replace("__DOWNLOADS__", str(DOWNLOADS))


def copy_repo(tmp_path: Path, *files: str) -> Path:
    """The scripts and the go.mod files they read, in a folder of their own (their logs go there)."""
    repo = tmp_path / "repo"
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    return repo


def write_executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def build_env(tmp_path: Path) -> dict[str, str]:
    """PATH with the fake `go` first; the sdk module's folder with the two scripts the build takes from it."""
    write_executable(tmp_path / "fake-bin" / "go", FAKE_GO)
    sdk = tmp_path / "sdk"
    write_executable(sdk / "python/dist/pulumi-resource-pulumi-python", "#!/bin/sh\n")
    write_executable(sdk / "python/cmd/pulumi-language-python-exec", "#!/bin/sh\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "GO"))}
    return {
        **env,
        "PATH": os.pathsep.join([str(tmp_path / "fake-bin"), env.get("PATH", "")]),
        "PULUMI_MLFLOW_RUNS_BUILD_CLI": "1",
        "FAKE_SDK": str(sdk),
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_repo(
        tmp_path,
        "scripts/pulumi-cli.sh",
        "scripts/language-host.sh",
        "scripts/stages.sh",
        "tools/pulumi-cli/go.mod",
        "tools/language-host/go.mod",
    )


# (how the start line begins, its log, what the end line says was built)
STAGES = [
    (f"pulumi-cli: building the Pulumi CLI {VERSION} from Go modules", "pulumi-cli-build.log", VERSION),
    ("language-host: building the Python language host", "language-host-python.log", "the Python language host"),
    ("language-host: building the YAML language host", "language-host-yaml.log", "the YAML language host"),
    ("language-host: building the Node.js language host", "language-host-nodejs.log", "the Node.js language host"),
]


def test_each_build_stage_shows_its_start_and_end_as_it_happens_and_go_writes_to_its_log(
    repo: Path, build_env: dict[str, str], tmp_path: Path
) -> None:
    gate = tmp_path / "start-line-seen"
    seen: list[tuple[float, str]] = []

    def echo(line: str) -> None:  # what the quickstart copies to the terminal, line by line
        seen.append((time.monotonic(), line))
        if line.startswith(STAGES[0][0]):
            gate.touch()  # the fake `go` finishes the CLI's build only once the start line is out

    lookup = run_cli_script(repo / "scripts/pulumi-cli.sh", {**build_env, "FAKE_GO_GATE": str(gate)}, echo, 120)

    bin_dir = repo / ".pulumi-local/cli" / VERSION / "bin"
    assert lookup.bin_dir == bin_dir, lookup.log  # the last line of stdout: the folder, as before
    for name in ("pulumi", "pulumi-resource-pulumi-python", "pulumi-language-python", "pulumi-language-python-exec"):
        assert (bin_dir / name).exists(), name
    assert lookup.log == "".join(line for _, line in seen), "echo got every line of the script's stderr"
    assert "go: downloading" not in lookup.log, lookup.log  # the module list stays out of the terminal
    assert "example.com/m" not in lookup.log, lookup.log
    for start, log_name, done in STAGES:
        started = re.search(rf"^{re.escape(start)}.*\.\.\. \(log: (.+)\)$", lookup.log, re.M)
        assert started, f"no start line for {log_name}:\n{lookup.log}"
        assert Path(started[1]) == repo / ".pulumi-local/logs" / log_name  # the message names the log
        log = Path(started[1]).read_text()
        assert log.count("go: downloading example.com/m") == DOWNLOADS, log  # Go's output is kept there
        ended = re.search(rf"^{start.split(':')[0]}: built {re.escape(done)} in \d+ s$", lookup.log, re.M)
        assert ended and ended.start() > started.start(), f"no end line after the start of {log_name}:\n{lookup.log}"
    assert len(lookup.log.splitlines()) <= 12, lookup.log  # short stage lines: CI's log stays readable

    # Later runs reuse the build and build nothing.
    again = run_cli_script(repo / "scripts/pulumi-cli.sh", build_env, None, 60)
    assert again.bin_dir == bin_dir, again.log
    assert "building" not in again.log and "built earlier" in again.log, again.log


@pytest.mark.parametrize(("failing", "stage"), [
    (" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi ", 0),
    ("cmd/pulumi-language-python ", 1),
    ("cmd/pulumi-language-yaml@", 2),
    ("cmd/pulumi-language-nodejs ", 3),
])  # fmt: skip
def test_a_failing_build_prints_the_tail_of_its_log_and_its_path_and_fails(
    repo: Path, build_env: dict[str, str], failing: str, stage: int
) -> None:
    proc = subprocess.run(
        ["bash", str(repo / "scripts/pulumi-cli.sh")],
        cwd=repo, env={**build_env, "FAKE_GO_FAIL": failing}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode != 0, proc.stderr
    assert proc.stdout == "", proc.stdout  # no folder line: callers see no CLI
    start, log_name, _ = STAGES[stage]
    shown = f".pulumi-local/logs/{log_name}"  # named from where the script was run
    lines = proc.stderr.splitlines()
    assert any(line.startswith(start) and line.endswith(f"... (log: {shown})") for line in lines), proc.stderr
    prefix = start.split(":")[0]
    failed = [i for i, line in enumerate(lines) if re.fullmatch(rf"{prefix}: failed \(exit 2\) after \d+ s; .*", line)]
    assert failed and lines[failed[0]].endswith(f"the last 30 lines of {shown}:"), proc.stderr
    tail = [line.strip() for line in lines[failed[0] + 1 : failed[0] + 31]]
    assert tail == [f"compile error {i}" for i in range(21, 51)], proc.stderr  # exactly the log's last 30 lines
    assert lines[failed[0] + 31] == f"{prefix}: the whole output: {shown}", proc.stderr
    assert "go: downloading" not in proc.stderr, proc.stderr
    log = (repo / shown).read_text()
    assert log.count("go: downloading") == DOWNLOADS and "compile error 1\n" in log, log


# `python` for bootstrap.sh: the version check, `-m venv` (a copy of itself as the venv's python), and pip
# (40 lines of output; FAKE_PIP_FAIL fails the package's install after them).
FAKE_PYTHON = r"""#!/usr/bin/env bash
set -euo pipefail
case $1 in
  -c) exit 0 ;;
  --version) echo "Python 3.12.0" ;;
  -m)
    if [ "$2" = venv ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; exit 0; fi
    for i in $(seq 1 40); do echo "Collecting package$i"; done
    if [ -n "${FAKE_PIP_FAIL:-}" ] && [ "${*: -1}" = ".[test]" ]; then
      for i in $(seq 1 50); do echo "ERROR: pip line $i" >&2; done
      exit 1
    fi ;;
esac
"""


@pytest.mark.parametrize("fail", [False, True])
def test_the_venv_stage_shows_its_start_and_end_and_pip_writes_to_its_log(tmp_path: Path, fail: bool) -> None:
    repo = copy_repo(tmp_path, "scripts/bootstrap.sh")
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    python = write_executable(tmp_path / "fake-bin" / "python", FAKE_PYTHON)
    env = {**os.environ, "PYTHON": str(python), **({"FAKE_PIP_FAIL": "1"} if fail else {})}

    def bootstrap() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", f"source {repo / 'scripts/bootstrap.sh'} && echo sourced"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    proc = bootstrap()
    lines = proc.stderr.splitlines()
    log = repo / ".pulumi-local/logs/venv.log"
    assert lines[0] == (
        "venv: creating .venv (Python 3.12.0) and installing the package with its test extras..."
        " (log: .pulumi-local/logs/venv.log)"  # the script works in the repository's folder
    ), proc.stderr
    assert "Collecting" not in proc.stderr, proc.stderr
    assert log.read_text().count("Collecting package1\n") == 2, "pip's output (pip, then the package) is kept"
    if not fail:
        assert proc.returncode == 0 and proc.stdout == "sourced\n", proc.stderr
        assert re.fullmatch(r"venv: ready in \d+ s", lines[1]) and len(lines) == 2, proc.stderr
        assert bootstrap().stderr == "", "an up-to-date venv: nothing to say"
        return
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    failed = r"venv: failed \(exit 1\) after \d+ s; the last 30 lines of \.pulumi-local/logs/venv\.log:"
    assert re.fullmatch(failed, lines[1]), proc.stderr
    assert [line.strip() for line in lines[2:32]] == [f"ERROR: pip line {i}" for i in range(21, 51)], proc.stderr
    assert lines[32:] == ["venv: the whole output: .pulumi-local/logs/venv.log"], proc.stderr


# `pulumi` and the hosts beside it, found on PATH as a user's installed CLI would be.
FAKE_PULUMI = r"""#!/usr/bin/env bash
case $1 in
  version) echo "v3.274.1" ;;
  stack) echo "Created stack '$4'" ;;
  up) sleep 0.2; echo "Resources:"; echo "    + 4 created" ;;
esac
"""


@pytest.mark.timeout(120)
def test_the_quickstart_shows_the_server_start_the_stack_select_and_the_up_with_their_times(tmp_path: Path) -> None:
    bin_dir = tmp_path / "fake-cli"
    write_executable(bin_dir / "pulumi", FAKE_PULUMI)
    for name in ("resource-pulumi-python", "language-python", "language-yaml", "language-nodejs"):
        write_executable(bin_dir / f"pulumi-{name}", "#!/bin/sh\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PULUMI_"))}
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts/quickstart.py"), "--local", str(tmp_path / "local"), "--stack", "s"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert f"pulumi-cli: using {bin_dir / 'pulumi'} (v3.274.1)" in proc.stderr.splitlines(), proc.stderr
    expected = [
        r"quickstart: finding the Pulumi CLI and its language hosts \(.*\)\.\.\.",
        r"quickstart: the Pulumi CLI and its language hosts ready in [\d.]+ s",
        r"quickstart: starting the MLflow tracking server \(sqlite: .*mlflow\.db\)\.\.\.",
        r"quickstart: MLflow tracking server http://127\.0\.0\.1:\d+ started in [\d.]+ s",
        rf"{re.escape(ROOT.name)}\$ pulumi stack select --create s",
        r"Created stack 's'",
        r"quickstart: `pulumi stack select --create s` done in [\d.]+ s",
        rf"{re.escape(ROOT.name)}\$ pulumi up --yes",
        r"quickstart: `pulumi up --yes` done in [\d.]+ s",
    ]
    lines = iter(proc.stdout.splitlines())
    for pattern in expected:  # in this order, other lines between
        assert any(re.fullmatch(pattern, line) for line in lines), f"no {pattern!r} in order:\n{proc.stdout}"
