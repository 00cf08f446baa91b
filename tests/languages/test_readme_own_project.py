"""The README's "In your own project", typed as a user follows it.

A new folder outside the repository, a shell with nothing of this checkout in it (its own HOME, no
virtualenv active, the CLI on PATH), the README's commands and files taken from the README itself, and the
package installed from the wheel built from this checkout, not the editable one. Four things stand in for
what the test cannot do: the wheel for the package on PyPI, the test server's address for the README's
`http://127.0.0.1:5000`, a state folder of the test's for `pulumi login --local` (the account's home
directory, which the CLI takes from the system, not from HOME), and the passphrase in
``PULUMI_CONFIG_PASSPHRASE`` for the prompt. Whatever else the README asks a user to type is what runs; a
README that drifts from what works fails here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from support.project import activated, typist_shell, user_env

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
_BLOCK = re.compile(r"<!-- own-project: (?P<name>[^ ]+) -->\n```[a-z]*\n(?P<body>.*?)```\n", re.DOTALL)
_APPEND = re.compile(r"Append a point \(`(?P<call>curve\([^`]*\))`\)")


def readme_blocks() -> dict[str, str]:
    return {m["name"]: m["body"] for m in _BLOCK.finditer(README.read_text())}


def _substitute(script: str, old: str, new: str) -> str:
    assert old in script, f"the README's commands no longer say {old!r}; update this test's stand-ins with it"
    return script.replace(old, new)


def _typed(project: Path, shell: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``pulumi ARGS`` typed in ``project`` in the user's ``shell``; it must succeed."""
    proc = subprocess.run(
        ["pulumi", *args, "--non-interactive"], cwd=project, env=shell, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"pulumi {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_the_readme_names_every_file_it_asks_for() -> None:
    blocks = readme_blocks()
    assert set(blocks) == {"shell", "Pulumi.yaml", "__main__.py", "curves.py", "python-native"}, set(blocks)
    assert "from curves import" in blocks["__main__.py"]  # a module of the user's own, beside the program


def test_own_project_as_the_readme_says(
    tmp_path: Path, wheel: Path, pulumi_bin: Path, mlflow_server: MlflowServer, mlflow_client: MlflowClient
) -> None:
    blocks = readme_blocks()
    files = tmp_path / "typed-files"
    files.mkdir()
    for name in ("Pulumi.yaml", "__main__.py", "curves.py"):
        (files / name).write_text(blocks[name])

    script = blocks["shell"]
    script = _substitute(script, "pip install pulumi-mlflow-runs", f"pip install {wheel}")
    script = _substitute(script, "http://127.0.0.1:5000", mlflow_server.url)
    script = _substitute(script, "# write Pulumi.yaml, __main__.py and curves.py as below, then:", f"cp {files}/* .")
    # `--local` is the account's home directory (the CLI asks the system, not HOME): a folder of the test's.
    script = _substitute(script, "pulumi login --local", f"pulumi login {(tmp_path / 'state').as_uri()}")

    env, home = typist_shell(pulumi_bin, tmp_path)

    typed = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=home, env=env, capture_output=True, text=True, timeout=900
    )
    assert typed.returncode == 0, f"the README's commands failed:\n{typed.stdout}\n{typed.stderr}"
    # A Python program of the dynamic resources needs no plugin: the wheel's pulumi-plugin.json says so, and
    # the engine does not start the one pip put on PATH (nor warns that it uses it).
    assert "pulumi-resource-mlflow-runs" not in typed.stdout + typed.stderr, typed.stdout
    project = home / "mlflow-runs"
    assert not list((project / "venv").glob("lib/*/site-packages/__editable__*")), "the editable checkout"
    installed = list((project / "venv").glob("lib/*/site-packages/pulumi_mlflow_runs/__init__.py"))
    assert installed, "the wheel is not installed in the project's venv"

    shell = activated(env, project / "venv")  # `source venv/bin/activate` holds for the rest of the session

    def pulumi(*args: str) -> str:
        return _typed(project, shell, *args).stdout

    run_id = json.loads(pulumi("stack", "output", "--json"))["run_id"]
    assert [m.value for m in mlflow_client.get_metric_history(run_id, "loss")] == [0.92, 0.61, 0.44]
    assert "+ 3 to create" in typed.stdout  # the preview: the stack, the experiment and the run

    # The edit the README describes: one appended point, previewed as an update and logged once.
    appended = _APPEND.search(README.read_text())
    assert appended, "the README no longer describes the appended point"
    main = project / "__main__.py"
    old_call = 'curve("loss", [0.92, 0.61, 0.44])'
    main.write_text(_substitute(main.read_text(), old_call, appended["call"]))
    preview = pulumi("preview", "--diff")
    assert "~ 1 to update" in preview, preview
    pulumi("up", "--yes")
    history = mlflow_client.get_metric_history(run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.92), (1, 0.61), (2, 0.44), (3, 0.35)]
    assert json.loads(pulumi("stack", "output", "--json"))["run_id"] == run_id

    pulumi("refresh", "--yes", "--expect-no-changes")
    pulumi("destroy", "--yes")
    assert mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"


def test_the_native_classes_as_the_readme_shows(
    tmp_path: Path, wheel: Path, pulumi_bin: Path, mlflow_server: MlflowServer, mlflow_client: MlflowClient
) -> None:
    """The README's Python program on the plugin, in a new folder with the wheel in an activated virtualenv
    (the plugin on PATH, as pip put it there) and a ``Pulumi.yaml`` that names no virtualenv, as it says."""
    home = tmp_path / "home"
    project = home / "native"
    project.mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: native\nruntime: python\n")
    (project / "__main__.py").write_text(readme_blocks()["python-native"])
    env = user_env(pulumi_bin, tmp_path, {"HOME": str(home), "PULUMI_HOME": str(home / ".pulumi")})
    subprocess.run([sys.executable, "-m", "venv", str(project / "venv")], check=True, timeout=300)
    shell = activated(env, project / "venv")
    subprocess.run(["pip", "install", "--quiet", str(wheel)], env=shell, check=True, timeout=900)

    def pulumi(*args: str) -> str:
        proc = _typed(project, shell, *args)
        return proc.stdout + proc.stderr

    pulumi("stack", "init", "dev")
    pulumi("config", "set", "mlflow-runs:trackingUri", mlflow_server.url)
    up = pulumi("up", "--yes")
    assert f"using pulumi-resource-mlflow-runs from $PATH at {project / 'venv' / 'bin'}" in up, up  # pip's, not ours
    run_id = json.loads(pulumi("stack", "output", "--json"))["runId"]
    assert [m.value for m in mlflow_client.get_metric_history(run_id, "loss")] == [0.92, 0.61]
    pulumi("preview", "--diff", "--expect-no-changes")
    pulumi("destroy", "--yes")
    assert mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"
