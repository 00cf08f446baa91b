"""How the provider reaches a direct object-store root: the endpoint and the credentials, taken as MLflow's own
client takes them, with the stack's keys (``cloud_settings``) first.

S3 (``s3://bucket/prefix``), as MLflow's boto3 client: the endpoint from ``mlflow-runs:s3EndpointUrl``, else
``MLFLOW_S3_ENDPOINT_URL``, else ``AWS_ENDPOINT_URL``, else AWS's; TLS trusting ``AWS_CA_BUNDLE`` (and not
verified with ``MLFLOW_S3_IGNORE_TLS=true``); the credentials from the stack's key pair, else
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), else a profile of the shared
credentials file (``mlflow-runs:awsProfile``, ``AWS_PROFILE`` or ``default``, in ``AWS_SHARED_CREDENTIALS_FILE``
or ``~/.aws/credentials``, and ``AWS_CONFIG_FILE`` or ``~/.aws/config``), else the machine's role (web identity,
ECS container, EC2 instance metadata: obstore's own chain). obstore reads no profile itself, so the provider
reads the profile's static keys (``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``,
``region``); a profile that signs in otherwise (SSO, ``role_arn``, ``credential_process``) is refused, naming
the way out (``aws configure export-credentials --format env``).
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from pulumi_mlflow_runs.core.artifacts.cloud_settings import ObjectStoreSettings, key
from pulumi_mlflow_runs.core.artifacts.files import PROP
from pulumi_mlflow_runs.core.artifacts.object_store import ObjectStoreArtifacts, Reach
from pulumi_mlflow_runs.core.artifacts.stores import unsupported_root
from pulumi_mlflow_runs.core.errors import ConfigurationError, InputError
from pulumi_mlflow_runs.core.secret import SecretStr

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core.retries import RetryPolicy

EXTRA = "pulumi-mlflow-runs[object-stores]"
_TRUE = ("1", "true", "yes")


def object_store(
    uri: str, settings: ObjectStoreSettings | None, policy: RetryPolicy, env: Mapping[str, str] | None = None
) -> ObjectStoreArtifacts:
    """The store of a run's root on S3, GCS or Azure; ``InputError``/``ConfigurationError`` naming the setting."""
    try:
        import obstore  # noqa: F401 - present, or say which extra brings it
    except ImportError:
        raise InputError(
            PROP,
            f"the run's artifact root {uri} is on an object store, which needs the obstore library: install "
            f"{EXTRA!r} (pip install '{EXTRA}') where the provider runs",
        ) from None
    settings = settings or ObjectStoreSettings()
    env = os.environ if env is None else env
    scheme = urlsplit(uri).scheme.lower()
    retry = {"max_retries": 10, "retry_timeout": timedelta(seconds=max(1.0, policy.deadline))}
    if scheme in ("s3", "s3a"):
        return _s3(uri, settings, env, retry)
    if scheme in ("wasbs", "wasb", "abfss", "abfs"):
        return _azure(uri, settings, env, retry)
    raise unsupported_root(uri, f"the {scheme}: store is not supported yet")


def _bucket_and_prefix(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if not parts.netloc:
        raise InputError(PROP, f"the run's artifact root {uri} names no bucket")
    return parts.netloc, unquote(parts.path).strip("/")


def _s3(uri: str, settings: ObjectStoreSettings, env: Mapping[str, str], retry: dict[str, Any]) -> ObjectStoreArtifacts:
    from obstore.store import S3Store

    bucket, prefix = _bucket_and_prefix(uri)
    config: dict[str, Any] = {}
    client: dict[str, Any] = {}
    endpoint, endpoint_from = _first(
        (settings.s3_endpoint_url, f"stack config '{key('s3_endpoint_url')}'"),
        (env.get("MLFLOW_S3_ENDPOINT_URL"), "env MLFLOW_S3_ENDPOINT_URL"),
        (env.get("AWS_ENDPOINT_URL"), "env AWS_ENDPOINT_URL"),
    )
    credentials_from, secrets, profile_region = _s3_credentials(settings, env, config)
    region = settings.aws_region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or profile_region
    config["region"] = region or "us-east-1"
    if endpoint:
        if urlsplit(endpoint).scheme not in ("http", "https"):
            raise ConfigurationError(f"{endpoint_from} must be an http(s) URL, got {endpoint!r}")
        config["endpoint"] = endpoint.rstrip("/")
        client["allow_http"] = endpoint.startswith("http://")
    else:
        endpoint, endpoint_from = f"https://s3.{config['region']}.amazonaws.com", "AWS's default for the region"
    ca_bundle = env.get("AWS_CA_BUNDLE")
    if ca_bundle:
        try:
            client["root_certificate"] = Path(ca_bundle).read_text()
        except OSError as exc:
            raise ConfigurationError(
                f"env AWS_CA_BUNDLE names {ca_bundle!r}, which cannot be read ({exc.strerror})"
            ) from None
    if env.get("MLFLOW_S3_IGNORE_TLS", "").lower() in _TRUE:
        client["allow_invalid_certificates"] = True
    backend = S3Store(bucket, prefix=prefix or None, config=config, client_options=client, retry_config=retry)  # type: ignore[arg-type]
    return ObjectStoreArtifacts(uri, backend, Reach("S3", endpoint, endpoint_from, credentials_from, secrets))


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    for value, source in candidates:
        if value and value.strip():
            return value.strip(), source
    return None, ""


def _s3_credentials(
    settings: ObjectStoreSettings, env: Mapping[str, str], config: dict[str, Any]
) -> tuple[str, tuple[str, ...], str | None]:
    """Fill ``config``'s keys where the provider picks them; return where they came from, the secret texts
    to keep out of messages, and a profile's region."""
    key_id, secret = settings.aws_access_key_id, settings.aws_secret_access_key
    if key_id or secret:
        if not (key_id and secret):
            pair = ("aws_access_key_id", "aws_secret_access_key")
            given, missing = pair if key_id else pair[::-1]
            raise ConfigurationError(
                f"stack config '{key(given)}' is set without '{key(missing)}': an S3 key pair needs both "
                f"(`pulumi config set --secret {key('aws_secret_access_key')} …`)"
            )
        config.update(access_key_id=key_id, secret_access_key=secret.get(), token="")
        return f"stack config '{key('aws_access_key_id')}'", (secret.get(),), None
    if env.get("AWS_ACCESS_KEY_ID"):
        hidden = tuple(v for v in (env.get("AWS_SECRET_ACCESS_KEY"), env.get("AWS_SESSION_TOKEN")) if v)
        return "env AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", hidden, None
    named, named_from = _first(
        (settings.aws_profile, f"stack config '{key('aws_profile')}'"), (env.get("AWS_PROFILE"), "env AWS_PROFILE")
    )
    found = _profile(named or "default", env)
    if found is None:
        if named:
            raise ConfigurationError(
                f"{named_from} names the AWS profile {named!r}, which the shared credentials and config files "
                f"({_aws_file(env, 'credentials')}, {_aws_file(env, 'config')}) do not hold"
            )
        return "the machine's AWS role (web identity, container or instance metadata)", (), None
    values, where = found
    if not values.get("aws_access_key_id") or not values.get("aws_secret_access_key"):
        if not named and not values.get("aws_access_key_id"):
            return "the machine's AWS role (web identity, container or instance metadata)", (), values.get("region")
        raise ConfigurationError(
            f"the AWS profile {named or 'default'!r} ({where}) holds no static keys (aws_access_key_id and "
            "aws_secret_access_key); a profile that signs in through SSO, a role or a process is not read here: "
            "export its credentials (`aws configure export-credentials --format env`) or set "
            f"'{key('aws_access_key_id')}' and '{key('aws_secret_access_key')}'"
        )
    config.update(access_key_id=values["aws_access_key_id"], secret_access_key=values["aws_secret_access_key"])
    config["token"] = values.get("aws_session_token", "")
    hidden = tuple(v for v in (values["aws_secret_access_key"], values.get("aws_session_token")) if v)
    return f"the AWS profile {named or 'default'!r} ({where})", hidden, values.get("region")


def _aws_file(env: Mapping[str, str], which: str) -> str:
    override = env.get("AWS_SHARED_CREDENTIALS_FILE" if which == "credentials" else "AWS_CONFIG_FILE")
    return override or str(Path(env.get("HOME") or Path.home()) / ".aws" / which)


def _profile(name: str, env: Mapping[str, str]) -> tuple[dict[str, str], str] | None:
    """The profile's settings from the credentials file (section ``[name]``) over the config file's
    (``[profile name]``, or ``[default]``), and the files that held it; None if neither has it."""
    values: dict[str, str] = {}
    where: list[str] = []
    for which, section in (("config", name if name == "default" else f"profile {name}"), ("credentials", name)):
        path = _aws_file(env, which)
        parser = configparser.RawConfigParser()
        try:
            parser.read(path)
        except configparser.Error as exc:
            raise ConfigurationError(f"the AWS {which} file {path} cannot be read ({exc.__class__.__name__})") from None
        if parser.has_section(section):
            values.update({k: v.strip() for k, v in parser.items(section)})
            where.append(path)
    return (values, ", ".join(where)) if where else None


def _azure(
    uri: str, settings: ObjectStoreSettings, env: Mapping[str, str], retry: dict[str, Any]
) -> ObjectStoreArtifacts:
    """``wasbs://<container>@<account>.blob.core.windows.net/<path>`` (Blob Storage) and
    ``abfss://<filesystem>@<account>.dfs.core.windows.net/<path>`` (ADLS Gen2, the same Blob API underneath).

    As MLflow's Azure client: a connection string (``mlflow-runs:azureStorageConnectionString``, else
    ``AZURE_STORAGE_CONNECTION_STRING``: its account, key or SAS, and blob endpoint, Azurite's included), else
    an account key (``mlflow-runs:azureStorageAccessKey``, else ``AZURE_STORAGE_ACCESS_KEY``), else obstore's
    own chain (a service principal's ``AZURE_CLIENT_ID``/``AZURE_CLIENT_SECRET``/``AZURE_TENANT_ID``, workload
    identity, managed identity, the Azure CLI)."""
    from obstore.store import AzureStore

    parts = urlsplit(uri)
    container, _, host = parts.netloc.partition("@")
    account = host.split(".", 1)[0]
    if not container or not account:
        raise InputError(PROP, f"the run's artifact root {uri} names no <container>@<account>")
    prefix = unquote(parts.path).strip("/")
    kind = "ADLS Gen2" if parts.scheme.lower().startswith("abfs") else "Azure Blob"
    config: dict[str, Any] = {"account_name": account}
    client: dict[str, Any] = {}
    endpoint = f"https://{account}.blob.core.windows.net"
    endpoint_from = "the account in the root"
    text, text_from = _first(
        (_shown(settings.azure_storage_connection_string), f"stack config '{key('azure_storage_connection_string')}'"),
        (env.get("AZURE_STORAGE_CONNECTION_STRING"), "env AZURE_STORAGE_CONNECTION_STRING"),
    )
    account_key, key_from = _first(
        (_shown(settings.azure_storage_access_key), f"stack config '{key('azure_storage_access_key')}'"),
        (env.get("AZURE_STORAGE_ACCESS_KEY"), "env AZURE_STORAGE_ACCESS_KEY"),
    )
    secrets: tuple[str, ...] = ()
    if text:
        fields = _connection_string(text, text_from)
        if fields.get("AccountName") and fields["AccountName"] != account:
            raise ConfigurationError(
                f"{text_from} is for the account {fields['AccountName']!r}, not {account!r} of the run's "
                f"artifact root {uri}"
            )
        if "BlobEndpoint" in fields:
            endpoint, endpoint_from = fields["BlobEndpoint"].rstrip("/"), text_from
        elif "EndpointSuffix" in fields:
            protocol = fields.get("DefaultEndpointsProtocol", "https")
            endpoint = f"{protocol}://{account}.blob.{fields['EndpointSuffix']}"
        if "AccountKey" in fields:
            config["account_key"] = fields["AccountKey"]
        elif "SharedAccessSignature" in fields:
            config["sas_key"] = fields["SharedAccessSignature"].lstrip("?")
        else:
            raise ConfigurationError(f"{text_from} holds neither AccountKey nor SharedAccessSignature")
        secrets, credentials_from = (text, *(v for v in fields.values() if len(v) > 20)), text_from
    elif account_key:
        config["account_key"] = account_key
        secrets, credentials_from = (account_key,), key_from
    else:
        credentials_from = "Azure's identity chain (AZURE_CLIENT_ID and its secret, workload or managed identity)"
    config["endpoint"] = endpoint
    client["allow_http"] = endpoint.startswith("http://")
    backend = AzureStore(container, prefix=prefix or None, config=config, client_options=client, retry_config=retry)  # type: ignore[arg-type]
    return ObjectStoreArtifacts(uri, backend, Reach(kind, endpoint, endpoint_from, credentials_from, secrets))


def _shown(value: SecretStr | None) -> str | None:
    return value.get() if value is not None else None


def _connection_string(text: str, source: str) -> dict[str, str]:
    """``Key=Value;...`` pairs; a part without ``=`` fails naming ``source`` (never the text: it holds a key)."""
    fields: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, value = part.partition("=")
        if not sep:
            raise ConfigurationError(f"{source} is not an Azure storage connection string (Key=Value;... pairs)")
        fields[name.strip()] = value.strip()
    return fields
