"""The one retry loop: how long to keep trying a transient failure, and how to wait.

`call_with_retries` runs an attempt under tenacity. It retries only `Retryable` failures
(connection errors, 5xx, 429, raised by the client's attempt), honours `Retry-After` (seconds
or an HTTP date, `parse_retry_after`), otherwise backs off exponentially with jitter within
`RetryPolicy`'s caps, waits out a short quota reset once (`QuotaWait`), and at the end turns
what is left into a `TemporaryFailure` or `QuotaExhausted`. Kept apart from the client so the
whole retry policy reads in one place, with its sleep, clock and jitter passed in so tests
never wait for real.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from sync.ports import QuotaExhausted, TemporaryFailure

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to keep trying a transient failure.

    `attempts` counts the first try. Backoff is `initial * 2**n`, capped at `max_backoff`, with
    up to `jitter` (a fraction) added at random so replicas do not retry in step. `Retry-After`
    is honoured as given; when it asks for more than `max_retry_after` the call gives up at once
    (sleeping through a long ban would block the whole run). No retry starts once `total`
    seconds would be exceeded. A quota reset (402) no longer than `quota_wait` is waited out once.
    """

    attempts: int = 5
    initial: float = 1.0
    max_backoff: float = 30.0
    jitter: float = 0.25
    max_retry_after: float = 120.0
    total: float = 300.0
    quota_wait: float = 60.0


def parse_retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds to wait: an integer, or an HTTP date relative to `now` (epoch)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


class Retryable(Exception):
    """An attempt that may be retried; carries what the wait and the final error need."""

    def __init__(self, detail: str, kind: str, *, delay: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.kind = kind
        self.delay = delay  # what the server asked for (Retry-After), if anything


class QuotaWait(Retryable):
    """A 402 whose quota resets soon enough to wait for it (once)."""

    def __init__(self, detail: str, resets_in: int) -> None:
        super().__init__(detail, "quota", delay=float(resets_in))
        self.resets_in = resets_in


def call_with_retries(
    attempt: Callable[[], R],
    *,
    name: str,
    policy: RetryPolicy,
    redact: Callable[[str], str],
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    jitter: Callable[[], float],
) -> R:
    """`attempt()` until it succeeds or `policy` says stop; `name` prefixes every message.

    Messages of the final error pass through `redact`. `clock` is epoch seconds, for the total
    time bound.
    """
    started = clock()
    quota_waits = 0

    def wait(state: tenacity.RetryCallState) -> float:
        exc = _exception(state)
        if exc.delay is not None:
            return exc.delay
        backoff = min(policy.max_backoff, policy.initial * 2.0 ** (state.attempt_number - 1))
        return min(policy.max_backoff, backoff * (1 + policy.jitter * jitter()))

    def stop(state: tenacity.RetryCallState) -> bool:
        nonlocal quota_waits
        exc = _exception(state)
        if isinstance(exc, QuotaWait):
            quota_waits += 1
            return quota_waits > 1
        if exc.delay is not None and exc.delay > policy.max_retry_after:
            return True
        elapsed = clock() - started
        return (
            state.attempt_number >= policy.attempts or elapsed + state.upcoming_sleep > policy.total
        )

    def before_sleep(state: tenacity.RetryCallState) -> None:
        log.info(
            "%s: %s; retrying in %.1f s (attempt %d of %d)",
            name,
            _exception(state).detail,
            state.upcoming_sleep,
            state.attempt_number + 1,
            policy.attempts,
        )

    retrying = tenacity.Retrying(
        sleep=sleep,
        stop=stop,
        wait=wait,
        retry=tenacity.retry_if_exception_type(Retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except QuotaWait as exc:
        message = f"{name}: {exc.detail}, still exhausted after waiting {exc.resets_in} s"
        raise QuotaExhausted(redact(message), resets_in=exc.resets_in) from None
    except Retryable as exc:
        tries = retrying.statistics.get("attempt_number", 1)
        hint = ""
        if exc.delay is not None and exc.delay > policy.max_retry_after:
            hint = f" (server asked to wait {exc.delay:.0f} s)"
        message = f"{name}: {exc.detail}: gave up after {tries} attempt(s){hint}"
        raise TemporaryFailure(redact(message), kind=exc.kind) from None


def _exception(state: tenacity.RetryCallState) -> Retryable:
    assert state.outcome is not None
    exc = state.outcome.exception()
    assert isinstance(exc, Retryable)
    return exc
