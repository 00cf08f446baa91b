"""Object-store roots (``s3://``, ``gs://``, ``wasbs://``, ``abfss://``) as ``store_for`` picks them: the store
library loaded only then, a missing extra named, settings read alike on both doors. No server is needed here:
the stores are built, not used (tests/artifacts/test_s3_artifacts.py and its siblings use them)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import httpx
import pytest


def _api(object_stores: object = None) -> object:
    from pulumi_mlflow_runs.core.auth import Connection
    from pulumi_mlflow_runs.core.client import MlflowApi
    from pulumi_mlflow_runs.core.transport import Transport

    base = "https://mlflow.test:5000"
    conn = Connection(base, "test", databricks=False, object_stores=object_stores)  # type: ignore[arg-type]
    return MlflowApi(Transport(conn, httpx.Client(base_url=base)))


def test_an_s3_root_is_an_object_store_at_its_prefix() -> None:
    from pulumi_mlflow_runs.core.artifacts.sync import store_for

    found = store_for(_api(), "s3://bucket/x/r1/artifacts")  # type: ignore[arg-type]
    assert type(found).__name__ == "ObjectStoreArtifacts"
    assert found.file_uri("a/b.txt") == "s3://bucket/x/r1/artifacts/a/b.txt"


def test_preview_never_loads_the_store_library() -> None:
    """Configure with the object-store keys, Check and Diff with artifacts: no obstore (nor httpx) loaded."""
    code = textwrap.dedent(
        """
        import sys, pulumi
        from pulumi_mlflow_runs.core.settings import StackConfig
        from pulumi_mlflow_runs.core.run_spec import check_inputs
        from pulumi_mlflow_runs.core.run_diff import diff_run
        stack = StackConfig.from_config({"mlflow-runs:s3EndpointUrl": "http://127.0.0.1:9"}.get)
        assert stack.object_stores.s3_endpoint_url == "http://127.0.0.1:9"
        news, failures = check_inputs({"experiment_id": "1", "artifacts": {"a.txt": pulumi.StringAsset("x")}})
        assert failures == [], failures
        assert diff_run({"artifact_files": {}}, news).updates == ("artifacts",)
        heavy = sorted(m for m in ("obstore", "httpx", "boto3") if m in sys.modules)
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def test_without_the_extra_the_error_names_it() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["obstore"] = None  # as if the object-stores extra were not installed
        from pulumi_mlflow_runs.core.artifacts.cloud_access import object_store
        from pulumi_mlflow_runs.core.errors import InputError
        from pulumi_mlflow_runs.core.retries import RetryPolicy
        try:
            object_store("s3://bucket/x", None, RetryPolicy())
        except InputError as exc:
            print(exc.prop, exc.reason)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.startswith("artifacts ") and "s3://bucket/x" in out
    assert "pip install 'pulumi-mlflow-runs[object-stores]'" in out


def test_settings_hide_their_secrets() -> None:
    from pulumi_mlflow_runs.core.artifacts.cloud_settings import ObjectStoreSettings

    got = ObjectStoreSettings.from_config(
        {"mlflow-runs:awsAccessKeyId": "id", "mlflow-runs:awsSecretAccessKey": "s3cr3t-text"}.get
    )
    assert got.aws_secret_access_key is not None and got.aws_secret_access_key.get() == "s3cr3t-text"
    assert "s3cr3t-text" not in repr(got) and "s3cr3t-text" not in str(got.aws_secret_access_key)


@pytest.mark.parametrize(
    ("uri", "env", "kind", "endpoint"),
    [
        ("gs://bucket/x", {"STORAGE_EMULATOR_HOST": "127.0.0.1:4443"}, "GCS", "http://127.0.0.1:4443"),
        ("wasbs://c@acct.blob.core.windows.net/x", {"AZURE_STORAGE_ACCESS_KEY": "a2V5"}, "Azure Blob",
         "https://acct.blob.core.windows.net"),
        ("abfss://fs@acct.dfs.core.windows.net/x", {"AZURE_STORAGE_ACCESS_KEY": "a2V5"}, "ADLS Gen2",
         "https://acct.blob.core.windows.net"),
        ("s3://bucket/x", {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "s"}, "S3",
         "https://s3.us-east-1.amazonaws.com"),
    ],
)  # fmt: skip
def test_each_cloud_is_reached_where_its_settings_say(uri: str, env: dict[str, str], kind: str, endpoint: str) -> None:
    """Built only (no request): ADLS Gen2 goes through the Blob API of its account, as obstore does."""
    from pulumi_mlflow_runs.core.artifacts.cloud_access import object_store
    from pulumi_mlflow_runs.core.retries import RetryPolicy

    found = object_store(uri, None, RetryPolicy(), env=env)
    assert (found.reach.kind, found.reach.endpoint) == (kind, endpoint)


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (
            {"mlflow-runs:googleApplicationCredentials": "/nonexistent/key.json"},
            "stack config 'mlflow-runs:googleApplicationCredentials' names '/nonexistent/key.json', which is no",
        ),
        (
            {"mlflow-runs:awsAccessKeyId": "id"},
            "'mlflow-runs:awsAccessKeyId' is set without 'mlflow-runs:awsSecretAccessKey'",
        ),
        (
            {"mlflow-runs:s3EndpointUrl": "minio:9000"},
            "stack config 'mlflow-runs:s3EndpointUrl' must be an http(s) URL",
        ),
    ],
)
def test_bad_settings_name_the_key(settings: dict[str, str], says: str) -> None:
    from pulumi_mlflow_runs.core.artifacts.cloud_access import object_store
    from pulumi_mlflow_runs.core.artifacts.cloud_settings import ObjectStoreSettings
    from pulumi_mlflow_runs.core.errors import ConfigurationError
    from pulumi_mlflow_runs.core.retries import RetryPolicy

    uri = "gs://bucket/x" if "google" in str(settings) else "s3://bucket/x"
    with pytest.raises(ConfigurationError) as refused:
        object_store(uri, ObjectStoreSettings.from_config(settings.get), RetryPolicy(), env={})
    assert says in str(refused.value)


def test_the_plugin_declares_the_keys_and_marks_the_secret_ones() -> None:
    """Named alike on both doors: the schema's config keys are the ``mlflow-runs:`` keys the dynamic door reads."""
    from pulumi_mlflow_runs.core.artifacts.cloud_settings import OBJECT_STORE_CONFIG, key
    from pulumi_mlflow_runs.native.schema import schema

    variables = schema()["config"]["variables"]
    for prop in OBJECT_STORE_CONFIG:
        name = key(prop.name).removeprefix("mlflow-runs:")
        assert variables[name].get("secret", False) == prop.secret, name
    assert {n for n, v in variables.items() if v.get("secret")} >= {
        "awsSecretAccessKey", "azureStorageConnectionString", "azureStorageAccessKey"
    }  # fmt: skip


def test_an_incomplete_key_pair_fails_configure_naming_both_keys() -> None:
    """Known whatever the root: refused at Configure, before any run is made (both doors call this check)."""
    from pulumi_mlflow_runs.core.errors import ConfigurationError
    from pulumi_mlflow_runs.core.settings import StackConfig, check_stack_config

    stack = StackConfig.from_config({"mlflow-runs:awsSecretAccessKey": "s3cr3t-text"}.get)
    with pytest.raises(ConfigurationError) as refused:
        check_stack_config(stack)
    assert "'mlflow-runs:awsSecretAccessKey' is set without 'mlflow-runs:awsAccessKeyId'" in str(refused.value)
    assert "s3cr3t-text" not in str(refused.value)
