"""The artifact stores a run's root can be: the tracking server's proxied artifacts (``mlflow-artifacts:``)
and local ``file:`` roots, behind one small interface (``Store``) that the Databricks store also serves."""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from pulumi_mlflow_runs.core.artifacts.files import PROP, FileDigest, Source
from pulumi_mlflow_runs.core.errors import InputError, NotFound, ServiceUnavailable

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core.transport import Transport

ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
UPLOAD_WORKERS = 4
"""Files sent (or folders listed) at once per resource: many small files go faster, and memory stays a few
chunks per file."""
SMALL_FILE_BYTES = 64 << 10
"""A ``file:`` root's files up to this size are hashed by a refresh: cheap, and a same-size edit shows."""


class Store:
    """One run's artifact root: put a file (returning what was stored), delete a file, say what is there."""

    uri: str

    def put(self, path: str, source: Source) -> FileDigest:
        raise NotImplementedError

    def put_over(self, path: str, source: Source, size_before: int | None) -> FileDigest:
        """``put``, told the size of the file the state says is at ``path`` now (None: none or unknown),
        which a store that checks an upload of uncertain outcome by its size needs."""
        return self.put(path, source)

    def delete(self, path: str) -> None:
        raise NotImplementedError

    def stat(self, paths: Iterable[str]) -> dict[str, FileDigest | None] | None:
        """What the store holds at each of ``paths``: ``{"size"}`` (plus ``"sha256"`` where cheap), None for
        a missing file; None as a whole when this store cannot list (refresh then leaves the files as stored).

        Here: one ``list_folder`` per folder that holds one of ``paths``, a few at a time, sizes only."""
        wanted = sorted(set(paths))
        folders = sorted({posixpath.dirname(p) for p in wanted})
        with ThreadPoolExecutor(
            max_workers=max(1, min(UPLOAD_WORKERS, len(folders))), thread_name_prefix="list"
        ) as pool:
            listed = list(pool.map(self.list_folder, folders))
        if any(found is None for found in listed):
            return None
        sizes = {path: size for found in listed if found is not None for path, size in found.items()}
        return {p: ({"size": sizes[p]} if p in sizes else None) for p in wanted}

    def list_folder(self, folder: str) -> dict[str, int] | None:
        """The files (not folders) directly in ``folder``, by path under the root, with their sizes; None
        if this store cannot list."""
        return None

    def file_uri(self, path: str) -> str:
        return f"{self.uri.rstrip('/')}/{path}"


class HashingBody:
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

    def whole(self, path: str, size: int) -> FileDigest:
        """``result()`` once all ``size`` bytes went out; else the file changed while it was sent."""
        if self.size != size:
            raise InputError(
                f"{PROP}.{path}",
                f"{self.source.path!r} changed while it was sent ({size} bytes, then {self.size}); "
                "run `pulumi up` again",
            )
        return self.result()


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
        return self.put_over(path, source, None)

    def put_over(self, path: str, source: Source, size_before: int | None) -> FileDigest:
        """Send the file, retried within the deadline. After an uncertain outcome (the answer lost, or a
        5xx that may follow the write) the folder is listed first: the file found whole (the size sent, not
        ``size_before``, after every byte went out) is taken as landed rather than sent again."""
        from pulumi_mlflow_runs.core.exactly_once import outcome_unknown
        from pulumi_mlflow_runs.core.retries import retry_call

        body = HashingBody(source)
        size = source.size()
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        uncertain = False
        telling = size != size_before  # a file of the same size there before could not be told from ours

        def attempt() -> None:
            nonlocal uncertain
            if uncertain and telling and body.size == size and self._holds(path, size):
                return  # landed: the hash recorded is that of the bytes sent then
            try:
                self.transport.send_bytes(
                    "PUT", self._path(path), content=lambda: iter(body), headers=headers, should_retry=_once
                )
            except Exception as exc:
                uncertain = uncertain or outcome_unknown(exc)
                raise

        retry_call(attempt, should_retry=_retry_artifacts, policy=self.transport.policy, clock=self.transport.clock)
        return body.result()

    def _holds(self, path: str, size: int) -> bool:
        found = self.stat([path])
        entry = found.get(path) if found is not None else None
        return entry is not None and entry["size"] == size

    def list_folder(self, folder: str) -> dict[str, int]:
        """``GET .../mlflow-artifacts/artifacts?path=<root>/<folder>``."""
        where = "/".join(part for part in (self.root, folder) if part)
        resp = self.transport.send_bytes(
            "GET", f"{ARTIFACTS_API}?path={quote(where, safe='/')}", should_retry=_retry_artifacts
        )
        found: dict[str, int] = {}
        for item in resp.json().get("files") or []:
            if isinstance(item, Mapping) and not item.get("is_dir") and item.get("file_size") is not None:
                name = posixpath.basename(str(item.get("path", "")))
                found[posixpath.join(folder, name)] = int(item["file_size"])
        return found

    def delete(self, path: str) -> None:
        with contextlib.suppress(NotFound):  # already gone: the goal is reached
            self.transport.send_bytes("DELETE", self._path(path), should_retry=_retry_artifacts)


def _once(exc: Exception) -> tuple[bool, float | None]:
    return False, None


def _retry_artifacts(exc: Exception) -> tuple[bool, float | None]:
    """As any idempotent call, but a server without ``--serve-artifacts`` (503 every time) is not waited for."""
    from pulumi_mlflow_runs.core.transport import retry_idempotent

    if _not_serving(exc):
        return False, None
    return retry_idempotent(exc)


def _not_serving(exc: BaseException) -> bool:
    """The 503 of a server started with ``--no-serve-artifacts``: it answers so every time."""
    return isinstance(exc, ServiceUnavailable) and "serve-artifacts" in exc.message


class LocalStore(Store):
    """``file:`` roots (and plain absolute paths): a folder the provider host writes itself."""

    def __init__(self, uri: str, root: Path) -> None:
        self.uri = uri
        self.root = root

    def put(self, path: str, source: Source) -> FileDigest:
        target = self.root / path
        body = HashingBody(source)
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

    def stat(self, paths: Iterable[str]) -> dict[str, FileDigest | None] | None:
        """``os.stat`` per file; files up to ``SMALL_FILE_BYTES`` are hashed too (a same-size edit shows)."""
        found: dict[str, FileDigest | None] = {}
        for path in paths:
            target = self.root / path
            try:
                size = target.stat().st_size if target.is_file() else None
                found[path] = None if size is None else {"size": size}
                if size is not None and size <= SMALL_FILE_BYTES:
                    found[path] = {"size": size, "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}
            except OSError:
                found[path] = None  # unreadable is as good as gone: the next up writes it again
        return found

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


def unsupported_root(uri: str, why: str) -> InputError:
    return InputError(
        PROP,
        f"cannot upload to the run's artifact root {uri!r}: {why}. Supported are the tracking server's "
        "proxied artifacts (mlflow-artifacts:, `mlflow server --serve-artifacts`), file: roots the "
        "provider host can write, S3, GCS and Azure roots (s3://, gs://, wasbs://, abfss://), and Databricks "
        "runs' own roots (dbfs:/databricks/mlflow-tracking/...); "
        "create the run in an experiment whose artifact_location is one of those, or leave `artifacts` "
        "out and log the files with MLflow's client",
    )
