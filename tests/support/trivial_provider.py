"""A tiny dynamic provider used to prove the DynamicHost harness against the real host."""

from __future__ import annotations

import itertools
from typing import Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

_ids = itertools.count(1)


class EchoProvider(ResourceProvider):
    """Echoes inputs as outputs; records which config keys it saw (never their values)."""

    config_keys: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.config_keys = []

    def configure(self, req: ConfigureRequest) -> None:
        self.config_keys = sorted(req.config._props)  # Config has no public key listing

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure("bad", "bad is not allowed")] if "bad" in news else []
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = {k for k in olds.keys() | news.keys() if k not in ("__provider", "config_keys")}
        changed = sorted(k for k in keys if olds.get(k) != news.get(k))
        return DiffResult(changes=bool(changed), replaces=[k for k in changed if k == "name"])

    def create(self, props: dict[str, Any]) -> CreateResult:
        if "explode" in props:
            raise RuntimeError(f"boom: {props['explode']}")
        return CreateResult(f"echo-{next(_ids)}", {**props, "config_keys": self.config_keys})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if props.get("gone"):
            return ReadResult("", {})
        return ReadResult(id_, props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult({**news, "config_keys": self.config_keys})
