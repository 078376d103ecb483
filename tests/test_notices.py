"""Notices that need no answer: ``Plan(until="delivered" | "engaged")``, through the pure engine.

The rung of the acknowledgement ladder a plan stops at: a delivery receipt (or a call a
person answered) for ``delivered``; a reply, an email opened or clicked, a read receipt (or a
call a person answered) for ``engaged``. Voicemail never counts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from outreach import AttemptStatus, FollowUp, Medium, Option, Plan, Status, Step
from outreach._engine import (
    Ack,
    Cancel,
    CancelCall,
    OpenAttention,
    OptedOut,
    Reply,
    StartFollowUp,
    StatusUpdate,
)
from outreach._models import AttentionReason, EventKind
from outreach.exceptions import ConfigurationError
from outreach.outcomes import describe, describe_event
from test_engine_rules import Engine, kinds, make_notification, only_send, sends, started, t


def notice(*channels: str, until: str = "delivered", **settings: Any) -> Plan:
    """An apology: no options, each step waiting 15 minutes."""
    return Plan(
        name="apology",
        steps=[Step(channel=c, template="apology") for c in channels],
        until=until,  # type: ignore[arg-type]
        **settings,
    )


def test_until_defaults_to_acknowledged() -> None:
    assert notice("sms", until="acknowledged").until == "acknowledged"
    assert Plan(name="p", steps=[Step(channel="sms", template="t")]).until == "acknowledged"


def test_a_plan_with_options_and_until_delivered_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigurationError, match=r"invalid Plan: until: 'delivered' ends"):
        Plan(
            name="p",
            steps=[Step(channel="sms", template="t")],
            options=[Option(key="1", label="Rebook")],
            until="delivered",
        )
    with pytest.raises(ConfigurationError, match=r"until: Input should be 'delivered'"):
        Plan(name="p", steps=[Step(channel="sms", template="t")], until="read")  # type: ignore[arg-type]
    engaged = Plan(
        name="p",
        steps=[Step(channel="sms", template="t")],
        options=[Option(key="1", label="Rebook")],
        until="engaged",
    )
    assert engaged.options


def test_sms_delivered_ends_it_and_nothing_else_is_sent() -> None:
    engine, sms = started(notice("sms", "email", "voice"))
    decision = engine(StatusUpdate(sms.id, AttemptStatus.DELIVERED), t(1))

    assert engine.n.status is Status.DELIVERED
    assert engine.n.reached_by == "sms delivered"
    assert (engine.n.finished_at, engine.n.due_at) == (t(1), None)
    assert kinds(decision) == [EventKind.ATTEMPT_STATUS, EventKind.DELIVERED]
    assert decision.events[-1].attempt_id == sms.id
    assert not any(isinstance(a, OpenAttention) for a in decision.actions)
    assert sends(engine.tick(t(60))) == []
    assert [a.channel for a in engine.n.attempts] == ["sms"]
    assert describe(engine.n) == "delivered: sms delivered"
    assert describe_event(decision.events[-1]) == "delivered: sms delivered"


def test_sms_undelivered_sends_the_email_at_once_and_its_delivery_ends_it() -> None:
    engine, sms = started(notice("sms", "email", "voice"))
    engine(StatusUpdate(sms.id, AttemptStatus.UNDELIVERED, "Twilio 30003"), t(1))
    assert engine.n.due_at == t(1)  # early escalation, unchanged
    email = only_send(engine.tick(t(1)))
    assert email.channel == "email"
    engine.sent(email, t(1))

    engine(StatusUpdate(email.id, AttemptStatus.DELIVERED), t(2))
    assert engine.n.status is Status.DELIVERED
    assert engine.n.reached_by == "email delivered"
    assert sends(engine.tick(t(120))) == []  # no call
    assert [a.channel for a in engine.n.attempts] == ["sms", "email"]


def test_a_receipt_sent_with_the_send_answer_counts() -> None:
    """A channel whose receipt already says delivered: the same rung."""
    engine = Engine(make_notification(notice("email", "voice")))
    first = only_send(engine.tick(t(0)))
    engine.sent(first, t(0), status=AttemptStatus.DELIVERED)
    assert engine.n.status is Status.DELIVERED


def test_without_a_receipt_the_wait_moves_on_as_before() -> None:
    engine, _ = started(notice("sms", "email"))
    email = only_send(engine.tick(t(15)))
    assert email.channel == "email"
    assert engine.n.status is Status.ACTIVE


def test_voicemail_never_counts() -> None:
    engine, _ = started(notice("voice", "email"))
    call = engine.attempt(0, 0)
    engine(StatusUpdate(call.id, AttemptStatus.ENGAGED), t(1))  # in-progress, who answered?
    engine(StatusUpdate(call.id, AttemptStatus.ENGAGED, "voicemail"), t(1))
    assert engine.n.status is Status.ACTIVE
    email = only_send(engine.tick(t(15)))
    assert email.channel == "email"


def test_a_call_a_person_answered_counts_and_is_not_hung_up() -> None:
    engine, _ = started(notice("voice", "email"))
    call = engine.attempt(0, 0)
    engine(StatusUpdate(call.id, AttemptStatus.ENGAGED), t(1))
    decision = engine(StatusUpdate(call.id, AttemptStatus.ENGAGED, person=True), t(1))

    assert engine.n.status is Status.DELIVERED
    assert engine.n.reached_by == "voice answered by a person"
    assert not any(isinstance(a, CancelCall) for a in decision.actions)
    assert sends(engine.tick(t(30))) == []


def test_reaching_the_rung_hangs_up_a_call_still_ringing() -> None:
    """The text's receipt came late, while the call rang: the call is no longer needed."""
    engine, sms = started(notice("sms", "voice"))
    call = only_send(engine.tick(t(15)))
    engine.sent(call, t(15))
    decision = engine(StatusUpdate(sms.id, AttemptStatus.DELIVERED), t(16))

    assert engine.n.status is Status.DELIVERED
    assert [a.attempt.id for a in decision.actions if isinstance(a, CancelCall)] == [call.id]


def test_delivered_is_not_enough_for_until_engaged_but_an_open_is() -> None:
    engine, email = started(notice("email", "voice", until="engaged"))
    engine(StatusUpdate(email.id, AttemptStatus.DELIVERED), t(1))
    assert engine.n.status is Status.ACTIVE

    decision = engine(StatusUpdate(email.id, AttemptStatus.ENGAGED), t(3))
    assert engine.n.status is Status.ENGAGED
    assert engine.n.reached_by == "email opened or clicked"
    assert kinds(decision)[-1] is EventKind.ENGAGED
    assert sends(engine.tick(t(120))) == []
    assert describe(engine.n) == "engaged: email opened or clicked"


def test_a_read_receipt_is_engagement() -> None:
    engine, sms = started(notice("sms", "email", until="engaged"))
    engine(StatusUpdate(sms.id, AttemptStatus.ENGAGED), t(1))  # Twilio's "read"
    assert (engine.n.status, engine.n.reached_by) == (Status.ENGAGED, "sms read")


def test_an_open_also_meets_until_delivered() -> None:
    """A higher rung counts: the status says the plan's own rung."""
    engine, email = started(notice("email", "voice"))
    engine(StatusUpdate(email.id, AttemptStatus.ENGAGED), t(1))
    assert engine.n.status is Status.DELIVERED
    assert engine.n.reached_by == "email opened or clicked"


@pytest.mark.parametrize("unmatched", [False, True])
def test_any_sms_reply_is_engagement(unmatched: bool) -> None:
    plan = notice("sms", "email", until="engaged", options=[Option(key="1", label="Rebook")])
    engine, sms = started(plan)
    decision = engine(Reply(via="sms", text="thanks", attempt_id=sms.id, unmatched=unmatched), t(2))

    assert engine.n.status is Status.ENGAGED
    assert engine.n.reached_by == "sms reply"
    opened = [a.reason for a in decision.actions if isinstance(a, OpenAttention)]
    assert opened == ([AttentionReason.NOT_UNDERSTOOD] if unmatched else [])
    assert sends(engine.tick(t(60))) == []


@pytest.mark.parametrize("until", ["engaged", "delivered"])
def test_a_stop_ends_a_notice_before_anything_moves_on(until: str) -> None:
    """The STOP webhook opts out first and keeps the reply after: the opt-out alone must end
    the notice, or a round between the two would send the email."""
    engine, _ = started(notice("sms", "email", until=until))
    engine(OptedOut(Medium.SMS, reason="replied STOP"), t(2))
    assert engine.n.status is Status(until)
    assert engine.n.reached_by == "sms opt-out"
    assert sends(engine.tick(t(2))) == []
    assert sends(engine.tick(t(60))) == []


def test_an_opt_out_of_a_medium_never_used_moves_on_as_before() -> None:
    engine, _ = started(notice("sms", "email", until="engaged"))
    engine(OptedOut(Medium.EMAIL, reason="sendgrid unsubscribe"), t(2))
    assert engine.n.status is Status.ACTIVE


def test_until_acknowledged_ignores_receipts_and_replies() -> None:
    engine, sms = started(notice("sms", "email", until="acknowledged"))
    engine(StatusUpdate(sms.id, AttemptStatus.DELIVERED), t(1))
    engine(Reply(via="sms", text="ok?", attempt_id=sms.id, unmatched=True), t(2))
    assert engine.n.status is Status.ACTIVE
    assert only_send(engine.tick(t(15))).channel == "email"


def test_reaching_the_rung_starts_the_unconditional_follow_ups() -> None:
    survey = FollowUp(after="1d", channel="email", template="survey")
    engine, sms = started(notice("sms", follow_ups=[survey]))
    decision = engine(StatusUpdate(sms.id, AttemptStatus.DELIVERED), t(1))
    assert [a for a in decision.actions if isinstance(a, StartFollowUp)] == [
        StartFollowUp(survey, t(1) + timedelta(days=1))
    ]
    assert kinds(decision)[-1] is EventKind.FOLLOW_UP_STARTED


def test_an_acknowledgement_after_delivered_records_the_choice_within_the_grace() -> None:
    """Engaged by an open, then the customer clicks a choice: acknowledged, with its own
    follow-ups; the unconditional ones, started when it was engaged, are not started again."""
    survey = FollowUp(after="1d", channel="email", template="survey")
    refund = FollowUp(when_choice="2", after="3d", channel="email", template="refund_check")
    plan = notice(
        "email",
        "voice",
        until="engaged",
        options=[Option(key="1", label="Rebook"), Option(key="2", label="Refund")],
        follow_ups=[survey, refund],
    )
    engine, email = started(plan)
    engine(StatusUpdate(email.id, AttemptStatus.ENGAGED), t(1))
    assert engine.n.status is Status.ENGAGED

    decision = engine(Ack(via="email", choice="2", attempt_id=email.id), t(1, days=2))
    assert (engine.n.status, engine.n.choice) == (Status.ACKNOWLEDGED, "2")
    assert engine.n.reached_by == "email opened or clicked"  # still says what reached them first
    assert decision.events[0].data["after"] == Status.ENGAGED
    assert [a for a in decision.actions if isinstance(a, StartFollowUp)] == [
        StartFollowUp(refund, t(1, days=5))
    ]

    late = Engine(make_notification(plan))
    first = only_send(late.tick(t(0)))
    late.sent(first, t(0))
    late(StatusUpdate(first.id, AttemptStatus.ENGAGED), t(1))
    decision = late(Ack(via="api", choice="1"), t(1, days=8))  # past the 7-day grace
    assert kinds(decision) == [EventKind.REPLY_RECORDED]
    assert late.n.status is Status.ENGAGED


def test_a_receipt_after_an_unreached_ending_within_the_grace_says_so() -> None:
    """The carrier's receipt came after the last wait: delivered after all, and the
    ``after`` tells the shell to close the unreached case."""
    engine, sms = started(notice("sms"))
    decision = engine.tick(t(15))
    assert engine.n.status is Status.EXHAUSTED
    assert [a.reason for a in decision.actions if isinstance(a, OpenAttention)] == [
        AttentionReason.UNREACHED
    ]
    decision = engine(StatusUpdate(sms.id, AttemptStatus.DELIVERED), t(20))
    assert engine.n.status is Status.DELIVERED
    assert decision.events[-1].data == {"reached_by": "sms delivered", "after": Status.EXHAUSTED}
    assert describe_event(decision.events[-1]) == "delivered: sms delivered (after exhausted)"


def test_a_cancelled_notice_is_never_reached_later() -> None:
    engine, sms = started(notice("sms", "email"))
    engine(Cancel(reason="sent by mistake"), t(1))
    decision = engine(StatusUpdate(sms.id, AttemptStatus.DELIVERED), t(2))
    assert engine.n.status is Status.CANCELLED
    assert kinds(decision) == [EventKind.ATTEMPT_STATUS]


def test_delivered_and_engaged_are_terminal_and_reached() -> None:
    for status in (Status.DELIVERED, Status.ENGAGED):
        assert status.is_terminal
        assert status.reached
    assert Status.ACKNOWLEDGED.reached
    assert not any(s.reached for s in (Status.EXHAUSTED, Status.EXPIRED, Status.FAILED))
