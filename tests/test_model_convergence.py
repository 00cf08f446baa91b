"""Generated histories of edits, drift and faults, checked against a model: the fast speed.

The model and its rules are ``support.convergence``; here it drives the stand-in engine
(``support.model_stacks.EngineStack``: the program with the SDK in this process, each resource through a
real ``python -m pulumi.dynamic`` host, behind the fault proxy), which is fast enough for many histories.
``test_cli_model_convergence.py`` drives the real CLI from a project folder, on both front doors.

The server is this module's own (``model_server``), so that a history can stop it and start it again.

Budget: ``PULUMI_MLFLOW_RUNS_MODEL_HISTORIES`` histories of up to ``PULUMI_MLFLOW_RUNS_MODEL_STEPS`` steps
(CI: 8 and 12). Derandomized: the same histories on every machine; nothing here is timed. A failing history
is shrunk by hypothesis to its fewest steps and printed; keep it as a regression test in
``test_model_regressions.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.convergence import Convergence, drive
from support.fault_proxy import FaultProxy
from support.mlflow_server import MlflowServer
from support.model_stacks import EngineStack

HISTORIES = int(os.environ.get("PULUMI_MLFLOW_RUNS_MODEL_HISTORIES", "8"))
STEPS = int(os.environ.get("PULUMI_MLFLOW_RUNS_MODEL_STEPS", "12"))


@pytest.mark.timeout(1800)
def test_generated_histories_converge(tmp_path: Path, model_server: MlflowServer) -> None:
    from mlflow.tracking import MlflowClient

    with FaultProxy(model_server.url) as proxy:

        class ThroughTheHost(Convergence):
            pass

        ThroughTheHost.client = MlflowClient(tracking_uri=model_server.url)
        ThroughTheHost.server, ThroughTheHost.proxy, ThroughTheHost.workdir = model_server, proxy, tmp_path
        ThroughTheHost.make_stack = EngineStack
        seen = drive(ThroughTheHost, HISTORIES, STEPS)
    assert seen["up failed or killed, then a clean up"], seen
