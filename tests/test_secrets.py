"""Secrets: what may hold one is marked secret, and no credential reaches anything that is kept or shown."""

from __future__ import annotations

import asyncio
import base64

import pulumi
import pytest

from pulumi_mlflow_runs import ExperimentRunProvider
from pulumi_mlflow_runs.experiment_run import secret_outputs_for

from support.host import DynamicHost, HostError, isolated_env, secret, with_provider

TOKEN = "dapi" + "c0ffee00" * 4


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)


def test_plain_inputs_keep_outputs_in_the_clear(loop) -> None:
    assert secret_outputs_for({"tags": {"a": "1"}, "params": {"p": "1"}, "metrics": [{"key": "m", "value": 1}]}) == []


def test_a_secret_tag_hides_the_tags_and_the_run_view(loop) -> None:
    hidden = secret_outputs_for({"tags": {"api": pulumi.Output.secret("s3cr3t")}})
    assert hidden == ["tags", "run"]


def test_a_resolved_plain_output_is_not_secret(loop) -> None:
    assert secret_outputs_for({"tags": {"a": pulumi.Output.from_input("plain")}}) == []


def test_secret_metrics_also_hide_latest_metrics(loop) -> None:
    hidden = secret_outputs_for({"metrics": [{"key": "m", "value": pulumi.Output.secret(0.5)}]})
    assert hidden == ["metrics", "run", "latest_metrics"]


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
