"""Evaluation results kept as data: every entry of evaluations.yaml becomes one FINISHED run."""

from pathlib import Path

import pulumi
import yaml

from pulumi_mlflow_runs import Experiment, ExperimentRun

spec = yaml.safe_load((Path(__file__).parent / "evaluations.yaml").read_text())
# On Databricks an experiment name is a workspace path: `pulumi config set experimentName /Shared/evals`.
experiment_name = pulumi.Config().get("experimentName") or f"{spec['experiment']}-{pulumi.get_stack()}"
experiment = Experiment("evaluations", name=experiment_name)



def report(entry: dict) -> str:
    """The evaluation's report, kept with the run as an artifact (MLflow shows it beside the metrics)."""
    rows = "\n".join(f"| {key} | {value} |" for key, value in entry["metrics"].items())
    return (
        f"# {entry['name']}\n\nModel `{entry['model']}` on `{entry['dataset']['name']}` "
        f"(digest {entry['dataset']['digest']}).\n\n| metric | value |\n|---|---|\n{rows}\n"
    )


results = {}
for entry in spec["evaluations"]:
    run = ExperimentRun(
        entry["name"],
        experiment_id=experiment.experiment_id,
        run_name=entry["name"],
        status="FINISHED",
        params={"model": entry["model"], **entry.get("params", {})},
        tags=entry.get("tags", {}),
        metrics=[{"key": k, "value": v} for k, v in entry["metrics"].items()],
        dataset_inputs=[{"dataset": entry["dataset"], "tags": {"mlflow.data.context": "eval"}}],
        artifacts={"report.md": pulumi.StringAsset(report(entry))},
    )
    results[entry["name"]] = run.latest_metrics

pulumi.export("experiment_id", experiment.experiment_id)
pulumi.export("results", results)
