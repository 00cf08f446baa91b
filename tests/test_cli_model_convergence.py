"""Generated histories through the real CLI from a project folder, on both front doors: the slow speed.

The same model as ``test_model_convergence.py`` (``support.convergence``), driving ``pulumi`` in a project
folder through the Python language host (``support.model_stacks.CliStack``), once on the dynamic provider
and once on the native plugin: one program, one model, so the two doors cannot drift apart. Here it also
draws kills: the CLI killed (SIGKILL, with everything under it) or interrupted (SIGINT), or the provider's
process killed, when a chosen request arrives; the user then does what the CLI says and runs ``up`` again.

Budget: ``PULUMI_MLFLOW_RUNS_CLI_MODEL_HISTORIES`` histories of up to ``PULUMI_MLFLOW_RUNS_CLI_MODEL_STEPS``
steps per door (CI: 2 and 10). The soak (``scripts/soak.sh``, docs/reliability.md) runs the same test longer.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from support.convergence import Convergence, drive
from support.fault_proxy import FaultProxy
from support.mlflow_server import MlflowServer
from support.model_stacks import CliStack

HISTORIES = int(os.environ.get("PULUMI_MLFLOW_RUNS_CLI_MODEL_HISTORIES", "2"))
STEPS = int(os.environ.get("PULUMI_MLFLOW_RUNS_CLI_MODEL_STEPS", "10"))


@pytest.mark.timeout(max(3600, 60 * HISTORIES * STEPS))
@pytest.mark.parametrize("door", ["dynamic", "native"])
def test_generated_histories_converge_through_the_cli(
    door: str, tmp_path: Path, pulumi_bin: Path, model_server: MlflowServer
) -> None:
    from mlflow.tracking import MlflowClient

    with FaultProxy(model_server.url) as proxy:

        class ThroughTheCli(Convergence):
            pass

        ThroughTheCli.__name__ = f"ThroughTheCli[{door}]"
        ThroughTheCli.client = MlflowClient(tracking_uri=model_server.url)
        ThroughTheCli.server, ThroughTheCli.proxy, ThroughTheCli.workdir = model_server, proxy, tmp_path
        ThroughTheCli.make_stack = functools.partial(CliStack, door=door, bin_dir=pulumi_bin, home=tmp_path)
        drive(ThroughTheCli, HISTORIES, STEPS)
