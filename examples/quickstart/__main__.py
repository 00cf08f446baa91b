"""Quickstart: one experiment, one run still RUNNING, one FINISHED run with params, tags, a curve and a file.

The server comes from the environment (``MLFLOW_TRACKING_URI``) or stack config ``databricks:host`` /
``databricks:token``; see the README.
"""

import pulumi

from pulumi_mlflow_runs import Experiment, ExperimentRun

config = pulumi.Config()
experiment_name = config.get("experimentName") or f"quickstart-{pulumi.get_stack()}"

experiment = Experiment("quickstart", name=experiment_name, tags={"owner": "ml-platform"})

# A run that is still going: no end time, status RUNNING.
warmup = ExperimentRun(
    "warmup",
    experiment_id=experiment.experiment_id,
    run_name="warmup",
    status="RUNNING",
    params={"stage": "warmup"},
)

# A finished training run with a loss curve (one point per step) and an accuracy curve.
loss = [0.92, 0.61, 0.44, 0.35, 0.30, 0.27]
accuracy = [0.55, 0.71, 0.80, 0.85, 0.88, 0.90]
train = ExperimentRun(
    "train",
    experiment_id=experiment.experiment_id,
    run_name="train-resnet18",
    status="FINISHED",
    start_time=1_767_225_600_000,  # 2026-01-01T00:00:00Z
    end_time=1_767_229_200_000,
    params={"model": "resnet18", "learning_rate": 0.001, "epochs": len(loss)},
    tags={"team": "vision", "dataset": "imagenet-mini"},
    description="Baseline ResNet-18 on the mini ImageNet split.",
    metrics=[{"key": "loss", "value": v, "step": i, "timestamp": 1_767_225_600_000 + i * 600_000}
             for i, v in enumerate(loss)]
    + [{"key": "accuracy", "value": v, "step": i, "timestamp": 1_767_225_600_000 + i * 600_000}
       for i, v in enumerate(accuracy)],
    # A file kept with the run (MLflow shows it under Artifacts); change the text and `up` uploads it again.
    artifacts={"notes/summary.md": pulumi.StringAsset(f"# train-resnet18\n\nloss {loss[-1]}, acc {accuracy[-1]}\n")},
)

pulumi.export("experiment_id", experiment.experiment_id)
pulumi.export("warmup_run_id", warmup.run_id)
pulumi.export("train_run_id", train.run_id)
pulumi.export("train_artifact_uri", train.artifact_uri)
pulumi.export("warmup_artifact_uri", warmup.artifact_uri)
pulumi.export("train_latest_metrics", train.latest_metrics)
pulumi.export("train_artifact_files", train.artifact_files)
