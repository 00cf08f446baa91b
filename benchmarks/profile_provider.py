"""Profile the provider where the benchmark says it costs time: ``python benchmarks/profile_provider.py``.

Needs pyinstrument (``pip install pyinstrument``; not a project dependency). Runs in one process what the
``python -m pulumi.dynamic`` host runs for each call — deserialize the properties, call the provider,
serialize the result — so the profile shows the host's share next to the provider's:

* ``create``: Create of the benchmark's run (50 params, 2,000 points, 20 tags) against a local MLflow server
  (waits on the server show up as socket reads);
* ``preview``: Check + Diff of unchanged runs (the typical and the 2,000-point shape), no server involved;
* ``imports``: what the provider's modules add to the host's imports, by group (``python -X importtime``): on the
  Check path (unpickling the provider imports ``pulumi_mlflow_runs.dynamic.experiment_run``) and on the Create path
  (which also imports the HTTP client, the models and the plan/apply modules).

``--html DIR`` also writes pyinstrument's HTML views there.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import bench_common as bc
from bench_server import create_experiment, start_server
from pulumi.runtime import rpc

PROVIDER_KEY = bc.PROVIDER_KEY


def _serialize(props: Mapping[str, Any]) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(dict(props), {}))
    finally:
        loop.close()


def _profile(label: str, fn: Callable[[], Any], repeat: int, html: Path | None) -> None:
    from pyinstrument import Profiler

    fn()  # warm-up
    profiler = Profiler(interval=0.0005)
    started = time.perf_counter()
    profiler.start()
    for _ in range(repeat):
        fn()
    profiler.stop()
    per_call = (time.perf_counter() - started) / repeat
    print(f"\n==== {label}: {per_call * 1e3:.1f} ms per call under the profiler ({repeat} calls)")
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    if html is not None:
        html.mkdir(parents=True, exist_ok=True)
        (html / f"{label.split(':', maxsplit=1)[0].replace(' ', '-')}.html").write_text(profiler.output_html())


def _host_like(provider: Any) -> tuple[Callable[[Any], Any], Callable[[Any, Any], Any], Callable[..., Any]]:
    """The host's Create, Check and Diff handlers, minus gRPC."""

    def create(struct: Any) -> Any:
        props = rpc.deserialize_properties(struct)
        result = provider.create(props)
        outs = dict(result.outs)
        outs[PROVIDER_KEY] = props[PROVIDER_KEY]
        return result.id, _serialize(outs)

    def check(olds_s: Any, news_s: Any) -> Any:
        olds, news = rpc.deserialize_properties(olds_s, True), rpc.deserialize_properties(news_s, True)
        inputs = provider.check(olds, news).inputs
        inputs[PROVIDER_KEY] = news[PROVIDER_KEY]
        return _serialize(inputs)

    def diff(id_: str, olds_s: Any, news_s: Any) -> Any:
        olds, news = rpc.deserialize_properties(olds_s, True), rpc.deserialize_properties(news_s, True)
        return provider.diff(id_, olds, news)

    return create, check, diff


def profile_calls(sections: set[str], html: Path | None) -> None:
    from pulumi_mlflow_runs import ExperimentRunProvider

    provider = ExperimentRunProvider()
    blob = bc.provider_blob(provider)
    create, check, diff = _host_like(provider)
    workdir = Path(tempfile.mkdtemp(prefix="mlflow-runs-profile-"))
    server = start_server(workdir / "server")
    os.environ["MLFLOW_TRACKING_URI"] = server.url  # the provider, unconfigured, resolves its connection from env
    try:
        exp = create_experiment(server.url, "profile")
        states = {}
        for shape in (bc.SMALL, bc.BIG):
            news = bc.to_struct(bc.with_provider(bc.declaration(exp, shape, "profile"), blob))
            checked = check(bc.to_struct({}), news)
            id_, outputs = create(checked)
            states[shape] = (id_, news, checked, outputs)
        if "create" in sections:
            _, _, checked, _ = states[bc.BIG]
            _profile(f"create: {bc.BIG.label()}", lambda: create(checked), 5, html)
        if "preview" in sections:
            for shape, repeat in ((bc.SMALL, 300), (bc.BIG, 10)):
                id_, news, checked, outputs = states[shape]

                def unchanged(id_: str = id_, news: Any = news, checked: Any = checked, outputs: Any = outputs) -> None:
                    diff(id_, outputs, check(checked, news))

                _profile(f"preview {shape.points} points: Check + Diff, {shape.label()}", unchanged, repeat, html)
    finally:
        server.stop()


_PATHS = {
    "Check path (unpickling the provider)": "import pulumi_mlflow_runs.dynamic.experiment_run",
    "Create path (+ client, models, plan, apply)": (
        "import pulumi_mlflow_runs.dynamic.experiment_run, pulumi_mlflow_runs.core.run_apply, "
        "pulumi_mlflow_runs.core.run_plan"
    ),
}


def import_groups(rounds: int = 7) -> None:
    """Median self time of what the provider's modules add to the host's own imports, by group and path."""
    family = {
        "pydantic and its dependencies": ("pydantic", "pydantic_core", "annotated_types", "typing_inspection"),
        "httpx and its dependencies (click/rich/pygments come in through httpx._main)": (
            "httpx", "httpcore", "h11", "idna", "certifi", "sniffio", "anyio", "click", "rich", "pygments",
        ),
    }  # fmt: skip
    for path, code in _PATHS.items():
        groups: dict[str, list[int]] = collections.defaultdict(list)
        for _ in range(rounds):
            base = _importtime("import pulumi.dynamic, dill, grpc")
            full = _importtime(f"import pulumi.dynamic, dill, grpc; {code}")
            tally: collections.Counter[str] = collections.Counter()
            for name, us in full.items():
                if name in base:
                    continue
                top = name.split(".")[0]
                if name == "pulumi_mlflow_runs.core.models":
                    key = "pulumi_mlflow_runs.core.models (building the pydantic classes)"
                elif top == "pulumi_mlflow_runs":
                    key = "pulumi_mlflow_runs, its other modules"
                else:
                    key = next((k for k, tops in family.items() if top in tops), "other modules")
                tally[key] += us
            tally["total"] = sum(tally.values())
            for key, us in tally.items():
                groups[key].append(us)
        print(f"\n==== imports, {path}: what `{code}` adds to the host (median of {rounds}, self time)")
        for key, values in sorted(groups.items(), key=lambda kv: -statistics.median(kv[1])):
            print(f"{statistics.median(values) / 1000:8.1f} ms  {key}")


def _importtime(code: str) -> dict[str, int]:
    err = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    ).stderr
    out: dict[str, int] = {}
    for line in err.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _cumulative, name = line.split("|")
            out[name.strip()] = int(self_us.split(":")[1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default="create,preview,imports", help="comma-separated: create, preview, imports")
    parser.add_argument("--html", type=Path, help="write pyinstrument's HTML views into this folder")
    args = parser.parse_args()
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    if sections & {"create", "preview"}:
        profile_calls(sections, args.html)
    if "imports" in sections:
        import_groups()


if __name__ == "__main__":
    main()
