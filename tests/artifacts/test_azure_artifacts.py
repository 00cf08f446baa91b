"""Run artifacts on a direct Azure Blob root (``wasbs://<container>@<account>.blob.core.windows.net/<path>``):
an MLflow server run with such a ``--default-artifact-root`` and ``--no-serve-artifacts``, against Azurite
(the Blob service's emulator), reached as MLflow's client reaches it: ``AZURE_STORAGE_CONNECTION_STRING``.

``abfss://`` (ADLS Gen2) has no emulator: Azurite serves the Blob API only (docs/reference.md says so).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from support.failed_create import failed_create
from support.host import DynamicHost, isolated_env, secret, without_provider
from support.mlflow_server import MlflowServer
from support.object_stores import AZURITE_ACCOUNT, AZURITE_KEY, AzuriteServer, direct_root_server, start_azurite
from support.runs import create_run, run_props, unique

CONTAINER = "mlflow"
ROOT = f"wasbs://{CONTAINER}@{AZURITE_ACCOUNT}.blob.core.windows.net/runs"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    with start_azurite(tmp_path_factory.mktemp("azurite")) as server:
        server.create_container(CONTAINER)
        yield server


@pytest.fixture(scope="module")
def azure_mlflow(tmp_path_factory: pytest.TempPathFactory, azurite: AzuriteServer) -> Iterator[MlflowServer]:
    with direct_root_server(tmp_path_factory.mktemp("mlflow-azure"), ROOT) as server:
        yield server


@pytest.fixture
def azure_client(azure_mlflow: MlflowServer, azurite: AzuriteServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """MLflow's own client, reading the container as MLflow does (Azure's SDK, the connection string)."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    return MlflowClient(tracking_uri=azure_mlflow.url)


@pytest.fixture
def azure_host(azure_mlflow: MlflowServer, azurite: AzuriteServer) -> Iterator[DynamicHost]:
    env = isolated_env(MLFLOW_TRACKING_URI=azure_mlflow.url, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    with DynamicHost(env=env) as host:
        host.configure({})
        yield host


def _blob(run: Any, path: str) -> str:
    return f"{run.info.artifact_uri.removeprefix(ROOT.rsplit('/', 1)[0] + '/')}/{path}"


def _etags(azurite: AzuriteServer, prefix: str) -> dict[str, str]:
    """Each blob under ``prefix`` and its ETag, which a write changes."""
    client = azurite.service().get_container_client(CONTAINER)
    return {b.name: b.etag for b in client.list_blobs(name_starts_with=prefix)}


def test_files_land_in_the_container_and_only_changes_are_sent(azure_host, azure_client, azurite, tmp_path) -> None:
    (tmp_path / "model.bin").write_bytes(b"\x00weights" * 1000)
    declared = {
        "notes.txt": pulumi.StringAsset("hello, wörld"),
        "keep.txt": pulumi.StringAsset("kept"),
        "weights/model.bin": pulumi.FileAsset(str(tmp_path / "model.bin")),
    }
    run_id, outs, inputs = create_run(
        azure_host, experiment_id=azure_client.create_experiment(unique("az")), artifacts=declared
    )
    run = azure_client.get_run(run_id)
    assert run.info.artifact_uri.startswith(f"{ROOT}/")
    got = Path(azure_client.download_artifacts(run_id, "weights/model.bin", str(tmp_path / "dl"))).read_bytes()
    assert got == (tmp_path / "model.bin").read_bytes(), "MLflow's own client reads what was stored"
    assert azurite.blobs(CONTAINER, _blob(run, "")) == {
        _blob(run, "notes.txt"): "hello, wörld".encode(),
        _blob(run, "keep.txt"): b"kept",
        _blob(run, "weights/model.bin"): got,
    }
    assert outs["artifact_files"]["notes.txt"]["uri"] == f"{run.info.artifact_uri}/notes.txt"

    # One file edited, one removed: the edit sent, the removed blob deleted, the unchanged one not written.
    before = _etags(azurite, _blob(run, ""))
    declared["notes.txt"] = pulumi.StringAsset("take 2")
    del declared["weights/model.bin"]
    news = azure_host.check(without_provider(inputs), run_props(**{**without_provider(inputs), "artifacts": declared}))
    outs = azure_host.update(run_id, outs, news.inputs, old_inputs=without_provider(inputs))
    after = _etags(azurite, _blob(run, ""))
    assert set(after) == {_blob(run, "notes.txt"), _blob(run, "keep.txt")}
    assert after[_blob(run, "keep.txt")] == before[_blob(run, "keep.txt")], "not sent again"
    assert after[_blob(run, "notes.txt")] != before[_blob(run, "notes.txt")]
    assert azurite.blobs(CONTAINER, _blob(run, "notes.txt")) == {_blob(run, "notes.txt"): b"take 2"}

    # Deleted out of band: refresh marks it.
    azurite.service().get_container_client(CONTAINER).delete_blob(_blob(run, "notes.txt"))
    files = azure_host.read(run_id, outs).outs["artifact_files"]
    assert files["notes.txt"] == {"uri": outs["artifact_files"]["notes.txt"]["uri"]}
    assert files["keep.txt"] == outs["artifact_files"]["keep.txt"]


def test_a_missing_container_and_a_wrong_key_are_named(azure_mlflow, azure_client, azurite) -> None:
    experiment = azure_client.create_experiment(
        unique("az"), artifact_location=f"wasbs://missing@{AZURITE_ACCOUNT}.blob.core.windows.net/x"
    )
    env = isolated_env(MLFLOW_TRACKING_URI=azure_mlflow.url, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    with DynamicHost(env=env) as host:
        host.configure({})
        message = failed_create(host, azure_client, experiment)
    assert "ContainerNotFound" in message and "does not exist" in message
    assert "(from env AZURE_STORAGE_CONNECTION_STRING)" in message and AZURITE_KEY not in message

    wrong_key = "d3Jvbmcta2V5LXRleHQtdGhhdC1pcy1sb25nLWVub3VnaA=="
    wrong = azurite.connection_string.replace(AZURITE_KEY, wrong_key)
    with DynamicHost(env={**env, "AZURE_STORAGE_CONNECTION_STRING": wrong}) as host:
        host.configure({})
        message = failed_create(host, azure_client, azure_client.create_experiment(unique("az")))
    assert "Azure Blob refused the credentials" in message and "env AZURE_STORAGE_CONNECTION_STRING" in message
    assert wrong_key not in message and AZURITE_KEY not in message


def test_the_stacks_secret_connection_string(azure_mlflow, azure_client, azurite) -> None:
    """No Azure env: the stack's connection string (a secret), never in the outputs."""
    env = isolated_env(MLFLOW_TRACKING_URI=azure_mlflow.url)
    with DynamicHost(env={k: v for k, v in env.items() if not k.startswith("AZURE_")}) as host:
        host.configure({"mlflow-runs:azureStorageConnectionString": secret(azurite.connection_string)})
        run_id, outs, _ = create_run(
            host, experiment_id=azure_client.create_experiment(unique("az")),
            artifacts={"k.txt": pulumi.StringAsset("from the stack")},
        )  # fmt: skip
    assert AZURITE_KEY not in json.dumps(outs)
    blob = _blob(azure_client.get_run(run_id), "k.txt")
    assert azurite.blobs(CONTAINER, blob) == {blob: b"from the stack"}
