"""The retry helper, driven by a fake clock: no test here sleeps."""

from __future__ import annotations

import random
import threading

import pytest

from pulumi_mlflow_runs import RetryPolicy, ServiceUnavailable, SystemClock, TooManyRequests, retry_call
from pulumi_mlflow_runs.core.retries import STOPPED_NOTE

from support.fake_clock import FakeClock


def _busy(retry_after: float | None = None) -> TooManyRequests:
    return TooManyRequests(status=429, error_code="REQUEST_LIMIT_EXCEEDED", message="slow down",
                           endpoint="POST /x", retry_after=retry_after)


def _flaky(failures: list[Exception]):
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if failures:
            raise failures.pop(0)
        return "ok"

    return fn, calls


def _always(exc: Exception):
    return lambda e: (True, getattr(e, "retry_after", None))


def test_backoff_grows_exponentially_without_jitter() -> None:
    clock = FakeClock()
    fn, calls = _flaky([_busy(), _busy(), _busy()])
    policy = RetryPolicy(deadline=100, initial_backoff=1, multiplier=2, jitter=0)
    assert retry_call(fn, should_retry=_always(_busy()), policy=policy, clock=clock) == "ok"
    assert calls["n"] == 4
    assert clock.sleeps == [1, 2, 4]


def test_retry_after_is_honoured_when_longer_than_backoff() -> None:
    clock = FakeClock()
    fn, _ = _flaky([_busy(retry_after=7.0)])
    policy = RetryPolicy(deadline=100, initial_backoff=1, jitter=0)
    retry_call(fn, should_retry=_always(_busy()), policy=policy, clock=clock)
    assert clock.sleeps == [7.0]


def test_retry_after_replaces_the_growing_backoff() -> None:
    """A throttled request waits what the server asks each time, not 1, 2, 4, 8, 16 s."""
    clock = FakeClock()
    fn, calls = _flaky([_busy(retry_after=0.5) for _ in range(6)])
    policy = RetryPolicy(deadline=100, initial_backoff=1, multiplier=2, jitter=0)
    assert retry_call(fn, should_retry=_always(_busy()), policy=policy, clock=clock) == "ok"
    assert calls["n"] == 7
    assert clock.sleeps == [0.5] * 6


def test_retry_after_jitter_only_adds() -> None:
    clock = FakeClock()
    fn, _ = _flaky([_busy(retry_after=2.0) for _ in range(20)])
    policy = RetryPolicy(deadline=1000, jitter=0.5)
    retry_call(fn, should_retry=_always(_busy()), policy=policy, clock=clock, rng=random.Random(3))
    assert all(2.0 <= slept <= 2.2 for slept in clock.sleeps), clock.sleeps


def test_jitter_stays_within_its_fraction() -> None:
    clock = FakeClock()
    fn, _ = _flaky([_busy() for _ in range(5)])
    policy = RetryPolicy(deadline=1000, initial_backoff=1, multiplier=2, jitter=0.5, max_backoff=100)
    retry_call(fn, should_retry=_always(_busy()), policy=policy, clock=clock, rng=random.Random(1))
    for attempt, slept in enumerate(clock.sleeps):
        full = 2**attempt
        assert full * 0.5 <= slept <= full


def test_deadline_stops_retrying_and_reraises_the_last_error_with_a_note() -> None:
    clock = FakeClock()
    fn, calls = _flaky([_busy(retry_after=30.0) for _ in range(10)])
    policy = RetryPolicy(deadline=50, initial_backoff=1, jitter=0)
    with pytest.raises(TooManyRequests) as info:
        retry_call(fn, should_retry=_always(_busy()), policy=policy, clock=clock)
    assert calls["n"] == 2  # one wait of 30 s fits in 50 s, a second would not
    assert clock.now <= 50
    assert any("gave up after 2 attempt(s)" in note for note in info.value.__notes__)


def test_not_retryable_raises_at_once() -> None:
    clock = FakeClock()
    err = ServiceUnavailable(status=503, error_code="HTTP_503", message="down", endpoint="POST /x")
    fn, calls = _flaky([err])
    with pytest.raises(ServiceUnavailable):
        retry_call(fn, should_retry=lambda e: (False, None), policy=RetryPolicy(), clock=clock)
    assert calls["n"] == 1
    assert clock.sleeps == []


def test_a_stop_sends_a_failed_request_no_more() -> None:
    """The provider asked to stop (the engine's Cancel, the plugin's SIGINT): the attempt in flight is the last."""
    clock = FakeClock()
    stop = threading.Event()
    fn, calls = _flaky([_busy(), _busy()])
    policy = RetryPolicy(deadline=100, stop=stop)
    assert retry_call(fn, should_retry=_always(_busy()), policy=policy, clock=clock) == "ok"  # not stopped: retried
    fn, calls = _flaky([_busy(), _busy()])
    stop.set()
    with pytest.raises(TooManyRequests) as info:
        retry_call(fn, should_retry=_always(_busy()), policy=policy, clock=clock)
    assert calls["n"] == 1
    assert any(note.startswith(STOPPED_NOTE) for note in info.value.__notes__)


def test_a_stop_during_the_wait_starts_no_attempt_after_it() -> None:
    stop = threading.Event()

    class StoppedWhileAsleep(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            stop.set()

    clock = StoppedWhileAsleep()
    fn, calls = _flaky([_busy(), _busy()])
    with pytest.raises(TooManyRequests) as info:
        retry_call(fn, should_retry=_always(_busy()), policy=RetryPolicy(deadline=100, stop=stop), clock=clock)
    assert calls["n"] == 1 and len(clock.sleeps) == 1
    assert any(note.startswith(STOPPED_NOTE) for note in info.value.__notes__)


def test_on_the_real_clock_the_wait_is_the_stops() -> None:
    """A call held by a long Retry-After ends when the stop comes, not after the wait."""

    class ComesDuringTheWait(threading.Event):
        waited: float | None = None

        def wait(self, timeout: float | None = None) -> bool:
            self.waited = timeout
            self.set()
            return super().wait(timeout)

    stop = ComesDuringTheWait()
    fn, calls = _flaky([_busy(retry_after=3600.0)])
    with pytest.raises(TooManyRequests):
        retry_call(fn, should_retry=_always(_busy()), policy=RetryPolicy(deadline=7200, stop=stop), clock=SystemClock())
    assert calls["n"] == 1 and stop.waited is not None and stop.waited >= 3600


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), ("", None), (None, None),
     ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],  # a date in the past: go now
)
def test_retry_after_header(header, expected) -> None:
    from pulumi_mlflow_runs.core.transport import _retry_after

    assert _retry_after(header) == expected
