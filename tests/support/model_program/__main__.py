"""The program the convergence model declares, as a user would write it: ``model.json`` beside it says what.

``door`` picks the resources: ``dynamic`` (``pulumi_mlflow_runs``) or ``native`` (``pulumi_mlflow_runs.native``,
the plugin); both take the same keyword arguments, so one model drives both. ``as_table`` declares the runs as
the entries of one ``RunTable`` instead of an ``ExperimentRun`` each. Artifact files are declared
as ``StringAsset``\\ s from their text. A metrics file is a ``FileAsset`` of the file the model wrote beside this
program (``metrics/...``): by the relative path a user writes, where the program runs in its folder (the CLI,
whose engine and provider resolve it there too), else by its absolute path (the stand-in engine runs the
program in the test's process).
"""

import json
from pathlib import Path
from typing import Any

import pulumi

HERE = Path(__file__).resolve().parent
spec = json.loads((HERE / "model.json").read_text())
if spec["door"] == "native":
    from pulumi_mlflow_runs.native import Experiment, ExperimentRun, RunTable
else:
    from pulumi_mlflow_runs import Experiment, ExperimentRun, RunTable  # type: ignore[assignment]

experiment = Experiment("experiment", name=spec["experiment"], artifact_location=spec["artifact_location"])
run_ids: dict[str, Any] = {}
entries: dict[str, Any] = {}
for name, declared in sorted(spec["runs"].items()):
    args = dict(declared)
    files = args.pop("artifacts", None)
    if files:
        args["artifacts"] = {path: pulumi.StringAsset(text) for path, text in files.items()}
    metrics_file = args.pop("metrics_file", None)
    if metrics_file:
        path = metrics_file["path"]
        args["metrics_file"] = pulumi.FileAsset(path if Path.cwd().resolve() == HERE else str(HERE / path))
    if spec.get("as_table"):
        entries[name] = args  # the key is the run's name
    else:
        run_ids[name] = ExperimentRun(name, experiment_id=experiment.experiment_id, run_name=name, **args).run_id

pulumi.export("experimentId", experiment.experiment_id)
if spec.get("as_table"):  # every run in one RunTable, the entries' metrics files too
    table = RunTable("runs", experiment_id=experiment.experiment_id, runs=entries, max_parallel=2)
    pulumi.export("runIds", table.run_ids)
else:
    pulumi.export("runIds", run_ids)
