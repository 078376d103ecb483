"""Notices that need no answer through the client: the store, hooks, attention records,
reports, telemetry, the sync ``Client`` and the command line all know ``delivered`` and
``engaged``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from typer.testing import CliRunner

from outreach import (
    AsyncClient,
    Client,
    FollowUp,
    Hooks,
    Option,
    Plan,
    Recipient,
    Status,
    Step,
)
from outreach._models import AttemptStatus, Attention, EventKind
from outreach._telemetry import Telemetry
from outreach.campaigns import campaign_report
from outreach.cli import app
from outreach.stores import Store
from outreach.testing import FakeClock, InMemoryChannel

PAX = Recipient(id="pax-04", phone="+16175550104", email="dana@example.com", timezone="UTC")
CONTEXT = {"flight": "9K 1042"}
APOLOGY = Plan(
    name="apology",
    steps=[
        Step(channel="sms", template="apology", wait="15m"),
        Step(channel="email", template="apology", wait="30m"),
        Step(channel="voice", template="apology", wait="1h"),
    ],
    until="delivered",
)


class Heard:
    """What the hooks were told."""

    def __init__(self) -> None:
        self.endings: list[tuple[str, Status]] = []
        self.opened: list[Attention] = []
        self.resolved: list[Attention] = []

    def hooks(self) -> Hooks:
        def ending(name: str):  # type: ignore[no-untyped-def]
            return lambda n: self.endings.append((name, n.status))

        return Hooks(
            on_acknowledged=ending("acknowledged"),
            on_delivered=ending("delivered"),
            on_engaged=ending("engaged"),
            on_exhausted=ending("exhausted"),
            on_attention=self.opened.append,
            on_attention_resolved=self.resolved.append,
        )


def _channels() -> dict[str, InMemoryChannel]:
    return {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}


def _metric(reader: InMemoryMetricReader, name: str) -> dict[str, float]:
    data = reader.get_metrics_data()
    found: dict[str, float] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        status = str(dict(point.attributes or {})["outreach.status"])
                        found[status] = point.value  # type: ignore[attr-defined]
    return found


async def _deliver_the_apology(store: str, clock: FakeClock) -> None:
    """Dana's text is undelivered (a landline), the email goes at once and is delivered."""
    heard = Heard()
    channels = _channels()
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    async with AsyncClient(
        store=store,
        channels=channels,
        templates=Path(__file__).parent.parent / "templates",
        clock=clock,
        hooks=heard.hooks(),
        telemetry=Telemetry(meter_provider=meters),
    ) as ox:
        n = await ox.start(PAX, APOLOGY, context=CONTEXT, key="9K/pax-04/apology", campaign="9K")
        await ox.run_due()
        [sms] = (await ox.get(n.id)).attempts
        clock.advance("3s")
        await ox.inbound.update_attempt("undelivered", attempt_id=sms.id, error="Twilio 30006")
        await ox.run_due()  # the email goes at once, not 15 minutes later
        [mail] = channels["email"].outbox
        email = (await ox.get(n.id)).attempts[1]
        clock.advance("5s")
        await ox.inbound.update_attempt(AttemptStatus.DELIVERED, attempt_id=email.id)
        for _ in range(4):
            clock.advance("1h")
            await ox.run_due()

        n = await ox.get(n.id)
        assert n.status is Status.DELIVERED
        assert n.reached_by == "email delivered"
        assert channels["voice"].outbox == []
        assert mail.notification_id == n.id
        assert heard.endings == [("delivered", Status.DELIVERED)]
        assert heard.opened == []
        assert await ox.attention(open=False) == []  # delivered is not unreached
        kinds = [e.kind async for e in ox.events() if e.notification_id == n.id]
        assert kinds.count(EventKind.DELIVERED) == 1
        assert await ox.store.campaign_counts("9K") == {(Status.DELIVERED, False): 1}
        assert await ox.list(status="delivered") == [n]
        assert _metric(reader, "outreach.notifications") == {"active": 1, "delivered": 1}
        # Finished, nothing due: the sweeper does not take it for stuck.
        assert await ox.store.sweep(clock.now(), lapsed_before=clock.now(), limit=10) == []

        report = campaign_report("9K", await ox.list(campaign="9K"))
        assert (report.reached, report.acknowledged, report.reach_rate) == (1, 0, 1.0)
        assert report.never_reached == []
        assert report.recipients[0]["outcome"] == "delivered: email delivered"
    meters.shutdown()


def test_an_undelivered_text_then_a_delivered_email_ends_the_apology_without_a_call(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{tmp_path / 'notices.db'}"
    asyncio.run(_deliver_the_apology(store, clock))
    # What was stored is what a new process reads, and what the command line shows.
    monkeypatch.setenv("OUTREACH_STORE", store)
    runner = CliRunner()
    counted = runner.invoke(app, ["status", "--campaign", "9K"])
    assert counted.output.strip() == "campaign 9K: delivered: 1", counted.output
    shown = runner.invoke(app, ["status", "--key", "9K/pax-04/apology"], terminal_width=200)
    assert "status=delivered" in shown.output
    assert "outcome: delivered: email delivered" in shown.output
    with Client(store=store, channels=_channels(), templates=tmp_path, clock=clock) as sync:
        [again] = sync.list(status=Status.DELIVERED)
        assert again.reached_by == "email delivered"


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest) -> Store | str:
    if request.param == "memory":
        return "memory://"
    from outreach.stores.postgres import PostgresStore

    url = request.getfixturevalue("postgres_url")
    return PostgresStore(url, schema=request.getfixturevalue("postgres_schema"))


async def test_a_receipt_after_the_last_wait_closes_the_unreached_case(
    clock: FakeClock, templates_dir: Path, store: Store | str
) -> None:
    heard = Heard()
    async with AsyncClient(
        store=store,
        channels=_channels(),
        templates=templates_dir,
        clock=clock,
        hooks=heard.hooks(),
    ) as ox:
        plan = APOLOGY.model_copy(update={"steps": APOLOGY.steps[:1]})
        n = await ox.start(PAX, plan, context=CONTEXT)
        await ox.run_due()
        clock.advance("15m")
        await ox.run_due()
        [case] = await ox.attention()
        assert (await ox.get(n.id)).status is Status.EXHAUSTED

        clock.advance("2h")  # the carrier's receipt, very late
        [sms] = (await ox.get(n.id)).attempts
        await ox.inbound.update_attempt(AttemptStatus.DELIVERED, attempt_id=sms.id)
        n = await ox.get(n.id)
        assert n.status is Status.DELIVERED
        assert await ox.attention() == []
        [closed] = heard.resolved
        assert (closed.id, closed.resolved_by) == (case.id, "customer")
        assert closed.note == "reached after all: sms delivered"
        assert [name for name, _ in heard.endings] == ["exhausted", "delivered"]


async def test_an_answer_after_delivered_is_recorded_as_acknowledged(
    clock: FakeClock, templates_dir: Path, store: Store | str
) -> None:
    heard = Heard()
    async with AsyncClient(
        store=store,
        channels=_channels(),
        templates=templates_dir,
        clock=clock,
        hooks=heard.hooks(),
    ) as ox:
        n = await ox.start(PAX, APOLOGY, context=CONTEXT)
        await ox.run_due()
        [sms] = (await ox.get(n.id)).attempts
        await ox.inbound.update_attempt(AttemptStatus.DELIVERED, attempt_id=sms.id)
        clock.advance("1d")
        n = await ox.acknowledge(n.id, via="sms", attempt_id=sms.id)
        assert n.status is Status.ACKNOWLEDGED
        assert (n.acknowledged_via, n.reached_by) == ("sms", "sms delivered")
        assert [name for name, _ in heard.endings] == ["delivered", "acknowledged"]
        assert await ox.store.campaign_counts("9K") == {}  # no campaign given
        assert [x.id for x in await ox.list(status=Status.ACKNOWLEDGED)] == [n.id]


async def test_an_open_ends_an_engaged_notice_and_starts_its_follow_up(
    clock: FakeClock, templates_dir: Path
) -> None:
    heard = Heard()
    survey = FollowUp(after="1d", channel="sms", template="refund_check", name="survey")
    plan = Plan(
        name="read-me",
        steps=[
            Step(channel="email", template="flight_cancelled", wait="30m"),
            Step(channel="voice", template="flight_cancelled", wait="1h"),
        ],
        options=[Option(key="1", label="Rebook me"), Option(key="2", label="Refund")],
        until="engaged",
        follow_ups=[survey],
    )
    channels = _channels()
    async with AsyncClient(
        store="memory://",
        channels=channels,
        templates=templates_dir,
        clock=clock,
        hooks=heard.hooks(),
    ) as ox:
        n = await ox.start(PAX, plan, context=CONTEXT, key="9K/pax-04")
        await ox.run_due()
        [email] = (await ox.get(n.id)).attempts
        await ox.inbound.update_attempt(AttemptStatus.DELIVERED, attempt_id=email.id)
        assert (await ox.get(n.id)).status is Status.ACTIVE  # delivered is not engaged
        clock.advance("10m")
        await ox.inbound.update_attempt(AttemptStatus.ENGAGED, provider_id=email.provider_id)
        clock.advance("2h")
        await ox.run_due()

        n = await ox.get(n.id)
        assert (n.status, n.reached_by) == (Status.ENGAGED, "email opened or clicked")
        assert heard.endings == [("engaged", Status.ENGAGED)]
        assert channels["voice"].outbox == []
        child = await ox.get(key="9K/pax-04/survey")
        assert child.parent_id == n.id
        assert child.due_at == n.finished_at + timedelta(days=1)  # type: ignore[operator]
