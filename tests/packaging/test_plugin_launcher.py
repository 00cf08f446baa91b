"""The plugin archive's launcher (tools/plugin/pulumi-resource-mlflow-runs) on a machine without a Python the
archive carries wheels for: a clear error naming the setting that picks one, and nothing half made."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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
