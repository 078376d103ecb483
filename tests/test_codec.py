"""How the SQL stores turn a stored record back into a notification: the body written at its
start with the state its transitions wrote laid over it, parsed without re-checking what was
checked when it was built, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from outreach import Notification, Plan, Recipient, Status, Step
from outreach._models import Attempt, AttemptStatus, Option
from outreach.stores._codec import dump_notification, dump_state, load_notification

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
PLAN = Plan(name="p", steps=[Step(channel="sms", template="t")])


def started() -> Notification:
    return Notification(
        id="n1",
        key="k1",
        recipient=Recipient(id="r1", phone="+16175550123", email="Zoe@Example.com"),
        plan=PLAN,
        context={"flight": "9K 1042", "seats": [1, 2]},
        metadata={"crm": "x"},
        created_at=NOW,
        updated_at=NOW,
        due_at=NOW,
    )


def moved_on(n: Notification) -> Notification:
    attempt = Attempt(
        id="n1.0.0.0",
        notification_id="n1",
        pass_=0,
        step=0,
        channel="sms",
        status=AttemptStatus.SENT,
        created_at=NOW,
        updated_at=NOW,
    )
    later = NOW + timedelta(minutes=15)
    return n.model_copy(
        update={"status": Status.ACTIVE, "due_at": later, "version": 2, "attempts": (attempt,)}
    )


def test_the_state_is_laid_over_the_body_and_the_plan_is_the_one_given() -> None:
    n = started()
    now = moved_on(n)
    loaded = load_notification(dump_notification(n), PLAN, dump_state(now))
    assert loaded == now
    assert loaded.plan is PLAN
    assert loaded.recipient.email == n.recipient.email  # as normalised at the start
    assert load_notification(dump_notification(now), PLAN) == now  # all in the body
    assert load_notification(dump_notification(n), PLAN, " {} ") == n


def test_a_loaded_record_copies_and_changes_like_any_other() -> None:
    loaded = load_notification(dump_notification(started()), PLAN, dump_state(moved_on(started())))
    changed = loaded.model_copy(update={"version": 3})
    assert (changed.version, loaded.version) == (3, 2)
    assert changed.attempts == loaded.attempts
    assert loaded.model_dump() == moved_on(started()).model_dump()


def test_what_was_checked_at_the_start_is_not_checked_again() -> None:
    """A record stored under older rules (a phone number since re-allocated, a plan whose
    options a newer check refuses) still reads back as stored, not as an error on every read."""
    body = dump_notification(started()).replace("+16175550123", "+1555")
    plan = Plan.model_construct(**{**dict(PLAN), "options": (Option(key="a", label="x"),) * 2})
    loaded = load_notification(body, plan, None)
    assert loaded.recipient.phone == "+1555"
    assert loaded.plan is plan
