"""What a test does when a tool it needs is missing: skip with the reason, or, under ``CI=true``, fail, so
that CI never passes with a language, the CLI or a server version left untested."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(message: str, tests: str) -> NoReturn:
    """Skip (or fail under CI) with ``message``; ``tests`` names which tests never skip there."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}\n(under CI=true {tests} never skip)", pytrace=False)
    pytest.skip(message)
