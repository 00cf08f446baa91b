"""Direct artifact roots on object stores (``s3://``, ``gs://``, ``wasbs://``, ``abfss://``): the roots of an
MLflow server run with ``--default-artifact-root <cloud URL> --no-serve-artifacts``, written straight to the
bucket as MLflow's own client does.

Through ``obstore`` (the ``object-stores`` extra): one library, Rust-backed (the ``object_store`` crate that
Apache Arrow and Delta Lake use), for S3, GCS and Azure alike, with streaming multipart uploads, its own
retries of every request, listing and deletes, and no boto3 or cloud SDK to import. The cloud SDKs MLflow uses
are three libraries, one per cloud, each slow to import (boto3 alone takes about half a second); hand-written
signing is what the issue rules out. It is imported only when a run's root is on such a store, so Check, Diff
and a preview never load it. How each store is reached (endpoint, credentials) is ``cloud_access``'s part.

Each file is hashed as it goes out (``HashingBody``): a file up to ``PART_BYTES`` in one ``PUT``, a larger one
in a multipart upload of ``PART_BYTES`` parts, at most ``PARTS_AT_ONCE`` in flight, so memory stays a few parts
per file whatever its size. An object ``PUT`` (and a part's) replaces what is at the key: sending it again
after a lost answer leaves one object, so obstore's retries (within the provider's retry deadline) are safe.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pulumi_mlflow_runs.core.artifacts.files import PROP, FileDigest, Source
from pulumi_mlflow_runs.core.artifacts.stores import HashingBody, Store
from pulumi_mlflow_runs.core.errors import InputError

if TYPE_CHECKING:
    from obstore.store import ObjectStore as Backend

PART_BYTES = 8 << 20
"""Multipart part size (S3 takes parts of 5 MiB to 5 GiB, up to 10,000 parts: files up to 78 GiB here)."""
PARTS_AT_ONCE = 2
"""Parts of one file in flight at once: with ``UPLOAD_WORKERS`` files, at most ~100 MiB of parts in memory."""


@dataclass(frozen=True)
class Reach:
    """How the provider reaches one store, for messages: never a credential, only where each setting came from."""

    kind: str
    """``S3``, ``GCS``, ``Azure Blob``, ``ADLS Gen2``."""
    endpoint: str
    """The service URL requests go to."""
    endpoint_from: str
    """Which setting chose it (``env MLFLOW_S3_ENDPOINT_URL``, ``stack config 'mlflow-runs:s3EndpointUrl'``, or
    ``the default``)."""
    credentials_from: str
    """Which setting gave the credentials (``env AWS_ACCESS_KEY_ID``, a profile, the machine's role...)."""
    secrets: tuple[str, ...] = ()
    """Credential texts that must never appear in a message (scrubbed from the library's errors)."""
    trust: str = "trust its CA on the machine that runs the provider"
    """How to make this store's TLS certificate verify (S3: ``AWS_CA_BUNDLE``)."""


class ObjectStoreArtifacts(Store):
    """A run's artifact root on S3, GCS or Azure, through an ``obstore`` store whose prefix is the root."""

    def __init__(self, uri: str, backend: Backend, reach: Reach) -> None:
        self.uri = uri
        self.backend = backend
        self.reach = reach

    def put(self, path: str, source: Source) -> FileDigest:
        import obstore

        size = source.size()
        body = HashingBody(source)
        with self._explained(path):
            if size <= PART_BYTES:
                obstore.put(self.backend, path, b"".join(body), use_multipart=False)
            else:
                obstore.put(self.backend, path, iter(body), chunk_size=PART_BYTES, max_concurrency=PARTS_AT_ONCE)
        return body.whole(path, size)

    def delete(self, path: str) -> None:
        import obstore

        with self._explained(path), contextlib.suppress(FileNotFoundError):  # already gone: the goal is reached
            obstore.delete(self.backend, path)

    def list_folder(self, folder: str) -> dict[str, int]:
        import obstore

        with self._explained(folder or "."):
            found = obstore.list_with_delimiter(self.backend, folder or None)
        return {str(item["path"]): int(item["size"]) for item in found["objects"]}

    @contextlib.contextmanager
    def _explained(self, path: str) -> Iterator[None]:
        """The library's error as an ``InputError`` naming ``artifacts.<path>`` and the setting to look at."""
        try:
            yield
        except Exception as exc:
            # obstore raises its own errors, and builtin ones for some (a 404 is a FileNotFoundError); a local
            # file that cannot be read (an OSError of the upload's source) is left to the caller, which names it.
            if type(exc).__module__.startswith("obstore") or _LIBRARY_SAYS.search(str(exc)):
                raise self._error(path, exc) from None
            raise

    def _error(self, path: str, exc: BaseException) -> InputError:
        return InputError(f"{PROP}.{path}", explain(str(exc), self.uri, self.reach))


_LIBRARY_SAYS = re.compile(r"Error performing|Object at location|store: \"")
_STATUS = re.compile(r"status code: (\d{3})")
_TAG = re.compile(r"<(Code|Message)>([^<]{0,300})</\1>")
_CERT = re.compile(r"InvalidCertificate\(\s*(\w+)")
_QUERY = re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']*")


def explain(raw: str, uri: str, reach: Reach) -> str:
    """What went wrong, what the store said, and which setting to look at; no credential, no signed query."""
    first = scrub(raw.split("\n\nDebug source", 1)[0].split("\n", 1)[0], reach.secrets)
    said = dict(_TAG.findall(raw))
    status = _STATUS.search(raw)
    code = int(status.group(1)) if status else None
    answer = f"{reach.kind} answered {code} {said.get('Code', '')}: {said.get('Message', '')}".rstrip(": ")
    where = f"the run's artifact root {uri}"
    endpoint = f"{reach.endpoint} (from {reach.endpoint_from})"
    if code in (401, 403):
        why = (
            f"{reach.kind} refused the credentials for {where} ({answer}); they come from {reach.credentials_from}: "
            "check that they are valid and may write there"
        )
    elif code == 404 or said.get("Code") in ("NoSuchBucket", "ContainerNotFound"):
        why = (
            f"the bucket or container of {where} does not exist at {endpoint} ({answer}); create it, or point the "
            "endpoint setting at the service that holds it"
        )
    elif code is None and "InvalidCertificate" in raw:
        found = _CERT.search(raw)
        why = (
            f"the TLS certificate of {reach.kind} at {endpoint} does not verify "
            f"({found.group(1) if found else 'invalid'}) for {where}: {reach.trust}"
        )
    elif code is None and ("error sending request" in raw or "Connect" in raw or "dns error" in raw):
        why = (
            f"cannot reach {reach.kind} at {endpoint} for {where} within the retry deadline ({first}); check that "
            "setting and the network"
        )
    else:
        why = f"{reach.kind} failed for {where} at {endpoint}: {answer if code else first}"
    return scrub(why, reach.secrets)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` without any URL query (a SAS token, a signature) and without any of ``secrets``."""
    text = _QUERY.sub(r"\1?…", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
