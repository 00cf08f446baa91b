"""Run artifacts on a direct GCS root (``gs://bucket/prefix``): an MLflow server run with such a
``--default-artifact-root`` and ``--no-serve-artifacts``, the provider reaching the store as it reaches an
emulator (``STORAGE_EMULATOR_HOST``) through obstore's GCS client.

That client speaks GCS's XML API (PUT, GET and DELETE of ``/<bucket>/<object>``, ``?list-type=2`` listings,
XML multipart uploads), which Google made interoperable with S3's. No GCS emulator to be had here serves it:
fake-gcs-server 1.56.1 answers the PUT and the multipart initiate "400 invalid uploadType", and
gcp-storage-emulator 2026.7.19 has no XML listing, delete, HEAD or multipart and sends no ETag
(docs/reference.md). So moto's server, real and on loopback like the S3 tests', answers the XML API here:
what the requests, the listing and the errors of the provider's GCS code do is tested; GCS's own quirks
(its JSON API, which MLflow's google-cloud-storage client reads, and its OAuth credentials) are not.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pulumi
import pytest

from support.failed_create import failed_create
from support.fault_proxy import ANY, FaultProxy
from support.host import DynamicHost, isolated_env, without_provider
from support.mlflow_server import MlflowServer
from support.object_stores import S3Server, direct_root_server, start_s3
from support.runs import create_run, run_props, unique

BUCKET = "mlflowgcs"  # letters only: obstore percent-encodes any other byte of a bucket name, which GCS decodes
# and moto does not (it answers NoSuchBucket for "mlflow%2Dgcs")
ROOT = f"gs://{BUCKET}/runs"
BIG = 9 << 20  # over obstore's part size here (8 MiB): an XML multipart upload of two parts


@pytest.fixture(scope="module")
def xml_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The server answering GCS's XML API (moto's; see the module's docstring), the bucket made."""
    with start_s3(tmp_path_factory.mktemp("gcs-xml")) as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def gcs_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with direct_root_server(tmp_path_factory.mktemp("mlflow-gcs"), ROOT) as server:
        yield server


@pytest.fixture
def gcs_client(gcs_mlflow: MlflowServer) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=gcs_mlflow.url)


@pytest.fixture
def gcs_proxy(xml_api: S3Server) -> Iterator[FaultProxy]:
    """The emulator host the provider is given: the server behind a proxy that counts (and can fail) requests."""
    with FaultProxy(xml_api.url) as proxy:
        yield proxy


def _host_env(gcs_mlflow: MlflowServer, emulator: str, **extra: str) -> dict[str, str]:
    """No cloud credential in reach: only the emulator's host, as google-cloud-storage takes it (no scheme)."""
    env = isolated_env(MLFLOW_TRACKING_URI=gcs_mlflow.url, **extra)
    env = {k: v for k, v in env.items() if not k.startswith(("AWS_", "GOOGLE_", "STORAGE_EMULATOR"))}
    return {**env, "STORAGE_EMULATOR_HOST": emulator.removeprefix("http://")}


@pytest.fixture
def gcs_host(gcs_mlflow: MlflowServer, gcs_proxy: FaultProxy) -> Iterator[DynamicHost]:
    with DynamicHost(env=_host_env(gcs_mlflow, gcs_proxy.url)) as host:
        host.configure({})
        yield host


def _key(run: Any, path: str) -> str:
    return f"{run.info.artifact_uri.removeprefix(f'gs://{BUCKET}/')}/{path}"


def _writes(proxy: FaultProxy, mark: int) -> list[tuple[str, str]]:
    """``(method, object)`` of each write sent since ``mark`` (obstore's GCS client deletes one object a request,
    and percent-encodes the object's name in the path)."""
    return [(r.method, unquote(r.path.split(f"/{BUCKET}/", 1)[-1])) for r in proxy.since(mark) if r.method != "GET"]


def test_the_servers_runs_get_gs_roots(gcs_client: Any) -> None:
    run = gcs_client.create_run(gcs_client.create_experiment(unique("gcs")))
    assert run.info.artifact_uri.startswith(f"{ROOT}/")


def test_files_land_in_the_bucket_and_only_changes_are_sent(gcs_host, gcs_proxy, gcs_client, xml_api, tmp_path) -> None:
    (tmp_path / "model.bin").write_bytes(b"\x00weights" * 1000)
    declared = {
        "notes.txt": pulumi.StringAsset("hello, wörld"),
        "keep.txt": pulumi.StringAsset("kept"),
        "weights/model.bin": pulumi.FileAsset(str(tmp_path / "model.bin")),
    }
    run_id, outs, inputs = create_run(
        gcs_host, experiment_id=gcs_client.create_experiment(unique("gcs")), artifacts=declared
    )
    run = gcs_client.get_run(run_id)
    assert xml_api.objects(BUCKET, _key(run, "")) == {
        _key(run, "notes.txt"): "hello, wörld".encode(),
        _key(run, "keep.txt"): b"kept",
        _key(run, "weights/model.bin"): (tmp_path / "model.bin").read_bytes(),
    }
    assert outs["artifact_files"]["notes.txt"]["uri"] == f"{run.info.artifact_uri}/notes.txt"

    # One file edited, one removed: the edit sent, the removed object deleted, the unchanged one not sent.
    declared["notes.txt"] = pulumi.StringAsset("take 2")
    del declared["weights/model.bin"]
    news = gcs_host.check(without_provider(inputs), run_props(**{**without_provider(inputs), "artifacts": declared}))
    mark = gcs_proxy.mark()
    outs = gcs_host.update(run_id, outs, news.inputs, old_inputs=without_provider(inputs))
    assert sorted(_writes(gcs_proxy, mark)) == [
        ("DELETE", _key(run, "weights/model.bin")),
        ("PUT", _key(run, "notes.txt")),
    ]
    assert xml_api.objects(BUCKET, _key(run, "")) == {_key(run, "notes.txt"): b"take 2", _key(run, "keep.txt"): b"kept"}

    # Deleted out of band: refresh (a listing, no write) marks it.
    xml_api.boto3_client().delete_object(Bucket=BUCKET, Key=_key(run, "notes.txt"))
    mark = gcs_proxy.mark()
    files = gcs_host.read(run_id, outs).outs["artifact_files"]
    assert _writes(gcs_proxy, mark) == []
    assert files["notes.txt"] == {"uri": outs["artifact_files"]["notes.txt"]["uri"]}
    assert files["keep.txt"] == outs["artifact_files"]["keep.txt"]


def test_a_big_file_goes_in_parts(gcs_host, gcs_proxy, gcs_client, xml_api, tmp_path) -> None:
    """Over the part size: an XML multipart upload (initiate, parts, complete), never one PUT of the whole file."""
    (tmp_path / "big.bin").write_bytes(os.urandom(BIG))
    mark = gcs_proxy.mark()
    run_id, outs, _ = create_run(
        gcs_host, experiment_id=gcs_client.create_experiment(unique("gcs")),
        artifacts={"big.bin": pulumi.FileAsset(str(tmp_path / "big.bin"))},
    )  # fmt: skip
    writes = [r for r in gcs_proxy.since(mark) if r.method in ("PUT", "POST")]
    assert [r.method for r in writes].count("POST") == 2, "initiate and complete"
    assert [r.method for r in writes].count("PUT") == 2 and max(r.body_bytes for r in writes) <= 8 << 20
    key = _key(gcs_client.get_run(run_id), "big.bin")
    assert xml_api.objects(BUCKET, key)[key] == (tmp_path / "big.bin").read_bytes()
    assert outs["artifact_files"]["big.bin"]["size"] == BIG


def test_uploads_ride_out_a_503_and_a_lost_answer(gcs_host, gcs_proxy, gcs_client, xml_api) -> None:
    gcs_proxy.clear()
    gcs_proxy.fail(ANY, "503")
    gcs_proxy.fail(ANY, "drop-after", nth=2)
    declared = {"a.txt": pulumi.StringAsset("first"), "b.txt": pulumi.StringAsset("second")}
    run_id, outs, _ = create_run(
        gcs_host, experiment_id=gcs_client.create_experiment(unique("gcs")), artifacts=declared
    )
    assert gcs_proxy.fired_by_fault() == {"503": 1, "drop-after": 1}
    run = gcs_client.get_run(run_id)
    assert xml_api.objects(BUCKET, _key(run, "")) == {_key(run, "a.txt"): b"first", _key(run, "b.txt"): b"second"}
    assert set(outs["artifact_files"]) == {"a.txt", "b.txt"}


def test_a_missing_bucket_names_the_bucket_and_the_emulator_setting(gcs_host, gcs_proxy, gcs_client) -> None:
    experiment = gcs_client.create_experiment(unique("gcs"), artifact_location="gs://missingbucket/x")
    message = failed_create(gcs_host, gcs_client, experiment)
    assert "artifacts.a.txt" in message and "gs://missingbucket/x/" in message
    assert "does not exist" in message and "NoSuchBucket" in message
    assert f"{gcs_proxy.url} (from env STORAGE_EMULATOR_HOST)" in message


def test_an_unreachable_emulator_is_named(gcs_mlflow, gcs_client, xml_api) -> None:
    closed = FaultProxy(xml_api.url)
    closed.close()  # a port nothing listens on any more
    env = _host_env(gcs_mlflow, closed.url, PULUMI_MLFLOW_RUNS_RETRY_DEADLINE="2")
    with DynamicHost(env=env) as host:
        host.configure({})
        message = failed_create(host, gcs_client, gcs_client.create_experiment(unique("gcs")))
    assert f"cannot reach GCS at {closed.url} (from env STORAGE_EMULATOR_HOST)" in message
