"""The plugin archive's launcher (tools/plugin/pulumi-resource-mlflow-runs) choosing its Python: on a machine
without one the archive carries wheels for, a clear error naming the setting that picks one, and nothing half
made; past a ``python3`` too old, the ``python3.X`` that is supported."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from support.ci import unavailable
from support.plugin_archives import PYTHONS, host_archive, system_python_version
from support.sdks import ROOT

LAUNCHER = ROOT / "tools" / "plugin" / "pulumi-resource-mlflow-runs"


def test_no_supported_python_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    shutil.copy2(LAUNCHER, plugin)
    (plugin / "pythons").write_text("3.98 3.99\n")  # versions no machine has
    done = subprocess.run(
        [str(plugin / LAUNCHER.name)], capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "PULUMI_MLFLOW_RUNS_PYTHON": "/usr/bin/python3"},
    )  # fmt: skip
    assert done.returncode == 1 and done.stdout == "", done
    assert "needs one of Python 3.98 3.99 (tried: /usr/bin/python3)" in done.stderr, done.stderr
    assert "PULUMI_MLFLOW_RUNS_PYTHON" in done.stderr, done.stderr
    assert sorted(p.name for p in plugin.iterdir()) == ["pulumi-resource-mlflow-runs", "pythons"], "no venv, no lock"

    unset = subprocess.run(
        [str(plugin / LAUNCHER.name)], capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert unset.returncode == 1, unset
    assert "(tried: python3 python3.99 python3.98)" in unset.stderr, unset.stderr


@pytest.mark.cli  # a built package, as the npm package's tests
@pytest.mark.timeout(600)
def test_an_unsupported_python3_is_passed_over_for_a_supported_python3_x(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """A machine whose ``python3`` is too old (a stand-in that says 3.9) and that has ``python3.X`` (the system
    Python under that name): the plugin makes its virtualenv with the latter, from the archive's wheels, and
    serves (prints its port)."""
    system = Path("/usr/bin/python3")
    version = system_python_version(system)
    if version not in PYTHONS:
        unavailable(f"the system python3 ({system}) is {version}, not one of {PYTHONS}", "the launcher's")
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    with tarfile.open(host_archive(tmp_path_factory)) as tar:
        tar.extractall(plugin, filter="data")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "python3").write_text("#!/bin/sh\necho 3.9\n")  # what `python3 -c ...` of an old Python prints
    (tools / "python3").chmod(0o755)
    (tools / f"python{version}").symlink_to(system)
    env = {"PATH": os.pathsep.join([str(tools), "/usr/bin", "/bin"]), "HOME": str(tmp_path)}
    log = tmp_path / "plugin.stderr"
    with log.open("w") as stderr, subprocess.Popen(
        [str(plugin / LAUNCHER.name)], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
    ) as served:
        try:
            port = served.stdout.readline().strip() if served.stdout else ""  # the first start installs first
        finally:
            served.terminate()
            served.wait(timeout=60)
    assert port.isdigit(), (port, log.read_text())
    venv_python = (plugin / "venv" / "bin" / "python").resolve()
    assert venv_python == system.resolve(), venv_python
    assert (plugin / "venv" / ".complete").exists()
