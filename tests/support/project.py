"""``pulumi`` as users run it: a process in the folder of a ``Pulumi.yaml``, through the Python language host.

The CLI starts the language host (``pulumi-language-python``, which ``scripts/pulumi-cli.sh`` puts beside
it), the host runs the program with the virtualenv's Python, and the engine starts the dynamic provider
through its launcher with the project's runtime options (``PULUMI_RUNTIME_VIRTUALENV``). Nothing of this
process is involved: no Automation API.

The one stand-in: the host built here (sdk v3.68.0, ``scripts/language-host.sh``) no longer receives the
``virtualenv`` option from a current CLI, so ``host_env`` names that virtualenv's Python to it
(``PULUMI_PYTHON_CMD``), resolved against the folder of ``Pulumi.yaml`` exactly as the current host
resolves it, without putting the virtualenv on PATH (the current host does not either). The launcher
still gets the raw option from the engine, as under the official tools.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from support.pulumi_cli import PASSPHRASE

_INHERITED_PREFIXES = ("DATABRICKS_", "MLFLOW_", "PULUMI_", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH")


def virtualenv_of(folder: Path) -> Path | None:
    """The virtualenv ``folder/Pulumi.yaml`` names, resolved as the language host resolves it."""
    runtime = (yaml.safe_load((folder / "Pulumi.yaml").read_text()) or {}).get("runtime")
    options = runtime.get("options") if isinstance(runtime, dict) else None
    venv = (options or {}).get("virtualenv")
    return (folder / venv).resolve() if venv else None


def user_env(bin_dir: Path, home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A shell of a user who has the CLI on PATH and a local state backend under ``home``.

    Nothing of this process's MLflow, Databricks, Pulumi or virtualenv settings leaks in.
    """
    base = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES)}
    # A virtualenv's bin on PATH (the test venv's, say) is not in a new user's shell.
    path = [p for p in base.get("PATH", "").split(os.pathsep) if p and not (Path(p).parent / "pyvenv.cfg").exists()]
    (home / "state").mkdir(parents=True, exist_ok=True)
    return {
        **base,
        "PATH": os.pathsep.join([str(bin_dir), *path]),
        "PULUMI_HOME": str(home / "pulumi-home"),
        "PULUMI_BACKEND_URL": (home / "state").as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
        **(extra or {}),
    }


def activated(env: Mapping[str, str], venv: Path | None) -> dict[str, str]:
    """``env`` with ``venv`` activated (``source venv/bin/activate``), or as it is without one."""
    if venv is None:
        return dict(env)
    return {**env, "VIRTUAL_ENV": str(venv), "PATH": os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])}


def host_env(env: Mapping[str, str], folder: Path) -> dict[str, str]:
    """``env`` for ``pulumi`` in ``folder``: the language host told the Python of the virtualenv its
    ``Pulumi.yaml`` names, as the current host finds it by itself (see the module's docstring)."""
    venv = virtualenv_of(folder)
    return dict(env) if venv is None else {**env, "PULUMI_PYTHON_CMD": str(venv / "bin" / "python")}


@dataclass
class ProjectFolder:
    """One stack of the project in ``folder``; every command runs there, as typed in a shell."""

    folder: Path
    env: dict[str, str] = field(repr=False)
    stack: str
    log: list[str] = field(default_factory=list, repr=False)

    def pulumi(self, *args: str, ok: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``pulumi ARGS --non-interactive``; with ``ok``, a non-zero exit fails with everything it printed."""
        command = ["pulumi", *args, "--non-interactive"]
        proc = subprocess.run(
            command, cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        self.log.append(f"$ {' '.join(command)}  (exit {proc.returncode})\n{proc.stdout}{proc.stderr}")
        if ok and proc.returncode != 0:
            raise AssertionError(f"`{' '.join(command)}` in {self.folder} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def init(self, config: Mapping[str, str] | None = None) -> None:
        self.pulumi("stack", "init", self.stack)
        for key, value in (config or {}).items():
            self.pulumi("config", "set", key, value)

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self.pulumi("stack", "output", "--json").stdout))

    def exported(self) -> dict[str, Any]:
        """``pulumi stack export`` as a user runs it (secrets stay ciphertext)."""
        return dict(json.loads(self.pulumi("stack", "export").stdout))

    def remove(self) -> None:
        """Destroy what is left, drop the stack and its ``Pulumi.<stack>.yaml`` from the folder."""
        self.pulumi("destroy", "--yes", ok=False)
        self.pulumi("stack", "rm", "--yes", "--force", ok=False)
        (self.folder / f"Pulumi.{self.stack}.yaml").unlink(missing_ok=True)


PACKAGE_VENV = Path(__file__).resolve().parents[2] / ".venv"
"""This checkout's virtualenv: the package (and its plugin, ``pulumi-resource-mlflow-runs``) installed."""


def project_folder(
    folder: Path,
    bin_dir: Path,
    home: Path,
    stack: str,
    extra_env: Mapping[str, str] | None = None,
    venv: Path | None = None,
) -> ProjectFolder:
    """A user's shell in ``folder``: the language host told the Python of the virtualenv its ``Pulumi.yaml``
    names; a program that names none (a YAML program) gets ``venv`` activated, the virtualenv its user
    installed the plugin into with pip."""
    env = user_env(bin_dir, home, extra_env)
    env = host_env(env, folder) if virtualenv_of(folder) is not None else activated(env, venv)
    return ProjectFolder(folder, env, stack)


def typist_shell(bin_dir: Path, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """``(env, home)`` of a user typing a README's commands in a new shell: a new HOME outside the
    checkout, the CLI on PATH, no backend chosen yet (their ``pulumi login`` chooses it), the passphrase
    they would type at the prompt, and their own pip cache (only download times differ)."""
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    assert not home.is_relative_to(Path(__file__).resolve().parents[2]), "the user's folder is in the checkout"
    env = user_env(bin_dir, tmp_path, {"HOME": str(home), "PULUMI_HOME": str(home / ".pulumi")})
    env["PULUMI_CONFIG_PASSPHRASE"] = "typed-at-the-prompt"
    env.pop("PULUMI_BACKEND_URL")
    pip_cache = subprocess.run(
        [sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if pip_cache:
        env["PIP_CACHE_DIR"] = pip_cache
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env, home
