"""A stack moves from the dynamic resources to the native ones without recreating its runs.

The README's recipe, typed into a project folder and run by the real CLI: the program imports the classes
from ``pulumi_mlflow_runs.native`` instead and gives each resource ``aliases=[<Class>.FROM_DYNAMIC]``. The
engine then hands the plugin the dynamic resource's state; the plugin reads each run and sends nothing,
and the state takes the plugin's form, so what the program reads back (``run_id``) is there.

A run a killed ``up`` left half-made on the dynamic door is taken over by the plugin's create after the move:
both doors mark it with the same key (``core.resource_key``: the URN without its own type).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse
from urllib.request import url2pathname

from pulumi_mlflow_runs.core import resource_key

from support.fault_proxy import FaultProxy
from support.mlflow_proxy import RecordingProxy
from support.project import PACKAGE_VENV, ProjectFolder, project_folder
from support.pulumi_cli import kill_tree
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

        # As a stack an earlier version made: its state holds the dynamic program's old key alone. The program
        # now sends the core's key and that one; ``resource_key`` matters only to a create, so no change.
        exported = project.exported()
        for r in exported["deployment"]["resources"]:
            if r["type"].endswith(":ExperimentRun"):
                keys = resource_key.keys_of(r["inputs"]["resource_key"])
                assert keys[0] == resource_key.of_urn(r["urn"]) and len(keys) == 2, (keys, r["urn"])
                r["inputs"]["resource_key"] = keys[1]
        (tmp_path / "earlier.json").write_text(json.dumps(exported))
        project.pulumi("stack", "import", "--file", str(tmp_path / "earlier.json"))
        project.pulumi("preview", "--diff", "--expect-no-changes")

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


INTERRUPTED = """\
import pulumi

from pulumi_mlflow_runs import Experiment, ExperimentRun


class Suite(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("acme:evals:Suite", name, None, None)


def points(values):
    return [{"key": "loss", "value": v, "step": i, "timestamp": 1767225600000 + i} for i, v in enumerate(values)]


experiment = Experiment("evaluations", name=pulumi.Config().require("experimentName"))
suite = Suite("suite")
top = ExperimentRun(
    "train",
    experiment_id=experiment.experiment_id,
    run_name="train",
    params={"lr": "0.01"},
    metrics=points([0.9, 0.5]),
)
child = ExperimentRun(
    "train",
    experiment_id=experiment.experiment_id,
    run_name="suite-train",
    params={"lr": "0.02"},
    metrics=points([0.8, 0.4]),
    opts=pulumi.ResourceOptions(parent=suite),
)
pulumi.export("run_ids", {"train": top.run_id, "suite-train": child.run_id})
"""


def moved(program: str) -> str:
    """The README's edit: the plugin's classes, each resource aliased to its dynamic type."""
    out = program.replace("from pulumi_mlflow_runs import", "from pulumi_mlflow_runs.native import")
    out = out.replace(
        'require("experimentName"))',
        'require("experimentName"),\n    opts=pulumi.ResourceOptions(aliases=[Experiment.FROM_DYNAMIC]))',
    )
    out = out.replace(
        "    metrics=points([0.9, 0.5]),\n",
        "    metrics=points([0.9, 0.5]),\n    opts=pulumi.ResourceOptions(aliases=[ExperimentRun.FROM_DYNAMIC]),\n",
    )
    out = out.replace(
        "opts=pulumi.ResourceOptions(parent=suite)",
        "opts=pulumi.ResourceOptions(parent=suite, aliases=[ExperimentRun.FROM_DYNAMIC])",
    )
    assert out.count("FROM_DYNAMIC") == 3, out
    return out


def _up_killed_before_the_runs_are_complete(project: ProjectFolder, proxy: FaultProxy) -> str:
    """``pulumi up`` SIGKILLed (with the provider under it) while both runs wait in their first log-batch,
    after runs/create and before the request that marks a run complete; those requests never reach the
    server. What the killed ``up`` printed."""
    arrived: list[str] = []
    release = threading.Event()

    def hold() -> None:  # in the proxy's thread of the request, which waits here until the CLI is dead
        arrived.append("runs/log-batch")
        release.wait(timeout=600)

    proxy.when("runs/log-batch", hold)
    proxy.when("runs/log-batch", hold)
    log = project.folder / "killed-up.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive"], cwd=project.folder, env=project.env,
            stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while len(arrived) < 2 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            kill_tree(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
        finally:
            proxy.fail("runs/log-batch", "drop-before", times=2)  # the held requests go nowhere
            release.set()
    printed = log.read_text(errors="replace")
    assert len(arrived) == 2, f"the up ended before both runs reached their log-batch:\n{printed}"
    return printed


def test_a_run_a_killed_up_left_on_the_dynamic_door_is_taken_over_by_the_plugin(
    tmp_path: Path, pulumi_bin: Path, fault_proxy: FaultProxy, mlflow_client: MlflowClient
) -> None:
    """Item 3 of issue 26: an ``up`` on the dynamic door killed mid-create, then the README's move to the
    plugin and ``pulumi up``: each half-made run is found by its key and completed, no second run. A top-level
    run and one under a component, both named ``train``: the key keeps the parent's type chain."""
    folder = tmp_path / "interrupted"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text("name: interrupted\nruntime: python\n")
    (folder / "__main__.py").write_text(INTERRUPTED)
    env = {"MLFLOW_TRACKING_URI": fault_proxy.url}
    project = project_folder(folder, pulumi_bin, tmp_path, unique("stack"), env, venv=PACKAGE_VENV)
    experiment_name = unique("interrupted")
    project.init({"experimentName": experiment_name})
    try:
        printed = _up_killed_before_the_runs_are_complete(project, fault_proxy)

        # What a user does next. The killed CLI left the stack locked: the next command says `pulumi cancel`.
        backend = Path(url2pathname(urlparse(project.env["PULUMI_BACKEND_URL"]).path))
        if any(backend.glob(f".pulumi/locks/**/{project.stack}/*.json")):
            project.pulumi("cancel", "--yes")
        # The engine recorded both creates as pending: a non-interactive `up` would keep them for good, and
        # `pulumi refresh` asks what to do with them; clearing them is right, since the next create finds and
        # finishes each half-made run.
        pending = project.exported()["deployment"].get("pending_operations") or []
        creating = sorted(op["resource"]["urn"] for op in pending if op["type"] == "creating")
        assert [u.rsplit("::", 1)[-1] for u in creating] == ["train", "train"], (pending, printed)
        assert sorted(resource_key.split_urn(u)[2][0] for u in creating) == [
            "acme:evals:Suite",
            "pulumi-python:dynamic/mlflow:ExperimentRun",
        ], creating
        project.pulumi("refresh", "--clear-pending-creates", "--yes")

        experiment_id = mlflow_client.get_experiment_by_name(experiment_name).experiment_id
        left = {r.data.tags["mlflow.runName"]: r for r in all_runs(mlflow_client, experiment_id).values()}
        assert sorted(left) == ["suite-train", "train"], left
        # Each run is marked unfinished with the key of its dynamic URN, which is the key of its plugin URN.
        marks = sorted(r.data.tags["pulumi.resource_key"] for r in left.values())
        assert marks == sorted(f"creating:{resource_key.of_urn(u)}" for u in creating), (marks, creating)
        assert len(set(marks)) == 2

        (folder / "__main__.py").write_text(moved(INTERRUPTED))
        mark = fault_proxy.mark()
        project.pulumi("up", "--yes", "--skip-preview")
        sent = [r.endpoint for r in fault_proxy.since(mark)]
        assert "runs/create" not in sent, sent

        runs = all_runs(mlflow_client, experiment_id)
        assert sorted(runs) == sorted(r.info.run_id for r in left.values()), "no second run, none deleted"
        assert all(r.info.lifecycle_stage == "active" for r in runs.values())
        assert project.outputs()["run_ids"] == {name: r.info.run_id for name, r in left.items()}
        for name, lr, values in [("train", "0.01", [0.9, 0.5]), ("suite-train", "0.02", [0.8, 0.4])]:
            run = mlflow_client.get_run(left[name].info.run_id)
            assert not run.data.tags["pulumi.resource_key"].startswith("creating:"), run.data.tags  # completed
            assert run.data.params == {"lr": lr}
            history = mlflow_client.get_metric_history(run.info.run_id, "loss")
            assert [(m.step, m.value) for m in history] == list(enumerate(values))

        deployment = project.exported()["deployment"]
        assert not deployment.get("pending_operations"), deployment.get("pending_operations")
        types = sorted(r["type"] for r in deployment["resources"] if r["type"].endswith("ExperimentRun"))
        assert types == ["mlflow-runs:index:ExperimentRun"] * 2, types
        project.pulumi("preview", "--diff", "--expect-no-changes")
    finally:
        project.remove()
