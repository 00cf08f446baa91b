"""A program may declare thousands of runs: the SDK's provider pickling must not nest without bound.

``serialize_provider`` (pulumi 3.272) wraps a pickle method once more for every dynamic resource and
never unwraps it; unchecked, the ~950th resource of a program fails with RecursionError. The resources
put the original back before each serialization (``_provider_base.fresh_pickler``).
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator

import pulumi
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from pulumi_mlflow_runs import ExperimentRun, ExperimentRunProvider

from support.engine import close_loop


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        return {}, None


@pytest.fixture
def mocked() -> Iterator[None]:
    """The SDK's mocks on an event loop of this test's own: the thread's current loop is whatever an earlier
    test left (``asyncio.run`` leaves none), which depends on the order and the worker tests run in."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.set_mocks(_Mocks(), preview=False)
    try:
        yield None
    finally:
        pulumi.runtime.settings.reset_options()
        asyncio.set_event_loop(None)
        close_loop(loop)


@pulumi.runtime.test
def _program_of(count: int) -> pulumi.Output[int]:
    """Declare ``count`` runs under the SDK's mocks and wait until every one is registered."""
    runs = [ExperimentRun(f"run-{i}", experiment_id="1", params={"i": str(i)}) for i in range(count)]

    def registered(urns: list[str]) -> int:
        assert len(set(urns)) == count
        return len(urns)

    return pulumi.Output.all(*[run.urn for run in runs]).apply(registered)


def test_the_sdk_alone_nests_without_bound() -> None:
    """The bug this works around: without the reset, every serialization adds a level."""
    before = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]
    try:
        serialize_provider(ExperimentRunProvider())
        once = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]
        serialize_provider(ExperimentRunProvider())
        assert pickle._Pickler._batch_setitems is not once  # type: ignore[attr-defined]
    finally:
        pickle._Pickler._batch_setitems = before  # type: ignore[attr-defined]


@pytest.mark.slow
def test_fifteen_hundred_runs_in_one_program(mocked: object) -> None:
    _program_of(1500)
    # one more serialization after all of them still works, and the nesting stayed at one level
    serialize_provider(ExperimentRunProvider())
