"""The quickstart's ``train`` run as a person sees it in MLflow's UI, saved as docs/images/run-page.png.

Runs the quickstart (scripts/quickstart.py: its own MLflow server and state under a new folder), serves that
server's database again, and has headless Chromium (``apt-get install chromium``) take the run page
(``/#/experiments/<id>/runs/<run id>``). Made by hand when the page changes, not in CI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.mlflow_server import start_mlflow_server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "run-page.png")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium on PATH: apt-get install -y chromium", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="run-page-") as tmp:
        local = Path(tmp)
        env = {**os.environ, "PULUMI_HOME": str(local / "pulumi-home")}
        quickstart = [sys.executable, str(ROOT / "scripts" / "quickstart.py"), "--local", str(local)]
        subprocess.run(quickstart, env=env, check=True)  # noqa: S603 - our own script
        server = start_mlflow_server(local / "mlflow")
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(server.url)
            experiment = client.get_experiment_by_name("quickstart-dev")
            assert experiment is not None, "the quickstart made no experiment quickstart-dev"
            (run,) = client.search_runs([experiment.experiment_id], "tags.`pulumi.resource` = 'train'")
            url = f"{server.url}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
            args.out.parent.mkdir(parents=True, exist_ok=True)
            shot = [
                chromium, "--headless=new", "--no-sandbox", "--hide-scrollbars", "--window-size=1500,1100",
                "--virtual-time-budget=15000", f"--screenshot={args.out}", url,
            ]  # fmt: skip
            subprocess.run(shot, check=True, capture_output=True)  # noqa: S603 - a fixed command
            print(f"{url}\n-> {args.out}")
        finally:
            server.stop()
        subprocess.run([*quickstart, "--destroy"], env=env, check=True)  # noqa: S603 - our own script
    return 0


if __name__ == "__main__":
    sys.exit(main())
