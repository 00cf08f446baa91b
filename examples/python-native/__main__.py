"""The YAML example's experiment and run, in Python, on the native resources (``pulumi_mlflow_runs.native``).

The keyword arguments are the dynamic classes' own; the engine runs these on the plugin
``pulumi-resource-mlflow-runs`` and its preview names each changed path (``metrics[4]``,
``artifacts["report.md"]``). The server comes from ``pulumi config set mlflow-runs:trackingUri ...`` or
the environment (``MLFLOW_TRACKING_URI``).
"""

import pulumi

from pulumi_mlflow_runs.native import Experiment, ExperimentRun

config = pulumi.Config()
experiment = Experiment(
    "evaluations",
    name=config.get("experimentName") or f"python-native-{pulumi.get_stack()}",
    tags={"owner": "ml-platform"},
)

run = ExperimentRun(
    "bertSst2",
    experiment_id=experiment.experiment_id,
    run_name="bert-sst2",
    status="FINISHED",
    start_time=1_767_225_600_000,  # 2026-01-01T00:00:00Z
    end_time=1_767_229_200_000,
    params={"model": "bert-base-uncased", "batch_size": "32"},
    tags={"reviewed_by": "alice"},
    description="BERT base on SST-2, evaluated on the validation split.",
    metrics=[
        {"key": "loss", "value": 0.92, "step": 0},
        {"key": "loss", "value": 0.61, "step": 1},
        {"key": "loss", "value": 0.44, "step": 2},
        {"key": "accuracy", "value": 0.924, "step": 2},
    ],
    dataset_inputs=[
        {
            "dataset": {"name": "sst2", "digest": "9a1b2c3d", "source_type": "hf", "source": "glue/sst2"},
            "tags": {"mlflow.data.context": "eval"},
        }
    ],
    artifacts={"report.md": pulumi.StringAsset("# bert-sst2\n\naccuracy 0.924 on the SST-2 validation split.\n")},
)

pulumi.export("experimentId", experiment.experiment_id)
pulumi.export("runId", run.run_id)
pulumi.export("artifactUri", run.artifact_uri)
pulumi.export("latestMetrics", run.latest_metrics)
