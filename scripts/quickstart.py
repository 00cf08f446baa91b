"""Run `pulumi up` in the top-level project's folder against a local MLflow server, all on this machine.

Starts `mlflow server` (sqlite under .pulumi-local/mlflow, loopback, a free port), uses a local file state
backend (.pulumi-local/state), finds or builds the Pulumi CLI and its Python language host
(scripts/pulumi-cli.sh), then runs the real `pulumi` commands in the repository root, where Pulumi.yaml
is, exactly as you would type them in your own project: `pulumi stack select --create dev`, then
`pulumi up --yes` (or `pulumi destroy --yes` with --destroy). Each command is printed before it runs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.mlflow_server import start_mlflow_server  # noqa: E402
from support.project import host_env, user_env  # noqa: E402
from support.pulumi_cli import find_cli  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--destroy", action="store_true", help="destroy the quickstart stack instead")
    parser.add_argument(
        "--local", type=Path, default=ROOT / ".pulumi-local", help="where the MLflow database and the state go"
    )
    args = parser.parse_args()
    local: Path = args.local.resolve()

    print("Finding the Pulumi CLI and its language hosts (scripts/pulumi-cli.sh; a first build takes minutes)...")
    found = find_cli()
    bin_dir = found.bin_dir
    if bin_dir is None:
        print(f"\nNo Pulumi CLI:\n{found.log}", file=sys.stderr)
        return 1
    print(found.log.strip())
    state = local / "state"
    server = start_mlflow_server(local / "mlflow")
    print(f"MLflow tracking server: {server.url} (sqlite: {local / 'mlflow' / 'mlflow.db'})")
    # A user's shell (as the tests make it): the CLI on PATH, the local state backend, nothing of this
    # process's MLflow, Databricks or virtualenv settings; the user's own passphrase and Pulumi home kept.
    passphrase = os.environ.get("PULUMI_CONFIG_PASSPHRASE", "quickstart")
    env = user_env(bin_dir, local, {"PULUMI_CONFIG_PASSPHRASE": passphrase, "MLFLOW_TRACKING_URI": server.url})
    env.pop("PULUMI_HOME")
    if "PULUMI_HOME" in os.environ:
        env["PULUMI_HOME"] = os.environ["PULUMI_HOME"]
    env = host_env(env, ROOT)  # the language host runs the program with the virtualenv Pulumi.yaml names
    print(f"export PULUMI_BACKEND_URL={state.as_uri()} MLFLOW_TRACKING_URI={server.url}\n")

    def pulumi(*words: str) -> int:
        print(f"{ROOT.name}$ pulumi {shlex.join(words)}", flush=True)
        cli = str(bin_dir / "pulumi")
        return subprocess.run([cli, *words], cwd=ROOT, env=env, check=False).returncode  # noqa: S603 (fixed words)

    try:
        code = pulumi("stack", "select", "--create", args.stack)
        if code == 0:
            code = pulumi("destroy" if args.destroy else "up", "--yes")
    finally:
        server.stop()
    if code == 0 and not args.destroy:
        print(
            "\nBrowse the runs: .venv/bin/mlflow ui --backend-store-uri "
            f"sqlite:///{local / 'mlflow' / 'mlflow.db'}\n"
            "Run it again (nothing changes): bash scripts/quickstart.sh\n"
            "Tear down: bash scripts/quickstart.sh --destroy"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
