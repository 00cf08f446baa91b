"""GCS roots (``gs://bucket/prefix``), as MLflow's google-cloud-storage client reaches them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pulumi_mlflow_runs.core.artifacts.cloud_settings import ObjectStoreSettings, bucket_and_prefix, first, key
from pulumi_mlflow_runs.core.artifacts.object_store import ObjectStoreArtifacts, Reach
from pulumi_mlflow_runs.core.errors import ConfigurationError


def gcs_store(
    uri: str, settings: ObjectStoreSettings, env: Mapping[str, str], retry: dict[str, Any]
) -> ObjectStoreArtifacts:
    """``gs://<bucket>/<path>``, as MLflow's client (google-cloud-storage): a service-account key file
    (``mlflow-runs:googleApplicationCredentials``, else ``GOOGLE_APPLICATION_CREDENTIALS``), else Google's
    application default credentials (gcloud's file, the metadata server); ``STORAGE_EMULATOR_HOST`` points at
    an emulator, sending no credential, as google-cloud-storage does."""
    from obstore.store import GCSStore

    bucket, prefix = bucket_and_prefix(uri)
    config: dict[str, Any] = {}
    client: dict[str, Any] = {}
    emulator = (env.get("STORAGE_EMULATOR_HOST") or "").strip()
    if emulator:
        endpoint = emulator.rstrip("/") if "://" in emulator else f"http://{emulator}"
        endpoint_from, credentials_from = "env STORAGE_EMULATOR_HOST", "none (an emulator: env STORAGE_EMULATOR_HOST)"
        # A static placeholder token (emulators check none): never a call to a metadata server.
        config.update(base_url=endpoint, bearer_token="emulator")  # noqa: S106
        client["allow_http"] = endpoint.startswith("http://")
    else:
        endpoint, endpoint_from = "https://storage.googleapis.com", "GCS's default"
        path, path_from = first(
            (settings.google_application_credentials, f"stack config '{key('google_application_credentials')}'"),
            (env.get("GOOGLE_APPLICATION_CREDENTIALS"), "env GOOGLE_APPLICATION_CREDENTIALS"),
        )
        if path:
            if not Path(path).is_file():
                raise ConfigurationError(f"{path_from} names {path!r}, which is no readable key file")
            config["application_credentials"] = path
            credentials_from = f"{path_from} ({path})"
        else:
            credentials_from = "Google's application default credentials (gcloud's file or the metadata server)"
    backend = GCSStore(bucket, prefix=prefix or None, config=config, client_options=client, retry_config=retry)  # type: ignore[arg-type]
    return ObjectStoreArtifacts(uri, backend, Reach("GCS", endpoint, endpoint_from, credentials_from))
