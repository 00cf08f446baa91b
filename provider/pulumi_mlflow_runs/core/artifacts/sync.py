"""Where a run's artifact files go: the store of its root (``store_for``), a few files at a time, each
retried within the deadline; and what a refresh finds of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from pulumi_mlflow_runs.core.artifacts.cloud_settings import OBJECT_STORE_SCHEMES
from pulumi_mlflow_runs.core.artifacts.files import PROP, FileDigest, Source, changes, mark_drift, stored_size
from pulumi_mlflow_runs.core.errors import InputError, ServiceUnavailable

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core.client import MlflowApi

from pulumi_mlflow_runs.core.artifacts.stores import (
    ARTIFACTS_API,
    UPLOAD_WORKERS,
    LocalStore,
    MlflowArtifactsStore,
    Store,
    _not_serving,
    unsupported_root,
)


def store_for(api: MlflowApi, artifact_uri: str | None) -> Store:
    """The store of a run's artifact root, or an ``InputError`` naming ``artifacts``, the scheme and the way out."""
    uri = artifact_uri or ""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    base = api.transport.connection.base_url.rstrip("/")
    if scheme == "mlflow-artifacts":
        ours = urlsplit(base).netloc
        if parts.netloc and parts.netloc != ours:
            raise unsupported_root(uri, f"its server {parts.netloc} is not the tracking server {ours}")
        return MlflowArtifactsStore(api.transport, uri, unquote(parts.path))
    if scheme in ("http", "https") and ARTIFACTS_API in parts.path:
        if not uri.startswith(f"{base}{ARTIFACTS_API}/"):
            raise unsupported_root(uri, f"its server is not the tracking server {base}")
        return MlflowArtifactsStore(api.transport, uri, unquote(uri[len(base + ARTIFACTS_API) :]))
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise unsupported_root(uri, f"a file: root on another host ({parts.netloc}) cannot be written from here")
        return LocalStore(uri, Path(unquote(parts.path)))
    if scheme == "" and uri.startswith("/"):
        return LocalStore(uri, Path(uri))
    if scheme == "dbfs":
        from pulumi_mlflow_runs.core.artifacts.databricks import databricks_store

        return databricks_store(api, uri)
    if scheme in OBJECT_STORE_SCHEMES:
        from pulumi_mlflow_runs.core.artifacts.cloud_access import object_store

        return object_store(uri, api.transport.connection.object_stores, api.transport.policy)
    if scheme.startswith("databricks"):
        raise unsupported_root(uri, "Databricks roots other than dbfs:/databricks/mlflow-tracking are not supported")
    if not scheme:
        raise unsupported_root(uri, "it is not an absolute path")
    raise unsupported_root(uri, f"the {scheme}: store is not supported yet")


def refreshed_files(api: MlflowApi, artifact_uri: str | None, files: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``artifact_files`` after a refresh: each stored file the store no longer holds as recorded is marked
    (``files.mark_drift``); files nobody declared are not looked at. A store that cannot list (a root
    this version refuses, a server that does not serve artifacts) leaves them as stored."""
    if not files:
        return dict(files) if files is not None else None
    try:
        store = store_for(api, artifact_uri)
        found = store.stat(files)
    except InputError:
        return dict(files)
    except ServiceUnavailable as exc:
        if _not_serving(exc):
            return dict(files)
        raise
    return mark_drift(files, found) if found is not None else dict(files)


def sync(
    api: MlflowApi,
    artifact_uri: str | None,
    old_files: Mapping[str, Any] | None,
    declared: Any,
    done: list[str] | None = None,
) -> dict[str, FileDigest] | None:
    """Upload the declared files whose content the run lacks, delete the stored ones no longer declared;
    return the new ``artifact_files`` (None when nothing is declared or stored).

    Uploads run ``UPLOAD_WORKERS`` at a time; after the first failure no new one starts, the ones under way
    finish, and that failure is raised (``done`` lists what was stored).
    """
    if declared is None and not old_files:
        return None
    diff = changes(old_files, declared)
    files = dict(diff.keep)
    done = [] if done is None else done
    if diff.any:
        store = store_for(api, artifact_uri)
        before = {path: stored_size((old_files or {}).get(path)) for path in diff.upload}
        for path, stored in _put_all(store, diff.upload, before, done):
            files[path] = {**stored, "uri": store.file_uri(path)}
        for path in diff.delete:
            with _served(path):
                store.delete(path)
            done.append(f"deleted artifact {path!r}")
    return {path: files[path] for path in sorted(files)} if files or declared is not None else None


def _put(store: Store, path: str, source: Source, size_before: int | None) -> FileDigest:
    with _served(path):
        try:
            return store.put_over(path, source, size_before)
        except OSError as exc:
            raise InputError(f"{PROP}.{path}", f"cannot read {source.path!r} ({exc.strerror or exc})") from None


def _put_all(
    store: Store, uploads: Mapping[str, Source], before: Mapping[str, int | None], done: list[str]
) -> list[tuple[str, FileDigest]]:
    """Every upload, a few at a time; the first failure stops new ones and is raised once the rest end.
    ``before`` is the size the state records at each path (None: no file there)."""
    results = []
    failure: BaseException | None = None
    with ThreadPoolExecutor(
        max_workers=max(1, min(UPLOAD_WORKERS, len(uploads))), thread_name_prefix="artifacts"
    ) as pool:
        pending = {pool.submit(_put, store, path, source, before.get(path)): path for path, source in uploads.items()}
        for future in as_completed(pending):
            path = pending[future]
            try:
                results.append((path, future.result()))
                done.append(f"uploaded artifact {path!r}")
            except BaseException as exc:  # noqa: BLE001 - the first one is raised below
                if failure is None:
                    failure = exc
                    for other in pending:
                        other.cancel()  # not started yet: never sent
    if failure is not None:
        raise failure
    return results


@contextlib.contextmanager
def _served(path: str) -> Iterator[None]:
    """A server that does not serve artifacts answers 503 every time: say what to change."""
    try:
        yield
    except ServiceUnavailable as exc:
        if _not_serving(exc):
            raise InputError(
                f"{PROP}.{path}",
                "the tracking server does not serve artifacts (it runs with --no-serve-artifacts); start it "
                "with --serve-artifacts, or use an experiment with a file: artifact_location",
            ) from None
        raise
