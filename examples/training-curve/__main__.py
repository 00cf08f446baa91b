"""A training run declared as code, its curves read from the file the training job writes.

The program holds no point: ``metrics_file`` names the CSV, the provider reads it, and the stack's state keeps
only how much of it is logged. Rows the job appends are an update that logs only them; a row it rewrites that
was already logged replaces the run (logged points cannot change).
"""

import pulumi

from pulumi_mlflow_runs import Experiment, ExperimentRun

config = pulumi.Config()
experiment = Experiment("curves", name=config.get("experimentName") or f"training-curve-{pulumi.get_stack()}")

train = ExperimentRun(
    "train",
    experiment_id=experiment.experiment_id,
    run_name="resnet50-imagenet",
    params={"model": "resnet50", "learning_rate": "0.1", "batch_size": "256", "epochs": "90", "optimizer": "sgd"},
    tags={"team": "vision", "dataset": "imagenet-1k", "job": "train.py"},
    metrics_file=pulumi.FileAsset("metrics/train.csv"),  # key,value,step,timestamp; a path beside this file
)

pulumi.export("experiment_id", experiment.experiment_id)
pulumi.export("run_id", train.run_id)
pulumi.export("latest_metrics", train.latest_metrics)
pulumi.export("logged", train.metrics_file_logged)
