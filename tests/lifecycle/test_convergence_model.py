"""Generated histories of edits, drift and faults, checked against a model, on every harness that runs a stack.

The model and its rules are ``support.convergence``; one test drives it on three stacks:

* ``stand-in``: the stand-in engine (``support.model_stacks.EngineStack``: the program with the SDK in this
  process, each resource through a real ``python -m pulumi.dynamic`` host, behind the fault proxy), fast
  enough for many histories. Budget: ``PULUMI_MLFLOW_RUNS_MODEL_HISTORIES`` histories of up to
  ``PULUMI_MLFLOW_RUNS_MODEL_STEPS`` steps (CI: 8 and 12).
* ``cli-dynamic`` and ``cli-native``: ``pulumi`` in a project folder through the Python language host
  (``support.model_stacks.CliStack``), once on the dynamic provider and once on the native plugin: one
  program, one model, so the two doors cannot drift apart. Here it also draws kills: the CLI killed
  (SIGKILL, with everything under it) or interrupted (SIGINT), or the provider's process killed, when a
  chosen request arrives; the user then does what the CLI says and runs ``up`` again. Budget:
  ``PULUMI_MLFLOW_RUNS_CLI_MODEL_HISTORIES`` histories of up to ``PULUMI_MLFLOW_RUNS_CLI_MODEL_STEPS`` steps
  per door (CI: 2 and 10). The soak (``scripts/soak.sh``, docs/reliability.md) runs the CLI ones longer.

``stand-in-table``: the same with the runs as the entries of one ``RunTable`` (no metrics file: a table's entries
take none in this version), ``PULUMI_MLFLOW_RUNS_TABLE_MODEL_HISTORIES`` histories (CI: 4). Through the CLI a
generated table history of the budget CI affords drew no fault or kill, so the table's kills through the CLI are
written out, on both doors, in ``test_convergence_regressions.py``.

The server is this module's own (``model_server``), so that a history can stop it and start it again.
Derandomized: the same histories on every machine; nothing here is timed. A failing history is shrunk by
hypothesis to its fewest steps and printed; keep it as a regression test in
``test_convergence_regressions.py``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from support.convergence import Convergence, drive
from support.fault_proxy import FaultProxy
from support.mlflow_server import MlflowServer
from support.model_stacks import CliStack, EngineStack

HISTORIES = int(os.environ.get("PULUMI_MLFLOW_RUNS_MODEL_HISTORIES", "8"))
STEPS = int(os.environ.get("PULUMI_MLFLOW_RUNS_MODEL_STEPS", "12"))
CLI_HISTORIES = int(os.environ.get("PULUMI_MLFLOW_RUNS_CLI_MODEL_HISTORIES", "2"))
CLI_STEPS = int(os.environ.get("PULUMI_MLFLOW_RUNS_CLI_MODEL_STEPS", "10"))
TABLE_HISTORIES = int(os.environ.get("PULUMI_MLFLOW_RUNS_TABLE_MODEL_HISTORIES", "4"))
"""The runs as one RunTable: the stand-in's histories (the table through the CLI, with kills, on both doors:
``test_convergence_regressions.py``)."""


@pytest.mark.parametrize(
    "stack",
    [
        # On MLflow 2.x (mlflow2) the stand-in alone: the server sees the same requests from either harness.
        pytest.param("stand-in", marks=[pytest.mark.slow, pytest.mark.mlflow2, pytest.mark.timeout(1800)]),
        *(
            pytest.param(
                f"cli-{door}", marks=[pytest.mark.cli, pytest.mark.timeout(max(3600, 60 * CLI_HISTORIES * CLI_STEPS))]
            )
            for door in ("dynamic", "native")
        ),
        pytest.param("stand-in-table", marks=[pytest.mark.slow, pytest.mark.timeout(1800)]),
    ],
)
def test_generated_histories_converge(
    stack: str, tmp_path: Path, model_server: MlflowServer, request: pytest.FixtureRequest
) -> None:
    from mlflow.tracking import MlflowClient

    # Each class's source, indentation included, is the seed of its derandomized histories (hypothesis digests
    # the state machine's class): these are the ones docs/reliability.md's figures were drawn with.
    with FaultProxy(model_server.url) as proxy:

        class ThroughTheHost(Convergence):
            pass

        class ThroughTheCli(Convergence):
            pass

        class AsATableThroughTheHost(Convergence):
            """The runs as one RunTable's entries, their metrics files too."""

            as_table = True

        machine: type[Convergence]
        if stack == "stand-in":
            ThroughTheHost.make_stack = EngineStack
            machine, histories, steps = ThroughTheHost, HISTORIES, STEPS
        elif stack == "stand-in-table":
            AsATableThroughTheHost.make_stack = EngineStack
            machine, histories, steps = AsATableThroughTheHost, TABLE_HISTORIES, STEPS
        else:
            door = stack.removeprefix("cli-")
            ThroughTheCli.__name__ = f"ThroughTheCli[{door}]"
            bin_dir = request.getfixturevalue("pulumi_bin")
            ThroughTheCli.make_stack = functools.partial(CliStack, door=door, bin_dir=bin_dir, home=tmp_path)
            machine, histories, steps = ThroughTheCli, CLI_HISTORIES, CLI_STEPS
        machine.client = MlflowClient(tracking_uri=model_server.url)
        machine.server, machine.proxy, machine.workdir = model_server, proxy, tmp_path
        seen = drive(machine, histories, steps)
    if stack == "stand-in":
        assert seen["up failed or killed, then a clean up"], seen
    if stack in ("stand-in", "stand-in-table"):  # a run's file, or a table entry's
        assert seen["up: file rows to append"] + seen["up armed: file rows to append"], seen  # an append of a file
        assert seen["file: a run replaced for its file"], seen  # and a replace for logged rows changed
