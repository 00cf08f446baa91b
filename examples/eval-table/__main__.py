"""An evaluation table kept as data: each row of results.csv (a model on a dataset with a seed, and its scores)
is one FINISHED run, and the whole table is one resource.

One resource however many rows: the engine tracks (and checkpoints) one entry, the provider writes the runs in
parallel, and a preview names the entry and the property that change: ``runs["bert-base-sst2-s1"].metrics``.
"""

import csv
from pathlib import Path

import pulumi

from pulumi_mlflow_runs import Experiment, RunTable

config = pulumi.Config()
experiment = Experiment("evals", name=config.get("experimentName") or f"eval-table-{pulumi.get_stack()}")

with (Path(__file__).parent / "results.csv").open(newline="") as f:
    rows = list(csv.DictReader(f))

runs = {
    f"{row['model']}-{row['dataset']}-s{row['seed']}": {
        "status": "FINISHED",
        "params": {"model": row["model"], "dataset": row["dataset"], "seed": row["seed"]},
        "tags": {"table": "glue-evals", "source": "results.csv"},
        "metrics": [{"key": "accuracy", "value": float(row["accuracy"])}, {"key": "f1", "value": float(row["f1"])}],
    }
    for row in rows
}

table = RunTable(
    "glue",
    experiment_id=experiment.experiment_id,
    runs=runs,
    max_parallel=config.get_int("maxParallel") or 4,  # requests in flight; 4 suits a one-worker server
)

pulumi.export("experiment_id", experiment.experiment_id)
pulumi.export("run_ids", table.run_ids)
pulumi.export("latest_metrics", table.latest_metrics)
