"""State bytes per run under the real Pulumi CLI: the quickstart's runs and one run of 2,000 points.

Runs each program with ``pulumi up`` in its project folder, as users run it (the top-level project for the
quickstart; a folder of its own for the 2,000-point run), against a local file backend and a local MLflow
server, exports the state as a user would (``pulumi stack export``) and prints, per ExperimentRun, the JSON
bytes of its inputs, of its outputs, and of the largest output keys: where the bytes go, and what a change
would save.

    .venv/bin/python benchmarks/bench_state.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.mlflow_server import start_mlflow_server  # noqa: E402
from support.project import project_folder  # noqa: E402
from support.pulumi_cli import find_cli  # noqa: E402


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


_TWO_THOUSAND_POINTS = """\
import pulumi

from pulumi_mlflow_runs import Experiment, ExperimentRun

exp = Experiment("big", name=pulumi.Config().require("experimentName"))
ExperimentRun(
    "curve",
    experiment_id=exp.experiment_id,
    run_name="curve",
    params={f"p{i}": str(i) for i in range(5)},
    tags={f"t{i}": "x" for i in range(3)},
    metrics=[
        {"key": key, "value": 1.0 / (step + 1), "step": step, "timestamp": 1_767_225_600_000 + step}
        for key in ("loss", "accuracy")
        for step in range(1000)
    ],
)
"""


def _two_thousand_points(work: Path) -> Path:
    """A project folder of its own for the 2,000-point run, its virtualenv this checkout's."""
    folder = work / "two-thousand-points"
    folder.mkdir()
    (folder / ".venv").symlink_to(ROOT / ".venv")
    (folder / "Pulumi.yaml").write_text(
        "name: bench-state\nruntime:\n  name: python\n  options:\n    toolchain: pip\n    virtualenv: .venv\n"
    )
    (folder / "__main__.py").write_text(_TWO_THOUSAND_POINTS)
    return folder


def measure(name: str, folder: Path, bin_dir: Path, tracking_uri: str) -> list[dict[str, Any]]:
    """``pulumi up`` in ``folder``, as users run it, then ``pulumi stack export``; the stack is removed after."""
    with tempfile.TemporaryDirectory() as work:
        stack = f"bench-state-{Path(work).name.strip('_').lower()}"
        project = project_folder(folder, bin_dir, Path(work), stack, {"MLFLOW_TRACKING_URI": tracking_uri})
        project.init({"experimentName": stack})
        try:
            project.pulumi("up", "--yes", "--skip-preview")
            state = project.exported()
        finally:
            project.remove()
    rows = []
    for res in state["deployment"]["resources"]:
        if not res["type"].endswith("mlflow:ExperimentRun"):
            continue
        outs = res.get("outputs") or {}
        rows.append(
            {
                "program": name,
                "run": res["urn"].rsplit("::", 1)[-1],
                "total": _size(res),
                "inputs": _size(res.get("inputs") or {}),
                "outputs": _size(outs),
                "largest outputs": sorted(((k, _size(v)) for k, v in outs.items()), key=lambda kv: -kv[1])[:4],
            }
        )
    return rows


def main() -> None:
    found = find_cli()
    if found.bin_dir is None:
        sys.exit(found.log)
    with tempfile.TemporaryDirectory() as data:
        server = start_mlflow_server(Path(data))
        try:
            rows = measure("quickstart", ROOT, found.bin_dir, server.url)  # the top-level project: the quickstart
            rows += measure("2000-points", _two_thousand_points(Path(data)), found.bin_dir, server.url)
        finally:
            server.stop()
    print(f"{'program':<12} {'run':<8} {'state B':>8} {'inputs B':>9} {'outputs B':>10}  largest outputs (bytes)")
    for r in rows:
        largest = ", ".join(f"{k} {n}" for k, n in r["largest outputs"])
        print(f"{r['program']:<12} {r['run']:<8} {r['total']:>8} {r['inputs']:>9} {r['outputs']:>10}  {largest}")


if __name__ == "__main__":
    main()
