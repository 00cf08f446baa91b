"""Run artifacts declared as Pulumi assets: checking, expanding to files, hashing, what changed.

The ``artifacts`` input maps a path under the run's artifact root to an asset or archive. Everything
here works per *file*: an archive expands to one file per member under its folder, and state records
``{sha256, size, uri}`` per file (never content), so Diff, which sees only old outputs and new inputs,
can tell from hashes alone which files changed.

Check and Diff import this module, so it imports no httpx and no pydantic; the stores that send the
files are in ``stores``, ``databricks`` and ``sync``, imported by a create or update.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import tarfile
import threading
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from pulumi.asset import (
    Archive,
    Asset,
    AssetArchive,
    FileArchive,
    FileAsset,
    RemoteArchive,
    RemoteAsset,
    StringAsset,
)
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN

from pulumi_mlflow_runs.core.errors import InputError

PROP = "artifacts"
CHUNK_BYTES = 1 << 20
"""Files are read, hashed and sent in pieces of this size: memory stays flat whatever their size."""
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".jar")


@dataclass(frozen=True)
class Source:
    """Where one artifact file's bytes come from: a local file, a member of a local zip or tar file, or a
    StringAsset's text."""

    path: str | None = None
    text: str | None = None
    member: str | None = None
    """The member's name inside the zip or tar file at ``path``."""

    def chunks(self) -> Iterator[bytes]:
        """The content in ``CHUNK_BYTES`` pieces, read as it is consumed."""
        if self.text is not None:
            yield self.text.encode("utf-8")
            return
        assert self.path is not None
        with open(self.path, "rb") if self.member is None else _open_member(self.path, self.member) as f:
            while chunk := f.read(CHUNK_BYTES):
                yield chunk

    def size(self) -> int:
        if self.text is not None:
            return len(self.text.encode("utf-8"))
        assert self.path is not None
        if self.member is None:
            return os.stat(self.path).st_size
        if _is_zip(self.path):
            with zipfile.ZipFile(self.path) as z:
                return z.getinfo(self.member).file_size
        with tarfile.open(self.path, "r:*") as t:
            return t.getmember(self.member).size


def _is_zip(path: str) -> bool:
    return path.lower().endswith((".zip", ".jar"))


@contextlib.contextmanager
def _open_member(path: str, member: str) -> Iterator[IO[bytes]]:
    """One member of a zip or tar file, opened for reading (decompressed as it is read)."""
    if _is_zip(path):
        with zipfile.ZipFile(path) as z, z.open(member) as f:
            yield f
        return
    with tarfile.open(path, "r:*") as t:
        extracted = t.extractfile(member)
        if extracted is None:
            raise OSError(f"{member!r} is not a file in {path!r}")
        with extracted:
            yield extracted


def _archive_members(path: str) -> list[str]:
    """The file members of a zip or tar file (folders, links and devices left out)."""
    if _is_zip(path):
        with zipfile.ZipFile(path) as z:
            return [info.filename for info in z.infolist() if not info.is_dir()]
    with tarfile.open(path, "r:*") as t:
        return [m.name for m in t.getmembers() if m.isfile()]


FileDigest = dict[str, Any]
"""``{"sha256": hex, "size": bytes}``, plus ``"uri"`` once stored: one file's entry in ``artifact_files``."""


# ---- what the engine hides from Diff ------------------------------------------------------------------


class Elided:
    """An asset or archive as the engine sends it to Diff (its signature alone) or in Read's stored inputs
    (signature and hash): no path, text or member assets.

    The SDK's dynamic host cannot read that form (``AssertionError: Invalid asset encountered``), so the
    dynamic front door makes it read as this placeholder (``dynamic.elided_assets``); the native door reads
    it so itself, keeping the engine's ``hash`` of the contents. Checking treats it as unknown.
    """

    def __init__(self, kind: str, hash: str | None = None) -> None:
        self.kind = kind
        self.hash = hash

    def __repr__(self) -> str:
        """With the hash: two of them compare (``canonical``) as the contents they stand for do."""
        return f"Elided({self.kind}, {self.hash})"


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
"""The engine's hash of an empty text asset. It sends ``StringAsset("")`` as its signature and this hash
alone (a text is left out when empty), and takes that form for the empty text itself (``Asset.IsText``)."""


EMPTY_FILE = ""
"""An empty file as the dynamic door's program sends it (``dynamic.elided_assets.sendable``): a
``StringAsset("")`` reaches the engine as its hash alone, which the SDK's dynamic host cannot read before
it has loaded this provider."""


def signature_only(kind: str, hash: str | None) -> Elided | StringAsset:
    """An asset or archive the engine sent without contents: the empty text where its hash says so (the
    engine's own rule), else the placeholder."""
    if kind == "asset" and hash == EMPTY_SHA256:
        return StringAsset("")
    return Elided(kind, hash)


def holds_elided(value: Any) -> bool:
    if isinstance(value, Elided):
        return True
    if isinstance(value, Mapping):
        return any(holds_elided(v) for v in value.values())
    return False


# ---- check and expand --------------------------------------------------------------------------------


def _unknown(value: Any) -> bool:
    return isinstance(value, Unknown) or (isinstance(value, str) and value == UNKNOWN)


def _bad_key(key: Any) -> str | None:
    """Why ``key`` cannot be a path under the run's artifact root, or None."""
    if not isinstance(key, str) or not key:
        return "must be a non-empty path relative to the run's artifact root"
    if "\\" in key or "\0" in key:
        return "must use '/' between folders and hold no backslash or NUL"
    if key.startswith("/"):
        return "must be relative to the run's artifact root, not absolute"
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return f"must not hold '..', '.' or empty segments (it would land at {posixpath.normpath(key)!r})"
    return None


def _kind(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


class _Expander:
    """Walks the declared assets into ``{artifact path: Source}``, collecting ``(prop, reason)`` failures."""

    def __init__(self) -> None:
        self.files: dict[str, Source] = {}
        self.origin: dict[str, str] = {}
        self.failures: list[tuple[str, str]] = []
        self.unknown = False

    def fail(self, path: str, reason: str) -> None:
        self.failures.append((f"{PROP}.{path}", reason))

    def add(self, path: str, source: Source, declared: str) -> None:
        if path in self.files:
            self.fail(declared, f"lands on {path!r}, which {self.origin[path]!r} also writes: give each file one path")
            return
        self.files[path] = source
        self.origin[path] = declared

    def value(self, path: str, value: Any, declared: str) -> None:
        """One declared asset or archive (``declared`` names the ``artifacts`` key it came from)."""
        if _unknown(value):
            self.unknown = True
        elif isinstance(value, FileAsset):
            self.file_asset(path, value.path, declared)
        elif isinstance(value, StringAsset):
            text: Any = value.text  # typed str, but a preview may hand an unknown
            if _unknown(text):
                self.unknown = True
            elif not isinstance(text, str):
                self.fail(declared, f"StringAsset text must be a string, got {_kind(text)}")
            else:
                self.add(path, Source(text=text), declared)
        elif isinstance(value, FileArchive):
            self.folder(path, value.path, declared)
        elif isinstance(value, AssetArchive):
            self.asset_archive(path, value.assets, declared)
        elif isinstance(value, (RemoteAsset, RemoteArchive)):
            self.fail(
                declared,
                f"{type(value).__name__} ({value.uri}) is not supported yet: download it in the program and "
                "declare a FileAsset or FileArchive of the local copy",
            )
        elif isinstance(value, Elided):
            self.unknown = True
        elif isinstance(value, str) and value == EMPTY_FILE:
            self.add(path, Source(text=""), declared)
        elif isinstance(value, (Asset, Archive)):
            self.fail(declared, f"{type(value).__name__} is not supported (use FileAsset, StringAsset, FileArchive)")
        else:
            self.fail(
                declared,
                f"must be a pulumi.FileAsset, StringAsset, FileArchive or AssetArchive, got {_kind(value)}",
            )

    def file_asset(self, path: str, local: Any, declared: str) -> None:
        if _unknown(local):
            self.unknown = True
            return
        if not isinstance(local, str) or not local:
            self.fail(declared, f"FileAsset path must be a non-empty string, got {_kind(local)}")
        elif not os.path.isfile(local):
            what = "is a folder (use a FileArchive for a folder)" if os.path.isdir(local) else "does not exist"
            self.fail(
                declared, f"FileAsset {local!r} {what} (a relative path is resolved in the folder pulumi runs in)"
            )
        else:
            self.add(path, Source(path=os.path.abspath(local)), declared)

    def folder(self, path: str, local: Any, declared: str) -> None:
        if _unknown(local):
            self.unknown = True
            return
        if not isinstance(local, str) or not local:
            self.fail(declared, f"FileArchive path must be a non-empty string, got {_kind(local)}")
            return
        if os.path.isfile(local):
            if local.lower().endswith(_ARCHIVE_SUFFIXES):
                self.archive_file(path, local, declared)
            else:
                self.fail(declared, f"FileArchive {local!r} is a file but not a zip or tar file: declare a FileAsset")
            return
        if not os.path.isdir(local):
            self.fail(
                declared,
                f"FileArchive {local!r} does not exist (a relative path is resolved in the folder pulumi runs in)",
            )
            return
        root = os.path.abspath(local)
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                full = os.path.join(folder, name)
                if not os.path.isfile(full):
                    continue  # sockets, broken links: nothing to upload
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                self.add(f"{path}/{rel}", Source(path=full), declared)

    def archive_file(self, path: str, local: str, declared: str) -> None:
        """A zip or tar file: one artifact per file member, under ``path``."""
        try:
            members = _archive_members(local)
        except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as exc:
            self.fail(declared, f"FileArchive {local!r} cannot be read as a zip or tar file ({exc})")
            return
        full = os.path.abspath(local)
        for name in members:
            clean = name
            while clean.startswith("./"):
                clean = clean[2:]
            problem = _bad_key(clean)
            if problem is not None:
                self.fail(declared, f"FileArchive {local!r}: member {name!r} {problem}")
                continue
            self.add(f"{path}/{clean}", Source(path=full, member=name), declared)

    def asset_archive(self, path: str, assets: Any, declared: str) -> None:
        if _unknown(assets):
            self.unknown = True
            return
        if not isinstance(assets, Mapping):
            self.fail(declared, f"AssetArchive must hold a map of name to asset, got {_kind(assets)}")
            return
        for name, member in assets.items():
            problem = _bad_key(name)
            if problem is not None:
                self.fail(f"{declared}/{name}", f"AssetArchive member name {problem}")
                continue
            self.value(f"{path}/{name}", member, declared)

    def folders_clash(self) -> None:
        """A file cannot also be a folder of another file (``a`` and ``a/b``)."""
        names = set(self.files)
        for path in sorted(names):
            head = path
            while "/" in head:
                head = head.rsplit("/", 1)[0]
                if head in names:
                    self.fail(
                        self.origin[path], f"puts {path!r} under {head!r}, which {self.origin[head]!r} writes as a file"
                    )
                    break


def _expand(artifacts: Any) -> _Expander:
    e = _Expander()
    if _unknown(artifacts):
        e.unknown = True
    elif not isinstance(artifacts, Mapping):
        e.failures.append((PROP, f"must be a map of artifact path to asset or archive, got {_kind(artifacts)}"))
    else:
        for key, value in sorted(artifacts.items(), key=lambda item: str(item[0])):  # same order, same messages
            problem = _bad_key(key)
            if problem is not None:
                e.failures.append((f"{PROP}.{key}", f"path {problem}"))
                continue
            e.value(key, value, key)
        e.folders_clash()
    return e


def expand(artifacts: Any) -> tuple[dict[str, Source], list[tuple[str, str]], bool]:
    """``(files by artifact path, failures, unknown)`` for the declared ``artifacts`` map.

    ``unknown`` is True when part of it is not known yet (a preview): the files are then incomplete.
    """
    e = _expand(artifacts)
    return e.files, e.failures, e.unknown


def check_artifacts(artifacts: Any) -> list[tuple[str, str]]:
    """Check's failures for the ``artifacts`` input (each names ``artifacts.<path>`` and the problem).

    Check hashes every file too: an unreadable one fails here, before anything is sent, and Diff, which
    follows in the same provider host, finds the hashes made (``digest`` keeps them per file version).
    """
    e = _expand(artifacts)
    for path, source in e.files.items():
        try:
            digest(source)
        except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as exc:
            what = source.path if source.member is None else f"{source.member} in {source.path}"
            e.fail(e.origin[path], f"cannot read {what!r} ({getattr(exc, 'strerror', None) or exc})")
    return e.failures


# ---- hashing ------------------------------------------------------------------------------------------

_DIGESTS: dict[tuple[str, str | None, int, int, int, int], FileDigest] = {}
_DIGESTS_LOCK = threading.Lock()


def digest(source: Source) -> FileDigest:
    """sha256 and size, streamed; a file unchanged since it was last hashed here (same inode, size and
    mtime) is not read again, so Diff then Update in one host reads each file once."""
    if source.text is not None:
        data = source.text.encode("utf-8")
        return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert source.path is not None
    st = os.stat(source.path)
    key = (source.path, source.member, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(key)
    if known is not None:
        return dict(known)
    h = hashlib.sha256()
    size = 0
    for chunk in source.chunks():
        h.update(chunk)
        size += len(chunk)
    found = {"sha256": h.hexdigest(), "size": size}
    with _DIGESTS_LOCK:
        _DIGESTS[key] = found
    return dict(found)


@dataclass(frozen=True)
class ArtifactChanges:
    """What takes the stored files (``artifact_files`` in state) to the declared ones."""

    upload: dict[str, Source]
    delete: tuple[str, ...]
    keep: dict[str, FileDigest]
    """Stored entries that stay as they are."""

    @property
    def any(self) -> bool:
        return bool(self.upload or self.delete)


def changes(old_files: Mapping[str, Any] | None, declared: Any) -> ArtifactChanges:
    """Files whose content differs from (or is missing in) ``old_files``, and stored files no longer declared.

    Raises ``InputError`` naming ``artifacts.<path>`` if the declared files cannot be read.
    """
    files, failures, unknown = expand(declared if declared is not None else {})
    if failures:
        raise InputError(*failures[0])
    if unknown:
        raise InputError(PROP, "is not known yet")
    old = dict(old_files or {})
    upload: dict[str, Source] = {}
    keep: dict[str, FileDigest] = {}
    for path, source in files.items():
        was = old.get(path)
        try:
            now = digest(source)
        except OSError as exc:
            raise InputError(f"{PROP}.{path}", f"cannot read {source.path!r} ({exc.strerror or exc})") from None
        # A drifted entry (``sha256`` None, see ``mark_drift``) matches no hash: its file is sent again.
        if isinstance(was, Mapping) and was.get("sha256") == now["sha256"] and stored_size(was) == now["size"]:
            keep[path] = dict(was)
        else:
            upload[path] = source
    return ArtifactChanges(upload, tuple(sorted(set(old) - set(files))), keep)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def stored_size(entry: Any) -> int | None:
    """The ``size`` of an ``artifact_files`` entry (the engine hands numbers back as floats), or None."""
    return _int(entry.get("size")) if isinstance(entry, Mapping) else None


def drifted(files: Mapping[str, Any] | None) -> bool:
    """True if a refresh found a stored file missing or changed (an entry whose ``sha256`` is None)."""
    return any(isinstance(entry, Mapping) and entry.get("sha256") is None for entry in (files or {}).values())


def mark_drift(files: Mapping[str, Any], found: Mapping[str, FileDigest | None]) -> dict[str, Any]:
    """``artifact_files`` as a refresh leaves them: an entry whose file ``found`` says is gone, or holds
    another size (or, where the store hashed it, another sha256), gets ``sha256: None`` and the size found
    (None when gone), keeping its ``uri``; the rest stay as they were. The SDK leaves None values out, so
    the state holds such an entry without ``sha256`` (and without ``size`` when gone). Same size is taken
    as unchanged where the store gives no hash: listing sizes is cheap, reading every file back is not."""
    out: dict[str, Any] = {}
    for path, entry in files.items():
        if path not in found or not isinstance(entry, Mapping):
            out[path] = entry  # not looked at
            continue
        now = found[path]
        if now is None:
            out[path] = {**entry, "sha256": None, "size": None}
            continue
        same = now["size"] == stored_size(entry) and now.get("sha256", entry.get("sha256")) == entry.get("sha256")
        # Once marked, an entry stays marked: only an upload records a hash again.
        out[path] = (
            dict(entry) if same and entry.get("sha256") is not None else {**entry, "sha256": None, "size": now["size"]}
        )
    return out


def differs(old_files: Mapping[str, Any] | None, declared: Any) -> bool:
    """Diff's question: would an update upload or delete anything? (Unreadable or unknown: yes.)"""
    if declared is None and not old_files:
        return False
    try:
        return changes(old_files, declared).any
    except InputError:
        return True
