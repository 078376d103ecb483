"""Short in-process retries of one send, on tenacity, sleeping through the injected clock.

A delay longer than the policy's ``inline_limit`` is not slept here: the send gives up with a
``retry_in`` so the runner stores a re-attempt and a crash cannot lose it. ``RateLimited`` is
never retried in process; the step is re-scheduled until the policy's tries are spent.

Every delay is the policy's backoff (counting the step's earlier tries) or the provider's hint,
whichever is longer, and never below ``MIN_RETRY_DELAY``: a ``Retry-After: 0``, a missing
header or a reset already gone by cannot make a tight loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from outreach._clock import Clock
from outreach._models import MIN_RETRY_DELAY, RetryPolicy
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
        self._owner = AsyncRetrying()  # what a RetryCallState for ``_backoff`` must name

    def delay(self, error: BaseException | None, tries: int) -> float:
        """Seconds to wait after the ``tries``-th try of this send failed with ``error``: the
        exponential backoff with jitter (counting the tries of earlier stored re-attempts too)
        or the provider's hint, whichever is longer, and at least ``MIN_RETRY_DELAY``."""
        counted = RetryCallState(self._owner, None, (), {})
        counted.attempt_number = tries + self.tries_before
        hint = _hint(error, self.clock) or timedelta(0)
        floor = max(hint, MIN_RETRY_DELAY).total_seconds()
        return max(float(self._backoff(counted)), floor)

    def spent(self, tries: int) -> bool:
        """Whether the policy's count of tries is used up after ``tries`` tries of this send."""
        return tries + self.tries_before >= self.policy.attempts

    def wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        return self.delay(error, state.attempt_number)

    def stop(self, state: RetryCallState) -> bool:
        if self.spent(state.attempt_number):
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
        raise GaveUp(error, tries, _retry_in(error, schedule, tries)) from error
    raise AssertionError("tenacity neither returned nor raised")  # pragma: no cover


def _retry_in(error: Exception, schedule: _Schedule, tries: int) -> timedelta | None:
    if isinstance(error, RateLimited):
        if schedule.spent(tries):
            return None
        return timedelta(seconds=schedule.delay(error, tries))
    return schedule.deferred
