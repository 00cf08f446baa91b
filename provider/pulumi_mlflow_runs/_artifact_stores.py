"""Where a run's artifact files go: the tracking server's proxied artifacts (``mlflow-artifacts:``) or a
local ``file:`` root, a few files at a time, each retried within the deadline."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from ._artifacts import PROP, FileDigest, Source, changes
from ._errors import InputError, NotFound, ServiceUnavailable

if TYPE_CHECKING:
    from ._client import MlflowApi
    from ._transport import Transport

ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"


class Store:
    """One run's artifact root: put a file (returning what was stored), delete a file."""

    uri: str

    def put(self, path: str, source: Source) -> FileDigest:
        raise NotImplementedError

    def delete(self, path: str) -> None:
        raise NotImplementedError

    def file_uri(self, path: str) -> str:
        return f"{self.uri.rstrip('/')}/{path}"


class _Hashing:
    """Hashes the bytes as they go out, so state records what was sent (the file may change meanwhile)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.sha = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        self.sha = hashlib.sha256()
        self.size = 0
        for chunk in self.source.chunks():
            self.sha.update(chunk)
            self.size += len(chunk)
            yield chunk

    def result(self) -> FileDigest:
        return {"sha256": self.sha.hexdigest(), "size": self.size}


class MlflowArtifactsStore(Store):
    """``mlflow-artifacts:`` roots: the tracking server's proxied artifact API, through the provider's
    own transport (auth, TLS, connection pool, retries within the deadline)."""

    def __init__(self, transport: Transport, uri: str, root: str) -> None:
        self.transport = transport
        self.uri = uri
        self.root = root.strip("/")

    def _path(self, path: str) -> str:
        return quote(f"{ARTIFACTS_API}/{self.root}/{path}" if self.root else f"{ARTIFACTS_API}/{path}", safe="/")

    def put(self, path: str, source: Source) -> FileDigest:
        body = _Hashing(source)
        size = source.size()
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        # The same bytes to the same path: safe to send again after a lost answer.
        self.transport.send_bytes(
            "PUT", self._path(path), content=lambda: iter(body), headers=headers, should_retry=_retry_artifacts
        )
        return body.result()

    def delete(self, path: str) -> None:
        with contextlib.suppress(NotFound):  # already gone: the goal is reached
            self.transport.send_bytes("DELETE", self._path(path), should_retry=_retry_artifacts)


def _retry_artifacts(exc: Exception) -> tuple[bool, float | None]:
    """As any idempotent call, but a server without ``--serve-artifacts`` (503 every time) is not waited for."""
    from ._transport import retry_idempotent

    if isinstance(exc, ServiceUnavailable) and "serve-artifacts" in exc.message:
        return False, None
    return retry_idempotent(exc)


class LocalStore(Store):
    """``file:`` roots (and plain absolute paths): a folder the provider host writes itself."""

    def __init__(self, uri: str, root: Path) -> None:
        self.uri = uri
        self.root = root

    def put(self, path: str, source: Source) -> FileDigest:
        target = self.root / path
        body = _Hashing(source)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Written beside the target and renamed over it: a reader never sees half a file.
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in body:
                        out.write(chunk)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise InputError(
                f"{PROP}.{path}", f"cannot write {str(target)!r} in the run's artifact root {self.uri} ({exc})"
            ) from None
        return body.result()

    def delete(self, path: str) -> None:
        target = self.root / path
        try:
            target.unlink(missing_ok=True)
            parent = target.parent
            while parent != self.root and self.root in parent.parents and not any(parent.iterdir()):
                parent.rmdir()  # leave no empty folders behind
                parent = parent.parent
        except OSError as exc:
            raise InputError(
                f"{PROP}.{path}", f"cannot delete {str(target)!r} in the run's artifact root {self.uri} ({exc})"
            ) from None


def store_for(api: MlflowApi, artifact_uri: str | None) -> Store:
    """The store of a run's artifact root, or an ``InputError`` naming ``artifacts``, the scheme and the way out."""
    uri = artifact_uri or ""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    base = api.transport.connection.base_url.rstrip("/")
    if scheme == "mlflow-artifacts":
        ours = urlsplit(base).netloc
        if parts.netloc and parts.netloc != ours:
            raise _unsupported(uri, f"its server {parts.netloc} is not the tracking server {ours}")
        return MlflowArtifactsStore(api.transport, uri, unquote(parts.path))
    if scheme in ("http", "https") and ARTIFACTS_API in parts.path:
        if not uri.startswith(f"{base}{ARTIFACTS_API}/"):
            raise _unsupported(uri, f"its server is not the tracking server {base}")
        return MlflowArtifactsStore(api.transport, uri, unquote(uri[len(base + ARTIFACTS_API) :]))
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise _unsupported(uri, f"a file: root on another host ({parts.netloc}) cannot be written from here")
        return LocalStore(uri, Path(unquote(parts.path)))
    if scheme == "" and uri.startswith("/"):
        return LocalStore(uri, Path(uri))
    if scheme == "dbfs" or scheme.startswith("databricks"):
        raise _unsupported(uri, "Databricks (dbfs:/Unity Catalog) artifact roots are not supported yet")
    if not scheme:
        raise _unsupported(uri, "it is not an absolute path")
    raise _unsupported(uri, f"the {scheme}: store is not supported yet")


def _unsupported(uri: str, why: str) -> InputError:
    return InputError(
        PROP,
        f"cannot upload to the run's artifact root {uri!r}: {why}. Supported are the tracking server's "
        "proxied artifacts (mlflow-artifacts:, `mlflow server --serve-artifacts`) and file: roots the "
        "provider host can write; create the run in an experiment whose artifact_location is one of "
        "those, or leave `artifacts` out and log the files with MLflow's client",
    )


UPLOAD_WORKERS = 4
"""Files sent at once per resource: many small files go faster, and memory stays a few chunks per file."""


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
        for path, stored in _put_all(store, diff.upload, done):
            files[path] = {**stored, "uri": store.file_uri(path)}
        for path in diff.delete:
            with _served(path):
                store.delete(path)
            done.append(f"deleted artifact {path!r}")
    return {path: files[path] for path in sorted(files)} if files or declared is not None else None


def _put(store: Store, path: str, source: Source) -> FileDigest:
    with _served(path):
        try:
            return store.put(path, source)
        except OSError as exc:
            raise InputError(f"{PROP}.{path}", f"cannot read {source.path!r} ({exc.strerror or exc})") from None


def _put_all(store: Store, uploads: Mapping[str, Source], done: list[str]) -> list[tuple[str, FileDigest]]:
    """Every upload, a few at a time; the first failure stops new ones and is raised once the rest end."""
    if len(uploads) <= 1:
        results = [(path, _put(store, path, source)) for path, source in uploads.items()]
        done.extend(f"uploaded artifact {path!r}" for path, _ in results)
        return results
    results = []
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=min(UPLOAD_WORKERS, len(uploads)), thread_name_prefix="artifacts") as pool:
        pending = {pool.submit(_put, store, path, source): path for path, source in uploads.items()}
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
        if "serve-artifacts" in exc.message:
            raise InputError(
                f"{PROP}.{path}",
                "the tracking server does not serve artifacts (it runs with --no-serve-artifacts); start it "
                "with --serve-artifacts, or use an experiment with a file: artifact_location",
            ) from None
        raise
