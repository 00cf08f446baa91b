"""A throttling server under the real Pulumi CLI: 50 runs, ``pulumi up --parallel 32``.

The server (a proxy in front of a local MLflow server) answers every other write with 429 and
``Retry-After: 0.5``. Three ups, each measured against the unthrottled one in the same process:
unthrottled; throttled with the provider host widened to 32 workers (the default); throttled with the
SDK's 4 workers (``PULUMI_MLFLOW_RUNS_HOST_WORKERS=4``). The goal: throttled within 2x the unthrottled
``up`` plus the waits the server asked for.

    .venv/bin/python benchmarks/bench_throttle.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.fault_proxy import Throttling  # noqa: E402
from support.mlflow_server import start_mlflow_server  # noqa: E402
from support.pulumi_cli import find_cli, many_runs, new_stack  # noqa: E402

RUNS = 50


def one_up(bin_dir: Path, upstream: str, retry_after: float, workers: str | None) -> tuple[float, int]:
    """Seconds of ``pulumi up`` and the number of 429s answered."""
    from mlflow.tracking import MlflowClient

    env = {"PULUMI_MLFLOW_RUNS_HOST_WORKERS": workers} if workers else {}
    with Throttling(upstream, retry_after=retry_after) as proxy, tempfile.TemporaryDirectory() as work:
        experiment_id = MlflowClient(upstream).create_experiment(f"bench-throttle-{Path(work).name}")
        stack = new_stack(
            bin_dir, Path(work), many_runs(experiment_id, RUNS), {"MLFLOW_TRACKING_URI": proxy.url, **env}
        )
        start = time.monotonic()
        stack.up(parallel=32)
        seconds = time.monotonic() - start
        throttled = proxy.throttled
        proxy.retry_after = 0.0
        stack.destroy()
    return seconds, throttled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    found = find_cli()
    if found.bin_dir is None:
        sys.exit(found.log)
    cases = {"unthrottled": (0.0, None), "throttled, 32 workers": (0.5, None), "throttled, 4 workers": (0.5, "4")}
    times: dict[str, list[float]] = {name: [] for name in cases}
    waits: list[float] = []
    with tempfile.TemporaryDirectory() as data:
        server = start_mlflow_server(Path(data))
        try:
            for _ in range(args.rounds):  # the cases in turn, round after round: drift hits all alike
                for name, (retry_after, workers) in cases.items():
                    seconds, throttled = one_up(found.bin_dir, server.url, retry_after, workers)
                    times[name].append(seconds)
                    if retry_after:
                        waits.append(throttled * retry_after)
        finally:
            server.stop()
    base = statistics.median(times["unthrottled"])
    asked = statistics.median(waits)
    print(f"{RUNS} runs, --parallel 32, 429 + Retry-After 0.5 s on every other write; {args.rounds} rounds")
    print(f"waits asked for (sum of Retry-After): median {asked:.1f} s; goal: <= 2 x unthrottled + waits")
    print(f"{'case':<24} {'median s':>9} {'min s':>7} {'max s':>7} {'/ unthrottled':>14}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<24} {med:>9.1f} {min(values):>7.1f} {max(values):>7.1f} {med / base:>14.2f}")


if __name__ == "__main__":
    main()
