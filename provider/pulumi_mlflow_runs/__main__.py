"""``python -m pulumi_mlflow_runs``: the ``pulumi-mlflow-runs`` command-line tool."""

from .cli import run

run()
