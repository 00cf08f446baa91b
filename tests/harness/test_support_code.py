"""Self-test of the support code: DynamicHost against the real host, and the real MLflow server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from support.host import UNKNOWN, DynamicHost, HostError, is_secret, secret, unwrap, with_provider
from support.trivial_provider import EchoProvider

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer


@pytest.fixture
def host() -> Iterator[DynamicHost]:
    with DynamicHost() as h:
        yield h


def test_round_trip(host: DynamicHost) -> None:
    host.configure({"databricks:host": "https://example", "databricks:token": secret("s3cr3t")})
    news = with_provider({"name": "a", "size": 1}, EchoProvider())

    checked = host.check({}, news)
    assert checked.failures == []
    id_, outs = host.create(checked.inputs)
    assert id_.startswith("echo-")
    assert outs["config_keys"] == ["databricks:host", "databricks:token"]
    assert "s3cr3t" not in host.stderr_text() + repr(outs)

    read = host.read(id_, outs, checked.inputs)
    assert (read.id, read.outs, read.inputs) == (id_, outs, None)

    assert host.diff(id_, outs, news).changes == "none"
    changed = {**news, "size": 2}
    diff = host.diff(id_, outs, changed, old_inputs=checked.inputs)
    assert (diff.changes, diff.replaces, diff.delete_before_replace) == ("some", [], False)
    assert host.diff(id_, outs, {**news, "name": "b"}).replaces == ["name"]

    new_outs = host.update(id_, outs, changed, old_inputs=checked.inputs)
    assert new_outs["size"] == 2.0
    host.delete(id_, new_outs, old_inputs=changed)


def test_read_of_vanished_resource_returns_empty_id(host: DynamicHost) -> None:
    props = with_provider({"gone": True}, EchoProvider())
    read = host.read("echo-1", props)
    assert read.id == ""
    assert set(read.outs) == {"__provider"}  # the host always re-adds the provider blob


def test_check_failure_and_unknown(host: DynamicHost) -> None:
    provider = EchoProvider()
    assert host.check({}, with_provider({"bad": 1}, provider)).failures == [("bad", "bad is not allowed")]

    checked = host.check({}, with_provider({"name": UNKNOWN, "tags": [UNKNOWN]}, provider), preview=True)
    assert checked.inputs["name"] == UNKNOWN
    assert checked.inputs["tags"] == [UNKNOWN]
    with pytest.raises(ValueError, match="UNKNOWN"):
        host.check({}, with_provider({"name": UNKNOWN}, provider))


def test_numbers_come_back_as_floats(host: DynamicHost) -> None:
    _, outs = host.create(with_provider({"n": 3, "nested": {"xs": [1, 2]}}, EchoProvider()))
    assert type(outs["n"]) is float
    assert outs["nested"] == {"xs": [1.0, 2.0]}
    assert all(type(x) is float for x in outs["nested"]["xs"])


def test_secret_outputs_stay_wrapped(host: DynamicHost) -> None:
    # The host refuses secrets (acceptSecrets=False), so like the engine we send plain values ...
    _, outs = host.create(with_provider({"token": secret("t")}, EchoProvider()))
    assert outs["token"] == "t" and not is_secret(outs["token"])
    assert unwrap({"a": secret([secret(1)])}) == {"a": [1]}


def test_host_error_carries_traceback(host: DynamicHost) -> None:
    with pytest.raises(HostError) as info:
        host.create(with_provider({"explode": "kaboom"}, EchoProvider()))
    assert info.value.code == "UNKNOWN"
    assert "Traceback" in info.value.details
    assert "RuntimeError: boom: kaboom" in info.value.details


def test_concurrent_creates(host: DynamicHost) -> None:
    from concurrent.futures import ThreadPoolExecutor

    props = with_provider({"x": 1}, EchoProvider())
    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(lambda _: host.create(props)[0], range(50)))
    assert len(set(ids)) == 50


def test_mlflow_server_is_real(
    mlflow_server: MlflowServer, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    run = mlflow_client.create_run(experiment_id, run_name="harness")
    mlflow_client.log_param(run.info.run_id, "p", "v")
    response = httpx.get(f"{mlflow_server.url}/api/2.0/mlflow/runs/get", params={"run_id": run.info.run_id})
    response.raise_for_status()
    body = response.json()["run"]
    assert body["info"]["experiment_id"] == experiment_id
    assert body["info"]["run_name"] == "harness"
    assert body["data"]["params"] == [{"key": "p", "value": "v"}]


def test_mlflow_env(mlflow_env: str, mlflow_server: MlflowServer) -> None:
    import os

    assert os.environ["MLFLOW_TRACKING_URI"] == mlflow_server.url == mlflow_env
    assert "DATABRICKS_TOKEN" not in os.environ
