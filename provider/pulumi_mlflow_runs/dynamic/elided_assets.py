"""Assets the engine sends without their contents, as the SDK's dynamic host must see them.

The engine hands Diff (and Read's stored inputs) each asset as its signature alone. The SDK's host cannot
deserialize that form, and it hands the provider neither the request's URN nor Check's result, so this
front door teaches its deserializer the placeholder (``Elided``) and keeps what Check saw per resource.

An empty text asset is that form always (the engine leaves an empty text out), and the host reads a
request before it loads this provider, so the program sends it as ``EMPTY_FILE`` instead (``sendable``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pulumi

from pulumi_mlflow_runs.core.artifacts.files import EMPTY_FILE, holds_elided, signature_only

_CONTENT_FIELDS = ("path", "text", "uri", "assets")
_patch_lock = threading.Lock()


def tolerate_elided_assets() -> None:
    """Let the SDK's ``deserialize_properties`` read a signature-only asset or archive as ``Elided`` (as the
    empty text where its hash is that of nothing: how the engine sends ``StringAsset("")``).

    Only values it would otherwise reject change: everything it reads today reads the same.
    """
    from pulumi.runtime import rpc

    with _patch_lock:
        if getattr(rpc.deserialize_properties, "_tolerates_elided", False):
            return
        original = rpc.deserialize_properties
        kinds = {rpc._special_asset_sig: "asset", rpc._special_archive_sig: "archive"}

        def deserialize_properties(props_struct: Any, *args: Any, **kwargs: Any) -> Any:
            # ``in`` first: indexing a protobuf Struct by a missing key adds that key.
            if rpc._special_sig_key in props_struct and not any(f in props_struct for f in _CONTENT_FIELDS):
                kind = kinds.get(props_struct[rpc._special_sig_key])
                if kind is not None:
                    return signature_only(kind, dict(props_struct.items()).get("hash"))
            return original(props_struct, *args, **kwargs)

        deserialize_properties._tolerates_elided = True  # type: ignore[attr-defined]
        rpc.deserialize_properties = deserialize_properties


_CHECKED: dict[str, Any] = {}
_CHECKED_LOCK = threading.Lock()


def remember_checked(urn: str | None, artifacts: Any) -> None:
    """Keep the assets Check saw for ``urn``: the engine's Diff request leaves their contents out."""
    if urn:
        with _CHECKED_LOCK:
            _CHECKED[urn] = artifacts


def as_checked(urn: str | None, artifacts: Any) -> tuple[Any, bool]:
    """``(artifacts, known)``: the value itself, or, where the engine elided the assets, what Check saw
    for ``urn``; ``known`` is False when neither is at hand (a Diff after a refresh's Read, say)."""
    if not holds_elided(artifacts):
        return artifacts, True
    with _CHECKED_LOCK:
        if urn in _CHECKED:
            return _CHECKED[urn], True
    return artifacts, False


def sendable(artifacts: Any) -> Any:
    """``artifacts`` with each empty ``StringAsset`` as ``EMPTY_FILE``; an AssetArchive's empty member moves out
    to the path it lands on (the engine takes no plain value inside an archive). A file still to come is
    looked at once it resolves, each on its own, so a preview still shows which files it knows."""
    if _pending(artifacts):
        return pulumi.Output.from_input(artifacts).apply(_sendable_map)
    return _sendable_map(artifacts)


def _pending(value: Any) -> bool:
    return isinstance(value, pulumi.Output) or hasattr(value, "__await__")


def _sendable_map(artifacts: Any) -> Any:
    if not isinstance(artifacts, Mapping):
        return artifacts  # None, or something Check refuses with the property's name
    out: dict[str, Any] = {}
    for path, value in artifacts.items():
        if _pending(value):
            out[path] = pulumi.Output.from_input(value).apply(_sendable_file)
        elif isinstance(value, pulumi.AssetArchive):
            out[path] = _without_empty_members(str(path), value, out)
        else:
            out[path] = _sendable_file(value)
    return out


def _sendable_file(value: Any) -> Any:
    return EMPTY_FILE if isinstance(value, pulumi.StringAsset) and value.text == "" else value


def _without_empty_members(path: str, archive: pulumi.AssetArchive, moved: dict[str, Any]) -> pulumi.AssetArchive:
    before = len(moved)
    kept: dict[str, Any] = {}
    for name, member in archive.assets.items():
        if isinstance(member, pulumi.StringAsset) and member.text == "":
            moved[f"{path}/{name}"] = EMPTY_FILE
        elif isinstance(member, pulumi.AssetArchive):
            kept[name] = _without_empty_members(f"{path}/{name}", member, moved)
        else:
            kept[name] = member
    return archive if len(moved) == before else pulumi.AssetArchive(kept)
