"""Conversations that end well: follow-ups with their own question, and a person when it
matters (attention records, truthful reasons, a hook for every ending, one timeline)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from outreach import (
    AsyncClient,
    Attention,
    AttentionReason,
    Client,
    EventKind,
    FollowUp,
    Hooks,
    Notification,
    Option,
    Plan,
    Recipient,
    Status,
    Step,
)
from outreach.exceptions import ConfigurationError, InvalidChoice, NotFound, TemplateError
from outreach.testing import FakeClock, InMemoryChannel

ANN = Recipient(id="pax-17", phone="+16175550123", email="ann@example.com")
CONTEXT = {"flight": "9K 1042"}
REFUND_CHECK = Plan(
    name="refund-check",
    steps=[Step(channel="voice", template="refund_check", wait="1h")],
    options=[
        Option(key="1", label="My refund arrived"),
        Option(key="2", label="My refund has not arrived", handoff=True),
    ],
)


class Heard:
    """Hooks that write down what they were called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.attention: list[Attention] = []
        self.resolved: list[Attention] = []

    def hooks(self) -> Hooks:
        def ending(name: str):  # type: ignore[no-untyped-def]
            return lambda n: self.calls.append((name, n.id))

        return Hooks(
            on_acknowledged=ending("acknowledged"),
            on_exhausted=ending("exhausted"),
            on_expired=ending("expired"),
            on_failed=ending("failed"),
            on_cancelled=ending("cancelled"),
            on_attention=self.attention.append,
            on_attention_resolved=self.resolved.append,
        )

    def of(self, notification: Notification) -> list[str]:
        return [name for name, nid in self.calls if nid == notification.id]


@pytest.fixture
def heard() -> Heard:
    return Heard()


@pytest.fixture
async def client(
    clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path, heard: Heard
) -> AsyncClient:
    async with AsyncClient(
        store="memory://",
        channels=channels,
        templates=templates_dir,
        clock=clock,
        hooks=heard.hooks(),
    ) as ox:
        yield ox  # type: ignore[misc]


def with_refund_check(plan: Plan) -> Plan:
    follow_up = FollowUp(when_choice="2", after="3d", name="refund_check", plan=REFUND_CHECK)
    return plan.model_copy(update={"follow_ups": (follow_up,)})


async def test_the_refund_check_asks_its_own_question_and_2_hands_over_to_a_person(
    client: AsyncClient,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
    plan: Plan,
    heard: Heard,
) -> None:
    n = await client.start(ANN, with_refund_check(plan), context=CONTEXT, key="k", campaign="c")
    await client.run_due()
    n = await client.acknowledge(n.id, via="sms", choice="2")
    assert await client.attention() == []  # a refund is not a handoff

    clock.advance("3d")
    await client.run_due()
    check = await client.get(key="k/refund_check")
    [call] = channels["voice"].outbox
    assert call.notification_id == check.id
    assert [o.label for o in call.options] == ["My refund arrived", "My refund has not arrived"]
    with pytest.raises(InvalidChoice, match="'3'"):  # its own options, not the parent's
        await client.acknowledge(check.id, choice="3")

    check = await client.acknowledge(check.id, via="voice", choice="2", attempt_id=call.attempt_id)
    assert check.status is Status.ACKNOWLEDGED
    [opened] = await client.attention(campaign="c")
    assert opened.reason is AttentionReason.HANDOFF
    assert opened.detail == "chose 2: My refund has not arrived"
    assert (opened.notification_id, opened.recipient_id) == (check.id, "pax-17")
    assert opened.open
    assert heard.attention == [opened]

    closed = await client.resolve(opened.id, by="agent-7", note="refund re-sent")
    assert (closed.resolved_by, closed.note, closed.resolved_at) == (
        "agent-7",
        "refund re-sent",
        clock.now(),
    )
    again = await client.resolve(opened.id, by="agent-9", note="other")
    assert again == closed  # idempotent: the first resolution stands
    assert heard.resolved == [closed]
    assert await client.attention() == []
    assert await client.attention(open=False) == [closed]
    assert heard.of(n) == ["acknowledged"]
    assert heard.of(check) == ["acknowledged"]
    kinds = [e.kind async for e in client.events(notification_id=check.id)]
    assert kinds.count(EventKind.ATTENTION_OPENED) == 1
    assert kinds.count(EventKind.ATTENTION_RESOLVED) == 1


async def test_resolve_names_an_unknown_id_and_wants_a_name(client: AsyncClient) -> None:
    with pytest.raises(NotFound, match="'nope'"):
        await client.resolve("nope", by="agent-7")
    with pytest.raises(ValueError, match="by="):
        await client.resolve("nope", by=" ")


async def test_the_shorthand_follow_up_offers_no_options_unless_given(
    client: AsyncClient, clock: FakeClock, channels: dict[str, InMemoryChannel], plan: Plan
) -> None:
    n = await client.start(ANN, plan, context=CONTEXT, key="k")
    await client.acknowledge(n.id, choice="2")
    clock.advance("3d")
    await client.run_due()
    child = await client.get(key="k/refund_check")
    assert child.plan.options == ()
    [call] = channels["voice"].outbox
    assert call.options == ()

    given = FollowUp(
        when_choice="2",
        after="3d",
        channel="voice",
        template="refund_check",
        options=[Option(key="1", label="Arrived")],
    )
    assert given.as_plan(plan).options == (Option(key="1", label="Arrived"),)


async def test_follow_ups_nest_each_with_its_own_plan(
    client: AsyncClient, clock: FakeClock, channels: dict[str, InMemoryChannel]
) -> None:
    survey = Plan(name="survey", steps=[Step(channel="email", template="refund_check")])
    check = REFUND_CHECK.model_copy(
        update={"follow_ups": (FollowUp(when_choice="1", after="1d", plan=survey),)}
    )
    parent = Plan(
        name="p",
        steps=[Step(channel="sms", template="flight_cancelled")],
        follow_ups=[FollowUp(after="3d", name="check", plan=check)],
    )
    n = await client.start(ANN, parent, context=CONTEXT, key="k")
    await client.acknowledge(n.id)
    clock.advance("3d")
    await client.run_due()
    child = await client.get(key="k/check")
    assert child.parent_id == n.id
    await client.acknowledge(child.id, choice="1")
    clock.advance("1d")
    await client.run_due()
    grandchild = await client.get(key="k/check/survey")
    assert grandchild.parent_id == child.id
    assert grandchild.plan == survey
    assert [m.notification_id for m in channels["email"].outbox] == [grandchild.id]


async def test_start_trial_renders_every_nested_template(client: AsyncClient, plan: Plan) -> None:
    deep = Plan(name="deep", steps=[Step(channel="sms", template="no_such_template")])
    check = REFUND_CHECK.model_copy(update={"follow_ups": (FollowUp(after="1d", plan=deep),)})
    parent = Plan(
        name="p",
        steps=[Step(channel="sms", template="flight_cancelled")],
        follow_ups=[FollowUp(after="3d", plan=check)],
    )
    with pytest.raises(TemplateError, match="no_such_template"):
        await client.start(ANN, parent, context=CONTEXT, key="k")
    assert await client.list() == []
    trials = client.preview(with_refund_check(plan), ANN, context=CONTEXT)
    assert [(t.template, t.follow_up) for t in trials][-2:] == [
        ("flight_cancelled", False),
        ("refund_check", True),
    ]


@pytest.mark.parametrize(
    ("how", "status", "detail"),
    [
        ("exhausted", Status.EXHAUSTED, "no answer to sms"),
        ("expired", Status.EXPIRED, "no answer to sms"),
        ("failed", Status.FAILED, "sms: the recipient has no phone"),
    ],
)
async def test_an_unreached_ending_opens_one_attention_and_fires_its_hook(
    client: AsyncClient, clock: FakeClock, heard: Heard, how: str, status: Status, detail: str
) -> None:
    plan = Plan(
        name="p",
        steps=[Step(channel="sms", template="flight_cancelled", wait="15m")],
        deadline="10m" if how == "expired" else None,
    )
    who = Recipient(id="pax-1", email="a@example.com") if how == "failed" else ANN
    n = await client.start(who, plan, context=CONTEXT)
    for _ in range(3):
        await client.run_due()
        clock.advance("15m")
    n = await client.get(n.id)
    assert n.status is status
    [opened] = await client.attention()
    assert (opened.reason, opened.detail) == (AttentionReason.UNREACHED, detail)
    assert heard.of(n) == [how]
    assert heard.attention == [opened]


async def test_a_reply_that_matches_nothing_opens_one_attention_and_keeps_its_text(
    client: AsyncClient, plan: Plan, heard: Heard, caplog: pytest.LogCaptureFixture
) -> None:
    n = await client.start(ANN, plan, context=CONTEXT)
    await client.run_due()
    caplog.set_level(logging.INFO, logger="outreach")
    text = "my bag is lost, call me"
    n = await client.inbound.record_reply(n.id, via="sms", text=text, unmatched=True)
    assert n.status is Status.ACTIVE  # still waiting for an answer
    assert n.last_reply == text
    [opened] = await client.attention()
    assert opened.reason is AttentionReason.NOT_UNDERSTOOD
    assert opened.detail == f"replied, not understood: '{text}'"
    assert heard.attention == [opened]
    assert "bag" not in caplog.text  # masked in logs
    assert "needs a person" in caplog.text
    await client.inbound.record_reply(n.id, via="sms", text="STOP")  # an audit entry only
    assert len(await client.attention()) == 1


async def test_an_acknowledgement_without_handoff_opens_no_attention(
    client: AsyncClient, plan: Plan, heard: Heard
) -> None:
    n = await client.start(ANN, plan, context=CONTEXT)
    await client.run_due()
    n = await client.acknowledge(n.id, choice="1")
    assert await client.attention(open=None) == []
    assert heard.of(n) == ["acknowledged"]


async def test_a_cancellation_fires_its_hook_and_opens_no_attention(
    client: AsyncClient, plan: Plan, heard: Heard
) -> None:
    n = await client.start(ANN, plan, context=CONTEXT)
    await client.run_due()
    await client.cancel(n.id)
    assert heard.of(n) == ["cancelled"]
    assert await client.attention(open=None) == []


async def test_stop_is_reported_as_an_opt_out_not_as_no_answer(
    client: AsyncClient, clock: FakeClock
) -> None:
    plan = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled")])
    n = await client.start(ANN, plan, context=CONTEXT)
    await client.run_due()
    await client.opt_out("sms", "+16175550123", reason="replied STOP", notification_id=n.id)
    await client.run_due()
    [opened] = await client.attention()
    assert opened.detail == "sms: opted out (replied STOP)"
    assert "no answer" not in opened.detail


async def test_one_customer_one_timeline_across_notifications(
    client: AsyncClient, clock: FakeClock, plan: Plan
) -> None:
    first = await client.start(ANN, with_refund_check(plan), context=CONTEXT, key="out")
    second = await client.start(ANN, plan, context=CONTEXT, key="return")
    other = await client.start(ANN.model_copy(update={"id": "pax-18"}), plan, context=CONTEXT)
    await client.run_due()
    await client.inbound.record_reply(second.id, via="sms", text="which flight?", unmatched=True)
    await client.acknowledge(first.id, via="sms", choice="2")
    clock.advance("3d")
    await client.run_due()
    check = await client.get(key="out/refund_check")
    await client.acknowledge(check.id, via="voice", choice="2")

    timeline = await client.timeline("pax-17")
    assert [e.seq for e in timeline] == sorted(e.seq for e in timeline)
    assert {e.notification_id for e in timeline} == {first.id, second.id, check.id}
    assert other.id not in {e.notification_id for e in timeline}
    kinds = [e.kind for e in timeline]
    for kind in (
        EventKind.ATTEMPT,
        EventKind.REPLY,
        EventKind.ACKNOWLEDGED,
        EventKind.FOLLOW_UP_STARTED,
        EventKind.ATTENTION_OPENED,
    ):
        assert kind in kinds
    [reply] = [e for e in timeline if e.kind is EventKind.REPLY]
    assert reply.data["text"] == "which flight?"
    [choice] = [e for e in timeline if e.kind is EventKind.ACKNOWLEDGED and e.data["choice"]][-1:]
    assert choice.notification_id == check.id


async def test_events_filter_by_notification_and_kind_in_the_store(
    client: AsyncClient, plan: Plan
) -> None:
    a = await client.start(ANN, plan, context=CONTEXT)
    b = await client.start(ANN, plan, context=CONTEXT)
    await client.run_due()
    mine = [e async for e in client.events(notification_id=a.id)]
    assert mine
    assert {e.notification_id for e in mine} == {a.id}
    created = [e async for e in client.events(kinds=["created"])]
    assert [e.notification_id for e in created] == [a.id, b.id]
    later = [e async for e in client.events(since=created[0].seq, kinds=[EventKind.CREATED])]
    assert [e.notification_id for e in later] == [b.id]
    with pytest.raises(ValueError, match="no event kind 'sent'"):
        [e async for e in client.events(kinds=["sent"])]


def test_the_sync_client_lists_resolves_and_tells_the_timeline(
    clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    handoff = Plan(
        name="p",
        steps=[Step(channel="sms", template="flight_cancelled")],
        options=[Option(key="1", label="Call me", handoff=True)],
    )
    with Client(store="memory://", channels=channels, templates=templates_dir, clock=clock) as ox:
        n = ox.start(ANN, handoff, context=CONTEXT)
        ox.run_due()
        ox.acknowledge(n.id, choice="1")
        [opened] = ox.attention()
        assert opened.detail == "chose 1: Call me"
        assert ox.resolve(opened.id, by="agent-7").resolved_by == "agent-7"
        assert ox.attention() == []
        kinds = [e.kind for e in ox.timeline("pax-17")]
        assert kinds[-2:] == [EventKind.ATTENTION_OPENED, EventKind.ATTENTION_RESOLVED]
        assert [e.kind for e in ox.events(kinds=["attention_resolved"])] == kinds[-1:]


async def test_a_late_answer_closes_the_unreached_case_for_the_customer(
    client: AsyncClient, clock: FakeClock, heard: Heard
) -> None:
    plan = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled", wait="15m")])
    n = await client.start(ANN, plan, context=CONTEXT)
    await client.run_due()
    clock.advance("15m")
    await client.run_due()
    [opened] = await client.attention()
    clock.advance("1d")
    n = await client.acknowledge(n.id, via="sms")  # within the grace period
    assert n.status is Status.ACKNOWLEDGED
    assert await client.attention() == []
    [closed] = await client.attention(open=False)
    assert (closed.id, closed.resolved_by, closed.note) == (
        opened.id,
        "customer",
        "answered after all, via sms",
    )
    assert heard.resolved == [closed]
    assert heard.of(n) == ["exhausted", "acknowledged"]


async def test_a_follow_up_calling_on_another_channel_name_needs_keypad_keys(
    clock: FakeClock, templates_dir: Path
) -> None:
    """Only the client knows channel "phone" calls: a follow-up plan calling on it, with a
    key no keypad sends, is refused at start() and nothing is stored."""
    channels = {"sms": InMemoryChannel(name="sms"), "phone": InMemoryChannel(medium="voice")}
    check = Plan(
        name="check",
        steps=[Step(channel="phone", template="refund_check")],
        options=[Option(key="yes", label="Arrived")],
    )
    plan = Plan(
        name="p",
        steps=[Step(channel="sms", template="flight_cancelled")],
        follow_ups=[FollowUp(after="3d", plan=check)],
    )
    async with AsyncClient(
        store="memory://", channels=channels, templates=templates_dir, clock=clock
    ) as ox:
        with pytest.raises(ConfigurationError, match=r"plan 'check': option 'yes'.*'phone'"):
            await ox.start(ANN, plan, context=CONTEXT)
        assert await ox.list() == []
