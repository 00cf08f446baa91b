"""Connection settings and their rules: light enough for Configure and Check, which load no HTTP client."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ALLOW_HTTP_ENV = "PULUMI_MLFLOW_RUNS_ALLOW_HTTP"
"""Set to ``1`` to accept plain ``http://`` for a host that is not loopback."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)


def validate_deployment_name(name: str) -> str | None:
    """Return the problem with ``name``, or None."""
    if not _DNS_LABEL.match(name):
        return "must be a DNS label: 1-63 letters, digits or '-', not starting or ending with '-'"
    return None


def validate_host(url: str, *, env: Mapping[str, str] | None = None) -> str | None:
    """Return the problem with a host URL, or None."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        _ = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not hostname:
        return "must be an absolute http(s) URL such as https://example.cloud.databricks.com"
    if parts.username is not None or parts.password is not None:
        return "must not carry user info (user:password@); give credentials through a token setting"
    if parts.query or parts.fragment:
        return "must not have a query string or a fragment"
    if parts.scheme == "http" and not _is_loopback(hostname):
        allowed = (env if env is not None else os.environ).get(ALLOW_HTTP_ENV, "") in ("1", "true", "yes")
        if not allowed:
            return f"uses plain http to a host that is not loopback; use https, or set {ALLOW_HTTP_ENV}=1 to allow it"
    return None


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


class SecretStr:
    """A string that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a credential must not be pickled")


@dataclass(frozen=True)
class StackConfig:
    """What ``configure`` read from the stack: the keys the Pulumi Databricks provider uses."""

    host: str | None = None
    token: SecretStr | None = field(default=None, repr=False)
