"""Where the ExperimentRun provider lived before the package had layers; every stack's state names it.

The SDK pickles a dynamic provider by reference into each resource's state (``__provider``), as
``pulumi_mlflow_runs.experiment_run.ExperimentRunProvider``, and the provider host of a later ``pulumi up`` looks
it up there.
"""

from pulumi_mlflow_runs.dynamic.experiment_run import ExperimentRun, ExperimentRunProvider

__all__ = ["ExperimentRun", "ExperimentRunProvider"]
