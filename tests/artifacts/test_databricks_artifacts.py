"""Run artifacts on Databricks (``dbfs:/databricks/mlflow-tracking/...`` roots): signed URLs from the workspace,
bytes straight to cloud storage. One transport stands in for both: a fake workspace (credentials-for-write,
the artifacts listing) and a fake cloud storage that reads each body as a stream.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pulumi
import pytest

from pulumi_mlflow_runs import ExperimentRunProvider, MlflowApi, StackConfig, TransportPool
from pulumi_mlflow_runs.core.artifacts.databricks import DatabricksArtifactStore
from pulumi_mlflow_runs.core.artifacts.files import CHUNK_BYTES, Source
from pulumi_mlflow_runs.core.artifacts.sync import store_for
from pulumi_mlflow_runs.core.auth import BearerAuth, Connection, SecretStr
from pulumi_mlflow_runs.core.errors import ApiError, InputError, ServiceUnavailable
from pulumi_mlflow_runs.core.retries import RetryPolicy
from pulumi_mlflow_runs.core.runtime import Runtime

from support.fake_clock import FakeClock
from support.fake_workspace import FAKE_TOKEN, FAKE_WORKSPACE, FakeWorkspace

CLOUD = "bucket.storage.test"
WORKSPACE_HOST = "dbc-1234.cloud.databricks.com"


class FakeCloud:
    """Signed-URL storage: objects by path; every request kept with the sizes of the pieces its body came in."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail: list[int] = []
        """Statuses to answer the next requests with, in order (then it works again)."""
        self.expired: set[str] = set()
        """Signatures (``sig=``) answered with 403, as an expired signed URL is."""
        self._appended: dict[str, bytes] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        chunks = [bytes(chunk) for chunk in request.stream]  # type: ignore[union-attr]
        query = dict(parse_qsl(request.url.query.decode()))
        path = request.url.path.lstrip("/")
        self.requests.append(
            {"method": request.method, "path": path, "query": query, "headers": request.headers, "chunks": chunks}
        )
        if self.fail:
            return httpx.Response(self.fail.pop(0), text="<Error><Code>SlowDown</Code></Error>")
        if query.get("sig") in self.expired:
            return httpx.Response(
                403, text="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
            )
        data = b"".join(chunks)
        if len(data) != int(request.headers.get("Content-Length", "0")):
            return httpx.Response(400, text="<Error><Code>IncompleteBody</Code></Error>")
        if request.method == "PUT" and query.get("resource") == "file":  # ADLS Gen2: create
            self.objects.pop(path, None)
            self._appended[path] = b""
        elif request.method == "PATCH" and query.get("action") == "append":
            self._appended[path] += data
            if query.get("flush") == "true":
                self.objects[path] = self._appended[path]
        elif request.method == "PATCH" and query.get("action") == "flush":
            self.objects[path] = self._appended[path][: int(query["position"])]
        elif request.method == "PUT":
            self.objects[path] = data
        else:
            return httpx.Response(405)
        return httpx.Response(201)

    def puts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] in ("PUT", "PATCH")]


class DbxWorkspace(FakeWorkspace):
    """The fake workspace, with run roots as Databricks makes them and the artifact credential API."""

    def __init__(self, cloud: FakeCloud) -> None:
        super().__init__()
        self.cloud = cloud
        self.credential_type: Any = "AWS_PRESIGNED_URL"
        self.credential_headers = [{"name": "x-amz-server-side-encryption", "value": "AES256"}]
        self.signed = 0

    def _runs_create(self, body: dict[str, Any]) -> httpx.Response:
        resp = super()._runs_create(body)
        run = json.loads(resp.content)["run"]
        uri = f"dbfs:/databricks/mlflow-tracking/{body['experiment_id']}/{run['info']['run_id']}/artifacts"
        self.runs[run["info"]["run_id"]]["info"]["artifact_uri"] = uri
        run["info"]["artifact_uri"] = uri
        return httpx.Response(200, json={"run": run})

    def _artifacts_credentials_for_write(self, body: dict[str, Any]) -> httpx.Response:
        infos = []
        for path in body["path"]:
            self.signed += 1
            infos.append({
                "run_id": body["run_id"], "path": path, "type": self.credential_type,
                "signed_uri": f"https://{CLOUD}/root/{body['run_id']}/artifacts/{path}?sig={self.signed}&se=later",
                "headers": self.credential_headers,
            })  # fmt: skip
        return httpx.Response(200, json={"credential_infos": infos})

    def _artifacts_list(self, body: dict[str, Any]) -> httpx.Response:
        prefix = f"root/{body['run_id']}/artifacts/"
        under = f"{body['path']}/" if body.get("path") else ""
        found: dict[str, dict[str, Any]] = {}
        for key, data in self.cloud.objects.items():
            if key.startswith(prefix + under):
                head, _, rest = key[len(prefix + under) :].partition("/")
                entry = {"path": under + head, "is_dir": bool(rest)}
                found[head] = entry if rest else {**entry, "file_size": len(data)}
        return httpx.Response(200, json={"files": [found[k] for k in sorted(found)]})


class Router(httpx.BaseTransport):
    """The workspace and the cloud storage behind one transport, told apart by host."""

    def __init__(self, workspace: DbxWorkspace, cloud: FakeCloud) -> None:
        self.workspace = workspace
        self.cloud = cloud

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == CLOUD:
            return self.cloud(request)
        assert request.url.host == WORKSPACE_HOST, request.url
        request.read()
        return self.workspace(request)


class Env:
    def __init__(self) -> None:
        self.cloud = FakeCloud()
        self.workspace = DbxWorkspace(self.cloud)
        self.router = Router(self.workspace, self.cloud)
        self.clock = FakeClock()
        self.pool = TransportPool(policy=RetryPolicy(deadline=60), clock=self.clock, http_transport=self.router)
        auth = BearerAuth(SecretStr(FAKE_TOKEN))
        self.api = MlflowApi(self.pool.get(Connection(FAKE_WORKSPACE, "test", True, auth)))
        self.run_id = self.workspace.add("7", 1)
        self.uri = f"dbfs:/databricks/mlflow-tracking/7/{self.run_id}/artifacts"

    def store(self) -> DatabricksArtifactStore:
        store = store_for(self.api, self.uri)
        assert isinstance(store, DatabricksArtifactStore)
        return store

    def key(self, path: str) -> str:
        return f"root/{self.run_id}/artifacts/{path}"

    def credential_calls(self) -> list[httpx.Request]:
        return [r for r in self.workspace.requests if r.url.path.endswith("/credentials-for-write")]


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.pool.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("kind", ["AWS_PRESIGNED_URL", "GCP_SIGNED_URL", "AZURE_SAS_URI"])
def test_file_and_string_assets_arrive_intact_at_the_signed_url(env: Env, tmp_path: Path, kind: str) -> None:
    env.workspace.credential_type = kind
    local = tmp_path / "model.bin"
    local.write_bytes(bytes(range(256)) * 40)
    store = env.store()
    for path, source, want in (
        ("model/model.bin", Source(path=str(local)), local.read_bytes()),
        ("notes.txt", Source(text="héllo"), "héllo".encode()),
    ):
        assert store.put(path, source) == {"sha256": _sha(want), "size": len(want)}
        assert env.cloud.objects[env.key(path)] == want
        assert store.file_uri(path) == f"{env.uri}/{path}"
    assert [json.loads(r.content) for r in env.credential_calls()] == [
        {"run_id": env.run_id, "path": ["model/model.bin"]},
        {"run_id": env.run_id, "path": ["notes.txt"]},
    ]
    assert all(r.headers["Authorization"] == f"Bearer {FAKE_TOKEN}" for r in env.credential_calls())
    for sent in env.cloud.puts():
        assert "authorization" not in sent["headers"]  # the workspace token never goes to the storage
        assert FAKE_TOKEN not in str(sent["headers"])
        assert sent["headers"]["x-amz-server-side-encryption"] == "AES256"  # the credential's headers
        assert sent["headers"].get("x-ms-blob-type") == ("BlockBlob" if kind == "AZURE_SAS_URI" else None)
        assert sent["method"] == "PUT" and "sig" in sent["query"]
    assert len(env.cloud.puts()) == 2  # one request per file


def test_a_large_file_is_streamed_in_pieces(env: Env, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    data = hashlib.sha256(b"seed").digest() * ((3 * CHUNK_BYTES + CHUNK_BYTES // 2) // 32)
    big.write_bytes(data)
    assert env.store().put("big.bin", Source(path=str(big)))["sha256"] == _sha(data)
    [sent] = env.cloud.puts()
    sizes = [len(c) for c in sent["chunks"]]
    assert len(sizes) >= 4 and max(sizes) <= CHUNK_BYTES, sizes
    assert sent["headers"]["Content-Length"] == str(len(data))
    assert "chunked" not in sent["headers"].get("Transfer-Encoding", "")  # S3 takes no chunked PUT
    assert env.cloud.objects[env.key("big.bin")] == data


def test_an_empty_file_is_sent_as_no_bytes(env: Env, tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    assert env.store().put("empty", Source(path=str(tmp_path / "empty"))) == {"sha256": _sha(b""), "size": 0}
    assert env.cloud.objects[env.key("empty")] == b""
    assert env.cloud.puts()[0]["headers"]["Content-Length"] == "0"


def test_a_503_from_the_storage_is_retried_with_the_same_url(env: Env) -> None:
    env.cloud.fail = [503, 500]
    assert env.store().put("a.txt", Source(text="abc"))["size"] == 3
    assert env.cloud.objects[env.key("a.txt")] == b"abc"
    puts = env.cloud.puts()
    assert len(puts) == 3 and {p["query"]["sig"] for p in puts} == {"1"}
    assert all(p["chunks"] == [b"abc"] for p in puts)  # the whole body each time
    assert len(env.credential_calls()) == 1 and len(env.clock.sleeps) == 2


def test_a_storage_that_stays_down_fails_at_the_deadline_naming_the_file(env: Env) -> None:
    env.cloud.fail = [503] * 1000
    with pytest.raises(ServiceUnavailable) as info:
        env.store().put("a.txt", Source(text="abc"))
    assert "artifacts.a.txt" in str(info.value) and CLOUD in str(info.value)
    assert "sig=" not in str(info.value)  # the signature is a secret
    assert "retry deadline" in " ".join(getattr(info.value, "__notes__", []))


def test_an_expired_signed_url_gets_a_new_one(env: Env) -> None:
    env.cloud.expired = {"1"}
    env.store().put("a.txt", Source(text="abc"))
    assert env.cloud.objects[env.key("a.txt")] == b"abc"
    assert [p["query"]["sig"] for p in env.cloud.puts()] == ["1", "2"]
    assert len(env.credential_calls()) == 2


def test_a_signed_url_refused_every_time_is_reported(env: Env) -> None:
    env.cloud.expired = {str(n) for n in range(1, 10)}
    with pytest.raises(ApiError) as info:
        env.store().put("m/a.txt", Source(text="abc"))
    assert info.value.status == 403 and info.value.error_code == "AccessDenied"
    assert "artifacts.m/a.txt" in str(info.value) and "Request has expired" in str(info.value)
    assert "sig=" not in str(info.value)
    assert len(env.credential_calls()) == 3  # the first URL and two new ones


def test_azure_adls_gen2_creates_appends_and_flushes(env: Env, tmp_path: Path) -> None:
    env.workspace.credential_type = "AZURE_ADLS_GEN2_SAS_URI"
    env.workspace.credential_headers = [{"name": "x-ms-version", "value": "2021-08-06"}]
    data = b"x" * (2 * CHUNK_BYTES + 5)
    (tmp_path / "f").write_bytes(data)
    (tmp_path / "empty").write_bytes(b"")
    store = env.store()
    store.put("f", Source(path=str(tmp_path / "f")))
    store.put("empty", Source(path=str(tmp_path / "empty")))
    assert env.cloud.objects[env.key("f")] == data and env.cloud.objects[env.key("empty")] == b""
    steps = [(r["method"], {k: v for k, v in r["query"].items() if k not in ("sig", "se")}) for r in env.cloud.puts()]
    assert steps == [
        ("PUT", {"resource": "file"}),
        ("PATCH", {"action": "append", "position": "0", "flush": "true"}),
        ("PUT", {"resource": "file"}),
        ("PATCH", {"action": "flush", "position": "0"}),
    ]
    assert max(len(c) for c in env.cloud.puts()[1]["chunks"]) <= CHUNK_BYTES
    assert all(r["headers"]["x-ms-version"] == "2021-08-06" for r in env.cloud.puts())


@pytest.mark.parametrize("kind", ["SOMETHING_NEW", None, 0])
def test_an_unknown_credential_type_is_refused_naming_the_file(env: Env, kind: Any) -> None:
    env.workspace.credential_type = kind
    with pytest.raises(InputError) as info:
        env.store().put("reports/eval.html", Source(text="x"))
    assert info.value.prop == "artifacts.reports/eval.html"
    assert repr(kind) in info.value.reason and "AWS_PRESIGNED_URL" in info.value.reason
    assert env.cloud.requests == []


def test_the_credential_type_may_come_as_its_number(env: Env) -> None:
    env.workspace.credential_type = 1  # AZURE_SAS_URI
    env.store().put("a.txt", Source(text="abc"))
    assert env.cloud.puts()[0]["headers"]["x-ms-blob-type"] == "BlockBlob"


def test_a_file_too_large_for_one_request_is_refused_before_sending(env: Env, tmp_path: Path) -> None:
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as f:
        f.truncate((5 << 30) + 1)  # sparse: never read
    with pytest.raises(InputError) as info:
        env.store().put("huge.bin", Source(path=str(huge)))
    assert info.value.prop == "artifacts.huge.bin" and "multipart" in info.value.reason
    assert env.cloud.requests == []


def test_removing_a_file_keeps_it_on_databricks(env: Env) -> None:
    store = env.store()
    store.put("a.txt", Source(text="abc"))
    store.delete("a.txt")
    assert env.cloud.objects[env.key("a.txt")] == b"abc"  # no API deletes it: kept
    assert [f["path"] for f in store.listing()] == ["a.txt"]
    assert len(env.cloud.requests) == 1  # nothing was sent for the removal


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("dbfs:/Volumes/main/default/vol/x", "only the runs' own roots under dbfs:/databricks/mlflow-tracking/"),
        ("dbfs:/mnt/team/artifacts", "only the runs' own roots under dbfs:/databricks/mlflow-tracking/"),
        ("dbfs:/databricks/mlflow-tracking/7/logged_models/m-1/artifacts", "only the runs' own roots"),
        ("dbfs:/databricks/mlflow-tracking/7/tr-1/artifacts", "only the runs' own roots"),
        ("dbfs://profile@databricks/databricks/mlflow-tracking/7/r/artifacts", "naming a workspace profile"),
        ("databricks://x/y", "Databricks roots other than dbfs:/databricks/mlflow-tracking"),
    ],
)
def test_other_databricks_roots_are_refused(env: Env, uri: str, says: str) -> None:
    with pytest.raises(InputError) as info:
        store_for(env.api, uri)
    assert info.value.prop == "artifacts" and says in info.value.reason and uri in info.value.reason


def test_a_server_without_the_credentials_api_says_so(env: Env) -> None:
    env.workspace._artifacts_credentials_for_write = None  # type: ignore[assignment,method-assign]
    with pytest.raises(InputError) as info:
        env.store().put("a.txt", Source(text="abc"))
    assert info.value.prop == "artifacts.a.txt" and "credentials-for-write" in info.value.reason


def test_create_and_update_through_the_provider(env: Env, tmp_path: Path) -> None:
    """The whole path: Check, Create (files before the completion of the run), an Update that changes one
    file and drops another (kept on Databricks, gone from ``artifact_files``)."""
    provider = ExperimentRunProvider()
    provider._runtime = Runtime(StackConfig(token=SecretStr(FAKE_TOKEN)), http_transport=env.router)
    (tmp_path / "model.bin").write_bytes(b"\x00\x01" * 1000)
    props = {"experiment_id": "7", "deployment_name": "dbc-1234", "status": "FINISHED",
             "artifacts": {"model.bin": pulumi.FileAsset(str(tmp_path / "model.bin")),
                           "conf": pulumi.AssetArchive({"a.yaml": pulumi.StringAsset("a: 1")}),
                           "old.txt": pulumi.StringAsset("old")}}  # fmt: skip
    checked = provider.check({}, props)
    assert checked.failures == []
    created = provider.create(checked.inputs)
    outs = created.outs or {}
    run_id = created.id
    root = f"dbfs:/databricks/mlflow-tracking/7/{run_id}/artifacts"
    assert outs["artifact_uri"] == root
    assert outs["artifact_files"] == {
        "conf/a.yaml": {"sha256": _sha(b"a: 1"), "size": 4, "uri": f"{root}/conf/a.yaml"},
        "model.bin": {"sha256": _sha(b"\x00\x01" * 1000), "size": 2000, "uri": f"{root}/model.bin"},
        "old.txt": {"sha256": _sha(b"old"), "size": 3, "uri": f"{root}/old.txt"},
    }
    assert env.cloud.objects[f"root/{run_id}/artifacts/conf/a.yaml"] == b"a: 1"
    assert all("authorization" not in r["headers"] for r in env.cloud.requests)
    api = MlflowApi(env.pool.get(Connection(FAKE_WORKSPACE, "test", True, BearerAuth(SecretStr(FAKE_TOKEN)))))
    assert [(f["path"], f["is_dir"]) for f in api.list_artifacts(run_id)] == [
        ("conf", True), ("model.bin", False), ("old.txt", False),
    ]  # fmt: skip
    assert api.list_artifacts(run_id, "conf") == [{"path": "conf/a.yaml", "is_dir": False, "file_size": 4}]

    news = {**props, "artifacts": {"model.bin": pulumi.FileAsset(str(tmp_path / "model.bin")),
                                   "conf": pulumi.AssetArchive({"a.yaml": pulumi.StringAsset("a: 2")})}}  # fmt: skip
    rechecked = provider.check(checked.inputs, news)
    assert rechecked.failures == []
    before = len(env.cloud.puts())
    updated = provider.update(run_id, outs, rechecked.inputs)
    files = (updated.outs or {})["artifact_files"]
    assert sorted(files) == ["conf/a.yaml", "model.bin"] and files["conf/a.yaml"]["sha256"] == _sha(b"a: 2")
    assert [p["path"] for p in env.cloud.puts()[before:]] == [f"root/{run_id}/artifacts/conf/a.yaml"]  # only it
    assert env.cloud.objects[f"root/{run_id}/artifacts/old.txt"] == b"old"  # kept: Databricks cannot delete it


def test_refresh_sees_files_removed_or_resized_in_the_cloud(env: Env) -> None:
    """Refresh lists the run's folders (the workspace's artifact listing) and marks what no longer matches."""
    provider = ExperimentRunProvider()
    provider._runtime = Runtime(StackConfig(token=SecretStr(FAKE_TOKEN)), http_transport=env.router)
    props = {"experiment_id": "7", "deployment_name": "dbc-1234",
             "artifacts": {"a.txt": pulumi.StringAsset("aaa"), "d/b.txt": pulumi.StringAsset("bbb"),
                           "d/c.txt": pulumi.StringAsset("ccc")}}  # fmt: skip
    created = provider.create(provider.check({}, props).inputs)
    run_id, outs = created.id, created.outs or {}
    assert provider.read(run_id, outs).outs["artifact_files"] == outs["artifact_files"], "nothing changed yet"
    del env.cloud.objects[f"root/{run_id}/artifacts/a.txt"]
    env.cloud.objects[f"root/{run_id}/artifacts/d/b.txt"] = b"longer"
    files = provider.read(run_id, outs).outs["artifact_files"]
    assert files["a.txt"].get("sha256") is None and files["a.txt"].get("size") is None
    assert files["d/b.txt"].get("sha256") is None and files["d/b.txt"]["size"] == 6
    assert files["d/c.txt"] == outs["artifact_files"]["d/c.txt"]
