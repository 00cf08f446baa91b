"""How the provider reaches a direct object-store root: the store of the root's scheme, its endpoint and
credentials taken as MLflow's own client takes them, with the stack's keys (``cloud_settings``) first; one
module per cloud (``s3_access``, ``azure_access``, ``gcs_access``), loaded with obstore only when such a root
is met.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pulumi_mlflow_runs.core.artifacts.cloud_settings import ObjectStoreSettings
from pulumi_mlflow_runs.core.artifacts.files import PROP
from pulumi_mlflow_runs.core.artifacts.object_store import ObjectStoreArtifacts
from pulumi_mlflow_runs.core.artifacts.stores import unsupported_root
from pulumi_mlflow_runs.core.errors import InputError

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core.retries import RetryPolicy

EXTRA = "pulumi-mlflow-runs[object-stores]"


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
        from pulumi_mlflow_runs.core.artifacts.s3_access import s3_store

        return s3_store(uri, settings, env, retry)
    if scheme in ("wasbs", "wasb", "abfss", "abfs"):
        from pulumi_mlflow_runs.core.artifacts.azure_access import azure_store

        return azure_store(uri, settings, env, retry)
    if scheme == "gs":
        from pulumi_mlflow_runs.core.artifacts.gcs_access import gcs_store

        return gcs_store(uri, settings, env, retry)
    raise unsupported_root(uri, f"the {scheme}: store is not supported yet")
