"""Azure roots: Blob Storage (``wasbs://``) and ADLS Gen2 (``abfss://``), as MLflow's Azure client reaches them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from pulumi_mlflow_runs.core.artifacts.cloud_settings import ObjectStoreSettings, first, key
from pulumi_mlflow_runs.core.artifacts.files import PROP
from pulumi_mlflow_runs.core.artifacts.object_store import ObjectStoreArtifacts, Reach
from pulumi_mlflow_runs.core.errors import ConfigurationError, InputError
from pulumi_mlflow_runs.core.secret import SecretStr


def azure_store(
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
    text, text_from = first(
        (_shown(settings.azure_storage_connection_string), f"stack config '{key('azure_storage_connection_string')}'"),
        (env.get("AZURE_STORAGE_CONNECTION_STRING"), "env AZURE_STORAGE_CONNECTION_STRING"),
    )
    account_key, key_from = first(
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
