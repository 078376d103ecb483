"""The client's promises: idempotent starts, clean failures on bad input, restarts, the log."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

import outreach
from outreach import AsyncClient, Client, Hooks, Notification, Plan, Recipient, Status, Step
from outreach._models import AttemptStatus, EventKind
from outreach._runner import Runner
from outreach.exceptions import (
    ConfigurationError,
    IdempotencyConflict,
    InvalidChoice,
    InvalidContext,
    InvalidRecipient,
    NotFound,
    TemplateError,
)
from outreach.testing import FakeClock, InMemoryChannel

TEMPLATES = Path(__file__).parent.parent / "templates"

PAX = Recipient(id="pax-17", phone="+16175550123", email="ann@example.com")
CONTEXT = {"flight": "9K 1042"}


class Killed(Exception):
    """Stands in for a process dying mid-send."""


def test_public_names_are_exported_and_sorted() -> None:
    assert outreach.__all__ == sorted(outreach.__all__)
    for name in outreach.__all__:
        assert hasattr(outreach, name)
    assert outreach.__version__


async def test_same_key_returns_the_same_notification_and_sends_once(
    client: AsyncClient, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    first = await client.start(PAX, plan, context=CONTEXT, key="k1")
    again = await client.start(PAX, plan, context=CONTEXT, key="k1")
    assert again.id == first.id
    await client.run_due()
    await client.start(PAX, plan, context=CONTEXT, key="k1")
    await client.run_due()
    assert len(channels["sms"].outbox) == 1
    assert len(await client.list()) == 1


async def test_same_key_with_another_recipient_or_plan_conflicts(
    client: AsyncClient, plan: Plan
) -> None:
    await client.start(PAX, plan, context=CONTEXT, key="k1")
    with pytest.raises(IdempotencyConflict, match="k1"):
        await client.start(PAX.model_copy(update={"id": "other"}), plan, context=CONTEXT, key="k1")
    other_plan = plan.model_copy(update={"name": "other"})
    with pytest.raises(IdempotencyConflict):
        await client.start(PAX, other_plan, context=CONTEXT, key="k1")
    batch = [
        outreach.StartRequest(PAX.model_copy(update={"id": "new"}), CONTEXT, key="k2"),
        outreach.StartRequest(PAX.model_copy(update={"id": "other"}), CONTEXT, key="k1"),
    ]
    with pytest.raises(IdempotencyConflict):
        await client.start_many(plan, batch)
    assert [n.key for n in await client.list()] == ["k1"]  # nothing of the batch was stored


async def test_a_retried_start_matches_after_a_round_trip_through_the_store(
    client: AsyncClient, plan: Plan
) -> None:
    """Tuples become lists in JSON, sets lose their order: a retry must still match."""
    pax = PAX.model_copy(update={"attributes": {"seats": ("12A", "12B")}})
    first = await client.start(pax, plan, context=CONTEXT, key="k")
    again = await client.start(pax, plan, context=CONTEXT, key="k")
    assert again.id == first.id


async def test_context_that_is_not_json_is_refused_and_stores_nothing(
    client: AsyncClient, plan: Plan
) -> None:
    with pytest.raises(ConfigurationError, match="JSON"):
        await client.start(PAX, plan, context={**CONTEXT, "when": object()})
    assert await client.list() == []
    assert (await client.start(PAX, plan, context=CONTEXT)).status is Status.PENDING


@pytest.mark.parametrize(
    ("name", "expression", "value"),
    [
        ("when", "when.strftime('%H:%M')", datetime(2026, 11, 23, 14, 5, tzinfo=UTC)),
        ("seats", "seats[12]", {12: "12A"}),
        ("price", "price + 1", Decimal("19.90")),
    ],
)
async def test_start_refuses_context_that_only_works_before_the_store(
    templates_dir: Path,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
    tmp_path: Path,
    name: str,
    expression: str,
    value: object,
) -> None:
    """The trial render sees the context as the store gives it back (JSON), as a send does:
    a datetime, an int-keyed dict or a Decimal that a template uses as such fail at start()."""
    (templates_dir / "uses").mkdir()
    (templates_dir / "uses" / "sms.txt").write_text(f"{{{{ {expression} }}}}")
    plan = Plan(name="p", steps=[Step(channel="sms", template="uses")])
    async with AsyncClient(
        store=f"sqlite:///{tmp_path / 'o.db'}",
        channels=channels,
        templates=templates_dir,
        clock=clock,
    ) as ox:
        with pytest.raises(TemplateError, match="uses"):
            await ox.start(PAX, plan, context={name: value})
        assert await ox.list() == []


async def test_the_context_stored_is_the_one_the_trial_render_saw(
    client: AsyncClient, plan: Plan
) -> None:
    """Every store keeps the JSON form, the memory store included: no store-dependent sends."""
    when = datetime(2026, 11, 23, 14, 5, tzinfo=UTC)
    context = {**CONTEXT, "when": when, "seats": {12: "12A"}, "price": Decimal("19.90")}
    n = await client.start(PAX, plan, context=context)
    expected = {**CONTEXT, "when": "2026-11-23T14:05:00Z", "seats": {"12": "12A"}, "price": "19.90"}
    assert n.context == expected
    assert (await client.get(n.id)).context == expected


async def test_context_that_cannot_be_stored_names_the_key_and_stores_nothing(
    client: AsyncClient, plan: Plan
) -> None:
    good = outreach.StartRequest(PAX, CONTEXT, key="a")
    bad = outreach.StartRequest(PAX, {**CONTEXT, "gate": object()}, key="b")
    with pytest.raises(InvalidContext, match="'gate'") as raised:
        await client.start_many(plan, [good, bad])
    assert "key 'b'" in str(raised.value)
    assert isinstance(raised.value, ConfigurationError)
    assert await client.list() == []


async def test_a_voice_channel_under_another_name_needs_keypad_option_keys(
    clock: FakeClock, templates_dir: Path
) -> None:
    """The plan cannot see that channel "phone" calls; the client, which knows, refuses "10"
    at start() and stores nothing."""
    channels = {"sms": InMemoryChannel(name="sms"), "phone": InMemoryChannel(medium="voice")}
    plan = Plan(
        name="p",
        steps=[
            Step(channel="sms", template="flight_cancelled"),
            Step(channel="phone", template="flight_cancelled"),
        ],
        options=[
            outreach.Option(key="1", label="Rebook"),
            outreach.Option(key="10", label="Refund"),
        ],
    )
    async with AsyncClient(
        store="memory://", channels=channels, templates=templates_dir, clock=clock
    ) as ox:
        with pytest.raises(ConfigurationError, match=r"option '10'.*'phone'"):
            await ox.start(PAX, plan, context=CONTEXT)
        assert await ox.list() == []


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"phone": "+1 617 555"}, "phone"),
        ({"email": "not-an-address"}, "email"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ],
)
def test_invalid_recipient_fields_are_named(fields: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidRecipient, match=named):
        Recipient(id="pax-1", **fields)


async def test_unknown_channel_stores_nothing(client: AsyncClient) -> None:
    plan = Plan(name="p", steps=[Step(channel="pigeon", template="flight_cancelled")])
    with pytest.raises(ConfigurationError, match="pigeon"):
        await client.start(PAX, plan, context=CONTEXT)
    assert await client.list() == []


async def test_missing_template_stores_nothing(client: AsyncClient) -> None:
    plan = Plan(name="p", steps=[Step(channel="sms", template="no_such_notice")])
    with pytest.raises(TemplateError, match="no_such_notice"):
        await client.start(PAX, plan, context=CONTEXT)
    assert await client.list() == []


async def test_missing_template_variable_is_named_and_stores_nothing(
    client: AsyncClient, plan: Plan
) -> None:
    with pytest.raises(TemplateError, match="flight"):
        await client.start(PAX, plan, context={})
    assert await client.list() == []


async def test_one_bad_request_in_a_batch_stores_nothing(client: AsyncClient, plan: Plan) -> None:
    good = outreach.StartRequest(PAX, CONTEXT, key="a")
    bad = outreach.StartRequest(PAX.model_copy(update={"id": "b"}), {}, key="b")
    with pytest.raises(TemplateError):
        await client.start_many(plan, [good, bad])
    assert await client.list() == []


async def test_unknown_id_key_and_choice(client: AsyncClient, plan: Plan) -> None:
    with pytest.raises(NotFound):
        await client.get("nope")
    with pytest.raises(NotFound):
        await client.acknowledge(key="nope")
    n = await client.start(PAX, plan, context=CONTEXT)
    with pytest.raises(InvalidChoice, match="'9'"):
        await client.acknowledge(n.id, choice="9")
    assert (await client.get(n.id)).status is Status.PENDING


async def test_restart_resumes_on_time_and_never_resends_a_lost_send(
    tmp_path: Path, clock: FakeClock, plan: Plan
) -> None:
    url = f"sqlite:///{tmp_path / 'outreach.db'}"
    first = {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}
    async with AsyncClient(store=url, channels=first, templates=TEMPLATES, clock=clock) as ox:
        n = await ox.start(PAX, plan, context=CONTEXT, key="k")
        await ox.run_due()
    assert len(first["sms"].outbox) == 1

    # A runner dies between recording the email as `sending` and hearing back from the provider.
    clock.advance("15m")
    second = {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}
    async with AsyncClient(store=url, channels=second, templates=TEMPLATES, clock=clock) as ox:
        runner: Runner = ox._runner

        async def crash(*_: object) -> object:
            raise Killed("killed mid-send")

        runner.send = crash  # type: ignore[assignment,method-assign]
        with pytest.raises(Killed):
            await ox.run_due()
    lost = (await _reopen(url, clock)).attempts[-1]
    assert (lost.channel, lost.status) == ("email", AttemptStatus.SENDING)

    third = {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}
    async with AsyncClient(store=url, channels=third, templates=TEMPLATES, clock=clock) as ox:
        clock.advance("25s")
        await ox.run_due()  # the lease (30 seconds) still holds: nobody touches it
        assert (await ox.get(n.id)).attempts[-1].status is AttemptStatus.SENDING
        clock.advance("10s")
        await ox.run_due()  # lease lapsed: the email becomes `unknown`, is not resent
        email = (await ox.get(n.id)).attempts[-1]
        assert email.status is AttemptStatus.UNKNOWN
        assert third["email"].outbox == []
        assert third["voice"].outbox == []
        clock.advance("29m25s")  # 30m after the email was recorded: its wait is over
        await ox.run_due()
        assert len(third["voice"].outbox) == 1
        assert third["email"].outbox == []


async def _reopen(url: str, clock: FakeClock) -> Notification:
    async with AsyncClient(store=url, channels={}, templates=TEMPLATES, clock=clock) as ox:
        [n] = await ox.list()
        return n


async def test_every_change_is_in_the_event_log_and_hooks_run_after_commit(
    clock: FakeClock, channels: dict[str, InMemoryChannel], plan: Plan
) -> None:
    seen: list[str] = []

    async def acknowledged(n: Notification) -> None:
        stored = await ox.get(n.id)  # called after commit: the store already has it
        seen.append(f"ack {stored.choice} {stored.status}")

    def failing(n: Notification, attempt: outreach.Attempt) -> None:
        raise RuntimeError("the application's hook is broken")

    hooks = Hooks(on_acknowledged=acknowledged, on_attempt=failing)
    async with AsyncClient(
        store="memory://", channels=channels, templates=TEMPLATES, clock=clock, hooks=hooks
    ) as ox:
        n = await ox.start(PAX, plan, context=CONTEXT)
        await ox.run_due()  # the failing hook is logged, the runner carries on
        await ox.acknowledge(n.id, choice="1")
        kinds = [e.kind async for e in ox.events()]
        assert kinds[:2] == [EventKind.CREATED, EventKind.ACTIVATED]
        assert EventKind.ACKNOWLEDGED in kinds
        events = [e async for e in ox.events()]
        later = [e async for e in ox.events(since=events[1].seq)]
        assert later == events[2:]
    assert seen == ["ack 1 acknowledged"]


async def test_cancel_stops_everything(
    client: AsyncClient, clock: FakeClock, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    n = await client.start(PAX, plan, context=CONTEXT, key="k")
    await client.run_due()
    cancelled = await client.cancel(key="k", reason="flight restored")
    assert cancelled.status is Status.CANCELLED
    clock.advance("2h")
    await client.run_due()
    assert sum(len(c.outbox) for c in channels.values()) == 1
    after = await client.acknowledge(n.id, choice="1")
    assert after.status is Status.CANCELLED


def test_sync_client_works_inside_and_outside_a_running_loop(plan: Plan) -> None:
    clock = FakeClock()
    channels = {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}
    with Client(store="memory://", channels=channels, templates=TEMPLATES, clock=clock) as ox:
        n = ox.start(PAX, plan, context=CONTEXT, key="k")
        assert ox.run_due() == 1
        clock.advance("15m")
        ox.run_due()
        assert len(channels["email"].outbox) == 1
        assert ox.acknowledge(key="k", choice="2").status is Status.ACKNOWLEDGED
        assert ox.get(n.id).choice == "2"
        assert ox.events()[0].kind is EventKind.CREATED


async def test_sync_client_inside_an_event_loop(plan: Plan) -> None:
    channels = {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}
    with Client(store="memory://", channels=channels, templates=TEMPLATES, clock=FakeClock()) as ox:
        ox.start(PAX, plan, context=CONTEXT)
        ox.run_due()
    assert len(channels["sms"].outbox) == 1


async def test_reading_back_does_not_validate_recipients_again(
    client: AsyncClient, plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored recipient was checked when it was started; loads must stay cheap."""
    import phonenumbers

    n = await client.start(PAX, plan, context=CONTEXT)

    def parse(*args: object) -> None:
        raise AssertionError("phonenumbers ran on a load")

    monkeypatch.setattr(phonenumbers, "parse", parse)
    assert (await client.get(n.id)).recipient == PAX


def test_a_loopback_public_url_with_real_providers_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from outreach.channels import SendGridEmail

    real = SendGridEmail(api_key="SG.x", from_email="alerts@example.com")
    with caplog.at_level("WARNING", logger="outreach"):
        AsyncClient(store="memory://", channels={"email": real})
    assert "OUTREACH_PUBLIC_URL" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="outreach"):
        AsyncClient(store="memory://", channels={"email": InMemoryChannel()})
    assert "OUTREACH_PUBLIC_URL" not in caplog.text


@pytest.mark.parametrize("value", ["", "  "])
def test_a_secret_key_set_but_empty_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    from pydantic import SecretStr

    from outreach._settings import Settings
    from outreach.exceptions import ConfigurationError

    monkeypatch.setenv("OUTREACH_SECRET_KEY", value)
    with pytest.raises(ConfigurationError, match="OUTREACH_SECRET_KEY"):
        AsyncClient(store="memory://")
    monkeypatch.setenv("OUTREACH_SECRET_KEY", "k" * 32)
    unchecked = Settings().model_copy(update={"secret_key": SecretStr(value)})  # no validation
    with pytest.raises(ConfigurationError, match="OUTREACH_SECRET_KEY"):
        AsyncClient(store="memory://", settings=unchecked)


def test_a_short_secret_key_is_accepted_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OUTREACH_SECRET_KEY", "short")
    with caplog.at_level("WARNING", logger="outreach"):
        AsyncClient(store="memory://")
    assert "OUTREACH_SECRET_KEY" in caplog.text
    assert "32 bytes" in caplog.text
    assert "short" not in caplog.text.replace("shorter", "")  # the key itself is never shown
    caplog.clear()
    monkeypatch.setenv("OUTREACH_SECRET_KEY", "k" * 32)
    with caplog.at_level("WARNING", logger="outreach"):
        AsyncClient(store="memory://")
    assert "OUTREACH_SECRET_KEY" not in caplog.text
