"""The SDKs generated from the plugin's schema: what is committed is what the schema gives, and they build.

``scripts/gen-sdk.sh --check`` regenerates them with the CLI's own code generators (tools/sdk-gen) and fails
on any difference; the Go SDK builds and passes ``go vet`` as the module users fetch. The Node.js SDK is
compiled by ``tsc`` when its npm package is built, which ``test_typescript.py`` does and then runs.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from support.sdks import ROOT, require, run_step

# One worker builds Go in turn (xdist_group, .ci/run's --dist loadgroup): the others reuse its build cache.
pytestmark = [pytest.mark.timeout(1200), pytest.mark.xdist_group("go")]


def test_the_committed_sdks_are_what_the_schema_gives() -> None:
    require("go")
    checked = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen-sdk.sh"), "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_the_go_sdk_builds_and_passes_vet() -> None:
    go = require("go")
    # -trimpath as scripts/pulumi-cli.sh builds the CLI: the sdk/v3 packages come from Go's build cache.
    env = {**os.environ, "GOFLAGS": "-trimpath -buildvcs=false -mod=readonly"}
    run_step([go, "build", "./..."], ROOT / "sdk", env=env)
    run_step([go, "vet", "./..."], ROOT / "sdk", env=env)
