"""S3 roots (``s3://bucket/prefix``), reached as MLflow's boto3 client reaches them.

The endpoint from ``mlflow-runs:s3EndpointUrl``, else ``MLFLOW_S3_ENDPOINT_URL``, else ``AWS_ENDPOINT_URL``,
else AWS's; TLS trusting ``AWS_CA_BUNDLE`` (not verified with ``MLFLOW_S3_IGNORE_TLS=true``); the credentials
from the stack's key pair, else ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``),
else a profile of the shared files (``mlflow-runs:awsProfile``, ``AWS_PROFILE`` or ``default``, in
``AWS_SHARED_CREDENTIALS_FILE`` or ``~/.aws/credentials``, and ``AWS_CONFIG_FILE`` or ``~/.aws/config``), else
the machine's role (web identity, ECS container, EC2 instance metadata: obstore's own chain). obstore reads
no profile itself, so the provider reads the profile's static keys (``aws_access_key_id``,
``aws_secret_access_key``, ``aws_session_token``, ``region``); a profile that signs in otherwise (SSO,
``role_arn``, ``credential_process``) is refused, naming the way out
(``aws configure export-credentials --format env``).
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pulumi_mlflow_runs.core.artifacts.cloud_settings import ObjectStoreSettings, bucket_and_prefix, first, key
from pulumi_mlflow_runs.core.artifacts.object_store import ObjectStoreArtifacts, Reach
from pulumi_mlflow_runs.core.errors import ConfigurationError

_TRUE = ("1", "true", "yes")


def s3_store(
    uri: str, settings: ObjectStoreSettings, env: Mapping[str, str], retry: dict[str, Any]
) -> ObjectStoreArtifacts:
    from obstore.store import S3Store

    bucket, prefix = bucket_and_prefix(uri)
    config: dict[str, Any] = {}
    client: dict[str, Any] = {}
    endpoint, endpoint_from = first(
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
    trust = "set env AWS_CA_BUNDLE to a file of its CA's certificate (PEM)"
    if ca_bundle:
        trust = f"env AWS_CA_BUNDLE ({ca_bundle}) does not hold its CA"
    reach = Reach("S3", endpoint, endpoint_from, credentials_from, secrets, trust)
    return ObjectStoreArtifacts(uri, backend, reach)


def _s3_credentials(
    settings: ObjectStoreSettings, env: Mapping[str, str], config: dict[str, Any]
) -> tuple[str, tuple[str, ...], str | None]:
    """Fill ``config``'s keys where the provider picks them; return where they came from, the secret texts
    to keep out of messages, and a profile's region."""
    settings.check()
    key_id, secret = settings.aws_access_key_id, settings.aws_secret_access_key
    if key_id and secret:
        config.update(access_key_id=key_id, secret_access_key=secret.get(), token="")
        return f"stack config '{key('aws_access_key_id')}'", (secret.get(),), None
    if env.get("AWS_ACCESS_KEY_ID"):
        hidden = tuple(v for v in (env.get("AWS_SECRET_ACCESS_KEY"), env.get("AWS_SESSION_TOKEN")) if v)
        return "env AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", hidden, None
    named, named_from = first(
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
