"""Run `pulumi up` in the top-level project's folder against a local MLflow server, all on this machine.

Starts `mlflow server` (sqlite under .pulumi-local/mlflow, loopback, a free port), uses a local file state
backend (.pulumi-local/state), finds or builds the Pulumi CLI and its Python language host
(scripts/pulumi-cli.sh), then runs the real `pulumi` commands in the repository root, where Pulumi.yaml
is, exactly as you would type them in your own project: `pulumi stack select --create dev`, then
`pulumi up --yes` (or `pulumi destroy --yes` with --destroy). Each command is printed before it runs.

Progress as it happens: each stage (the CLI and language host builds, the server start, each command) gets a
line as it starts and one as it ends, with its time. The builds' own output (Go's module downloads, the
compiler) stays out of the terminal, in the logs under .pulumi-local/logs that their lines name.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.mlflow_server import start_mlflow_server  # noqa: E402
from support.project import host_env, user_env  # noqa: E402
from support.pulumi_cli import find_cli  # noqa: E402


def took(started: float) -> str:
    """The time since ``started`` (``time.monotonic()``), as the stage lines give it."""
    seconds = time.monotonic() - started
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def say(message: str) -> None:
    print(f"quickstart: {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--destroy", action="store_true", help="destroy the quickstart stack instead")
    parser.add_argument(
        "--local", type=Path, default=ROOT / ".pulumi-local", help="where the MLflow database and the state go"
    )
    args = parser.parse_args()
    local: Path = args.local.resolve()

    say("finding the Pulumi CLI and its language hosts (scripts/pulumi-cli.sh; a first build takes minutes)...")
    started = time.monotonic()
    found = find_cli(echo=True)  # the script's stage lines as they come (on stderr)
    bin_dir = found.bin_dir
    if bin_dir is None:
        print("\nNo Pulumi CLI: scripts/pulumi-cli.sh failed (its messages are above)", file=sys.stderr)
        return 1
    say(f"the Pulumi CLI and its language hosts ready in {took(started)}")
    state = local / "state"
    say(f"starting the MLflow tracking server (sqlite: {local / 'mlflow' / 'mlflow.db'})...")
    started = time.monotonic()
    server = start_mlflow_server(local / "mlflow")
    say(f"MLflow tracking server {server.url} started in {took(started)}")
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
        started = time.monotonic()
        code = subprocess.run([cli, *words], cwd=ROOT, env=env, check=False).returncode  # noqa: S603 (fixed words)
        outcome = "done" if code == 0 else f"failed (exit {code})"
        say(f"`pulumi {shlex.join(words)}` {outcome} in {took(started)}")
        return code

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
