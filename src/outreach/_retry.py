"""Short in-process retries of one send, on tenacity, sleeping through the injected clock.

A delay longer than the policy's ``inline_limit`` is not slept here: the send gives up with a
``retry_in`` so the runner stores a re-attempt and a crash cannot lose it. ``RateLimited`` is
never retried in process; the step is always re-scheduled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from outreach._clock import Clock
from outreach._models import RetryPolicy
from outreach.exceptions import RateLimited, TransientDeliveryError

T = TypeVar("T")


class GaveUp(Exception):
    """The send failed for now. ``retry_in`` says when a stored re-attempt may try again;
    None when the policy is spent or the error is not worth retrying."""

    def __init__(self, error: Exception, tries: int, retry_in: timedelta | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.tries = tries
        self.retry_in = retry_in


def _hint(error: BaseException | None, clock: Clock) -> timedelta | None:
    """The provider's own idea of when to try again, as a delay from now."""
    if not isinstance(error, TransientDeliveryError):
        return None
    if error.retry_after is not None:
        return max(error.retry_after, timedelta(0))
    if error.retry_at is not None:
        return max(error.retry_at - clock.now(), timedelta(0))
    return None


def _retry_inline(error: BaseException) -> bool:
    return isinstance(error, TransientDeliveryError) and not isinstance(error, RateLimited)


class _Schedule:
    """Wait and stop rules for one attempt; remembers a delay too long to sleep in process."""

    def __init__(self, policy: RetryPolicy, clock: Clock, tries_before: int) -> None:
        self.policy = policy
        self.clock = clock
        self.tries_before = tries_before
        self.deferred: timedelta | None = None
        self._backoff = wait_exponential_jitter(
            initial=policy.initial.total_seconds(),
            max=policy.max_delay.total_seconds(),
            exp_base=policy.multiplier,
            jitter=policy.jitter.total_seconds(),
        )

    def wait(self, state: RetryCallState) -> float:
        """The provider's hint when given, else exponential backoff with jitter.

        Backoff counts the tries of earlier stored re-attempts too.
        """
        error = state.outcome.exception() if state.outcome is not None else None
        hint = _hint(error, self.clock)
        if hint is not None:
            return hint.total_seconds()
        counted = RetryCallState(state.retry_object, state.fn, state.args, state.kwargs)
        counted.attempt_number = state.attempt_number + self.tries_before
        return float(self._backoff(counted))

    def stop(self, state: RetryCallState) -> bool:
        if state.attempt_number + self.tries_before >= self.policy.attempts:
            return True
        if state.upcoming_sleep > self.policy.inline_limit.total_seconds():
            self.deferred = timedelta(seconds=state.upcoming_sleep)
            return True
        return False


async def with_retries(
    send: Callable[[], Awaitable[T]], policy: RetryPolicy, clock: Clock, *, tries_before: int = 0
) -> tuple[T, int]:
    """Run ``send`` until it succeeds; return its result and how many tries it took.

    Raises :class:`GaveUp` with the last error otherwise. The first try runs bare: most sends
    succeed, and tenacity's bookkeeping is only set up once one has failed.
    """
    try:
        return await send(), 1
    except Exception as error:
        first = error

    calls = 0

    async def replay_then_send() -> T:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise first
        return await send()

    return await _retrying(replay_then_send, policy, clock, tries_before)


async def _retrying(
    send: Callable[[], Awaitable[T]], policy: RetryPolicy, clock: Clock, tries_before: int
) -> tuple[T, int]:
    """tenacity's loop over ``send``, whose first call replays the error already seen."""
    schedule = _Schedule(policy, clock, tries_before)

    async def sleep(seconds: float) -> None:
        await clock.sleep(timedelta(seconds=seconds))

    retrying = AsyncRetrying(
        retry=retry_if_exception(_retry_inline),
        wait=schedule.wait,
        stop=schedule.stop,
        sleep=sleep,
        reraise=True,
    )
    tries = 0
    try:
        async for attempt in retrying:
            with attempt:
                tries = attempt.retry_state.attempt_number
                return await send(), tries
    except Exception as error:
        raise GaveUp(error, tries, _retry_in(error, schedule, retrying, tries)) from error
    raise AssertionError("tenacity neither returned nor raised")  # pragma: no cover


def _retry_in(
    error: Exception, schedule: _Schedule, retrying: AsyncRetrying, tries: int
) -> timedelta | None:
    if isinstance(error, RateLimited):
        hint = _hint(error, schedule.clock)
        if hint is not None:
            return hint
        state = RetryCallState(retrying, None, (), {})
        state.attempt_number = tries
        return timedelta(seconds=schedule.wait(state))
    return schedule.deferred
