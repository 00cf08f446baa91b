"""A credential's text held so that it never prints itself: its own module, so that every settings module
(``settings``, ``artifacts.cloud_settings``) can hold one without importing another."""

from __future__ import annotations

from typing import Any


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
