"""Secrets: what may hold one is marked secret, and no credential reaches anything that is kept or shown."""

from __future__ import annotations

import asyncio
import base64

import pulumi
import pytest

from pulumi_mlflow_runs import ExperimentRunProvider
from pulumi_mlflow_runs.core.run_spec import INPUT_KEYS
from pulumi_mlflow_runs.dynamic.experiment_run import EchoedSecrets

from support.engine import close_loop
from support.host import DynamicHost, HostError, isolated_env, secret, with_provider

TOKEN = "dapi" + "c0ffee00" * 4


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    close_loop(loop)
    asyncio.set_event_loop(None)


def _hidden(loop, inputs) -> list[str]:
    """The outputs ``EchoedSecrets`` lists for these inputs once they have resolved, as the SDK reads it."""
    pending = [v for v in inputs.values() if isinstance(v, pulumi.Output)]
    pending += [x for v in inputs.values() if isinstance(v, dict) for x in v.values() if isinstance(x, pulumi.Output)]
    pending += [x for v in inputs.values() if isinstance(v, list) for p in v for x in p.values()
                if isinstance(x, pulumi.Output)]  # fmt: skip
    loop.run_until_complete(asyncio.gather(*(o.future() for o in pending)))
    return list(EchoedSecrets([], inputs))


def test_unresolved_inputs_count_as_secret_and_declared_names_stay(loop) -> None:
    never = loop.create_future()
    unresolved = pulumi.Output(set(), never, never)
    assert list(EchoedSecrets(["tags"], {"tags": {"a": unresolved}})) == ["tags", "run"]
    assert len(EchoedSecrets([], {})) == 6, "as a plain list it holds every candidate"
    never.cancel()


def test_plain_inputs_keep_outputs_in_the_clear(loop) -> None:
    inputs = {"tags": {"a": "1"}, "params": {"p": "1"}, "metrics": [{"key": "m", "value": 1}], "experiment_id": "1"}
    assert _hidden(loop, inputs) == []


def test_a_secret_tag_hides_the_run_view(loop) -> None:
    assert _hidden(loop, {"tags": {"api": pulumi.Output.secret("s3cr3t")}}) == ["run"]


def test_a_plain_output_is_not_secret(loop) -> None:
    assert (
        _hidden(
            loop, {"tags": {"a": pulumi.Output.from_input("plain")}, "experiment_id": pulumi.Output.from_input("1")}
        )
        == []
    )


def test_secret_metrics_also_hide_latest_metrics(loop) -> None:
    hidden = _hidden(loop, {"metrics": [{"key": "m", "value": pulumi.Output.secret(0.5)}]})
    assert hidden == ["run", "latest_metrics", "logged_points"]


def test_secret_artifacts_hide_their_hashes(loop) -> None:
    secret_assets = pulumi.Output.secret({"a.txt": pulumi.StringAsset("x")})
    assert _hidden(loop, {"artifacts": secret_assets}) == ["run", "artifact_files"]
    assert _hidden(loop, {"artifacts": {"a.txt": pulumi.StringAsset("x")}}) == []


def test_every_input_but_the_connection_hides_the_run_view(loop) -> None:
    for key in INPUT_KEYS:
        hidden = _hidden(loop, {key: pulumi.Output.secret("x")})
        assert ("run" in hidden) is (key not in ("host", "deployment_name")), key
    assert _hidden(loop, {"experiment_id": pulumi.Output.secret("7")}) == ["run", "artifact_uri"]


def test_no_token_in_pickle_outputs_logs_or_errors(mlflow_server, experiment_id) -> None:
    env = isolated_env()
    env["MLFLOW_TRACKING_URI"] = mlflow_server.url
    provider = ExperimentRunProvider()
    seen: list[str] = []
    with DynamicHost(env=env) as h:
        h.configure({"databricks:token": secret(TOKEN), "databricks:host": mlflow_server.url})
        inputs = with_provider({"experiment_id": experiment_id, "tags": {"a": "1"}}, provider)
        seen.append(base64.b64decode(inputs["__provider"]).decode("latin-1"))
        checked = h.check({}, inputs)
        run_id, outs = h.create(checked.inputs)
        seen.append(repr(outs))
        seen.append(repr(h.read(run_id, outs).outs))
        for bad in ({"experiment_id": "999999"}, {"experiment_id": experiment_id, "tags": {"t": "x" * 9000}}):
            try:
                h.create(h.check({}, with_provider(bad, provider)).inputs)
            except HostError as exc:
                seen.append(exc.details)
        seen += [h.stderr_text(), h.stdout_text()]
    assert len(seen) == 7  # both bad creates failed
    for text in seen:
        assert TOKEN not in text


@pytest.mark.slow
def test_the_stand_in_keeps_what_repeats_a_secret_secret(mlflow_env, experiment_id, tmp_path) -> None:
    """Through the engine stand-in, which marks outputs secret as the engine does: ``run`` repeats the secret
    inputs and only ``additional_secret_outputs`` can say so; the echoes of the inputs are the engine's."""
    from pulumi_mlflow_runs import ExperimentRun

    from support.engine import Engine
    from support.host import is_secret

    points = [{"key": "loss", "value": 0.5, "step": 0}]
    names = ("params-only", "params-and-tags")
    asked = ("run", "params", "run_id", "latest_metrics")

    def program() -> None:
        runs = (
            ExperimentRun(names[0], experiment_id=experiment_id, params=pulumi.Output.secret({"pw": "p1"}),
                          tags={"team": "ml"}, metrics=points),
            ExperimentRun(names[1], experiment_id=experiment_id, params={"pw": pulumi.Output.secret("p2")},
                          tags={"team": "ml", "key": pulumi.Output.secret("k2")}, metrics=points),
        )  # fmt: skip
        told = {f"{n}.{out}": pulumi.Output.from_input(getattr(r, out).is_secret())
                for n, r in zip(names, runs, strict=True) for out in asked}  # fmt: skip
        pulumi.export("told", pulumi.Output.all(**told))

    engine = Engine(program, tmp_path / "state.json", {"MLFLOW_TRACKING_URI": mlflow_env})

    def assert_stored_secret() -> None:
        state = {r["name"]: r["outputs"] for r in engine.resources()}
        secret_keys = {name: tuple(sorted(k for k, v in outs.items() if is_secret(v))) for name, outs in state.items()}
        # params alone is secret in the first, and `run` repeats it: only additional_secret_outputs marks `run`
        assert secret_keys == dict.fromkeys(names, ("params", "run"))
        tags = state["params-and-tags"]["tags"]
        assert is_secret(tags["key"]) and tags["team"] == "ml", "the secret tag, key by key as the engine does"

    up = engine.up()
    assert up.ops() == dict.fromkeys(names, "create")
    assert_stored_secret()
    expected = {f"{n}.{out}": out in ("run", "params") for n in names for out in asked}
    assert up.outputs["told"] == expected, "the program is handed them as secret Outputs"
    assert engine.refresh().counts() == {"same": 2}
    assert_stored_secret()  # a refresh keeps them secret
    assert engine.up().outputs["told"] == expected  # and so does an up with nothing to change
    engine.destroy()


def test_a_secret_metrics_file_hides_how_much_of_it_is_logged(loop) -> None:
    hidden = _hidden(loop, {"metrics_file": pulumi.Output.secret(pulumi.FileAsset("metrics/train.csv"))})
    assert hidden == ["run", "metrics_file_logged"]
