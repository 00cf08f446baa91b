"""The generated Python SDK (``sdk/python``, the ``pulumi_mlflow_runs_native`` package the schema's
``language.python`` names) for the tests: its wheel, a user's virtualenv with it, and the language host
that prints Python code for ``pulumi import`` (``tools/sdk-gen/codegenhost``)."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from support.project import PACKAGE_VENV
from support.sdks import ROOT, require, run_step


def sdk_wheel(out: Path) -> Path:
    """The SDK's wheel, as ``pip wheel sdk/python`` builds it (from a copy: the build leaves files behind)."""
    source = out / "source"
    shutil.copytree(ROOT / "sdk" / "python", source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    run_step([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(source)], out)
    (built,) = out.glob("pulumi_mlflow_runs_native-*.whl")
    return built


def codegen_host(out: Path) -> Path:
    """A folder holding ``pulumi-language-python`` that answers GenerateProgram with the CLI's own Python
    code generator and passes every other call to the host named by ``PULUMI_MLFLOW_RUNS_PYTHON_HOST``."""
    go = require("go")
    # -trimpath as scripts/pulumi-cli.sh and scripts/gen-sdk.sh build: the pkg/v3 packages come from the cache.
    env = {**os.environ, "GOFLAGS": "-trimpath -buildvcs=false -mod=readonly"}
    host = out / "pulumi-language-python"
    run_step([go, "build", "-o", str(host), "./codegenhost"], ROOT / "tools" / "sdk-gen", env=env)
    return out


def user_venv(folder: Path, *wheels: Path) -> Path:
    """A virtualenv at ``folder`` with ``wheels`` installed by pip, as a user installs them; their
    dependencies (pulumi, grpcio, ...) are the checkout's venv's, seen through a ``.pth`` file, so that no
    test downloads them again."""
    run_step([sys.executable, "-m", "venv", "--without-pip", str(folder)], folder.parent)
    purelib = Path(sysconfig.get_paths(vars={"base": str(folder), "platbase": str(folder)})["purelib"])
    checkout = sysconfig.get_paths()["purelib"]
    assert Path(checkout).is_relative_to(PACKAGE_VENV), f"the tests run outside the checkout's venv: {checkout}"
    (purelib / "_checkout_venv.pth").write_text(checkout + "\n")
    python = folder / "bin" / "python"
    run_step([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
              *map(str, wheels)], folder.parent)  # fmt: skip
    return folder
