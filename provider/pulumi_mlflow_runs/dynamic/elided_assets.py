"""Assets the engine sends without their contents, as the SDK's dynamic host must see them.

The engine hands Diff (and Read's stored inputs) each asset as its signature alone. The SDK's host cannot
deserialize that form, and it hands the provider neither the request's URN nor Check's result, so this
front door teaches its deserializer the placeholder (``Elided``) and keeps what Check saw per resource.
"""

from __future__ import annotations

import threading
from typing import Any

from pulumi_mlflow_runs.core.artifacts.files import Elided, holds_elided

_CONTENT_FIELDS = ("path", "text", "uri", "assets")
_patch_lock = threading.Lock()


def tolerate_elided_assets() -> None:
    """Let the SDK's ``deserialize_properties`` read a signature-only asset or archive as ``Elided``.

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
                    return Elided(kind)
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
