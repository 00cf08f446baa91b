"""Run artifacts on a direct S3 root: an MLflow server run with ``--default-artifact-root s3://bucket/prefix
--no-serve-artifacts`` (MLflow's "remote tracking with direct artifact access") against moto's S3 server.

What the provider stores must be what MLflow's own client (boto3, with ``MLFLOW_S3_ENDPOINT_URL``) reads back;
S3 requests are counted on the wire by the recording proxy set in front of moto as the endpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from support.failed_create import failed_create
from support.fault_proxy import ANY, FaultProxy
from support.host import DynamicHost, isolated_env, secret, without_provider
from support.mlflow_proxy import RecordingProxy
from support.mlflow_server import MlflowServer
from support.object_stores import S3_SECRET, S3Server, direct_root_server, start_s3
from support.runs import create_run, run_props, unique

BUCKET = "mlflow-artifacts"
BIG = 17 << 20  # over obstore's part size here (8 MiB): a multipart upload of three parts


@pytest.fixture(scope="module")
def s3_mlflow(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[MlflowServer]:
    """An MLflow server whose runs get ``s3://<BUCKET>/runs/...`` roots, serving no artifacts itself."""
    s3_server.create_bucket(BUCKET)
    with direct_root_server(tmp_path_factory.mktemp("mlflow-s3"), f"s3://{BUCKET}/runs", s3_server.env) as server:
        yield server


@pytest.fixture
def s3_client(s3_mlflow: MlflowServer, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Any:
    """MLflow's own client of that server, reading the bucket as MLflow does (boto3 and the env)."""
    from mlflow.tracking import MlflowClient

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return MlflowClient(tracking_uri=s3_mlflow.url)


@pytest.fixture
def s3_proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    """The S3 endpoint the provider is given: moto behind a proxy that counts (and can fail) requests."""
    with FaultProxy(s3_server.url) as proxy:
        yield proxy


def _host_env(s3_mlflow: MlflowServer, s3_server: S3Server, endpoint: str, **extra: str) -> dict[str, str]:
    return isolated_env(
        MLFLOW_TRACKING_URI=s3_mlflow.url, **{**s3_server.env, "MLFLOW_S3_ENDPOINT_URL": endpoint}, **extra
    )


@pytest.fixture
def s3_host(s3_mlflow: MlflowServer, s3_server: S3Server, s3_proxy: FaultProxy) -> Iterator[DynamicHost]:
    with DynamicHost(env=_host_env(s3_mlflow, s3_server, s3_proxy.url)) as host:
        host.configure({})
        yield host


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(run: Any, path: str) -> str:
    return f"{run.info.artifact_uri.removeprefix(f's3://{BUCKET}/')}/{path}"


def _writes(proxy: RecordingProxy, mark: int) -> list[tuple[str, str]]:
    """``(method, key)`` of each write the provider sent to S3 since ``mark``; a bulk delete (``POST
    /<bucket>?delete``, as obstore deletes) as one ``DELETE`` per key it names."""
    found: list[tuple[str, str]] = []
    for r in proxy.since(mark):
        if r.method == "POST" and r.path == f"/{BUCKET}":
            found += [("DELETE", k) for k in re.findall(r"<Key>([^<]+)</Key>", str(r.body))]
        elif r.method != "GET":
            found.append((r.method, r.path.split(f"/{BUCKET}/", 1)[-1]))
    return found


def _recheck(host: DynamicHost, inputs: dict[str, Any]) -> dict[str, Any]:
    checked = host.check(without_provider(inputs), run_props(**without_provider(inputs)))
    assert checked.failures == []
    return checked.inputs


def test_the_servers_runs_get_s3_roots(s3_client: Any, s3_server: S3Server, tmp_path: Path) -> None:
    experiment = s3_client.create_experiment(unique("s3"))
    run = s3_client.create_run(experiment)
    assert run.info.artifact_uri.startswith(f"s3://{BUCKET}/runs/")
    (tmp_path / "a.txt").write_text("from mlflow's client")
    s3_client.log_artifact(run.info.run_id, str(tmp_path / "a.txt"))
    assert s3_server.objects(BUCKET, _key(run, "a.txt")) == {_key(run, "a.txt"): b"from mlflow's client"}


def test_files_land_on_s3_and_only_changes_are_sent(s3_host, s3_proxy, s3_client, s3_server, tmp_path) -> None:
    big = os.urandom(BIG + 5)
    (tmp_path / "model.bin").write_bytes(big)
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "index.html").write_text("<h1>eval</h1>")
    declared = {
        "notes/readme.txt": pulumi.StringAsset("hello, wörld\n"),
        "weights/model.bin": pulumi.FileAsset(str(tmp_path / "model.bin")),
        "report": pulumi.FileArchive(str(tmp_path / "report")),
        "empty.txt": pulumi.StringAsset(""),
    }
    want = {
        "notes/readme.txt": "hello, wörld\n".encode(),
        "weights/model.bin": big,
        "report/index.html": b"<h1>eval</h1>",
        "empty.txt": b"",
    }
    experiment = s3_client.create_experiment(unique("s3"))
    run_id, outs, inputs = create_run(s3_host, experiment_id=experiment, artifacts=declared)
    run = s3_client.get_run(run_id)
    assert run.info.artifact_uri.startswith(f"s3://{BUCKET}/runs/")
    for path, data in want.items():
        assert Path(s3_client.download_artifacts(run_id, path, str(tmp_path / "dl"))).read_bytes() == data, path
        assert outs["artifact_files"][path] == {
            "sha256": _sha(data), "size": len(data), "uri": f"{run.info.artifact_uri}/{path}"
        }  # fmt: skip
    assert len(s3_server.objects(BUCKET, _key(run, ""))) == len(want)

    # Unchanged: Diff says none and sends nothing to S3.
    mark = s3_proxy.mark()
    assert s3_host.diff(run_id, outs, _recheck(s3_host, inputs), old_inputs=without_provider(inputs)).changes == "none"
    assert s3_proxy.since(mark) == []

    # One file edited: only it is sent.
    (tmp_path / "report" / "index.html").write_text("<h1>eval, take 2</h1>")
    news = _recheck(s3_host, inputs)
    assert s3_host.diff(run_id, outs, news, old_inputs=without_provider(inputs)).changes == "some"
    mark = s3_proxy.mark()
    outs = s3_host.update(run_id, outs, news, old_inputs=without_provider(inputs))
    assert _writes(s3_proxy, mark) == [("PUT", _key(run, "report/index.html"))]
    assert s3_server.objects(BUCKET, _key(run, "report/index.html")) == {
        _key(run, "report/index.html"): b"<h1>eval, take 2</h1>"
    }

    # One entry removed: its object is deleted, nothing is sent.
    del declared["weights/model.bin"]
    news2 = _recheck(s3_host, {**without_provider(news), "artifacts": declared})
    mark = s3_proxy.mark()
    outs = s3_host.update(run_id, outs, news2, old_inputs=without_provider(news))
    assert _writes(s3_proxy, mark) == [("DELETE", _key(run, "weights/model.bin"))]
    assert _key(run, "weights/model.bin") not in s3_server.objects(BUCKET, _key(run, ""))
    assert set(outs["artifact_files"]) == set(want) - {"weights/model.bin"}


def test_a_big_file_goes_in_parts(s3_host, s3_proxy, s3_client, s3_server, tmp_path) -> None:
    """Over the part size: a multipart upload (initiate, parts, complete), never one PUT of the whole file."""
    (tmp_path / "big.bin").write_bytes(os.urandom(BIG))
    mark = s3_proxy.mark()
    run_id, outs, _ = create_run(
        s3_host, experiment_id=s3_client.create_experiment(unique("s3")),
        artifacts={"big.bin": pulumi.FileAsset(str(tmp_path / "big.bin"))},
    )  # fmt: skip
    writes = [r for r in s3_proxy.since(mark) if r.method in ("PUT", "POST")]
    assert [r.method for r in writes].count("POST") == 2, "initiate and complete"
    assert [r.method for r in writes].count("PUT") == 3 and max(r.body_bytes for r in writes) <= 8 << 20
    key = _key(s3_client.get_run(run_id), "big.bin")
    assert s3_server.objects(BUCKET, key)[key] == (tmp_path / "big.bin").read_bytes()
    assert outs["artifact_files"]["big.bin"]["size"] == BIG


def test_refresh_finds_objects_changed_out_of_band(s3_host, s3_proxy, s3_client, s3_server) -> None:
    declared = {
        "keep.txt": pulumi.StringAsset("kept"),
        "gone.txt": pulumi.StringAsset("deleted by someone"),
        "dir/swap.txt": pulumi.StringAsset("short"),
    }
    run_id, outs, inputs = create_run(
        s3_host, experiment_id=s3_client.create_experiment(unique("s3")), artifacts=declared
    )
    run = s3_client.get_run(run_id)
    assert s3_host.read(run_id, outs).outs["artifact_files"] == outs["artifact_files"]

    boto = s3_server.boto3_client()
    boto.delete_object(Bucket=BUCKET, Key=_key(run, "gone.txt"))
    boto.put_object(Bucket=BUCKET, Key=_key(run, "dir/swap.txt"), Body=b"replaced with longer text")
    mark = s3_proxy.mark()
    files = s3_host.read(run_id, outs).outs["artifact_files"]
    assert _writes(s3_proxy, mark) == [], "a refresh only lists"
    stored = outs["artifact_files"]
    assert files["gone.txt"] == {"uri": stored["gone.txt"]["uri"]}
    assert files["dir/swap.txt"] == {"size": len(b"replaced with longer text"), "uri": stored["dir/swap.txt"]["uri"]}
    assert files["keep.txt"] == stored["keep.txt"]

    mark = s3_proxy.mark()
    after = s3_host.update(run_id, {**outs, "artifact_files": files}, _recheck(s3_host, inputs))
    assert sorted(_writes(s3_proxy, mark)) == [("PUT", _key(run, "dir/swap.txt")), ("PUT", _key(run, "gone.txt"))]
    assert after["artifact_files"] == stored
    assert s3_server.objects(BUCKET, _key(run, "dir/swap.txt"))[_key(run, "dir/swap.txt")] == b"short"


def test_uploads_ride_out_a_503_and_a_lost_answer(s3_host, s3_proxy, s3_client, s3_server) -> None:
    """A 503 and an answer lost after S3 stored the object: each sent again, one object with the right bytes."""
    s3_proxy.clear()
    s3_proxy.fail(ANY, "503")
    s3_proxy.fail(ANY, "drop-after", nth=2)
    declared = {"a.txt": pulumi.StringAsset("first"), "b.txt": pulumi.StringAsset("second")}
    run_id, outs, _ = create_run(s3_host, experiment_id=s3_client.create_experiment(unique("s3")), artifacts=declared)
    assert s3_proxy.fired_by_fault() == {"503": 1, "drop-after": 1}
    run = s3_client.get_run(run_id)
    assert s3_server.objects(BUCKET, _key(run, "")) == {_key(run, "a.txt"): b"first", _key(run, "b.txt"): b"second"}
    assert set(outs["artifact_files"]) == {"a.txt", "b.txt"}


def test_a_missing_bucket_names_the_bucket_and_the_endpoint_setting(s3_host, s3_proxy, s3_client) -> None:
    experiment = s3_client.create_experiment(unique("s3"), artifact_location="s3://no-such-bucket/x")
    message = failed_create(s3_host, s3_client, experiment)
    assert "artifacts.a.txt" in message and "s3://no-such-bucket/x/" in message
    assert "does not exist" in message and "NoSuchBucket" in message
    assert f"{s3_proxy.url} (from env MLFLOW_S3_ENDPOINT_URL)" in message
    assert "was deleted" in message
    assert S3_SECRET not in message


def test_an_unreachable_endpoint_is_named(s3_mlflow, s3_server, s3_client, tmp_path) -> None:
    closed = FaultProxy(s3_server.url)
    closed.close()  # a port nothing listens on any more
    env = _host_env(s3_mlflow, s3_server, closed.url, PULUMI_MLFLOW_RUNS_RETRY_DEADLINE="2")
    with DynamicHost(env=env) as host:
        host.configure({})
        message = failed_create(host, s3_client, s3_client.create_experiment(unique("s3")))
    assert f"cannot reach S3 at {closed.url} (from env MLFLOW_S3_ENDPOINT_URL)" in message
    assert S3_SECRET not in message


def test_stack_config_keys_and_profiles_give_the_credentials(s3_mlflow, s3_server, s3_client, tmp_path) -> None:
    """No AWS env: the stack's keys (the secret one sent as a secret), then a profile of a credentials file."""
    experiment = s3_client.create_experiment(unique("s3"))
    bare = isolated_env(MLFLOW_TRACKING_URI=s3_mlflow.url)
    bare = {k: v for k, v in bare.items() if not k.startswith("AWS_")}
    config = {
        "mlflow-runs:s3EndpointUrl": s3_server.url,
        "mlflow-runs:awsAccessKeyId": "stack-key-id",
        "mlflow-runs:awsSecretAccessKey": secret(S3_SECRET),
    }
    with DynamicHost(env=bare) as host:
        host.configure(config)
        run_id, outs, _ = create_run(host, experiment_id=experiment, artifacts={"k.txt": pulumi.StringAsset("keys")})
    assert S3_SECRET not in json.dumps(outs)
    key = _key(s3_client.get_run(run_id), "k.txt")
    assert s3_server.objects(BUCKET, key) == {key: b"keys"}

    credentials = tmp_path / "credentials"
    credentials.write_text(f"[team]\naws_access_key_id = profile-key\naws_secret_access_key = {S3_SECRET}\n")
    env = {**bare, "AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(tmp_path / "none")}
    with DynamicHost(env={**env, "AWS_PROFILE": "team", "MLFLOW_S3_ENDPOINT_URL": s3_server.url}) as host:
        host.configure({})
        run_id, _, _ = create_run(host, experiment_id=experiment, artifacts={"p.txt": pulumi.StringAsset("profile")})
    key = _key(s3_client.get_run(run_id), "p.txt")
    assert s3_server.objects(BUCKET, key) == {key: b"profile"}

    with DynamicHost(env={**env, "AWS_PROFILE": "nobody", "MLFLOW_S3_ENDPOINT_URL": s3_server.url}) as host:
        host.configure({})
        message = failed_create(host, s3_client, s3_client.create_experiment(unique("s3")))
    assert "env AWS_PROFILE names the AWS profile 'nobody'" in message and str(credentials) in message


def test_refused_credentials_say_where_they_came_from(s3_mlflow, s3_client, tmp_path) -> None:
    """S3 that checks signatures (moto with its IAM): a wrong secret key is named by its setting, never shown."""
    with start_s3(tmp_path, checks_credentials=True) as strict:
        strict.create_bucket("strict")
        experiment = s3_client.create_experiment(unique("s3"), artifact_location="s3://strict/x")
        wrong = "wrong-secret-key-text"
        env = isolated_env(MLFLOW_TRACKING_URI=s3_mlflow.url, **{**strict.env, "AWS_SECRET_ACCESS_KEY": wrong})
        with DynamicHost(env=env) as host:
            host.configure({})
            message = failed_create(host, s3_client, experiment)
        assert "S3 refused the credentials for the run's artifact root s3://strict/x/" in message
        assert "SignatureDoesNotMatch" in message and "env AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in message
        assert wrong not in message and strict.env["AWS_SECRET_ACCESS_KEY"] not in message

        with DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=s3_mlflow.url, **strict.env)) as host:
            host.configure({})
            run_id, _, _ = create_run(host, experiment_id=experiment, artifacts={"a.txt": pulumi.StringAsset("ok")})
        assert strict.objects("strict") == {f"x/{run_id}/artifacts/a.txt": b"ok"}


PROJECT = """\
name: s3-artifacts
runtime: yaml
resources:
  run:
    type: mlflow-runs:index:ExperimentRun
    properties:
      experimentId: "{experiment_id}"
      runName: on-s3
      artifacts:
        notes.txt:
          fn::stringAsset: trained on the March data
        model.bin:
          fn::fileAsset: ./model.bin
outputs:
  runId: ${run.runId}
  files: ${run.artifactFiles}
"""


@pytest.mark.cli
def test_a_yaml_project_writes_s3_with_the_stacks_keys(
    s3_mlflow: MlflowServer, s3_server: S3Server, s3_client: Any, pulumi_bin: Path, tmp_path: Path
) -> None:
    """The real CLI in a project folder, the plugin (native door), the S3 settings in stack config alone (the
    secret key set with --secret): up, no change, an edit sends one file, refresh, destroy; the key stays
    ciphertext in the state and appears in no output."""
    from support.project import PACKAGE_VENV, project_folder

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text(PROJECT.replace("{experiment_id}", s3_client.create_experiment(unique("s3"))))
    (folder / "model.bin").write_bytes(os.urandom(1000))
    with RecordingProxy(s3_server.url) as endpoint:
        env = {"MLFLOW_TRACKING_URI": s3_mlflow.url}
        project = project_folder(folder, pulumi_bin, tmp_path / "user", unique("stack"), env, venv=PACKAGE_VENV)
        project.env = {k: v for k, v in project.env.items() if not k.startswith("AWS_")}
        try:
            project.init({
                "mlflow-runs:s3EndpointUrl": endpoint.url,
                "mlflow-runs:awsAccessKeyId": "stack-key-id",
            })  # fmt: skip
            project.pulumi("config", "set", "--secret", "mlflow-runs:awsSecretAccessKey", S3_SECRET)
            up = project.pulumi("up", "--yes", "--skip-preview")
            run_id = project.outputs()["runId"]
            run = s3_client.get_run(run_id)
            assert s3_server.objects(BUCKET, _key(run, "")) == {
                _key(run, "notes.txt"): b"trained on the March data",
                _key(run, "model.bin"): (folder / "model.bin").read_bytes(),
            }
            project.pulumi("preview", "--expect-no-changes")

            (folder / "model.bin").write_bytes(b"retrained")
            mark = endpoint.mark()
            project.pulumi("up", "--yes", "--skip-preview")
            assert _writes(endpoint, mark) == [("PUT", _key(run, "model.bin"))]
            project.pulumi("refresh", "--yes", "--expect-no-changes")

            exported = json.dumps(project.exported())
            assert S3_SECRET not in exported and S3_SECRET not in up.stdout + up.stderr
            printed = [entry for entry in project.log if not entry.startswith("$ pulumi config set --secret")]
            assert S3_SECRET not in "\n".join(printed)
            stack_file = (folder / f"Pulumi.{project.stack}.yaml").read_text()
            assert "mlflow-runs:awsSecretAccessKey:\n    secure:" in stack_file and S3_SECRET not in stack_file
        finally:
            project.remove()
    assert s3_client.get_run(run_id).info.lifecycle_stage == "deleted"


@pytest.mark.slow
def test_a_300_mb_file_raises_the_hosts_peak_memory_by_under_100_mb(s3_host, s3_client, s3_server, tmp_path) -> None:
    """Streamed in parts: the host's peak RSS (``VmHWM``, every allocation, obstore's included) barely moves."""
    from support.host import peak_rss

    experiment = s3_client.create_experiment(unique("s3"))
    (tmp_path / "warm.bin").write_bytes(os.urandom(9 << 20))  # warm up: obstore's first multipart upload
    create_run(s3_host, experiment_id=experiment, artifacts={"warm.bin": pulumi.FileAsset(str(tmp_path / "warm.bin"))})
    big = tmp_path / "big.bin"
    block = hashlib.sha256(b"artifact").digest() * (1 << 15)  # 1 MiB that is not all zeros
    with big.open("wb") as f:
        for _ in range(300):
            f.write(block)
    before = peak_rss(s3_host.process.pid)
    run_id, outs, _ = create_run(s3_host, experiment_id=experiment, artifacts={"big.bin": pulumi.FileAsset(str(big))})
    growth = peak_rss(s3_host.process.pid) - before
    assert outs["artifact_files"]["big.bin"]["size"] == 300 << 20
    head = s3_server.boto3_client().head_object(Bucket=BUCKET, Key=_key(s3_client.get_run(run_id), "big.bin"))
    assert head["ContentLength"] == 300 << 20
    assert growth < 100 << 20, f"the host's peak RSS grew by {growth >> 20} MiB for a 300 MiB file"


@pytest.mark.parametrize("fault", ["503", "drop-after"])
@pytest.mark.parametrize("nth", [2, 5], ids=["a-part", "the-completion"])
def test_a_multipart_upload_rides_out_a_fault(fault, nth, s3_host, s3_proxy, s3_client, s3_server, tmp_path) -> None:
    """A fault on a part or on the completion (a 503, or an answer lost after S3 acted): one whole object."""
    (tmp_path / "big.bin").write_bytes(os.urandom(BIG))
    s3_proxy.clear()
    s3_proxy.fail(ANY, fault, nth=nth)  # the initiation, three parts, then the completion
    run_id, outs, _ = create_run(
        s3_host, experiment_id=s3_client.create_experiment(unique("s3")),
        artifacts={"big.bin": pulumi.FileAsset(str(tmp_path / "big.bin"))},
    )  # fmt: skip
    assert s3_proxy.fired_by_fault() == {fault: 1}
    key = _key(s3_client.get_run(run_id), "big.bin")
    assert s3_server.objects(BUCKET, key) == {key: (tmp_path / "big.bin").read_bytes()}
    assert outs["artifact_files"]["big.bin"]["size"] == BIG


def test_an_https_endpoint_of_a_private_ca_is_trusted_through_aws_ca_bundle(
    s3_mlflow, s3_server, s3_client, tmp_path
) -> None:
    """S3 behind TLS with a certificate of a test CA: trusted with ``AWS_CA_BUNDLE``, named without it."""
    from support.tls_proxy import Pki, TlsProxy

    pki = Pki.make(tmp_path / "pki")
    experiment = s3_client.create_experiment(unique("s3"))
    with TlsProxy(s3_server.port, pki.server_context()) as tls:
        env = _host_env(s3_mlflow, s3_server, tls.url, AWS_CA_BUNDLE=str(pki.ca_path))
        with DynamicHost(env=env) as host:
            host.configure({})
            run_id, _, _ = create_run(host, experiment_id=experiment, artifacts={"t.txt": pulumi.StringAsset("tls")})
        key = _key(s3_client.get_run(run_id), "t.txt")
        assert s3_server.objects(BUCKET, key) == {key: b"tls"}

        env = _host_env(s3_mlflow, s3_server, tls.url, PULUMI_MLFLOW_RUNS_RETRY_DEADLINE="2")
        env.pop("AWS_CA_BUNDLE", None)  # a machine's own (this one's names the system bundle)
        with DynamicHost(env=env) as host:
            host.configure({})
            message = failed_create(host, s3_client, s3_client.create_experiment(unique("s3")))
    assert f"the TLS certificate of S3 at {tls.url} (from env MLFLOW_S3_ENDPOINT_URL) does not verify" in message
    assert "set env AWS_CA_BUNDLE" in message, message
