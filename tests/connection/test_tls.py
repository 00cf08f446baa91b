"""TLS as MLflow users set it, against real loopback HTTPS servers with certificates from a test CA.

A TLS-terminating proxy (``support.tls_proxy``) sits in front of the test MLflow server: once with a
server certificate from a private CA, once demanding a client certificate (mutual TLS). The proxy counts
TCP connections and requests, so "one attempt" is measured where it happens, not inferred.

Permanent failures (a certificate that does not verify, a refused handshake, a rejected or missing client
certificate, an unknown host name) fail on the first attempt; transient ones (refused or reset
connections, 5xx) keep the retry policy. The retry schedule runs on a fake clock.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pulumi_mlflow_runs import (
    ConfigurationError,
    ExperimentRunProvider,
    RetryPolicy,
    StackConfig,
    TransportError,
    resolve_connection,
)
from pulumi_mlflow_runs.core.errors import ConnectionSetupError
from pulumi_mlflow_runs.core.transport import TransportPool

from support.fake_clock import FakeClock
from support.host import DynamicHost, HostError, isolated_env, with_provider
from support.tls_proxy import Pki, ScriptedServer, TlsProxy

SEARCH = "/api/2.0/mlflow/experiments/search"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A second CA: its certificates are trusted by no server here."""
    return Pki.make(tmp_path_factory.mktemp("other-pki"))


@pytest.fixture(scope="module")
def private_ca_server(pki: Pki, mlflow_server) -> Iterator[TlsProxy]:
    with TlsProxy(mlflow_server.port, pki.server_context()) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def mtls_server(pki: Pki, mlflow_server) -> Iterator[TlsProxy]:
    with TlsProxy(mlflow_server.port, pki.server_context(require_client_cert=True)) as proxy:
        yield proxy


def _eventually(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _call(url: str, env: dict[str, str], *, stack: StackConfig | None = None, deadline: float = 60.0) -> Any:
    """One idempotent GET through the provider's own transport, on a fake clock; returns (result, clock)."""
    clock = FakeClock()
    conn = resolve_connection(host=None, deployment_name=None, stack=stack or StackConfig(),
                              env={"MLFLOW_TRACKING_URI": url, **env})
    pool = TransportPool(policy=RetryPolicy(deadline=deadline), clock=clock)
    try:
        return pool.get(conn).call("GET", SEARCH, params={"max_results": 1}, idempotent=True), clock
    finally:
        pool.close()


def _setup_error(url: str, env: dict[str, str]) -> tuple[ConnectionSetupError, FakeClock]:
    clock = FakeClock()
    conn = resolve_connection(host=None, deployment_name=None, stack=StackConfig(),
                              env={"MLFLOW_TRACKING_URI": url, **env})
    pool = TransportPool(policy=RetryPolicy(deadline=60), clock=clock)
    try:
        with pytest.raises(ConnectionSetupError) as info:
            pool.get(conn).call("GET", SEARCH, params={"max_results": 1}, idempotent=True)
    finally:
        pool.close()
    return info.value, clock


# ---- a server behind a private CA --------------------------------------------------------------------------


def test_private_ca_from_env(private_ca_server: TlsProxy, pki: Pki) -> None:
    result, clock = _call(private_ca_server.url, {"MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki.ca_path)})
    assert "experiments" in result and clock.sleeps == []


def test_private_ca_folder_from_stack_config(private_ca_server: TlsProxy, pki: Pki, tmp_path: Path) -> None:
    """A folder of hashed CA files works too (``requests``'s ``verify=`` takes both); stack config wins over env."""
    hashed = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(pki.ca_path)],
                            capture_output=True, text=True, check=False).stdout.strip()
    if not hashed:
        pytest.skip("no openssl command to hash the CA file")
    folder = tmp_path / "cas"
    folder.mkdir()
    (folder / f"{hashed}.0").write_text(pki.ca_path.read_text())  # OpenSSL looks CAs up as <subject hash>.0
    result, _ = _call(private_ca_server.url, {"MLFLOW_TRACKING_SERVER_CERT_PATH": "/nonexistent/ca.pem"},
                      stack=StackConfig(server_cert_path=str(folder)))
    assert "experiments" in result


def test_private_ca_through_the_host_with_stack_config(private_ca_server: TlsProxy, pki: Pki, mlflow_client,
                                                       experiment_id: str) -> None:
    """Configure as the engine sends it: mlflow:trackingUri and mlflow:serverCertPath, nothing in env."""
    with DynamicHost(env=isolated_env()) as host:
        host.configure({"mlflow:trackingUri": private_ca_server.url, "mlflow:serverCertPath": str(pki.ca_path)})
        props = with_provider({"experiment_id": experiment_id, "run_name": "over-tls"}, ExperimentRunProvider())
        checked = host.check({}, props)
        run_id, _ = host.create(checked.inputs)
    assert mlflow_client.get_run(run_id).info.run_name == "over-tls"


def test_certificate_that_does_not_verify_fails_at_once(private_ca_server: TlsProxy) -> None:
    private_ca_server.reset_counts()
    err, clock = _setup_error(private_ca_server.url, {})
    assert err.kind == "certificate"
    assert private_ca_server.connections == 1 and clock.sleeps == []
    msg = str(err)
    assert "does not verify" in msg and "MLFLOW_TRACKING_SERVER_CERT_PATH" in msg and "mlflow:serverCertPath" in msg


def test_certificate_that_does_not_verify_through_the_host(private_ca_server: TlsProxy, experiment_id: str) -> None:
    """What the user reads under `pulumi up`: one message, a fix line, and only one connection was made."""
    private_ca_server.reset_counts()
    with DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=private_ca_server.url)) as host:
        host.configure({})
        props = with_provider({"experiment_id": experiment_id}, ExperimentRunProvider())
        with pytest.raises(HostError) as info:
            host.create(host.check({}, props).inputs)
    details = info.value.details
    assert "does not verify" in details and "MLFLOW_TRACKING_SERVER_CERT_PATH" in details
    assert "\nfix: " in details and "Traceback" not in details
    assert private_ca_server.connections == 1


def test_hostname_mismatch_says_to_use_the_certificates_name(pki: Pki, mlflow_server) -> None:
    with TlsProxy(mlflow_server.port, pki.server_context("tracking.example.test")) as proxy:
        err, clock = _setup_error(proxy.url, {"MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki.ca_path)})
        assert proxy.connections == 1
    assert err.kind == "certificate" and clock.sleeps == []
    assert "name the certificate is issued for" in str(err)


def test_plain_http_port_refuses_the_tls_handshake(mlflow_server) -> None:
    with TlsProxy(mlflow_server.port, None) as plain:  # counts connections, speaks no TLS
        err, clock = _setup_error(plain.url.replace("http://", "https://"), {})
        assert plain.connections == 1
    assert err.kind == "handshake" and clock.sleeps == []
    assert "does not speak TLS" in str(err) and "http://" in str(err)


# ---- mutual TLS ---------------------------------------------------------------------------------------------


def test_mtls_with_a_client_certificate_from_env(mtls_server: TlsProxy, pki: Pki) -> None:
    env = {"MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki.ca_path),
           "MLFLOW_TRACKING_CLIENT_CERT_PATH": str(pki.client_pem())}
    result, _ = _call(mtls_server.url, env)
    assert "experiments" in result


def test_mtls_through_the_host_with_stack_config(mtls_server: TlsProxy, pki: Pki, mlflow_client,
                                                 experiment_id: str) -> None:
    with DynamicHost(env=isolated_env()) as host:
        host.configure({"mlflow:trackingUri": mtls_server.url, "mlflow:serverCertPath": str(pki.ca_path),
                        "mlflow:clientCertPath": str(pki.client_pem("stack@example.test"))})
        props = with_provider({"experiment_id": experiment_id, "run_name": "mtls"}, ExperimentRunProvider())
        run_id, _ = host.create(host.check({}, props).inputs)
    assert mlflow_client.get_run(run_id).info.run_name == "mtls"


def test_mtls_without_a_client_certificate_fails_at_once(mtls_server: TlsProxy, pki: Pki) -> None:
    mtls_server.reset_counts()
    err, clock = _setup_error(mtls_server.url, {"MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki.ca_path)})
    assert err.kind == "client-certificate" and clock.sleeps == []
    assert mtls_server.connections == 1
    _eventually(lambda: mtls_server.handshake_failures == 1)  # the proxy counts after its alert went out
    msg = str(err)
    assert "requires a client certificate" in msg and "MLFLOW_TRACKING_CLIENT_CERT_PATH" in msg


def test_mtls_rejects_a_certificate_from_another_ca_at_once(mtls_server: TlsProxy, pki: Pki,
                                                            other_pki: Pki) -> None:
    mtls_server.reset_counts()
    stranger = other_pki.client_pem("stranger@example.test")
    err, clock = _setup_error(mtls_server.url, {"MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki.ca_path),
                                                "MLFLOW_TRACKING_CLIENT_CERT_PATH": str(stranger)})
    assert err.kind == "client-certificate" and clock.sleeps == []
    assert mtls_server.connections == 1
    assert "rejected the client certificate" in str(err) and str(stranger) in str(err)


# ---- settings that cannot work are refused before anything is sent ------------------------------------------


def test_insecure_tls_is_refused_with_the_reason(private_ca_server: TlsProxy) -> None:
    with pytest.raises(ConfigurationError, match="never turns TLS certificate checks off") as info:
        resolve_connection(host=None, deployment_name=None, stack=StackConfig(),
                           env={"MLFLOW_TRACKING_URI": private_ca_server.url, "MLFLOW_TRACKING_INSECURE_TLS": "true"})
    assert "MLFLOW_TRACKING_SERVER_CERT_PATH" in str(info.value)


def test_insecure_tls_is_ignored_for_plain_http_on_loopback() -> None:
    conn = resolve_connection(host=None, deployment_name=None, stack=StackConfig(),
                              env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "MLFLOW_TRACKING_INSECURE_TLS": "1"})
    assert conn.tls is None


def test_missing_or_unusable_files_name_the_setting(tmp_path: Path, pki: Pki) -> None:
    url = "https://127.0.0.1:1"
    with pytest.raises(ConfigurationError, match="env MLFLOW_TRACKING_SERVER_CERT_PATH: there is no file"):
        resolve_connection(host=None, deployment_name=None, stack=StackConfig(), env={
            "MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_SERVER_CERT_PATH": str(tmp_path / "nope.pem")})
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigurationError, match="stack config 'mlflow:serverCertPath': cannot read a CA bundle"):
        resolve_connection(host=url, deployment_name=None, stack=StackConfig(server_cert_path=str(junk)), env={})
    cert_only = tmp_path / "cert-only.pem"
    pki.ca.issue_cert("c@example.test").cert_chain_pems[0].write_to_path(str(cert_only))
    with pytest.raises(ConfigurationError, match="one PEM file holding the certificate and its unencrypted private"):
        resolve_connection(host=url, deployment_name=None, stack=StackConfig(), env={
            "MLFLOW_TRACKING_CLIENT_CERT_PATH": str(cert_only)})
    # an encrypted key is refused, never prompted for (the provider host has no terminal)
    from cryptography.hazmat.primitives import serialization

    issued = pki.ca.issue_cert("enc@example.test")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"pw"))
                          + issued.cert_chain_pems[0].bytes())
    with pytest.raises(ConfigurationError, match="the private key is encrypted"):
        resolve_connection(host=url, deployment_name=None, stack=StackConfig(client_cert_path=str(encrypted)), env={})


# ---- unknown host names ----------------------------------------------------------------------------------


def _resolver(monkeypatch: pytest.MonkeyPatch, errno: int) -> list[str]:
    """Loopback only: the resolver is stubbed for one made-up name; every other name resolves as usual."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "tracking.no-such-host.invalid":
            asked.append(host)
            raise socket.gaierror(errno, "Name or service not known" if errno == socket.EAI_NONAME
                                  else "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_unknown_host_name_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _resolver(monkeypatch, socket.EAI_NONAME)
    err, clock = _setup_error("https://tracking.no-such-host.invalid", {})
    assert err.kind == "hostname" and len(asked) == 1 and clock.sleeps == []
    assert "'tracking.no-such-host.invalid'" in str(err) and "env MLFLOW_TRACKING_URI" in str(err)


def test_a_resolver_that_does_not_answer_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _resolver(monkeypatch, socket.EAI_AGAIN)
    with pytest.raises(TransportError):
        _call("https://tracking.no-such-host.invalid", {}, deadline=10)
    assert len(asked) > 2


# ---- transient failures keep the retry policy ----------------------------------------------------------------


def test_connection_refused_is_retried_until_the_deadline() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(TransportError) as info:
            _call(f"http://127.0.0.1:{port}", {}, deadline=30)
    notes = " ".join(getattr(info.value, "__notes__", []))
    attempts = int(notes.split("gave up after ")[1].split(" ")[0])
    assert attempts >= 4 and not isinstance(info.value, ConnectionSetupError)


def test_reset_after_the_handshake_is_retried(pki: Pki) -> None:
    """The server accepts TLS, then drops the connection without answering: a transient failure."""
    with TlsProxy(None, pki.server_context()) as dropper, pytest.raises(TransportError):
        _call(dropper.url, {"MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki.ca_path)}, deadline=10)
    assert dropper.connections > 2 and dropper.handshake_failures == 0


def test_5xx_over_tls_is_retried_then_succeeds(pki: Pki) -> None:
    with ScriptedServer([503, 502]) as upstream, TlsProxy(upstream.port, pki.server_context()) as proxy:
        result, clock = _call(proxy.url, {"MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki.ca_path)})
        assert result == {} and upstream.requests == 3 and proxy.requests == 3
    assert len(clock.sleeps) == 2


def test_each_tls_setting_gets_its_own_pool(private_ca_server: TlsProxy, pki: Pki) -> None:
    """Two TLS settings for one URL get two pools: a client certificate is never reused by accident."""
    a = resolve_connection(host=private_ca_server.url, deployment_name=None, stack=StackConfig(),
                           env={"MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki.ca_path)})
    b = resolve_connection(host=private_ca_server.url, deployment_name=None, stack=StackConfig(), env={
        "MLFLOW_TRACKING_SERVER_CERT_PATH": str(pki.ca_path),
        "MLFLOW_TRACKING_CLIENT_CERT_PATH": str(pki.client_pem(f"{uuid.uuid4().hex[:8]}@example.test"))})
    pool = TransportPool()
    try:
        assert pool.get(a)._client is not pool.get(b)._client
        assert pool.get(a)._client is pool.get(a)._client
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("reason", "permanent"),
    [
        ("[SSL: UNEXPECTED_MESSAGE] unexpected message", False),
        ("[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] decryption failed", False),
        ("[SSL: NO_SHARED_CIPHER] no shared cipher", True),
        ("[SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version", True),
        ("[SSL: WRONG_VERSION_NUMBER] wrong version number", True),
    ],
)
def test_only_tls_errors_no_retry_can_mend_are_permanent(reason: str, permanent: bool) -> None:
    """A record cut or garbled in transit is retried like a reset; no common version or cipher is not."""
    from pulumi_mlflow_runs.core.auth import Connection
    from pulumi_mlflow_runs.core.transport import _permanent

    failure = httpx.ConnectError("handshake")
    cause = ssl.SSLError(1, reason)
    cause.reason = reason.split("]", maxsplit=1)[0].removeprefix("[SSL: ")  # as OpenSSL's errors carry it
    failure.__cause__ = cause
    found = _permanent(failure, Connection("https://127.0.0.1:1", "test", False), "GET /x")
    assert (found is not None) is permanent
