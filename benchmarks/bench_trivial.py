"""The baseline: a dynamic provider that does nothing (echoes its inputs) and imports nothing beyond the SDK.

It measures cold start, and the host's own cost of (de)serializing a given set of properties (the "floor").

The provider host imports this module when it unpickles the provider, so it must stay importable on its
own (the benchmark puts ``benchmarks/`` on the host's PYTHONPATH) and import nothing else of ours.
"""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import CheckResult, CreateResult, DiffResult, ResourceProvider, UpdateResult


class TrivialProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [])

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult("trivial", props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(news)
