"""Property values on the wire (``google.protobuf.Struct``) and back, as the engine speaks them to a plugin.

Our own reader rather than the SDK's ``deserialize_properties``: the engine sends assets without their
contents to Diff, Read and Delete (only their hash), which the SDK cannot read, and secrets arrive
wrapped (the plugin accepts them) so that the outputs derived from a secret input can be marked secret
too. Numbers arrive as floats, as in the dynamic door; ``run_spec`` turns whole numbers back into ints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import struct_pb2
from pulumi.asset import AssetArchive, FileArchive, FileAsset, RemoteArchive, RemoteAsset, StringAsset

from pulumi_mlflow_runs.core.artifacts.files import Elided, Source, digest, signature_only

SIG = "4dabf18193072939515e22adb298388d"
"""The key of a special value's signature (these are the values of `pulumi/runtime/rpc.py` and of the engine)."""
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 - the marker of a secret value, not one
ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def _read(raw: Any, secret: list[bool]) -> Any:
    """A value as ``Struct.items()`` gives it (nested ``Struct`` and ``ListValue`` still messages) in plain
    Python: the well-known types' own accessors, which cost a third less than reading each ``Value``."""
    kind = type(raw)
    if kind is struct_pb2.Struct:
        if SIG in raw.fields:
            fields = dict(raw.items())
            sig = fields[SIG]
            if sig == SECRET_SIG:
                secret[0] = True
                return _read(fields.get("value"), secret)
            if sig == ASSET_SIG:
                return _asset(fields)
            if sig == ARCHIVE_SIG:
                return _archive(fields, secret)
        return {k: _read(v, secret) for k, v in raw.items()}
    if kind is struct_pb2.ListValue:
        return [_read(v, secret) for v in raw]
    return raw


class HashedFileAsset(FileAsset):
    """A file asset with the engine's hash of its contents, where the engine sent one (Check may then know a
    file is unchanged without reading it)."""

    engine_hash: str | None = None


def same_engine_hash(old: Any, new: Any) -> bool:
    """The engine's word that a file is unchanged (it need not be read again): the same hash of both assets."""
    new_hash = getattr(new, "engine_hash", None)
    return new_hash is not None and new_hash == getattr(old, "engine_hash", None)


def _asset(fields: Mapping[str, Any]) -> Any:
    if "path" in fields:
        asset = HashedFileAsset(str(fields["path"]))
        asset.engine_hash = str(fields["hash"]) if fields.get("hash") else None
        return asset
    if "text" in fields:
        return StringAsset(str(fields["text"]))
    if "uri" in fields:
        return RemoteAsset(str(fields["uri"]))
    return signature_only("asset", fields.get("hash"))


def _archive(fields: Mapping[str, Any], secret: list[bool]) -> Any:
    if "assets" in fields:
        return AssetArchive(_read(fields["assets"], secret))
    if "path" in fields:
        return FileArchive(str(fields["path"]))
    if "uri" in fields:
        return RemoteArchive(str(fields["uri"]))
    return Elided("archive", fields.get("hash"))


def decode(struct: struct_pb2.Struct | None) -> tuple[dict[str, Any], set[str]]:
    """``(properties, the top-level keys whose value is or holds a secret)``; nulls are left out."""
    out: dict[str, Any] = {}
    secrets: set[str] = set()
    if struct is None:
        return out, secrets
    for key, value in struct.items():
        flag = [False]
        plain = _read(value, flag)
        if plain is not None:
            out[key] = plain
        if flag[0]:
            secrets.add(key)
    return out, secrets


def _value(value: Any) -> Any:
    """A JSON-like value for a Struct: ints and non-finite floats as the engine holds them."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):  # state is JSON: non-finite values as MLflow's own strings
        return (
            value
            if math.isfinite(value)
            else ("NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity")
        )
    if isinstance(value, Mapping):
        return {str(k): _value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_value(v) for v in value]
    if isinstance(value, StringAsset) and isinstance(value.text, str):  # read back from stored inputs (the empty one)
        return {SIG: ASSET_SIG, "hash": digest(Source(text=value.text))["sha256"], "text": value.text}
    raise TypeError(f"cannot send a {type(value).__name__} to the engine")


def encode(props: Mapping[str, Any], secret: Iterable[str] = ()) -> struct_pb2.Struct:
    """A Struct of ``props`` (nulls left out), the values of ``secret`` keys wrapped as secrets."""
    marked = set(secret)
    out = struct_pb2.Struct()
    for key, value in props.items():
        if value is None:
            continue
        plain = _value(value)
        out[key] = {SIG: SECRET_SIG, "value": plain} if key in marked else plain
    return out


def merge(into: struct_pb2.Struct, added: struct_pb2.Struct, checked: Mapping[str, str]) -> None:
    """``added`` written into ``into``, objects merged key by key at any depth: Check adds a value inside a table's
    entry (its metrics file's summary) beside what the program sent, which is kept as sent (assets cannot be
    encoded again). A key of ``checked`` (a value Check read from the input it names) replaces what is there
    whole, and is a secret where that input beside it is one; another value is a secret where ``added`` marks it
    one. Whatever lands inside a secret of ``into`` is secret with it."""
    _merge(into, added, checked, secret=False)


def _secret_inner(value: struct_pb2.Value) -> struct_pb2.Value | None:
    if value.HasField("struct_value"):
        fields = value.struct_value.fields
        if SIG in fields and fields[SIG].string_value == SECRET_SIG:
            return fields["value"]
    return None


def _is_object(value: struct_pb2.Value) -> bool:
    return value.HasField("struct_value") and SIG not in value.struct_value.fields


def _merge(into: struct_pb2.Struct, added: struct_pb2.Struct, checked: Mapping[str, str], *, secret: bool) -> None:
    for key, value in added.fields.items():
        inner = _secret_inner(value)
        marked = secret or inner is not None
        plain = inner if inner is not None else value
        if key in checked:  # as secret as the input it was read from (a table marks every entry's value alike)
            source = into.fields.get(checked[key])
            marked = source is not None and _secret_inner(source) is not None
        place = into.fields.get(key)
        held = _secret_inner(place) if place is not None else None
        if held is not None:  # already a secret where it lands: what goes inside is secret with it
            place, marked = held, False
        if place is not None and key not in checked and _is_object(place) and _is_object(plain):
            _merge(place.struct_value, plain.struct_value, checked, secret=marked)
            continue
        target = place if place is not None else into.fields[key]
        if marked:
            target.struct_value.Clear()
            target.struct_value.fields[SIG].string_value = SECRET_SIG
            target.struct_value.fields["value"].CopyFrom(plain)
        else:
            target.CopyFrom(plain)
