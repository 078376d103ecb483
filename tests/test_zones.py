"""Quiet hours for a recipient with a phone and no time zone: the number's zones, all of them.

A +1 617 number is in Boston, so 04:30 there is quiet even when the plan's zone (UTC) says it is
the middle of the morning. A number whose country spans zones is held while it is quiet in any
of them; the property test drives the pure engine over random valid numbers and instants.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
from hypothesis import event, given
from hypothesis import strategies as st

from outreach import Option, Plan, QuietHours, Recipient, Step
from outreach._engine import (
    NEVER,
    Decision,
    Due,
    Facts,
    HandOver,
    Send,
    State,
    Tick,
    decide,
    quiet_in_any_until,
)
from outreach._models import AttemptStatus, Medium, Notification
from outreach._zones import phone_zones, quiet_hours_zones

NIGHT = QuietHours(start="21:00", end="08:00")
MEDIA = {"sms": Medium.SMS, "email": Medium.EMAIL}


def notification(recipient: Recipient, plan: Plan, at: datetime) -> Notification:
    return Notification(
        id="n1",
        recipient=recipient,
        plan=plan,
        created_at=at,
        updated_at=at,
        due_at=at,
        deadline_at=None if plan.deadline is None else at + plan.deadline,
    )


def tick(n: Notification, at: datetime) -> Decision:
    """A Tick, with the handover the runner makes at once for an attempt that comes due."""
    decision = decide(State(n, Facts(MEDIA)), Tick(), at)
    due = [a.attempt for a in decision.actions if isinstance(a, Due)]
    if not due:
        return decision
    return decide(State(decision.notification, Facts(MEDIA)), HandOver(due[0].id), at)


def sms_plan(quiet: QuietHours = NIGHT, deadline: timedelta | None = None) -> Plan:
    return Plan(
        name="p",
        steps=[Step(channel="sms", template="t")],
        options=[Option(key="1", label="one")],
        quiet_hours=quiet,
        deadline=deadline,
    )


def test_a_boston_number_without_a_zone_is_held_at_half_past_four_boston_time() -> None:
    """08:30 UTC is 04:30 in Boston: the plan's UTC would have texted; the number says wait."""
    at = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    n = notification(Recipient(id="r", phone="+16175550123"), sms_plan(), at)
    decision = tick(n, at)
    assert not [a for a in decision.actions if isinstance(a, Send)]
    assert decision.notification.due_at == datetime(
        2026, 11, 23, 8, 0, tzinfo=ZoneInfo("America/New_York")
    )


def test_the_recipients_own_zone_wins_over_the_numbers() -> None:
    recipient = Recipient(id="r", phone="+16175550123", timezone="Europe/Paris")
    assert quiet_hours_zones(recipient, "UTC") == (ZoneInfo("Europe/Paris"),)


def test_no_phone_and_no_zone_falls_back_to_the_plans_zone() -> None:
    recipient = Recipient(id="r", email="a@example.com")
    assert quiet_hours_zones(recipient, "Asia/Tokyo") == (ZoneInfo("Asia/Tokyo"),)


def test_a_number_of_several_zones_is_held_while_it_is_quiet_in_any_of_them() -> None:
    """An Australian mobile spans the Cocos Islands to Lord Howe: 22:30 in Sydney is 20:30 in
    Perth, and the text waits until 08:00 in the last zone to wake (Cocos, the westernmost)."""
    phone = "+61412345678"
    zones = {z.key for z in phone_zones(phone)}
    assert {"Australia/Perth", "Australia/Sydney"} <= zones
    at = datetime(2026, 6, 1, 22, 30, tzinfo=ZoneInfo("Australia/Sydney"))
    decision = tick(notification(Recipient(id="r", phone=phone), sms_plan(), at), at)
    due = decision.notification.due_at
    assert due is not None
    assert due > at
    for zone in phone_zones(phone):
        assert not NIGHT.contains(due.astimezone(zone).time())
    assert due.astimezone(ZoneInfo("Indian/Cocos")).time() == time(8, 0)


def test_a_number_whose_zones_leave_no_hour_open_is_skipped_with_that_reason() -> None:
    """A North American toll-free number spans the Caribbean to Guam: a 19:00-09:00 night in
    every one of those zones covers the whole day, so the text is skipped, not held for ever
    (with 21:00-08:00 an hour stays open: 22:00 UTC is 08:00 in Guam, 19:00 in Halifax)."""
    at = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    phone = "+18005550199"
    wide = QuietHours(start="19:00", end="09:00")
    assert quiet_in_any_until(NIGHT, phone_zones(phone), at) == (
        datetime(2026, 6, 1, 22, 0, tzinfo=UTC),
        ZoneInfo("Pacific/Guam"),
    )
    hold = quiet_in_any_until(wide, phone_zones(phone), at)
    assert hold is not None
    assert hold[0] == NEVER
    decision = tick(notification(Recipient(id="r", phone=phone), sms_plan(wide), at), at)
    [attempt] = decision.notification.attempts
    assert attempt.status is AttemptStatus.SKIPPED
    assert attempt.error == (
        "quiet hours cover every hour of the day in the phone number's time zones"
    )


# --- the property -----------------------------------------------------------------------------

_TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
)
_EXAMPLES = sorted(
    phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    for region in phonenumbers.SUPPORTED_REGIONS
    for kind in _TYPES
    if (example := phonenumbers.example_number_for_type(region, kind)) is not None
)


_SEVERAL_ZONES = [number for number in _EXAMPLES if len(phone_zones(number)) > 1]


@st.composite
def valid_numbers(draw: st.DrawFn) -> str:
    """A valid number of any country and kind (half the time one of several zones): an
    example number with its last digits redrawn (kept only if still valid, else the example)."""
    example = draw(st.sampled_from(_SEVERAL_ZONES) | st.sampled_from(_EXAMPLES))
    tail = draw(st.text("0123456789", min_size=1, max_size=4))
    candidate = example[: -len(tail)] + tail
    parsed = phonenumbers.parse(candidate, None)
    return candidate if phonenumbers.is_valid_number(parsed) else example


instants = st.datetimes(
    min_value=datetime(2025, 1, 1),  # noqa: DTZ001 - made aware by timezones=
    max_value=datetime(2030, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
quarter_hours = st.integers(0, 95).map(lambda q: time(q // 4, q % 4 * 15))


@st.composite
def windows(draw: st.DrawFn) -> QuietHours:
    """A quiet window starting on any quarter hour, 15 minutes to 23 h 45 long."""
    start = draw(quarter_hours)
    length = draw(st.integers(1, 95))
    end = (start.hour * 4 + start.minute // 15 + length) % 96
    return QuietHours(start=start, end=time(end // 4, end % 4 * 15))


@given(
    phone=valid_numbers(),
    start=instants,
    quiet=windows(),
    deadline=st.none() | st.integers(1, 72).map(lambda h: timedelta(hours=h)),
)
def test_a_phone_only_recipient_is_never_texted_in_any_of_its_zones_quiet_hours(
    phone: str, start: datetime, quiet: QuietHours, deadline: timedelta | None
) -> None:
    n = notification(Recipient(id="r", phone=phone), sms_plan(quiet, deadline), start)
    zones = phone_zones(phone) or (ZoneInfo("UTC"),)
    at = start
    for _ in range(20):  # each Tick at the due time the engine asked for
        decision = tick(n, at)
        n = decision.notification
        sends = [a for a in decision.actions if isinstance(a, Send)]
        if sends or n.attempts:
            break
        assert n.due_at is not None
        assert n.due_at > at
        at = n.due_at
    event(f"{'texted' if sends else 'skipped'}, {'one zone' if len(zones) == 1 else 'several'}")
    if sends:
        for zone in zones:
            local = at.astimezone(zone).time()
            assert not quiet.contains(local), f"texted at {local} in {zone.key}"
    else:
        [attempt] = n.attempts
        assert attempt.status is AttemptStatus.SKIPPED
        assert attempt.error is not None
        assert "quiet hours" in attempt.error
