"""Run artifacts declared as Pulumi assets, through the real provider host against the real MLflow server.

What the provider says it stored must be what MLflow's own client downloads, byte for byte; an unchanged
file is never sent again (counted on the wire with the recording proxy); a removed one is deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pulumi
import pytest
from mlflow.entities import ViewType

from support.host import DynamicHost, HostError, isolated_env, without_provider
from support.mlflow_proxy import RecordingProxy
from support.runs import create_run, run_props, unique

_props = run_props
_create = create_run


def _recheck(host: DynamicHost, inputs: dict[str, Any]) -> dict[str, Any]:
    checked = host.check(without_provider(inputs), _props(**without_provider(inputs)))
    assert checked.failures == []
    return checked.inputs


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(client: Any, run_id: str, path: str, dst: Path) -> bytes:
    dst.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(dst))).read_bytes()


def _listing(client: Any, run_id: str) -> set[str]:
    """Every file path of the run's artifacts, as MLflow's own artifact repository lists them (not
    ``MlflowClient.list_artifacts``: MLflow 3's asks an MLflow 2 server for logged models it lacks)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(client.get_run(run_id).info.artifact_uri, tracking_uri=client.tracking_uri)
    found: set[str] = set()
    todo: list[str | None] = [None]
    while todo:
        for info in repo.list_artifacts(todo.pop()):
            if info.is_dir:
                todo.append(info.path)
            else:
                found.add(info.path)
    return found


@pytest.fixture
def proxied_experiment(mlflow_client: Any) -> str:
    """An experiment on the server's proxied artifact store (``mlflow-artifacts:``)."""
    name = unique("artifacts")
    return str(mlflow_client.create_experiment(name, artifact_location=f"mlflow-artifacts:/{name}"))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Local files for the program: one binary file over several read chunks, a folder with a subfolder."""
    (tmp_path / "model.bin").write_bytes(os.urandom(3 * (1 << 20) + 17))
    folder = tmp_path / "report"
    (folder / "img").mkdir(parents=True)
    (folder / "index.html").write_text("<h1>eval</h1>")
    (folder / "img" / "roc.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(1000))
    return tmp_path


def _declared(workdir: Path) -> dict[str, Any]:
    return {
        "notes/readme.txt": pulumi.StringAsset("hello, wörld\n"),
        "weights/model.bin": pulumi.FileAsset(str(workdir / "model.bin")),
        "reports/eval": pulumi.FileArchive(str(workdir / "report")),
        "extra": pulumi.AssetArchive(
            {"a.txt": pulumi.StringAsset("a"), "deep": pulumi.AssetArchive({"b.txt": pulumi.StringAsset("b")})}
        ),
    }


EXPECTED = {
    "notes/readme.txt",
    "weights/model.bin",
    "reports/eval/index.html",
    "reports/eval/img/roc.png",
    "extra/a.txt",
    "extra/deep/b.txt",
}


def _content(workdir: Path, path: str) -> bytes:
    local = {
        "notes/readme.txt": "hello, wörld\n".encode(),
        "extra/a.txt": b"a",
        "extra/deep/b.txt": b"b",
    }
    if path in local:
        return local[path]
    if path == "weights/model.bin":
        return (workdir / "model.bin").read_bytes()
    return (workdir / "report" / path.removeprefix("reports/eval/")).read_bytes()


@pytest.mark.mlflow2
def test_create_uploads_every_file_byte_for_byte(host, mlflow_client, proxied_experiment, workdir, tmp_path) -> None:
    key = unique("key")
    run_id, outs, inputs = _create(
        host, experiment_id=proxied_experiment, artifacts=_declared(workdir), resource_key=key
    )
    run = mlflow_client.get_run(run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert _listing(mlflow_client, run_id) == EXPECTED
    for path in EXPECTED:
        assert _download(mlflow_client, run_id, path, tmp_path / "dl" / path) == _content(workdir, path), path
    files = outs["artifact_files"]
    assert set(files) == EXPECTED
    for path, entry in files.items():
        data = _content(workdir, path)
        assert entry == {"sha256": _sha(data), "size": len(data), "uri": f"{run.info.artifact_uri}/{path}"}
    assert "artifacts" not in outs, "assets (and a StringAsset's text) are not echoed in the outputs"
    # Check handed the assets back as assets, so the engine still sees (and hashes) them.
    assert isinstance(inputs["artifacts"]["weights/model.bin"], pulumi.FileAsset)
    # The run was marked complete only after its files were there.
    assert run.data.tags["pulumi.resource_key"] == key


@pytest.fixture
def proxied_host(proxy) -> Iterator[DynamicHost]:
    with DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=proxy.url)) as h:
        h.configure({})
        yield h


def _artifact_writes(proxy, mark: int) -> list[tuple[str, str]]:
    return [
        (r.method, r.path.split("/mlflow-artifacts/artifacts/", 1)[1])
        for r in proxy.since(mark)
        if "/mlflow-artifacts/" in r.path and r.method in ("PUT", "DELETE")
    ]


@pytest.mark.mlflow2
def test_only_changed_files_are_sent_and_removed_ones_deleted(
    proxied_host, proxy, mlflow_client, proxied_experiment, workdir, tmp_path
) -> None:
    host = proxied_host
    mark = proxy.mark()
    run_id, outs, inputs = _create(host, experiment_id=proxied_experiment, artifacts=_declared(workdir))
    puts = _artifact_writes(proxy, mark)
    assert len(puts) == len(EXPECTED) and all(method == "PUT" for method, _ in puts)
    root = puts[0][1].split(f"{run_id}/artifacts/", 1)[0] + f"{run_id}/artifacts/"

    # Same content: no change, and Diff sends nothing.
    mark = proxy.mark()
    assert host.diff(run_id, outs, _recheck(host, inputs), old_inputs=without_provider(inputs)).changes == "none"
    assert proxy.since(mark) == []

    # One file of the folder changes: an update that uploads that one file only.
    (workdir / "report" / "index.html").write_text("<h1>eval, take 2</h1>")
    news = _recheck(host, inputs)
    diff = host.diff(run_id, outs, news, old_inputs=without_provider(inputs))
    assert diff.changes == "some" and diff.replaces == []
    mark = proxy.mark()
    outs = host.update(run_id, outs, news, old_inputs=without_provider(inputs))
    assert _artifact_writes(proxy, mark) == [("PUT", root + "reports/eval/index.html")]
    got = _download(mlflow_client, run_id, "reports/eval/index.html", tmp_path / "dl1")
    assert got == b"<h1>eval, take 2</h1>"
    assert outs["artifact_files"]["reports/eval/index.html"]["sha256"] == _sha(got)
    assert host.diff(run_id, outs, _recheck(host, news), old_inputs=without_provider(news)).changes == "none"

    # One entry removed: an update that deletes its file and uploads nothing.
    declared = _declared(workdir)
    del declared["weights/model.bin"]
    news2 = _recheck(host, {**without_provider(news), "artifacts": declared})
    assert host.diff(run_id, outs, news2, old_inputs=without_provider(news)).changes == "some"
    mark = proxy.mark()
    outs = host.update(run_id, outs, news2, old_inputs=without_provider(news))
    assert _artifact_writes(proxy, mark) == [("DELETE", root + "weights/model.bin")]
    assert _listing(mlflow_client, run_id) == EXPECTED - {"weights/model.bin"}
    assert set(outs["artifact_files"]) == EXPECTED - {"weights/model.bin"}

    # Other inputs change, artifacts do not: the update sends no file.
    news3 = _recheck(host, {**without_provider(news2), "tags": {"t": "1"}})
    mark = proxy.mark()
    outs = host.update(run_id, outs, news3, old_inputs=without_provider(news2))
    assert _artifact_writes(proxy, mark) == []
    assert set(outs["artifact_files"]) == EXPECTED - {"weights/model.bin"}


def test_bad_artifacts_fail_check_naming_the_path(host, experiment_id, tmp_path) -> None:
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "bundle.zip").write_bytes(b"not a zip")
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../evil.txt", "x")
    with zipfile.ZipFile(tmp_path / "corrupt.zip", "w") as z:
        z.writestr("data.txt", "0123456789" * 10)
    damaged = bytearray((tmp_path / "corrupt.zip").read_bytes())
    damaged[damaged.index(b"0123456789") + 3] ^= 0xFF  # the member's bytes no longer match its CRC
    (tmp_path / "corrupt.zip").write_bytes(bytes(damaged))
    bad = {
        "../up.txt": pulumi.StringAsset("x"),
        "/abs.txt": pulumi.StringAsset("x"),
        "a/./b": pulumi.StringAsset("x"),
        "missing.txt": pulumi.FileAsset(str(tmp_path / "nope.txt")),
        "dir": pulumi.FileAsset(str(tmp_path)),
        "same/f.txt": pulumi.FileAsset(str(tmp_path / "f.txt")),
        "same": pulumi.AssetArchive({"f.txt": pulumi.StringAsset("y")}),
        "remote": pulumi.RemoteAsset("https://example.com/x"),
        "zipped": pulumi.FileArchive(str(tmp_path / "bundle.zip")),
        "evil": pulumi.FileArchive(str(tmp_path / "evil.zip")),
        "plain": pulumi.FileArchive(str(tmp_path / "f.txt")),
        "corrupt": pulumi.FileArchive(str(tmp_path / "corrupt.zip")),
        "text": "not an asset",
    }
    checked = host.check({}, _props(experiment_id=experiment_id, artifacts=bad))
    reasons = dict(checked.failures)
    assert set(reasons) == {f"artifacts.{key}" for key in bad if key != "same"}
    assert "relative" in reasons["artifacts./abs.txt"]
    assert "'..'" in reasons["artifacts.../up.txt"]
    assert "does not exist" in reasons["artifacts.missing.txt"]
    assert "FileArchive" in reasons["artifacts.dir"]
    assert "lands on 'same/f.txt', which 'same' also writes" in reasons["artifacts.same/f.txt"]
    assert "RemoteAsset" in reasons["artifacts.remote"] and "download" in reasons["artifacts.remote"]
    assert "cannot be read as a zip or tar file" in reasons["artifacts.zipped"]
    assert "'../evil.txt'" in reasons["artifacts.evil"] and "'..'" in reasons["artifacts.evil"]
    assert "FileAsset" in reasons["artifacts.plain"]
    assert "cannot read 'data.txt in" in reasons["artifacts.corrupt"], "Check reads (hashes) every file"
    assert "FileAsset" in reasons["artifacts.text"]
    # Check hands back what it was given: the assets stay assets.
    assert isinstance(checked.inputs["artifacts"]["missing.txt"], pulumi.FileAsset)
    not_a_map = host.check({}, _props(experiment_id=experiment_id, artifacts=["x"]))
    assert [prop for prop, _ in not_a_map.failures] == ["artifacts"]


@pytest.mark.mlflow2
def test_zip_and_tar_files_land_as_folders(host, mlflow_client, proxied_experiment, tmp_path) -> None:
    members = {"model/weights.bin": os.urandom(200_000), "model/README": b"read me", "top.txt": b"top"}
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    (tmp_path / "src").mkdir()
    for name, data in members.items():
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_bytes(data)
    with tarfile.open(tmp_path / "bundle.tar.gz", "w:gz") as t:
        t.add(tmp_path / "src", arcname=".")  # members named ./model/..., as `tar -C src -czf x .` makes them
    run_id, outs, inputs = _create(
        host,
        experiment_id=proxied_experiment,
        artifacts={
            "zipped": pulumi.FileArchive(str(tmp_path / "bundle.zip")),
            "tarred": pulumi.FileArchive(str(tmp_path / "bundle.tar.gz")),
        },
    )
    expected = {f"{folder}/{name}" for folder in ("zipped", "tarred") for name in members}
    assert _listing(mlflow_client, run_id) == expected == set(outs["artifact_files"])
    for path in expected:
        data = members[path.split("/", 1)[1]]
        assert _download(mlflow_client, run_id, path, tmp_path / "dl" / path) == data
        assert outs["artifact_files"][path]["sha256"] == _sha(data)
    assert host.diff(run_id, outs, _recheck(host, inputs)).changes == "none"


def test_a_file_and_a_folder_on_the_same_path_fail_check(host, experiment_id) -> None:
    checked = host.check(
        {},
        _props(
            experiment_id=experiment_id,
            artifacts={"a": pulumi.StringAsset("x"), "a/b.txt": pulumi.StringAsset("y")},
        ),
    )
    assert [prop for prop, _ in checked.failures] == ["artifacts.a/b.txt"]


@pytest.mark.mlflow2
def test_an_unsupported_root_fails_the_create_and_rolls_the_run_back(host, mlflow_client) -> None:
    experiment_id = mlflow_client.create_experiment(unique("oss"), artifact_location="oss://bucket/x")
    with pytest.raises(HostError) as failed:
        _create(host, experiment_id=experiment_id, artifacts={"a.txt": pulumi.StringAsset("x")})
    message = failed.value.details
    assert "artifacts" in message and "oss://bucket/x/" in message and "oss: store is not supported" in message
    assert "mlflow-artifacts:" in message and "file:" in message  # the way out
    assert "was deleted" in message
    assert mlflow_client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY) == []
    # Without artifacts the same experiment works: the root is only looked at when there is a file to send.
    _, outs, _ = _create(host, experiment_id=experiment_id)
    assert outs.get("artifact_files") is None


@pytest.mark.mlflow2
def test_a_file_root_is_written_and_pruned_locally(host, mlflow_client, tmp_path, workdir) -> None:
    root = tmp_path / "store"
    root.mkdir()
    experiment_id = mlflow_client.create_experiment(unique("file"), artifact_location=root.as_uri())
    run_id, outs, inputs = _create(host, experiment_id=experiment_id, artifacts=_declared(workdir))
    run_root = root / run_id / "artifacts"
    assert mlflow_client.get_run(run_id).info.artifact_uri.startswith("file://")
    for path in EXPECTED:
        assert (run_root / path).read_bytes() == _content(workdir, path)
        assert _download(mlflow_client, run_id, path, tmp_path / "dl" / path) == _content(workdir, path)
    assert not list(run_root.rglob("*.part")), "no temporary file left behind"
    declared = _declared(workdir)
    del declared["extra"]
    news = _recheck(host, {**without_provider(inputs), "artifacts": declared})
    assert host.diff(run_id, outs, news).changes == "some"
    outs = host.update(run_id, outs, news)
    assert not (run_root / "extra").exists(), "the emptied folders go too"
    assert set(outs["artifact_files"]) == EXPECTED - {"extra/a.txt", "extra/deep/b.txt"}
    # artifacts dropped from the program: every file it put there goes
    bare = {k: v for k, v in without_provider(news).items() if k != "artifacts"}
    news = _recheck(host, bare)
    assert host.diff(run_id, outs, news).changes == "some"
    outs = host.update(run_id, outs, news)
    assert outs.get("artifact_files") is None
    assert [p for p in run_root.rglob("*") if p.is_file()] == []


@pytest.mark.mlflow2
def test_deleting_the_run_leaves_its_files(host, mlflow_client, tmp_path) -> None:
    """MLflow removes a deleted run's files itself when it purges the run (``mlflow gc``)."""
    root = tmp_path / "store"
    root.mkdir()
    experiment_id = mlflow_client.create_experiment(unique("file"), artifact_location=root.as_uri())
    run_id, outs, _ = _create(host, experiment_id=experiment_id, artifacts={"k.txt": pulumi.StringAsset("kept")})
    host.delete(run_id, outs)
    assert mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert (root / run_id / "artifacts" / "k.txt").read_text() == "kept"


@pytest.mark.mlflow2
def test_the_servers_default_root_is_a_local_path(host, mlflow_client, experiment_id, tmp_path) -> None:
    """The test server's default root is a plain path (``--default-artifact-root <dir>``): a file: root."""
    run_id, outs, _ = _create(host, experiment_id=experiment_id, artifacts={"x/y.txt": pulumi.StringAsset("yes")})
    assert _download(mlflow_client, run_id, "x/y.txt", tmp_path / "dl") == b"yes"
    assert outs["artifact_files"]["x/y.txt"]["size"] == 3


ASSET_SIG = {"4dabf18193072939515e22adb298388d": "c44067f5952c0a294b673a41bacd8c17"}
ARCHIVE_SIG = {"4dabf18193072939515e22adb298388d": "0def7320c3a5731c473e5ecbe6d01bc7"}


@pytest.mark.mlflow2
def test_diff_reads_the_assets_the_engine_elides(mlflow_server, mlflow_client, proxied_experiment, workdir) -> None:
    """The engine's Diff request carries each asset as its signature alone (no path, text or hash), which
    the SDK's host cannot read; Diff then compares the files Check saw for the same resource."""
    declared = _declared(workdir)
    elided = {k: dict(ARCHIVE_SIG if isinstance(v, pulumi.Archive) else ASSET_SIG) for k, v in declared.items()}
    env = isolated_env(MLFLOW_TRACKING_URI=mlflow_server.url)
    with DynamicHost(env=env, urn_name=unique("elided")) as host:
        host.configure({})
        run_id, outs, inputs = _create(host, experiment_id=proxied_experiment, artifacts=declared)
        as_engine_sends = {**inputs, "artifacts": elided}
        assert host.diff(run_id, outs, as_engine_sends).changes == "none"
        (workdir / "model.bin").write_bytes(b"changed")
        news = _recheck(host, inputs)  # Check sees the assets whole and keeps them for Diff
        assert host.diff(run_id, outs, {**news, "artifacts": elided}).changes == "some"
        outs = host.update(run_id, outs, news)
        assert outs["artifact_files"]["weights/model.bin"]["size"] == len(b"changed")
    with DynamicHost(env=env, urn_name=unique("no-check")) as fresh:
        fresh.configure({})
        # No Check for this resource in this host (a refresh: Read, then Diff): the files are not compared.
        fresh.read(run_id, outs)
        assert fresh.diff(run_id, outs, {**news, "artifacts": elided}).changes == "none"
        assert fresh.diff(run_id, outs, {**news, "artifacts": elided, "run_name": "x"}).changes != "none"


def test_check_and_diff_stay_light() -> None:
    """Check and Diff with artifacts import neither httpx nor pydantic (they run on every preview)."""
    code = textwrap.dedent(
        """
        import sys, pulumi
        from pulumi_mlflow_runs.core.run_spec import check_inputs
        from pulumi_mlflow_runs.core.run_diff import diff_run
        news, failures = check_inputs({"experiment_id": "1", "artifacts": {"a.txt": pulumi.StringAsset("x")}})
        assert failures == [], failures
        assert diff_run({"artifact_files": {}}, news).updates == ("artifacts",)
        heavy = sorted(m for m in ("httpx", "pydantic") if m in sys.modules)
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def _no_hash(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_hash(v) for k, v in value.items() if k != "hash"}
    return value


@pytest.mark.mlflow2
def test_through_the_cli_unchanged_files_are_no_change_and_an_edit_is_an_update(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy, mlflow_client: Any, workdir: Path
) -> None:
    """The real engine: it hashes the assets itself, shows `artifacts` in the preview, and the program sees
    ``artifact_files`` (and its own ``artifacts``) with the same shape at preview and up."""
    from pulumi_mlflow_runs import ExperimentRun

    from support.pulumi_cli import changes, new_stack, run_with_ops, state_resources

    name = unique("cli-artifacts")
    experiment_id = str(mlflow_client.create_experiment(name, artifact_location=f"mlflow-artifacts:/{name}"))

    def program() -> None:
        run = ExperimentRun("art", experiment_id=experiment_id, tags={"team": "a"}, artifacts=_declared(workdir))
        pulumi.export("run_id", run.run_id)
        pulumi.export("files", run.artifact_files)
        pulumi.export("artifact_keys", run.artifacts.apply(lambda a: sorted(a or {})))

    stack = new_stack(pulumi_bin, tmp_path / "stack", program, {"MLFLOW_TRACKING_URI": proxy.url})
    try:
        mark = proxy.mark()
        preview, ops = run_with_ops(stack.preview, diff=True)
        assert ops == {"art": "create"}, preview.stdout
        assert proxy.since(mark) == []
        up = stack.up()
        assert changes(up.summary.resource_changes) == {"create": 2}, up.stdout
        out = {key: value.value for key, value in up.outputs.items()}
        assert set(out["files"]) == EXPECTED
        assert out["artifact_keys"] == sorted(_declared(workdir))
        run_id = out["run_id"]
        for path in EXPECTED:
            assert _download(mlflow_client, run_id, path, tmp_path / "dl" / path) == _content(workdir, path)
        resource = state_resources(stack)["art"]
        assert "artifacts" not in resource["outputs"]
        assert "hello, wörld" in str(resource["inputs"]["artifacts"]), "a StringAsset's text is an input"

        stack.preview(expect_no_changes=True)
        mark = proxy.mark()
        again = stack.up()
        assert changes(again.summary.resource_changes) == {"same": 2}, again.stdout
        assert proxy.writes_since(mark) == []

        # refresh reads the run, lists its files (none changed) and keeps the assets as the inputs
        refresh = stack.refresh()
        assert changes(refresh.summary.resource_changes) == {"same": 2}, refresh.stdout
        kept = state_resources(stack)["art"]["inputs"]["artifacts"]
        assert _no_hash(kept) == _no_hash(resource["inputs"]["artifacts"]), "paths and texts stay (hashes may be added)"
        stack.preview(expect_no_changes=True)

        # a tag edited outside Pulumi: refresh records it, the next preview shows it, up undoes it
        mlflow_client.set_tag(run_id, "team", "drifted")
        stack.refresh()
        assert state_resources(stack)["art"]["outputs"]["tags"] == {"team": "drifted"}
        _, ops = run_with_ops(stack.preview, diff=True)
        assert ops == {"art": "update"}
        mark = proxy.mark()
        stack.up()
        assert mlflow_client.get_run(run_id).data.tags["team"] == "a"
        assert [r for r in proxy.writes_since(mark) if "mlflow-artifacts" in r.path] == [], "no file is sent again"
        stack.preview(expect_no_changes=True)

        (workdir / "model.bin").write_bytes(b"retrained")
        preview, ops = run_with_ops(stack.preview, diff=True)
        assert ops == {"art": "update"}, preview.stdout
        mark = proxy.mark()
        edit = stack.up()
        assert changes(edit.summary.resource_changes) == {"update": 1, "same": 1}, edit.stdout
        sent = [(r.method, r.path.rsplit("/artifacts/", 1)[-1]) for r in proxy.writes_since(mark)]
        assert [s for s in sent if s[0] in ("PUT", "DELETE")] == [("PUT", "weights/model.bin")], sent
        assert _download(mlflow_client, run_id, "weights/model.bin", tmp_path / "dl2") == b"retrained"
        stack.preview(expect_no_changes=True)
    finally:
        stack.destroy()
        stack.workspace.remove_stack("test")


class _ArtifactFaults(RecordingProxy):
    """Fails artifact uploads on purpose: the first PUT of ``a.txt`` gets a 503 without reaching the
    server, the answer to the first PUT of ``b.txt`` is dropped after the server stored it; or every
    artifact request is answered as a server started with ``--no-serve-artifacts`` answers."""

    def __init__(self, upstream: str, *, not_served: bool = False) -> None:
        self.not_served = not_served
        self.attempts: dict[str, int] = {}
        super().__init__(upstream)

    def _attempt(self, endpoint: str) -> tuple[str, int]:
        name = endpoint.rsplit("/", 1)[-1]
        with self._lock:
            self.attempts[name] = self.attempts.get(name, 0) + 1
            return name, self.attempts[name]

    def _intercept(self, endpoint: str, headers: Any) -> tuple[str, int, bytes, dict[str, str]] | None:
        if "mlflow-artifacts/artifacts" not in endpoint:
            return None
        if self.not_served:
            text = b"Endpoint: /api/2.0/mlflow-artifacts/artifacts/<path:artifact_path> disabled due to the mlflow "
            text += b"server running with `--no-serve-artifacts`. To enable artifacts server functionality, run "
            text += b"`mlflow server` with `--serve-artifacts`"
            return "not-served", 503, text, {"Content-Type": "text/plain"}
        name, attempt = self._attempt(endpoint)
        if (name, attempt) == ("a.txt", 1):
            body = json.dumps({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "injected"}).encode()
            return "503", 503, body, {"Content-Type": "application/json"}
        return None

    def _drop_answer(self, endpoint: str) -> bool:
        with self._lock:
            return endpoint.endswith("/b.txt") and self.attempts.get("b.txt") == 1


@pytest.mark.mlflow2
def test_uploads_are_retried_after_a_503_and_a_lost_answer(mlflow_server, mlflow_client, proxied_experiment, tmp_path):
    with _ArtifactFaults(mlflow_server.url) as faults:
        env = isolated_env(MLFLOW_TRACKING_URI=faults.url, PULUMI_MLFLOW_RUNS_RETRY_DEADLINE="20")
        with DynamicHost(env=env) as host:
            host.configure({})
            files = {"a.txt": pulumi.StringAsset("alpha"), "b.txt": pulumi.StringAsset("beta")}
            run_id, outs, _ = _create(host, experiment_id=proxied_experiment, artifacts=files)
        sent = sorted((r.path.rsplit("/", 1)[-1], r.fault or "ok") for r in faults.requests if r.method == "PUT")
    # b.txt's answer was lost after the server stored it: the folder's listing shows it whole, so it is not sent again
    assert sent == [("a.txt", "503"), ("a.txt", "ok"), ("b.txt", "drop-after")], sent
    assert _download(mlflow_client, run_id, "a.txt", tmp_path / "a") == b"alpha"
    assert _download(mlflow_client, run_id, "b.txt", tmp_path / "b") == b"beta"
    assert outs["artifact_files"]["b.txt"]["sha256"] == _sha(b"beta")


@pytest.mark.mlflow2
def test_a_server_that_does_not_serve_artifacts_fails_at_once(mlflow_server, mlflow_client, proxied_experiment):
    with _ArtifactFaults(mlflow_server.url, not_served=True) as faults:
        env = isolated_env(MLFLOW_TRACKING_URI=faults.url, PULUMI_MLFLOW_RUNS_RETRY_DEADLINE="60")
        with DynamicHost(env=env) as host:
            host.configure({})
            with pytest.raises(HostError) as failed:
                _create(host, experiment_id=proxied_experiment, artifacts={"a.txt": pulumi.StringAsset("x")})
        # no waiting for a server that will never serve artifacts: one PUT, not one per retry until the deadline
        assert len([r for r in faults.requests if r.method == "PUT"]) == 1
    message = failed.value.details
    assert "artifacts.a.txt" in message and "--serve-artifacts" in message and "was deleted" in message
    assert mlflow_client.search_runs([proxied_experiment], run_view_type=ViewType.ACTIVE_ONLY) == []


class _Sink(httpx.BaseTransport):
    """Reads each request body piece by piece, as a server would, keeping only its hash and size."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, str | None, str, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        sha, size = hashlib.sha256(), 0
        for chunk in request.stream:  # type: ignore[union-attr]
            sha.update(chunk)
            size += len(chunk)
        self.got.append(
            (request.method, request.url.path, request.headers.get("Content-Length"), sha.hexdigest(), size)
        )
        return httpx.Response(200, json={})


def test_memory_stays_flat_whatever_the_file_size(tmp_path: Path) -> None:
    """A 64 MB file is hashed, written to a file: root and sent to mlflow-artifacts with a few MB at most."""
    from pulumi_mlflow_runs.core.artifacts.files import Source, digest
    from pulumi_mlflow_runs.core.artifacts.stores import LocalStore, MlflowArtifactsStore
    from pulumi_mlflow_runs.core.auth import Connection
    from pulumi_mlflow_runs.core.transport import Transport

    size = 64 << 20
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(size)  # sparse: no disk, reads as zeros
    want = hashlib.sha256(b"\0" * size).hexdigest()
    source = Source(path=str(big))
    sink = _Sink()
    client = httpx.Client(base_url="http://mlflow.test", transport=sink)
    transport = Transport(Connection("http://mlflow.test", "test", databricks=False), client)
    stores = [
        LocalStore((tmp_path / "root").as_uri(), tmp_path / "root"),
        MlflowArtifactsStore(transport, "mlflow-artifacts:/1/r/artifacts", "/1/r/artifacts"),
    ]
    for step in (lambda: digest(source), *(lambda s=s: s.put("m/big.bin", source) for s in stores)):
        tracemalloc.start()
        try:
            result = step()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert result["sha256"] == want and result["size"] == size
        assert peak < 8 << 20, f"{peak / 2**20:.1f} MB held for a {size >> 20} MB file"
    assert (tmp_path / "root" / "m" / "big.bin").stat().st_size == size
    assert sink.got == [("PUT", "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/m/big.bin", str(size), want, size)]


@pytest.mark.parametrize(
    ("uri", "store", "root"),
    [
        ("mlflow-artifacts:/exp/r1/artifacts", "MlflowArtifactsStore", "/exp/r1/artifacts"),
        ("mlflow-artifacts://mlflow.test:5000/exp/r1/artifacts", "MlflowArtifactsStore", "/exp/r1/artifacts"),
        (
            "https://mlflow.test:5000/prefix/api/2.0/mlflow-artifacts/artifacts/exp/r1/artifacts",
            "MlflowArtifactsStore",
            "/exp/r1/artifacts",
        ),
        ("file:///srv/mlruns/1/r1/artifacts", "LocalStore", "/srv/mlruns/1/r1/artifacts"),
        ("file://localhost/srv/mlruns/1/r1/artifacts", "LocalStore", "/srv/mlruns/1/r1/artifacts"),
        ("/srv/mlruns/1/r1/artifacts", "LocalStore", "/srv/mlruns/1/r1/artifacts"),
    ],
)
def test_supported_roots(uri: str, store: str, root: str) -> None:
    from pulumi_mlflow_runs.core.artifacts.sync import store_for
    from pulumi_mlflow_runs.core.auth import Connection
    from pulumi_mlflow_runs.core.client import MlflowApi
    from pulumi_mlflow_runs.core.transport import Transport

    base = "https://mlflow.test:5000/prefix"
    api = MlflowApi(Transport(Connection(base, "test", databricks=False), httpx.Client(base_url=base)))
    found = store_for(api, uri)
    assert type(found).__name__ == store
    assert str(getattr(found, "root", "")).rstrip("/").lstrip("/") == root.strip("/")
    assert found.file_uri("a/b.txt") == f"{uri}/a/b.txt"


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("hdfs://namenode/x/r1/artifacts", "the hdfs: store is not supported yet"),
        ("dbfs:/Volumes/main/default/v/x", "only the runs' own roots under dbfs:/databricks/mlflow-tracking/"),
        ("mlflow-artifacts://elsewhere:5000/x", "its server elsewhere:5000 is not the tracking server"),
        ("https://elsewhere/api/2.0/mlflow-artifacts/artifacts/x", "its server is not the tracking server"),
        ("https://cdn.example/x", "the https: store is not supported yet"),
        ("file://fileserver/share/x", "a file: root on another host (fileserver)"),
        ("relative/path", "it is not an absolute path"),
    ],
)
def test_unsupported_roots_say_why_and_the_way_out(uri: str, says: str) -> None:
    from pulumi_mlflow_runs.core.artifacts.sync import store_for
    from pulumi_mlflow_runs.core.auth import Connection
    from pulumi_mlflow_runs.core.client import MlflowApi
    from pulumi_mlflow_runs.core.errors import InputError
    from pulumi_mlflow_runs.core.transport import Transport

    base = "https://mlflow.test:5000"
    api = MlflowApi(Transport(Connection(base, "test", databricks=False), httpx.Client(base_url=base)))
    with pytest.raises(InputError) as refused:
        store_for(api, uri)
    assert refused.value.prop == "artifacts"
    assert says in refused.value.reason and uri in refused.value.reason
    assert "mlflow-artifacts:" in refused.value.reason and "file:" in refused.value.reason


@pytest.mark.mlflow2
def test_the_same_bytes_elsewhere_on_disk_are_no_change(host, experiment_id, tmp_path) -> None:
    (tmp_path / "one.txt").write_text("same")
    (tmp_path / "two.txt").write_text("same")
    run_id, outs, inputs = _create(
        host, experiment_id=experiment_id, artifacts={"f.txt": pulumi.FileAsset(str(tmp_path / "one.txt"))}
    )
    moved = _recheck(host, {**without_provider(inputs), "artifacts": {"f.txt": pulumi.StringAsset("same")}})
    assert host.diff(run_id, outs, moved).changes == "none"
    moved = _recheck(
        host, {**without_provider(inputs), "artifacts": {"f.txt": pulumi.FileAsset(str(tmp_path / "two.txt"))}}
    )
    assert host.diff(run_id, outs, moved).changes == "none"


class _SlowArtifacts(RecordingProxy):
    """Counts how many artifact PUTs are under way at once; refuses ``bad.txt``.

    The first ``paired`` PUTs are each held until another is under way too (or all of them have started),
    so uploads that overlap are seen overlapping however slow the machine, and uploads made one at a time
    leave the first held until the guard's minute runs out, alone. Later PUTs are held a fixed while, so
    that a failure is answered before the rest could all start.
    """

    def __init__(self, upstream: str, paired: int) -> None:
        self.now = self.most = self.started = 0
        self.paired = paired
        self._together = threading.Condition()
        super().__init__(upstream)

    def _intercept(self, endpoint: str, headers: Any) -> tuple[str, int, bytes, dict[str, str]] | None:
        if "mlflow-artifacts/artifacts" not in endpoint:
            return None
        if endpoint.endswith("/bad.txt"):
            body = json.dumps({"error_code": "INVALID_PARAMETER_VALUE", "message": "refused"}).encode()
            return "400", 400, body, {"Content-Type": "application/json"}
        with self._together:
            self.now += 1
            self.started += 1
            self.most = max(self.most, self.now)
            self._together.notify_all()
            held = self.started <= self.paired
            if held:
                self._together.wait_for(lambda: self.now >= 2 or self.started >= self.paired, timeout=60)
        if not held:
            time.sleep(0.3)
        with self._together:
            self.now -= 1
        return None


@pytest.mark.mlflow2
def test_uploads_go_a_few_at_a_time_and_stop_at_the_first_failure(mlflow_server, mlflow_client, proxied_experiment):
    files = {f"f{i:02d}.txt": pulumi.StringAsset(f"file {i}") for i in range(10)}
    with _SlowArtifacts(mlflow_server.url, paired=len(files)) as slow:
        with DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=slow.url)) as host:
            host.configure({})
            run_id, outs, _ = _create(host, experiment_id=proxied_experiment, artifacts=files)
            assert set(outs["artifact_files"]) == set(files)
            assert 2 <= slow.most <= 4, slow.most
            mark = slow.mark()
            with pytest.raises(HostError) as failed:
                _create(host, experiment_id=proxied_experiment, artifacts={"bad.txt": pulumi.StringAsset("x"), **files})
        puts = [r for r in slow.since(mark) if r.method == "PUT"]
    assert _listing(mlflow_client, run_id) == set(files)
    assert "refused" in failed.value.details and "was deleted" in failed.value.details
    assert len(puts) < 1 + len(files), "no new upload starts after the first failure"
    assert [r.info.run_id for r in mlflow_client.search_runs([proxied_experiment])] == [run_id]


# ---- refresh looks at the stored files; an upload of uncertain outcome is verified --------------------------


def _root(outs: dict[str, Any]) -> str:
    """The run's folder on the server's proxied store: ``mlflow-artifacts:/<x>`` → ``<x>``."""
    return str(outs["artifact_uri"]).removeprefix("mlflow-artifacts:").lstrip("/")


def _elided(declared: dict[str, Any]) -> dict[str, Any]:
    """The assets as the engine sends them to Diff: signatures alone."""
    return {k: dict(ARCHIVE_SIG if isinstance(v, pulumi.Archive) else ASSET_SIG) for k, v in declared.items()}


def _listings(proxy: Any, mark: int) -> list[str]:
    return [r.path for r in proxy.since(mark) if r.method == "GET" and r.path.endswith("/mlflow-artifacts/artifacts")]


@pytest.mark.mlflow2
def test_refresh_marks_files_changed_out_of_band_and_up_sends_only_those(
    mlflow_server, proxy, mlflow_client, proxied_experiment, tmp_path
) -> None:
    declared = {
        "keep.txt": pulumi.StringAsset("kept"),
        "gone.txt": pulumi.StringAsset("deleted by someone"),
        "dir/swap.txt": pulumi.StringAsset("short"),
        "dir/same.txt": pulumi.StringAsset("same"),
    }
    env = isolated_env(MLFLOW_TRACKING_URI=proxy.url)
    with DynamicHost(env=env, urn_name=unique("made")) as made:
        made.configure({})
        run_id, outs, inputs = _create(made, experiment_id=proxied_experiment, artifacts=declared)
    api = f"{mlflow_server.url}/api/2.0/mlflow-artifacts/artifacts/{_root(outs)}"

    with DynamicHost(env=env, urn_name=unique("refresh")) as host:  # no Check here: as in `pulumi refresh`
        host.configure({})
        mark = proxy.mark()
        unchanged = host.read(run_id, outs).outs
        assert unchanged["artifact_files"] == outs["artifact_files"]
        assert sorted(_listings(proxy, mark)) == ["/api/2.0/mlflow-artifacts/artifacts"] * 2, "one per folder"
        assert host.diff(run_id, unchanged, {**inputs, "artifacts": _elided(declared)}).changes == "none"

        # Out of band: one file deleted, one replaced by content of another size, one added by a colleague.
        httpx.delete(f"{api}/gone.txt").raise_for_status()
        httpx.put(f"{api}/dir/swap.txt", content=b"replaced with longer text").raise_for_status()
        httpx.put(f"{api}/dir/colleague.txt", content=b"not ours").raise_for_status()

        mark = proxy.mark()
        refreshed = host.read(run_id, outs).outs
        assert len(_listings(proxy, mark)) == 2 and proxy.writes_since(mark) == []
        files = refreshed["artifact_files"]
        stored = outs["artifact_files"]
        # Marked: no sha256 (None, which the SDK leaves out of the map), the size found (none: gone), the uri.
        assert files["gone.txt"] == {"uri": stored["gone.txt"]["uri"]}
        assert files["dir/swap.txt"] == {
            "size": len(b"replaced with longer text"),
            "uri": stored["dir/swap.txt"]["uri"],
        }
        for untouched in ("keep.txt", "dir/same.txt"):
            assert files[untouched] == stored[untouched]
        assert set(files) == set(stored), "a file nobody declared is not reported"
        # The refresh's own Diff (refreshed outputs, stored inputs, assets elided, no Check) shows the drift.
        drift = host.diff(run_id, refreshed, {**inputs, "artifacts": _elided(declared)})
        assert drift.changes == "some" and drift.replaces == []

        # The next up: Check, Diff, Update send exactly the two files again.
        news = _recheck(host, inputs)
        assert host.diff(run_id, refreshed, news).changes == "some"
        mark = proxy.mark()
        after = host.update(run_id, refreshed, news)
        assert sorted(_artifact_writes(proxy, mark)) == [
            ("PUT", f"{_root(outs)}/dir/swap.txt"),
            ("PUT", f"{_root(outs)}/gone.txt"),
        ]
        assert after["artifact_files"] == stored
        assert host.diff(run_id, after, _recheck(host, news)).changes == "none"
        assert host.read(run_id, after).outs["artifact_files"] == stored
    assert _download(mlflow_client, run_id, "gone.txt", tmp_path / "g") == b"deleted by someone"
    assert _download(mlflow_client, run_id, "dir/swap.txt", tmp_path / "s") == b"short"
    assert _download(mlflow_client, run_id, "dir/colleague.txt", tmp_path / "c") == b"not ours", "left alone"


@pytest.mark.mlflow2
def test_refresh_of_a_file_root_sees_a_same_size_edit_of_a_small_file(host, mlflow_client, tmp_path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    experiment_id = mlflow_client.create_experiment(unique("file"), artifact_location=root.as_uri())
    declared = {"a.txt": pulumi.StringAsset("alpha"), "sub/b.txt": pulumi.StringAsset("beta")}
    run_id, outs, inputs = _create(host, experiment_id=experiment_id, artifacts=declared)
    run_root = root / run_id / "artifacts"
    (run_root / "a.txt").write_text("ALPHA")  # same size, other bytes: a small file is hashed
    (run_root / "sub" / "b.txt").unlink()
    (run_root / "sub" / "theirs.txt").write_text("theirs")
    with DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=mlflow_client.tracking_uri), urn_name=unique("r")) as fresh:
        fresh.configure({})  # a refresh: Read, then Diff with no Check before it
        refreshed = fresh.read(run_id, outs).outs
        assert fresh.diff(run_id, refreshed, {**inputs, "artifacts": _elided(declared)}).changes == "some"
    files = refreshed["artifact_files"]
    assert files["a.txt"] == {"size": 5, "uri": outs["artifact_files"]["a.txt"]["uri"]}
    assert files["sub/b.txt"] == {"uri": outs["artifact_files"]["sub/b.txt"]["uri"]}
    assert set(files) == set(declared)
    news = _recheck(host, inputs)
    after = host.update(run_id, refreshed, news)
    assert after["artifact_files"] == outs["artifact_files"]
    assert (run_root / "a.txt").read_text() == "alpha" and (run_root / "sub" / "b.txt").read_text() == "beta"
    assert (run_root / "sub" / "theirs.txt").read_text() == "theirs"


@pytest.mark.mlflow2
def test_refresh_leaves_the_files_as_stored_where_the_store_cannot_list(
    host, mlflow_server, proxied_experiment
) -> None:
    run_id, outs, _ = _create(host, experiment_id=proxied_experiment, artifacts={"a.txt": pulumi.StringAsset("a")})
    faults = _ArtifactFaults(mlflow_server.url, not_served=True)
    with faults, DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=faults.url)) as other:
        other.configure({})
        assert other.read(run_id, outs).outs["artifact_files"] == outs["artifact_files"]
    # no waiting for a server that does not serve artifacts: its one folder listed once, not retried
    listed = [r for r in faults.requests if "mlflow-artifacts/artifacts" in r.path]
    assert len(listed) == 1, [(r.method, r.path, r.status) for r in listed]


@pytest.mark.slow
@pytest.mark.mlflow2
@pytest.mark.parametrize(
    ("fault", "puts"),
    [("drop-after", 1), ("500-after", 1), ("drop-before", 2), ("503", 2), ("same-size-drop-after", 2)],
)
def test_an_upload_of_uncertain_outcome_is_verified_not_sent_twice(
    mlflow_server, mlflow_client, proxied_experiment, tmp_path, fault: str, puts: int
) -> None:
    """The answer to a PUT lost after the server stored the file (or a 500 after it did): the folder's
    listing shows the file whole, so it is not sent again. Not stored (dropped before, 503): sent again.
    Replacing a file of the same size, the listing cannot tell: sent again."""
    from support.fault_proxy import FaultProxy

    with FaultProxy(mlflow_server.url) as proxy:
        env = isolated_env(MLFLOW_TRACKING_URI=proxy.url, PULUMI_MLFLOW_RUNS_RETRY_DEADLINE="20")
        with DynamicHost(env=env) as host:
            host.configure({})
            run_id, outs, inputs = _create(
                host, experiment_id=proxied_experiment, artifacts={"b.txt": pulumi.StringAsset("old")}
            )
            text = "new" if fault.startswith("same-size") else "new and longer"
            news = _recheck(host, {**without_provider(inputs), "artifacts": {"b.txt": pulumi.StringAsset(text)}})
            endpoint = f"/api/2.0/mlflow-artifacts/artifacts/{_root(outs)}/b.txt"
            with proxy.faults((endpoint, fault.removeprefix("same-size-"))):  # type: ignore[arg-type]
                after = host.update(run_id, outs, news)
                sent = [r.fault or "ok" for r in proxy.requests if r.method == "PUT"]
                listed = [r for r in proxy.requests if r.method == "GET" and "mlflow-artifacts" in r.path]
    assert len(sent) == puts, sent
    assert sent[0] != "ok"
    assert len(listed) == (0 if fault.startswith("same-size") else 1), "verified by one listing of its folder"
    assert _download(mlflow_client, run_id, "b.txt", tmp_path / "b") == text.encode()
    assert after["artifact_files"]["b.txt"]["sha256"] == _sha(text.encode())
    assert after["artifact_files"]["b.txt"]["size"] == len(text)
