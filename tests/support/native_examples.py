"""New stacks of copies of the two example programs on the native plugin, as their users run them.

``examples/yaml-native`` gets the virtualenv pip installed the plugin into activated (a YAML program names
none); ``examples/python-native`` names none either and runs with it activated, as its ``Pulumi.yaml``
says. Both declare the same experiment and run, and export ``experimentId`` and ``runId``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from support.project import PACKAGE_VENV, ProjectFolder, project_folder
from support.runs import unique

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_stack(name: str, tmp_path: Path, pulumi_bin: Path, tracking_uri: str) -> ProjectFolder:
    """A new stack of a copy of ``examples/<name>`` against ``tracking_uri``."""
    folder = tmp_path / name
    shutil.copytree(EXAMPLES / name, folder, ignore=shutil.ignore_patterns("Pulumi.*.yaml", "__pycache__"))
    env = {"MLFLOW_TRACKING_URI": tracking_uri}
    project = project_folder(folder, pulumi_bin, tmp_path, unique("stack"), env, venv=PACKAGE_VENV)
    project.init({"experimentName": unique(name)})
    return project
