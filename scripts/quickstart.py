"""Run the quickstart with `pulumi up` against a local MLflow server, all on this machine.

Starts `mlflow server` (sqlite under .pulumi-local/mlflow, loopback, a free port), uses a local file state
backend (.pulumi-local/state), finds or builds the Pulumi CLI (scripts/pulumi-cli.sh), and runs `pulumi up`
on the top-level project (Pulumi.yaml; its program is examples/quickstart). `--destroy` tears it down.

The program runs as an Automation API inline program: this process hosts the language runtime, so the
CLI needs no Python language host (which cannot be built from the Go module proxy here). The CLI, the
engine, the state and the provider host are the real ones, exactly as under `pulumi up` in a shell.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".pulumi-local"
sys.path.insert(0, str(ROOT / "tests"))

from support.mlflow_server import start_mlflow_server  # noqa: E402
from support.pulumi_cli import cli_env, find_cli, program_from_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--destroy", action="store_true", help="destroy the quickstart stack instead")
    args = parser.parse_args()

    from pulumi import automation as auto

    print("Finding the Pulumi CLI (scripts/pulumi-cli.sh; a first build from Go modules takes minutes)...")
    found = find_cli()
    if found.bin_dir is None:
        sys.exit(f"\nNo Pulumi CLI:\n{found.log}")
    print(found.log.strip())
    state = LOCAL / "state"
    state.mkdir(parents=True, exist_ok=True)
    server = start_mlflow_server(LOCAL / "mlflow")
    print(f"MLflow tracking server: {server.url} (sqlite: {LOCAL / 'mlflow' / 'mlflow.db'})")
    try:
        env = cli_env(
            found.bin_dir,
            state,
            {
                "MLFLOW_TRACKING_URI": server.url,
                "PULUMI_CONFIG_PASSPHRASE": os.environ.get("PULUMI_CONFIG_PASSPHRASE", "quickstart"),
            },
        )
        stack = auto.create_or_select_stack(
            stack_name=args.stack,
            project_name="mlflow-runs-quickstart",
            program=program_from_file(ROOT / "examples" / "quickstart" / "__main__.py"),
            opts=auto.LocalWorkspaceOptions(
                work_dir=str(ROOT),
                pulumi_command=auto.PulumiCommand(root=str(found.bin_dir.parent)),
                env_vars=env,
                secrets_provider="passphrase",
            ),
        )
        if args.destroy:
            stack.destroy(on_output=print)
            return
        stack.up(on_output=print)  # the CLI prints the stack outputs at the end
        print(
            "\nBrowse the runs: .venv/bin/mlflow ui --backend-store-uri "
            f"sqlite:///{LOCAL / 'mlflow' / 'mlflow.db'}\n"
            "Run it again (nothing changes): bash scripts/quickstart.sh\n"
            "Tear down: bash scripts/quickstart.sh --destroy"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
