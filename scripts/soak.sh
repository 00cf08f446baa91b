#!/usr/bin/env bash
# The soak: the convergence model through the real CLI from a project folder, far past CI's budget.
#   bash scripts/soak.sh DOOR [HISTORIES] [STEPS]     DOOR: dynamic or native (run one per door, side by side)
# Figures (histories, steps, ups, faults and kills by kind) are written to soak-DOOR.json after each history,
# so a soak stopped early still has them; a divergence fails it with hypothesis's shortest history. Stop it
# with Ctrl-C in its terminal; one sent to the background (or signalled alone, which it may not heed while
# a `pulumi` runs) is stopped with kill, and then the MLflow server it started: pkill -f own-server.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
door=${1:?dynamic or native}
export PATH="$(bash scripts/pulumi-cli.sh | tail -n 1):$PATH"
export PULUMI_MLFLOW_RUNS_CLI_MODEL_HISTORIES=${2:-60} PULUMI_MLFLOW_RUNS_CLI_MODEL_STEPS=${3:-25}
export PULUMI_MLFLOW_RUNS_MODEL_FIGURES="$PWD/soak-$door.json"
exec pytest -p no:cacheprovider -s -q "tests/lifecycle/test_convergence_model.py::test_generated_histories_converge[cli-$door]"
