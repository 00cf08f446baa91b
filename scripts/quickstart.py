"""Run the quickstart with `pulumi up` against a local MLflow server, all on this machine.

Starts `mlflow server` (sqlite under .pulumi-local/mlflow, loopback, a free port), uses a local file state
backend (.pulumi-local/state), finds or installs the Pulumi CLI, and runs `pulumi up` on the top-level
project (whose program is examples/quickstart). `--destroy` tears the stack down again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".pulumi-local"
sys.path.insert(0, str(ROOT / "tests"))

from support.mlflow_server import start_mlflow_server  # noqa: E402


def find_pulumi_cli() -> object:
    """The Pulumi CLI: on PATH, in ~/.pulumi/bin, or installed by the Automation API."""
    from pulumi import automation as auto

    for candidate in (shutil.which("pulumi"), str(Path.home() / ".pulumi" / "bin" / "pulumi")):
        if candidate and Path(candidate).exists():
            return auto.PulumiCommand(root=str(Path(candidate).parent.parent))
    print("The Pulumi CLI is not installed; installing it with the Automation API (PulumiCommand.install)...")
    try:
        return auto.PulumiCommand.install()
    except Exception as exc:  # noqa: BLE001 - any failure here has one remedy, said below
        sys.exit(
            "\nCould not install the Pulumi CLI: the download failed "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else 'no details'}).\n"
            "This machine probably has no access to the internet. Install the CLI by hand "
            "(https://www.pulumi.com/docs/install/), put `pulumi` on PATH and run this command again.\n"
            "Without the CLI, `bash scripts/test.sh tests/test_engine_scenarios.py` runs this same program "
            "through the repository's engine stand-in against a local MLflow server."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--destroy", action="store_true", help="destroy the quickstart stack instead")
    args = parser.parse_args()

    from pulumi import automation as auto

    cli = find_pulumi_cli()
    (LOCAL / "state").mkdir(parents=True, exist_ok=True)
    server = start_mlflow_server(LOCAL / "mlflow")
    print(f"MLflow tracking server: {server.url} (sqlite: {LOCAL / 'mlflow' / 'mlflow.db'})")
    try:
        env = {
            "MLFLOW_TRACKING_URI": server.url,
            "PULUMI_BACKEND_URL": (LOCAL / "state").as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": os.environ.get("PULUMI_CONFIG_PASSPHRASE", "quickstart"),
        }
        stack = auto.create_or_select_stack(
            stack_name=args.stack,
            work_dir=str(ROOT),
            opts=auto.LocalWorkspaceOptions(pulumi_command=cli, env_vars=env),  # type: ignore[arg-type]
        )
        if args.destroy:
            stack.destroy(on_output=print)
            return
        result = stack.up(on_output=print)
        print("\nOutputs:")
        for key, value in sorted(result.outputs.items()):
            print(f"  {key}: {value.value}")
        print(
            "\nBrowse the runs: mlflow ui --backend-store-uri "
            f"sqlite:///{LOCAL / 'mlflow' / 'mlflow.db'}\nTear down: bash scripts/quickstart.sh --destroy"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
