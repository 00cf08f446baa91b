"""``python -m pulumi_mlflow_runs``: the ``pulumi-mlflow-runs`` command-line tool."""

from pulumi_mlflow_runs.cli import run

run()
