"""The stack config keys for direct artifact roots on object stores: what a team sets per stack, beside the
standard environment MLflow's own client reads (``MLFLOW_S3_ENDPOINT_URL``, ``AWS_*``,
``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``), which stay the fallback.

The keys are ``mlflow-runs:<camelName>`` on both front doors (like ``mlflow-runs:retryDeadline``): the plugin
declares them in its schema (secrets marked secret), the dynamic door reads them from the program's stack.
Light: Configure reads these, so nothing here imports the object-store library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import unquote, urlsplit

from pulumi_mlflow_runs.core.definitions import Prop, camel
from pulumi_mlflow_runs.core.errors import ConfigurationError
from pulumi_mlflow_runs.core.secret import SecretStr

NAMESPACE = "mlflow-runs"
OBJECT_STORE_SCHEMES = ("s3", "s3a", "gs", "wasbs", "wasb", "abfss", "abfs")
"""Roots written through ``cloud_access`` (the ``object-stores`` extra)."""

OBJECT_STORE_CONFIG: tuple[Prop, ...] = (
    Prop("s3_endpoint_url", "string", "An S3-compatible endpoint for s3:// roots (else MLFLOW_S3_ENDPOINT_URL)."),
    Prop("aws_region", "string", "The region of s3:// roots (else AWS_REGION, AWS_DEFAULT_REGION, the profile's)."),
    Prop("aws_profile", "string", "A profile of the AWS shared credentials file for s3:// roots (else AWS_PROFILE)."),
    Prop("aws_access_key_id", "string", "An access key id for s3:// artifact roots (else AWS_ACCESS_KEY_ID)."),
    Prop("aws_secret_access_key", "string", "Its secret key (else AWS_SECRET_ACCESS_KEY).", secret=True),
    Prop(
        "google_application_credentials", "string",
        "A service-account key file for gs:// artifact roots (else GOOGLE_APPLICATION_CREDENTIALS).",
    ),
    Prop(
        "azure_storage_connection_string", "string",
        "A storage connection string for wasbs:// and abfss:// roots (else AZURE_STORAGE_CONNECTION_STRING).",
        secret=True,
    ),
    Prop(
        "azure_storage_access_key", "string",
        "A storage account key for wasbs:// and abfss:// roots (else AZURE_STORAGE_ACCESS_KEY).", secret=True,
    ),
)  # fmt: skip


def key(name: str) -> str:
    """The stack config key of a setting: ``mlflow-runs:s3EndpointUrl``."""
    return f"{NAMESPACE}:{camel(name)}"


@dataclass(frozen=True)
class ObjectStoreSettings:
    """What the stack sets for object-store roots; None where it sets nothing (the environment then decides)."""

    s3_endpoint_url: str | None = None
    aws_region: str | None = None
    aws_profile: str | None = None
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: SecretStr | None = field(default=None, repr=False)
    google_application_credentials: str | None = None
    azure_storage_connection_string: SecretStr | None = field(default=None, repr=False)
    azure_storage_access_key: SecretStr | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, get: Callable[[str], Any]) -> ObjectStoreSettings:
        """Each key read through ``get`` (full ``mlflow-runs:`` keys); secrets kept as ``SecretStr``."""
        secret = {p.name for p in OBJECT_STORE_CONFIG if p.secret}
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = get(key(f.name))
            text = str(raw).strip() if raw is not None else ""
            if text:
                values[f.name] = SecretStr(text) if f.name in secret else text
        return cls(**values)

    def check(self) -> None:
        """Refuse what is wrong whatever the root (at Configure, before any run is made), naming the keys."""
        if bool(self.aws_access_key_id) != (self.aws_secret_access_key is not None):
            pair = ("aws_access_key_id", "aws_secret_access_key")
            given, missing = pair if self.aws_access_key_id else pair[::-1]
            raise ConfigurationError(
                f"stack config '{key(given)}' is set without '{key(missing)}': an S3 key pair needs both "
                f"(`pulumi config set --secret {key('aws_secret_access_key')} …`)"
            )
        endpoint = self.s3_endpoint_url
        if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
            raise ConfigurationError(
                f"stack config '{key('s3_endpoint_url')}' must be an http(s) URL, got {endpoint!r}"
            )


def first(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    """The first set value and the setting it came from (``("", "")`` when none is set)."""
    for value, source in candidates:
        if value and value.strip():
            return value.strip(), source
    return None, ""


def bucket_and_prefix(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``; an ``InputError`` naming ``artifacts`` without a bucket."""
    from pulumi_mlflow_runs.core.artifacts.files import PROP
    from pulumi_mlflow_runs.core.errors import InputError

    parts = urlsplit(uri)
    if not parts.netloc:
        raise InputError(PROP, f"the run's artifact root {uri} names no bucket")
    return parts.netloc, unquote(parts.path).strip("/")
