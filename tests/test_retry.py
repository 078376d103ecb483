"""In-process retries and the delay of a stored re-attempt (``outreach._retry``), on a FakeClock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from outreach import RetryPolicy
from outreach._retry import GaveUp, with_retries
from outreach.channels import Receipt
from outreach.exceptions import RateLimited, TransientDeliveryError
from outreach.testing import FakeClock

START = "2026-11-23T14:00:00+00:00"
POLICY = RetryPolicy(attempts=4, initial="1s", multiplier=2, jitter="0s")


def failing(
    error: Exception, then: int | None = None
) -> tuple[list[int], Callable[[], Awaitable[Receipt]]]:
    """A send raising ``error`` (``then`` times, then succeeding; forever if None), and the
    list its calls are counted in."""
    calls: list[int] = []

    async def send() -> Receipt:
        calls.append(1)
        if then is None or len(calls) <= then:
            raise error
        return Receipt(provider_id="p-1")

    return calls, send


def no_hint_variants(clock: FakeClock) -> list[RateLimited]:
    return [
        RateLimited("429", retry_after=timedelta(0)),  # Retry-After: 0
        RateLimited("429", retry_at=clock.now() - timedelta(minutes=5)),  # a reset gone by
    ]


@pytest.mark.parametrize("variant", [0, 1], ids=["retry-after-0", "reset-in-the-past"])
async def test_a_rate_limit_hint_of_no_delay_still_backs_off_from_one_second(variant: int) -> None:
    """A hint of "now" or earlier never makes a tight loop: the re-attempt waits at least 1 s,
    growing with the tries the step already had."""
    clock = FakeClock(START)
    error = no_hint_variants(clock)[variant]
    delays = []
    for tries_before in range(3):
        _, send = failing(error)
        with pytest.raises(GaveUp) as gave_up:
            await with_retries(send, POLICY, clock, tries_before=tries_before)
        delays.append(gave_up.value.retry_in)
    assert delays == [timedelta(seconds=1), timedelta(seconds=2), timedelta(seconds=4)]


@pytest.mark.parametrize("hint", [None, timedelta(0), timedelta(seconds=30)])
async def test_a_rate_limit_once_the_policy_is_spent_is_not_rescheduled(
    hint: timedelta | None,
) -> None:
    """The policy's count of tries bounds rate limiting too: the last try gives up for good."""
    clock = FakeClock(START)
    _, send = failing(RateLimited("429", retry_after=hint))
    with pytest.raises(GaveUp) as gave_up:
        await with_retries(send, POLICY, clock, tries_before=POLICY.attempts - 1)
    assert gave_up.value.retry_in is None
    assert gave_up.value.tries == 1


async def test_inline_retries_wait_at_least_the_backoff_despite_a_zero_retry_after() -> None:
    """A 503 with ``Retry-After: 0`` is retried in process after 1 s, then 2 s: not at once."""
    clock = FakeClock(START)
    start = clock.now()
    calls, send = failing(TransientDeliveryError("503", retry_after=timedelta(0)), then=2)
    receipt, tries = await with_retries(send, POLICY, clock)
    assert (receipt.provider_id, tries, len(calls)) == ("p-1", 3, 3)
    assert clock.now() - start == timedelta(seconds=3)
