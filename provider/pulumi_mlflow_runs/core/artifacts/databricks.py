"""Run artifacts on Databricks: ``dbfs:/databricks/mlflow-tracking/<experiment_id>/<run_id>/artifacts`` roots.

That folder is not written through DBFS: as MLflow's own client does (``DatabricksArtifactRepository``), the
provider asks the workspace for a signed URL per file (``POST /api/2.0/mlflow/artifacts/credentials-for-write``
with the path relative to the run's artifact root) and sends the bytes straight to the workspace's cloud
storage with the headers that came with it. The workspace token goes only to the workspace; the signed
URL carries its own authorisation and goes through a separate client that sends no credential
(``TransportPool.storage_client``).

Per credential type, for each file:

- ``AWS_PRESIGNED_URL`` (S3) and ``GCP_SIGNED_URL`` (GCS): one ``PUT`` of the whole file (S3 takes at most
  5 GiB in one ``PUT``; a larger file is refused, where MLflow would use a multipart upload).
- ``AZURE_SAS_URI`` (Blob Storage): one ``Put Blob`` request (``x-ms-blob-type: BlockBlob``), up to 5000 MiB.
  MLflow stages blocks and commits a block list even for small files; one request is the same block blob.
- ``AZURE_ADLS_GEN2_SAS_URI`` (ADLS Gen2), as MLflow does: create the file (``PUT ?resource=file``), append
  the bytes (``PATCH ?action=append&position=0``) and flush them (``PATCH ?action=flush&position=<size>``).
- any other type: refused, naming ``artifacts.<path>`` and the type.

Bodies are streamed in ``CHUNK_BYTES`` pieces with a ``Content-Length`` (never read whole into memory) and
hashed as they go. Every upload is retried within the transport's retry deadline: sending the same bytes to
the same signed URL again is harmless. A 401 or 403 from the storage is how an expired signed URL answers:
the provider asks for a new one and sends again (twice at most, then the refusal is reported).

Deleting is not possible: Databricks offers no API that deletes a run's artifact files (MLflow's own
``DatabricksArtifactRepository.delete_artifacts`` raises "Not implemented yet", and the
``databricks/mlflow-tracking`` folder is closed to the DBFS API). See ``DatabricksArtifactStore.delete``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import httpx

from pulumi_mlflow_runs.core.artifacts.files import PROP, FileDigest, Source
from pulumi_mlflow_runs.core.artifacts.stores import HashingBody, Store, unsupported_root
from pulumi_mlflow_runs.core.errors import ApiError, EndpointNotFound, InputError, MlflowRunsError, map_error
from pulumi_mlflow_runs.core.retries import retry_call
from pulumi_mlflow_runs.core.transport import _retry_after, retry_idempotent, transient_error

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core.client import MlflowApi

log = logging.getLogger("pulumi_mlflow_runs")

TRACKING_ROOT = "/databricks/mlflow-tracking/"
AWS = "AWS_PRESIGNED_URL"
GCP = "GCP_SIGNED_URL"
AZURE_BLOB = "AZURE_SAS_URI"
AZURE_ADLS = "AZURE_ADLS_GEN2_SAS_URI"
SUPPORTED_TYPES = (AWS, AZURE_BLOB, AZURE_ADLS, GCP)
_TYPE_NUMBERS = {1: AZURE_BLOB, 2: AWS, 3: GCP, 4: AZURE_ADLS}
"""``ArtifactCredentialType`` by number, should a server send the enum's number instead of its name."""
MAX_SINGLE_PUT = {AWS: 5 << 30, AZURE_BLOB: 5000 << 20}
"""The largest file one request may carry: S3 ``PutObject`` 5 GiB, Azure ``Put Blob`` 5000 MiB."""
MAX_REFRESHES = 2
"""New signed URLs asked for one file after the storage refused one (401/403: expired)."""


@dataclass(frozen=True)
class Credential:
    """One signed URL for one file, as ``credentials-for-write`` gave it."""

    type: str
    signed_uri: str
    headers: dict[str, str]


class _Expired(Exception):
    """The storage refused the signed URL (401/403): ask for a new one, then send again."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(str(error))
        self.error = error


class _Final(Exception):
    """A failure met while asking for a new signed URL: the workspace call was already retried."""

    def __init__(self, error: MlflowRunsError) -> None:
        super().__init__(str(error))
        self.error = error


def _retry_upload(exc: Exception) -> tuple[bool, float | None]:
    if isinstance(exc, _Expired):
        return True, 0.0  # a new URL is in hand at once: no reason to wait
    if isinstance(exc, _Final):
        return False, None
    return retry_idempotent(exc)


def run_of(uri: str) -> str | None:
    """The run id of a ``dbfs:/databricks/mlflow-tracking/<experiment_id>/<run_id>/...`` run root, or None."""
    parts = urlsplit(uri)
    path = unquote(parts.path)
    if parts.scheme.lower() != "dbfs" or parts.netloc or not path.startswith(TRACKING_ROOT):
        return None
    segments = path[len(TRACKING_ROOT) :].split("/")
    if len(segments) < 2 or not segments[0] or not segments[1]:
        return None
    if segments[1] == "logged_models" or segments[1].startswith("tr-"):
        return None  # a logged model's or a trace's root: not a run's
    return segments[1]


def databricks_store(api: MlflowApi, uri: str) -> DatabricksArtifactStore:
    """The store of a Databricks run's ``dbfs:`` artifact root, or an ``InputError`` naming ``artifacts``."""
    run_id = run_of(uri)
    if run_id is None:
        if urlsplit(uri).netloc:
            why = "a dbfs: root naming a workspace profile cannot be written with this provider's connection"
        else:
            why = (
                "only the runs' own roots under dbfs:/databricks/mlflow-tracking/ can be written (a DBFS folder "
                "or a Unity Catalog volume set as the experiment's artifact_location is not supported yet)"
            )
        raise unsupported_root(uri, why)
    return DatabricksArtifactStore(api, uri, run_id)


class DatabricksArtifactStore(Store):
    """A Databricks run's artifact root, written through signed cloud-storage URLs (see the module's text)."""

    def __init__(self, api: MlflowApi, uri: str, run_id: str) -> None:
        self.api = api
        self.transport = api.transport
        self.uri = uri
        self.run_id = run_id

    # ---- the workspace side ----------------------------------------------------------------------------

    def credential(self, path: str) -> Credential:
        """A signed URL to write ``path`` (relative to the run's artifact root); the call is retried by the
        transport. Raises ``InputError`` naming ``artifacts.<path>`` for an answer this store cannot use."""
        prop = f"{PROP}.{path}"
        try:
            infos = self.api.credentials_for_write(self.run_id, [path])
        except EndpointNotFound:
            raise InputError(
                prop,
                f"the run's artifact root {self.uri!r} is on Databricks, but "
                f"{self.transport.connection.base_url} does not offer Databricks' artifact credentials API "
                "(POST /api/2.0/mlflow/artifacts/credentials-for-write)",
            ) from None
        info = next((i for i in infos if i.get("path") == path), infos[0] if len(infos) == 1 else None)
        if info is None:
            raise InputError(prop, f"Databricks gave no signed URL for {path!r} (got {len(infos)} for other paths)")
        kind = info.get("type")
        kind = _TYPE_NUMBERS.get(kind, kind) if isinstance(kind, int) else kind
        if kind not in SUPPORTED_TYPES:
            raise InputError(
                prop,
                f"Databricks gave a signed URL of type {kind!r}, which this provider cannot upload to (it knows "
                f"{', '.join(SUPPORTED_TYPES)}); upload the file with MLflow's client and leave it out of "
                "`artifacts`",
            )
        uri = info.get("signed_uri")
        if not isinstance(uri, str) or urlsplit(uri).scheme not in ("https", "http"):
            raise InputError(prop, f"Databricks gave no usable signed URL for {path!r} (type {kind})")
        headers = {
            str(h["name"]): str(h.get("value", ""))
            for h in info.get("headers") or []
            if isinstance(h, dict) and h.get("name")
        }
        return Credential(str(kind), uri, headers)

    def listing(self, path: str = "") -> list[dict[str, Any]]:
        """The run's artifact listing under ``path``, as the workspace reports it (one folder level)."""
        return self.api.list_artifacts(self.run_id, path or None)

    def list_folder(self, folder: str) -> dict[str, int]:
        """The run's artifact listing of ``folder`` (it reports paths relative to the run's artifact root)."""
        return {
            str(item.get("path", "")).lstrip("/"): int(item["file_size"])
            for item in self.listing(folder)
            if not item.get("is_dir") and item.get("file_size") is not None
        }

    # ---- the store -------------------------------------------------------------------------------------

    def put(self, path: str, source: Source) -> FileDigest:
        size = source.size()
        body = HashingBody(source)
        current: list[Credential] = [self._usable(self.credential(path), path, size)]
        refreshes = 0

        def attempt() -> None:
            nonlocal refreshes
            if not current:
                try:
                    current.append(self._usable(self.credential(path), path, size))
                except MlflowRunsError as exc:
                    raise _Final(exc) from None
            try:
                self._upload(current[0], path, body, size)
            except _Expired as expired:
                if refreshes >= MAX_REFRESHES:
                    raise expired.error from None
                refreshes += 1
                log.info("artifacts.%s: the storage refused the signed URL (expired?); asking for a new one", path)
                current.clear()
                raise

        try:
            retry_call(attempt, should_retry=_retry_upload, policy=self.transport.policy, clock=self.transport.clock)
        except (_Final, _Expired) as stopped:  # _Expired: the deadline passed before a new URL was tried
            raise stopped.error from None
        return body.whole(path, size)

    def delete(self, path: str) -> None:
        """Keeps the file: Databricks has no API that deletes a run's artifact files.

        A file removed from ``artifacts`` therefore stays in the run's artifact root on Databricks, and leaves
        ``artifact_files`` (which lists the files the program declares): the update succeeds, and declaring
        the path again uploads the declared content over the kept file. To be rid of a file on Databricks,
        replace the run (a new run gets only the declared files).
        """
        log.debug("artifacts.%s: kept in %s (Databricks cannot delete run artifacts)", path, self.uri)

    # ---- the cloud side --------------------------------------------------------------------------------

    @staticmethod
    def _usable(cred: Credential, path: str, size: int) -> Credential:
        limit = MAX_SINGLE_PUT.get(cred.type)
        if limit is not None and size > limit:
            raise InputError(
                f"{PROP}.{path}",
                f"is {size} bytes: uploads of more than {limit} bytes to {cred.type} storage take a multipart "
                "upload, which this provider does not do yet; upload it with MLflow's client",
            )
        return cred

    def _upload(self, cred: Credential, path: str, body: HashingBody, size: int) -> None:
        """One whole upload of the file with ``cred``: one request, or ADLS Gen2's create, append, flush."""
        if cred.type == AZURE_ADLS:
            self._send("PUT", cred, path, query={"resource": "file"})
            if size:
                flush = {"action": "append", "position": "0", "flush": "true"}
                self._send("PATCH", cred, path, query=flush, body=body, size=size)
            else:
                self._send("PATCH", cred, path, query={"action": "flush", "position": "0"})
                list(body)  # nothing to read: the digest of no bytes
            return
        extra = {"x-ms-blob-type": "BlockBlob"} if cred.type == AZURE_BLOB else {}
        self._send("PUT", cred, path, body=body, size=size, extra=extra)

    def _send(
        self,
        method: str,
        cred: Credential,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: HashingBody | None = None,
        size: int = 0,
        extra: dict[str, str] | None = None,
    ) -> None:
        url = _with_query(cred.signed_uri, query) if query else cred.signed_uri
        endpoint = f"{method} {_shown(cred.signed_uri)}"  # never the query: it holds the signature
        headers = {**cred.headers, **(extra or {})}
        content: bytes | Iterator[bytes] = b""
        if body is not None:
            headers["Content-Length"] = str(size)  # no Content-Type: a GCS V2 signature covers it (empty)
            # An empty body is sent as such: S3 answers 501 to a streamed body of no bytes.
            content = iter(body) if size else b"".join(body)
        client = self.transport.storage_client()
        try:
            resp = client.request(method, url, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise transient_error(exc, endpoint, f"cloud storage for artifacts.{path}") from None
        if resp.is_success:
            return
        error = _storage_error(resp, endpoint, path, cred.type)
        if resp.status_code in (401, 403):
            raise _Expired(error)
        raise error


def _storage_error(resp: httpx.Response, endpoint: str, path: str, kind: str) -> ApiError:
    """The storage's refusal as an error naming the file, the storage's own error code and message."""
    code = resp.headers.get("x-ms-error-code") or _xml(resp.text, "Code") or f"HTTP_{resp.status_code}"
    detail = _xml(resp.text, "Message") or resp.text.strip().replace("\n", " ")[:300] or resp.reason_phrase
    message = f"{kind} storage refused artifacts.{path}: {detail}"
    if resp.status_code in (401, 403):
        message += " (a new signed URL was refused too: check the workspace's storage access and the host's clock)"
    retry_after = _retry_after(resp.headers.get("Retry-After"))
    if resp.status_code == 429 or resp.status_code >= 500:
        # by status alone (a storage's codes are not MLflow's): retried, then reported as the storage failing
        found = map_error(status=resp.status_code, error_code="", message=message, endpoint=endpoint)
        return type(found)(
            status=resp.status_code, error_code=code, message=message, endpoint=endpoint, retry_after=retry_after
        )
    # Any other refusal is a plain ApiError: no fix meant for the workspace (its token, its permissions) fits it.
    return ApiError(status=resp.status_code, error_code=code, message=message, endpoint=endpoint)


def _xml(text: str, tag: str) -> str | None:
    """``<Code>…</Code>`` from an S3, GCS or Azure error document, without an XML parser."""
    start = text.find(f"<{tag}>")
    end = text.find(f"</{tag}>", start + 1)
    if start < 0 or end < 0:
        return None
    return text[start + len(tag) + 2 : end].strip()[:300] or None


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(extra)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _shown(url: str) -> str:
    """The signed URL without its query (the signature): what errors and logs may show."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
