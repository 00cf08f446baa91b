"""TLS the way MLflow users set it: a CA bundle for a private CA, a client certificate for mutual TLS.

- ``MLFLOW_TRACKING_SERVER_CERT_PATH`` (stack config ``mlflow:serverCertPath``): the CA bundle (PEM file, or
  a folder of hashed CA files) that signs the server's certificate. As in MLflow (``requests``'s
  ``verify=``), it replaces the default trust store for that server.
- ``MLFLOW_TRACKING_CLIENT_CERT_PATH`` (stack config ``mlflow:clientCertPath``): the client certificate,
  in the one form MLflow accepts (``requests``'s ``cert=`` given one path): a PEM file holding the
  certificate (and any intermediate CAs) and its unencrypted private key.
- ``MLFLOW_TRACKING_INSECURE_TLS`` is refused for an https server: this provider never turns certificate
  checks off (see ``insecure_tls_refused``).

Stack config wins over env, key by key. Files are read when the connection is resolved, so a missing
or unreadable file is one ``ConfigurationError`` naming the setting before any request is sent.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pulumi_mlflow_runs.core.errors import ConfigurationError
from pulumi_mlflow_runs.core.settings import ConfigKeys, StackConfig

SERVER_CERT_ENV = "MLFLOW_TRACKING_SERVER_CERT_PATH"
CLIENT_CERT_ENV = "MLFLOW_TRACKING_CLIENT_CERT_PATH"
INSECURE_TLS_ENV = "MLFLOW_TRACKING_INSECURE_TLS"


def insecure_tls_refused(keys: ConfigKeys) -> str:
    """Why ``MLFLOW_TRACKING_INSECURE_TLS`` is refused, and the setting to use instead (the door's key)."""
    return (
        f"env {INSECURE_TLS_ENV} is set, and this provider never turns TLS certificate checks off: every "
        "request carries a credential and writes to the server, so an unverified connection would hand both "
        "to whoever sits in between, on every `pulumi up`, with no one reading a warning in CI. If the server "
        f"uses a private CA, give that CA's certificate with env {SERVER_CERT_ENV} or stack config "
        f"'{keys.server_cert_path}' instead, then unset {INSECURE_TLS_ENV}"
    )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class TlsSettings:
    """What verifies the server and what identifies the client; ``context`` is built once, here."""

    ca_path: str | None
    ca_source: str | None
    client_cert_path: str | None
    client_cert_source: str | None
    context: ssl.SSLContext = field(repr=False, compare=False)

    @property
    def key(self) -> tuple[str | None, str | None]:
        return (self.ca_path, self.client_cert_path)

    def describe_trust(self) -> str:
        if self.ca_path:
            return f"the CA bundle {self.ca_path!r} (from {self.ca_source})"
        return "the default trust store (certifi)"


def _pick(
    stack_value: str | None, stack_key: str, env: Mapping[str, str], env_key: str
) -> tuple[str | None, str | None]:
    if stack_value:
        return stack_value, f"stack config '{stack_key}'"
    value = env.get(env_key, "").strip()
    if value:
        return value, f"env {env_key}"
    return None, None


def _no_password() -> str:
    # An encrypted key would otherwise make OpenSSL prompt on a terminal the provider host does not have.
    raise ConfigurationError("encrypted private key")


def tls_settings(url: str, stack: StackConfig, env: Mapping[str, str]) -> TlsSettings | None:
    """The TLS settings for ``url``, or None when the defaults apply (or the URL is plain http)."""
    if urlsplit(url).scheme != "https":
        return None
    if _truthy(env.get(INSECURE_TLS_ENV)):
        raise ConfigurationError(insecure_tls_refused(stack.keys))
    ca_path, ca_source = _pick(stack.server_cert_path, stack.keys.server_cert_path, env, SERVER_CERT_ENV)
    cert_path, cert_source = _pick(stack.client_cert_path, stack.keys.client_cert_path, env, CLIENT_CERT_ENV)
    if ca_path is None and cert_path is None:
        return None
    if ca_path is not None:
        ca_path = os.path.expanduser(ca_path)
        if os.path.isdir(ca_path):
            context = _context(ca_source, capath=ca_path)
        elif os.path.isfile(ca_path):
            context = _context(ca_source, cafile=ca_path)
        else:
            raise ConfigurationError(f"{ca_source}: there is no file or folder at {ca_path!r} (a CA bundle, PEM)")
    else:
        import certifi

        context = _context(None, cafile=certifi.where())
    if cert_path is not None:
        cert_path = os.path.expanduser(cert_path)
        if not os.path.isfile(cert_path):
            raise ConfigurationError(
                f"{cert_source}: there is no file at {cert_path!r} (a PEM file with the client certificate and "
                "its private key)"
            )
        try:
            context.load_cert_chain(cert_path, password=_no_password)
        except (ssl.SSLError, ConfigurationError, OSError) as exc:
            reason = "the private key is encrypted" if isinstance(exc, ConfigurationError) else None
            reason = reason or getattr(exc, "reason", None) or type(exc).__name__
            raise ConfigurationError(
                f"{cert_source}: cannot load a client certificate from {cert_path!r} ({reason}); it must be one "
                "PEM file holding the certificate and its unencrypted private key, as MLflow reads it "
                "(e.g. `cat client.crt client.key > client.pem`)"
            ) from None
    return TlsSettings(ca_path, ca_source, cert_path, cert_source, context)


def _context(source: str | None, *, cafile: str | None = None, capath: str | None = None) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=cafile, capath=capath)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise ConfigurationError(
            f"{source}: cannot read a CA bundle from {cafile or capath!r} ({reason}); it must hold PEM "
            "certificates (-----BEGIN CERTIFICATE-----)"
        ) from None
    return context
