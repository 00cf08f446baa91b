"""Where the Experiment provider lived before the package had layers; every stack's state names it.

The SDK pickles a dynamic provider by reference into each resource's state (``__provider``), as
``pulumi_mlflow_runs.experiment.ExperimentProvider``, and the provider host of a later ``pulumi up`` looks
it up there.
"""

from pulumi_mlflow_runs.dynamic.experiment import Experiment, ExperimentProvider

__all__ = ["Experiment", "ExperimentProvider"]
