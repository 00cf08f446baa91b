"""Object-store emulators on free loopback ports, started and stopped by the tests: real servers of each
cloud's API, never Python mocks.

- S3: moto's standalone server (``moto_server``, from the ``moto[server]`` test extra). It checks no
  signature, so any key pair works; ``S3Server.env`` is what MLflow's client and the provider read
  (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``MLFLOW_S3_ENDPOINT_URL``).

Use ``start_s3(workdir)`` as a context manager, then ``server.create_bucket(name)``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from support.mlflow_server import MlflowServer, _free_port, start_mlflow_server, stop_group

_STARTUP_TIMEOUT = 60.0
S3_REGION = "us-east-1"
S3_KEY_ID = "testing-key-id"
S3_SECRET = "testing-secret-key"  # moto takes any: tests look for this text where no secret may be


@dataclass
class Emulator:
    """A running emulator process in a group of its own, logging to ``log_path``."""

    port: int
    log_path: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)
    """What a client of this emulator sets: credentials, region, endpoint."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def stop(self) -> None:
        stop_group(self.process)


def spawn(cmd: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=log_path.parent, start_new_session=True,
        )  # fmt: skip


def wait_until_up(emulator: Emulator, probe: str, timeout: float = _STARTUP_TIMEOUT) -> None:
    """Poll ``probe`` (a path on the emulator) until any HTTP answer; raise with the log if it dies or
    does not answer in time."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if emulator.process.poll() is not None:
                raise RuntimeError(f"{emulator.process.args!r} exited; log tail:\n{emulator.log_tail()}")
            try:
                client.get(f"{emulator.url}{probe}")
                return
            except httpx.HTTPError:
                time.sleep(0.1)
    emulator.stop()
    raise RuntimeError(f"{emulator.process.args!r} did not answer in {timeout:.0f}s; log tail:\n{emulator.log_tail()}")


@dataclass
class S3Server(Emulator):
    def create_bucket(self, name: str) -> str:
        """Create ``name`` (if missing); return it."""
        client = self.boto3_client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under ``prefix`` in ``bucket``, read back through the S3 API (boto3, as moto ships it)."""
        client = self.boto3_client()
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return found

    def boto3_client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.url, region_name=S3_REGION,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )  # fmt: skip

    def _add_user(self) -> tuple[str, str]:
        """An IAM user allowed ``s3:*``, and its key pair: the three requests moto serves before it checks."""
        import boto3

        iam = boto3.client("iam", endpoint_url=self.url, region_name=S3_REGION, aws_access_key_id="setup",
                           aws_secret_access_key="setup")  # fmt: skip
        iam.create_user(UserName="artifacts")
        pair = iam.create_access_key(UserName="artifacts")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="artifacts", PolicyName="s3", PolicyDocument=json.dumps(policy))
        return pair["AccessKeyId"], pair["SecretAccessKey"]


def _moto_server() -> list[str]:
    found = shutil.which("moto_server", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if found is None:
        raise RuntimeError("moto_server is not installed: pip install -e '.[test]' (moto[server] is a test extra)")
    return [found]


@contextlib.contextmanager
def start_s3(workdir: Path, *, checks_credentials: bool = False) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port; stopped on exit. Retries a lost free-port race.

    ``checks_credentials``: moto checks each request's signature and key (its IAM, one user allowed
    ``s3:*``, whose pair ``env`` holds), as S3 does; by default it takes any."""
    for attempt in range(1, 4):
        port = _free_port()
        log = workdir / f"moto-{attempt}.log"
        cmd = [*_moto_server(), "-H", "127.0.0.1", "-p", str(port)]
        checks = {"INITIAL_NO_AUTH_ACTION_COUNT": "3"} if checks_credentials else {}
        server = S3Server(port=port, log_path=log, process=spawn(cmd, log, checks))
        try:
            wait_until_up(server, "/moto-api/")
        except RuntimeError:
            server.stop()
            if "address already in use" in server.log_tail().lower() and attempt < 3:
                continue
            raise
        key_id, secret = server._add_user() if checks_credentials else (S3_KEY_ID, S3_SECRET)
        server.env = {
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": S3_REGION,
            "MLFLOW_S3_ENDPOINT_URL": server.url,
        }
        try:
            yield server
        finally:
            server.stop()
        return


@contextlib.contextmanager
def direct_root_server(workdir: Path, root: str, env: Mapping[str, str] | None = None) -> Iterator[MlflowServer]:
    """An MLflow server whose runs get roots under ``root`` (``s3://...``) and that serves no artifacts
    (``--no-serve-artifacts``): clients write the store themselves, MLflow's "direct artifact access"."""
    server = start_mlflow_server(workdir, artifact_root=root, extra_args=["--no-serve-artifacts"], extra_env=env)
    try:
        yield server
    finally:
        server.stop()


# ---- Azure Blob: Azurite -----------------------------------------------------------------------------

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known development account and key (its documentation publishes them)."""
TOOLS = Path(__file__).resolve().parents[2] / ".pulumi-local" / "emulators"
"""Where scripts/emulators.sh installs Azurite (npm)."""


def emulator(name: str) -> Path:
    """The installed emulator ``name`` (``azurite-blob``): scripts/emulators.sh installs
    what is missing (once per machine; CI starts it early, in the background)."""
    path = TOOLS / "bin" / name
    if not path.exists():
        script = Path(__file__).resolve().parents[2] / "scripts" / "emulators.sh"
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
        if done.returncode != 0 or not path.exists():
            raise RuntimeError(f"scripts/emulators.sh did not install {name}:\n{done.stderr[-3000:]}")
    return path


@dataclass
class AzuriteServer(Emulator):
    def stop(self) -> None:
        """Killed outright: its data is in memory, and its graceful close (SIGTERM) waits out the grace."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    @property
    def endpoint(self) -> str:
        return f"{self.url}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.endpoint};"
        )

    def service(self):  # type: ignore[no-untyped-def]
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def create_container(self, name: str) -> str:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self.service().create_container(name)
        return name

    def blobs(self, container: str, prefix: str = "") -> dict[str, bytes]:
        """Every blob under ``prefix``, read back with Azure's own SDK (what MLflow's client uses)."""
        client = self.service().get_container_client(container)
        return {b.name: client.download_blob(b.name).readall() for b in client.list_blobs(name_starts_with=prefix)}


@contextlib.contextmanager
def start_azurite(workdir: Path) -> Iterator[AzuriteServer]:
    """Azurite's Blob service on a free loopback port, its data in memory, its log in ``workdir``; stopped on exit."""
    binary = emulator("azurite-blob")
    for attempt in range(1, 4):
        port = _free_port()
        log = workdir / f"azurite-{attempt}.log"
        cmd = [
            str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port),
            "--skipApiVersionCheck", "--loose", "--inMemoryPersistence",
        ]  # fmt: skip
        server = AzuriteServer(port=port, log_path=log, process=spawn(cmd, log))
        try:
            wait_until_up(server, f"/{AZURITE_ACCOUNT}?comp=list")
        except RuntimeError:
            server.stop()
            if "EADDRINUSE" in server.log_tail() and attempt < 3:
                continue
            raise
        server.env = {"AZURE_STORAGE_CONNECTION_STRING": server.connection_string}
        try:
            yield server
        finally:
            server.stop()
        return
