"""A stack moves from the dynamic resources to the native ones without recreating its runs.

The README's recipe, typed into a project folder and run by the real CLI: the program imports the classes
from ``pulumi_mlflow_runs.native`` instead and gives each resource ``aliases=[<Class>.FROM_DYNAMIC]``. The
engine then hands the plugin the dynamic resource's state; the plugin reads each run and sends nothing,
and the state takes the plugin's form, so what the program reads back (``run_id``) is there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from support.mlflow_proxy import RecordingProxy
from support.project import PACKAGE_VENV, project_folder
from support.runs import all_runs, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

DYNAMIC = """\
import pulumi

from pulumi_mlflow_runs import Experiment, ExperimentRun

experiment = Experiment("evaluations", name=pulumi.Config().require("experimentName"))
run = ExperimentRun(
    "train",
    experiment_id=experiment.experiment_id,
    run_name="train",
    status="FINISHED",
    params={"lr": "0.01"},
    tags={"team": "vision"},
    metrics=[{"key": "loss", "value": v, "step": i} for i, v in enumerate([0.9, 0.5, 0.3])],
    dataset_inputs=[{"dataset": {"name": "sst2", "digest": "9a1b", "source_type": "hf", "source": "glue/sst2"}}],
    artifacts={"report.md": pulumi.StringAsset("# train\\n")},
)
pulumi.export("run_id", run.run_id)
"""


def native(program: str) -> str:
    """The README's edit: the native classes, each resource aliased to its dynamic type."""
    moved = program.replace("from pulumi_mlflow_runs import", "from pulumi_mlflow_runs.native import")
    moved = moved.replace(
        'name=pulumi.Config().require("experimentName"))',
        'name=pulumi.Config().require("experimentName"),\n'
        "    opts=pulumi.ResourceOptions(aliases=[Experiment.FROM_DYNAMIC]))",
    )
    moved = moved.replace(
        '    artifacts={"report.md": pulumi.StringAsset("# train\\n")},\n',
        '    artifacts={"report.md": pulumi.StringAsset("# train\\n")},\n'
        "    opts=pulumi.ResourceOptions(aliases=[ExperimentRun.FROM_DYNAMIC]),\n",
    )
    assert moved.count("FROM_DYNAMIC") == 2, moved
    return moved


def test_a_stack_moves_to_the_plugin_without_recreating_its_runs(
    tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    folder = tmp_path / "moving"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text("name: moving\nruntime: python\n")
    (folder / "__main__.py").write_text(DYNAMIC)
    env = {"MLFLOW_TRACKING_URI": proxy.url}
    project = project_folder(folder, pulumi_bin, tmp_path, unique("stack"), env, venv=PACKAGE_VENV)
    project.init({"experimentName": unique("moving")})
    try:
        project.pulumi("up", "--yes", "--skip-preview")
        run_id = project.outputs()["run_id"]
        before = mlflow_client.get_run(run_id)
        history = [(m.step, m.value, m.timestamp) for m in mlflow_client.get_metric_history(run_id, "loss")]

        (folder / "__main__.py").write_text(native(DYNAMIC))
        mark = proxy.mark()
        preview = project.pulumi("preview", "--diff").stdout
        assert "~ 2 to update" in preview and "create" not in preview and "replace" not in preview, preview
        assert "delete" not in preview, preview
        project.pulumi("up", "--yes", "--skip-preview")
        writes = [r for r in proxy.since(mark) if r.is_write]
        assert not writes, [r.endpoint for r in writes]  # the runs are read, never written

        assert project.outputs()["run_id"] == run_id  # the program reads the run back from the new state
        after = mlflow_client.get_run(run_id)
        assert after.info.lifecycle_stage == "active" and after.data.params == before.data.params
        assert [(m.step, m.value, m.timestamp) for m in mlflow_client.get_metric_history(run_id, "loss")] == history
        resources = project.exported()["deployment"]["resources"]
        types = sorted(r["type"] for r in resources if r["type"].endswith(("ExperimentRun", "Experiment")))
        assert types == ["mlflow-runs:index:Experiment", "mlflow-runs:index:ExperimentRun"], types
        assert all("__provider" not in (r.get("outputs") or {}) for r in resources if r["type"] in types)
        project.pulumi("preview", "--diff", "--expect-no-changes")
        project.pulumi("refresh", "--yes", "--expect-no-changes")

        # From here on the plugin's previews: one appended point, named alone.
        program = (folder / "__main__.py").read_text().replace("[0.9, 0.5, 0.3]", "[0.9, 0.5, 0.3, 0.2]")
        (folder / "__main__.py").write_text(program)
        preview = project.pulumi("preview", "--diff").stdout
        assert re.search(r"~ metrics\s*: \[\n\s*\+ \[3\]: \{", preview), preview
        project.pulumi("up", "--yes", "--skip-preview")
        assert len(mlflow_client.get_metric_history(run_id, "loss")) == 4
        experiment_id = after.info.experiment_id
        assert [r for r, v in all_runs(mlflow_client, experiment_id).items() if v.info.lifecycle_stage == "active"] == [
            run_id
        ]
    finally:
        project.remove()
