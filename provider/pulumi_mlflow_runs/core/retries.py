"""The one retry helper: exponential backoff with jitter, Retry-After honoured, bounded by a deadline, and
cut short once the provider is asked to stop (``RetryPolicy.stop``).

The clock is injected so tests can run a whole retry schedule without sleeping.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pulumi_mlflow_runs.core.errors import ConfigurationError
from pulumi_mlflow_runs.core.settings import STACK_KEYS

T = TypeVar("T")


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying, and how fast to back off."""

    deadline: float = 120.0
    """Seconds from the first attempt after which no new attempt starts."""
    initial_backoff: float = 0.5
    max_backoff: float = 20.0
    multiplier: float = 2.0
    jitter: float = 0.5
    """Fraction of each backoff that is randomised, so that parallel workers do not retry in step."""
    stop: threading.Event | None = field(default=None, compare=False)
    """Set when the provider is asked to stop (the engine's ``Cancel`` after a Ctrl-C, the plugin's SIGINT or
    SIGTERM): from then on a failed request is not sent again, so a call in flight ends after the requests it
    still has to send, each sent once, instead of riding out an outage until the deadline."""


STOPPED_NOTE = "not retried: the provider was asked to stop (Ctrl-C, or a signal to the plugin)"


RETRY_DEADLINE_CONFIG = STACK_KEYS.retry_deadline
RETRY_DEADLINE_ENV = "PULUMI_MLFLOW_RUNS_RETRY_DEADLINE"


def retry_policy(
    config_value: Any, env: Mapping[str, str] | None = None, key: str = RETRY_DEADLINE_CONFIG
) -> RetryPolicy:
    """The retry deadline from stack config (``key``, the door's name for it), else env, else the default
    (seconds, > 0)."""
    env = os.environ if env is None else env
    source = key if config_value is not None else RETRY_DEADLINE_ENV
    raw = config_value if config_value is not None else env.get(RETRY_DEADLINE_ENV)
    if raw is None or raw == "":
        return RetryPolicy()
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise ConfigurationError(f"{source} must be a number of seconds between 0 and 3600, got {raw!r}")
    return RetryPolicy(deadline=seconds)


def retry_call(
    fn: Callable[[], T],
    *,
    should_retry: Callable[[Exception], tuple[bool, float | None]],
    policy: RetryPolicy,
    clock: Clock,
    rng: random.Random | None = None,
) -> T:
    """Call ``fn`` until it succeeds, ``should_retry`` says stop, the deadline would be passed, or the provider
    was asked to stop (``policy.stop``; checked before each new attempt, the wait before it included).

    ``should_retry`` returns ``(retry?, retry_after_seconds_or_None)``. The last error is re-raised
    unchanged (so callers keep catching by type) with a note that says how many attempts were made.
    """
    rand = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    start = clock.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            retry, retry_after = should_retry(exc)
            if not retry:
                raise
            if _stopped(policy, exc, attempt):
                raise
            if retry_after is not None:
                # The server said when: wait that long (a little more, so parallel workers spread out),
                # not the backoff of a server that said nothing, which grows past it after a few tries.
                wait = retry_after * (1.0 + 0.2 * policy.jitter * rand.random())
            else:
                wait = min(policy.max_backoff, policy.initial_backoff * policy.multiplier ** (attempt - 1))
                wait *= 1.0 - policy.jitter * rand.random()
            remaining = policy.deadline - (clock.monotonic() - start)
            if wait > remaining:
                exc.add_note(
                    f"gave up after {attempt} attempt(s): the next wait ({wait:.1f}s) would pass the "
                    f"retry deadline ({policy.deadline:.0f}s)"
                )
                raise
            if policy.stop is not None and isinstance(clock, SystemClock):
                policy.stop.wait(wait)  # the real clock's sleep, ended early by a stop
            else:
                clock.sleep(wait)
            if _stopped(policy, exc, attempt):
                raise


def _stopped(policy: RetryPolicy, exc: Exception, attempt: int) -> bool:
    """Whether the provider was asked to stop; if so, ``exc`` says why it was not sent again."""
    if policy.stop is None or not policy.stop.is_set():
        return False
    exc.add_note(f"{STOPPED_NOTE} (after {attempt} attempt(s))")
    return True
