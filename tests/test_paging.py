"""Paging: an attention record nobody takes within ``respond_within`` pages the staff, step
by step, until one of them takes it; taking or resolving it stops every page; nobody taking
it after the whole plan is an ERROR and a hook."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach import (
    AsyncClient,
    Attention,
    AttentionReason,
    Client,
    EventKind,
    FollowUp,
    Hooks,
    Medium,
    Option,
    Paging,
    Plan,
    Recipient,
    Status,
    Step,
)
from outreach._paging import TAKE, page_campaign
from outreach._templates import Templates
from outreach.cli import app
from outreach.demo import templates_dir as demo_templates
from outreach.exceptions import AlreadyTaken, ConfigurationError, NotFound
from outreach.outcomes import describe_event
from outreach.stores import Store
from outreach.stores.postgres import PostgresStore
from outreach.testing import FakeClock, InMemoryChannel

CUSTOMER = Recipient(id="pax-17", phone="+16175550123", email="ann@example.com")
ANA = Recipient(id="agent-ana", phone="+16175550150", email="ana@example.com")
BO = Recipient(id="agent-bo", phone="+16175550151", email="bo@example.com")
PAGE = Plan(
    name="page",
    steps=[
        Step(channel="sms", template="page", wait="5m"),
        Step(channel="email", template="page", wait="5m"),
        Step(channel="voice", template="page", wait="5m"),
    ],
    urgent=True,
)
REFUND_CHECK = Plan(
    name="refund-check",
    steps=[Step(channel="sms", template="refund_check", wait="1h")],
    options=[
        Option(key="1", label="My refund arrived"),
        Option(key="2", label="My refund has not arrived", handoff=True),
    ],
)


class Heard:
    """The paging hooks, written down."""

    def __init__(self) -> None:
        self.taken: list[Attention] = []
        self.unanswered: list[Attention] = []

    def hooks(self) -> Hooks:
        return Hooks(
            on_attention_taken=self.taken.append, on_attention_unanswered=self.unanswered.append
        )


@pytest.fixture
def heard() -> Heard:
    return Heard()


@pytest.fixture
def templates_dir(templates_dir: Path) -> Path:
    """The example templates, with the demo's page (what staff are sent)."""
    shutil.copytree(Path(demo_templates()) / "page", templates_dir / "page")
    return templates_dir


def paging(**options: object) -> Paging:
    return Paging(plan=PAGE, staff=[ANA, BO], respond_within="15m", **options)  # type: ignore[arg-type]


@pytest.fixture
async def ox(
    clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path, heard: Heard
) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        store="memory://",
        channels=channels,
        templates=templates_dir,
        clock=clock,
        hooks=heard.hooks(),
        attention=paging(),
    ) as client:
        yield client


async def open_case(ox: AsyncClient) -> Attention:
    """The customer says their refund has not arrived: a handoff, an attention record."""
    n = await ox.start(CUSTOMER, REFUND_CHECK, context={"flight": "9K 1042"}, key="pax-17")
    await ox.run_due()
    await ox.acknowledge(n.id, via="sms", choice="2")
    [case] = await ox.attention()
    return case


def sent_to(channels: dict[str, InMemoryChannel], channel: str) -> list[str]:
    return [m.to for m in channels[channel].outbox]


async def pages(ox: AsyncClient, case: Attention) -> dict[str, Status]:
    return {p.recipient.id: p.status for p in await ox.list(campaign=page_campaign(case.id))}


async def later(ox: AsyncClient, clock: FakeClock, duration: str) -> None:
    clock.advance(duration)
    await ox.run_due()


async def test_an_untaken_record_pages_every_staff_member_then_the_next_step(
    ox: AsyncClient, clock: FakeClock, channels: dict[str, InMemoryChannel]
) -> None:
    case = await open_case(ox)
    await later(ox, clock, "14m59s")
    assert sent_to(channels, "sms") == [CUSTOMER.phone]  # nobody paged yet
    await later(ox, clock, "1s")
    assert sorted(sent_to(channels, "sms")[1:]) == [ANA.phone, BO.phone]
    page = channels["sms"].outbox[1]
    assert "pax-17 needs a person (handoff)" in page.body
    assert "TAKE" in page.body
    assert sent_to(channels, "email") == []
    await later(ox, clock, "5m")
    assert sorted(sent_to(channels, "email")) == [ANA.email, BO.email]
    email = channels["email"].outbox[0]
    assert CUSTOMER.phone in email.body
    assert case.id in email.body
    assert "/ack/" in email.body  # the signed link that takes it
    await later(ox, clock, "5m")
    assert sorted(sent_to(channels, "voice")) == [ANA.phone, BO.phone]


async def test_taking_it_stops_the_paging_for_everyone(
    ox: AsyncClient, clock: FakeClock, channels: dict[str, InMemoryChannel], heard: Heard
) -> None:
    case = await open_case(ox)
    await later(ox, clock, "15m")
    taken = await ox.take(case.id, by="agent-bo")
    assert (taken.taken_by, taken.taken_at) == ("agent-bo", clock.now())
    assert taken.open  # taken is not resolved: its owner resolves it
    assert await pages(ox, case) == {"agent-ana": Status.CANCELLED, "agent-bo": Status.CANCELLED}
    before = [len(c.outbox) for c in channels.values()]
    await later(ox, clock, "1h")
    assert [len(c.outbox) for c in channels.values()] == before
    assert [a.taken_by for a in heard.taken] == ["agent-bo"]
    assert heard.unanswered == []
    kinds = [e.kind for e in await ox.timeline("pax-17")]
    assert kinds[-2:] == [EventKind.ATTENTION_OPENED, EventKind.ATTENTION_TAKEN]


async def test_answering_a_page_takes_it_and_the_next_one_to_answer_is_told_who_has_it(
    ox: AsyncClient, clock: FakeClock
) -> None:
    case = await open_case(ox)
    await later(ox, clock, "15m")
    mine = {p.recipient.id: p for p in await ox.list(campaign=page_campaign(case.id))}
    answered = await ox.acknowledge(mine["agent-ana"].id, via="sms", choice="1")
    assert answered.status is Status.ACKNOWLEDGED
    assert await pages(ox, case) == {"agent-ana": Status.ACKNOWLEDGED, "agent-bo": Status.CANCELLED}
    [record] = await ox.attention()
    assert record.taken_by == "agent-ana"
    with pytest.raises(AlreadyTaken, match="already taken by agent-ana") as told:
        await ox.acknowledge(mine["agent-bo"].id, via="sms", choice="1")
    assert told.value.owner == "agent-ana"
    again = await ox.acknowledge(mine["agent-ana"].id, via="sms", choice="1")
    assert again.status is Status.ACKNOWLEDGED  # the owner answering twice is no error


async def test_resolving_it_before_respond_within_pages_nobody(
    ox: AsyncClient, clock: FakeClock, channels: dict[str, InMemoryChannel], heard: Heard
) -> None:
    case = await open_case(ox)
    await later(ox, clock, "10m")
    await ox.resolve(case.id, by="agent-cy", note="called back")
    await later(ox, clock, "2h")
    assert sent_to(channels, "sms") == [CUSTOMER.phone]
    assert channels["email"].outbox == channels["voice"].outbox == []
    assert await pages(ox, case) == {"agent-ana": Status.CANCELLED, "agent-bo": Status.CANCELLED}
    assert heard.unanswered == []
    with pytest.raises(AlreadyTaken, match="already resolved by agent-cy"):
        await ox.take(case.id, by="agent-ana")


async def test_resolving_it_while_paging_stops_the_pages(
    ox: AsyncClient, clock: FakeClock, channels: dict[str, InMemoryChannel]
) -> None:
    case = await open_case(ox)
    await later(ox, clock, "15m")
    await ox.resolve(case.id, by="agent-ana")
    await later(ox, clock, "1h")
    assert channels["email"].outbox == []


async def test_nobody_taking_it_after_the_whole_plan_is_an_error_and_a_hook(
    ox: AsyncClient,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
    heard: Heard,
    caplog: pytest.LogCaptureFixture,
) -> None:
    case = await open_case(ox)
    caplog.set_level(logging.INFO, logger="outreach")
    for step in ("15m", "5m", "5m", "4m"):  # texts, emails, calls, most of the calls' wait
        await later(ox, clock, step)
    assert heard.unanswered == []
    await later(ox, clock, "1m")
    assert await pages(ox, case) == {"agent-ana": Status.EXHAUSTED, "agent-bo": Status.EXHAUSTED}
    [gave_up] = heard.unanswered
    assert (gave_up.id, gave_up.unanswered_at, gave_up.taken_by) == (case.id, clock.now(), None)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"attention {case.id} (handoff, customer pax-17): every page ended and nobody took it"
    ]
    # Still open for whoever looks, and the pages opened no records of their own.
    assert [a.id for a in await ox.attention()] == [case.id]
    [logged] = [e async for e in ox.events(kinds=[EventKind.ATTENTION_UNANSWERED])]
    assert describe_event(logged) == f"attention {case.id}: paged, nobody took it"
    await later(ox, clock, "1d")
    assert len(heard.unanswered) == 1
    assert CUSTOMER.phone not in caplog.text
    assert "ann@example.com" not in caplog.text


async def test_staff_with_no_address_at_all_fail_at_once_and_it_is_unanswered(
    clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path, heard: Heard
) -> None:
    nobody = Paging(plan=PAGE, staff=[Recipient(id="agent-nil")], respond_within="0s")
    async with AsyncClient(
        store="memory://",
        channels=channels,
        templates=templates_dir,
        clock=clock,
        hooks=heard.hooks(),
        attention=nobody,
    ) as ox:
        case = await open_case(ox)
        await ox.run_due()
        assert await pages(ox, case) == {"agent-nil": Status.FAILED}
        assert [a.id for a in heard.unanswered] == [case.id]


async def test_with_stagger_staff_are_paged_in_turn(
    clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    async with AsyncClient(
        store="memory://",
        channels=channels,
        templates=templates_dir,
        clock=clock,
        attention=paging(stagger="10m"),
    ) as ox:
        case = await open_case(ox)
        await later(ox, clock, "15m")
        assert sent_to(channels, "sms")[1:] == [ANA.phone]
        await later(ox, clock, "9m")
        assert sent_to(channels, "sms")[1:] == [ANA.phone]
        await later(ox, clock, "1m")
        assert sent_to(channels, "sms")[1:] == [ANA.phone, BO.phone]
        await ox.take(case.id, by="agent-bo")
        assert await pages(ox, case) == {
            "agent-ana": Status.CANCELLED,
            "agent-bo": Status.CANCELLED,
        }


async def test_taking_before_the_next_in_turn_is_paged_never_pages_them(
    clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    async with AsyncClient(
        store="memory://",
        channels=channels,
        templates=templates_dir,
        clock=clock,
        attention=paging(stagger="10m"),
    ) as ox:
        case = await open_case(ox)
        await later(ox, clock, "16m")
        await ox.take(case.id, by="agent-ana")
        await later(ox, clock, "1h")
        assert sent_to(channels, "sms")[1:] == [ANA.phone]


async def test_staff_quiet_hours_hold_a_page_unless_the_plan_is_urgent(
    channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    night = FakeClock("2026-11-24T03:00:00+00:00")  # 22:00 in New York
    sleeper = Recipient(id="agent-ny", phone="+16175550152", timezone="America/New_York")
    calm = Plan(
        name="page",
        steps=[Step(channel="sms", template="page", wait="5m")],
        quiet_hours={"start": "21:00", "end": "08:00"},  # type: ignore[arg-type]
    )
    async with AsyncClient(
        store="memory://",
        channels=channels,
        templates=templates_dir,
        clock=night,
        attention=Paging(plan=calm, staff=[sleeper], respond_within="0s"),
    ) as ox:
        await open_case(ox)
        await ox.run_due()
        assert sent_to(channels, "sms") == [CUSTOMER.phone]  # held till 08:00 New York


async def test_take_is_idempotent_for_its_owner_and_checks_its_input(
    ox: AsyncClient, heard: Heard
) -> None:
    case = await open_case(ox)
    first = await ox.take(case.id, by="agent-ana")
    assert (await ox.take(case.id, by=" agent-ana ")).taken_at == first.taken_at
    assert len(heard.taken) == 1
    with pytest.raises(AlreadyTaken):
        await ox.take(case.id, by="agent-bo")
    with pytest.raises(NotFound, match="no attention record with id 'nope'"):
        await ox.take("nope", by="agent-ana")
    with pytest.raises(ValueError, match="must name who"):
        await ox.take(case.id, by="  ")


async def test_a_plan_without_options_is_given_take() -> None:
    assert paging().plan.options == (TAKE,)
    own = Option(key="5", label="Mine", keywords=["mine"])
    mine = Plan(name="p", steps=[Step(channel="sms", template="page")], options=[own])
    assert Paging(plan=mine, staff=[ANA]).plan.options == (own,)
    assert Paging(plan=mine, staff=[ANA]).respond_within.total_seconds() == 15 * 60


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"staff": [ANA, ANA]}, "staff ids must be unique"),
        ({"staff": []}, "staff"),
        ({"staff": [ANA], "respond_within": "soon"}, "respond_within"),
        ({"staff": [ANA], "stagger": "-"}, "stagger"),
        ({"staff": [ANA], "reasons": ["angry"]}, "reasons"),
    ],
)
def test_bad_paging_is_refused_naming_the_field(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Paging(plan=PAGE, **options)  # type: ignore[arg-type]


def test_a_paging_plan_that_ends_before_anyone_takes_the_record_is_refused() -> None:
    """A page delivered is not a record taken: ``until`` must stay at an acknowledgement."""
    delivered = PAGE.model_copy(update={"until": "delivered", "options": ()})
    with pytest.raises(ConfigurationError, match="until must be 'acknowledged'"):
        Paging(plan=delivered, staff=[ANA])


def test_a_paging_plan_with_follow_ups_is_refused() -> None:
    """A page's follow-up would count as a page and be cancelled with the others."""
    chaser = FollowUp(channel="sms", template="page", after="10m")
    with pytest.raises(ConfigurationError, match="a page has no follow-ups"):
        Paging(plan=PAGE.model_copy(update={"follow_ups": (chaser,)}), staff=[ANA])


def test_a_paging_plan_on_a_channel_the_client_lacks_is_refused(
    channels: dict[str, InMemoryChannel],
) -> None:
    fax = Plan(name="page", steps=[Step(channel="fax", template="page")])
    with pytest.raises(ConfigurationError, match="plan 'page' uses channel 'fax'"):
        AsyncClient(store="memory://", channels=channels, attention=Paging(plan=fax, staff=[ANA]))


async def test_the_pages_are_stored_with_the_record_so_a_crash_before_paging_loses_nothing(
    tmp_path: Path, clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    """The process that opened the record stops before anything is paged; another one, which
    does not even know about paging, sends the pages when they fall due."""
    url = f"sqlite:///{tmp_path / 'outreach.db'}"
    async with AsyncClient(
        store=url, channels=channels, templates=templates_dir, clock=clock, attention=paging()
    ) as first:
        case = await open_case(first)
    clock.advance("15m")
    later_channels = {name: InMemoryChannel(name=name) for name in channels}
    async with AsyncClient(
        store=url, channels=later_channels, templates=templates_dir, clock=clock
    ) as second:
        await second.run_due()
        assert sorted(sent_to(later_channels, "sms")) == [ANA.phone, BO.phone]
        await second.take(case.id, by="agent-ana")
        assert await pages(second, case) == {
            "agent-ana": Status.CANCELLED,
            "agent-bo": Status.CANCELLED,
        }


def test_the_sync_client_pages_and_takes(
    clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    with Client(
        store="memory://",
        channels=channels,
        templates=templates_dir,
        clock=clock,
        attention=paging(),
    ) as ox:
        n = ox.start(CUSTOMER, REFUND_CHECK, context={"flight": "9K 1042"})
        ox.run_due()
        ox.acknowledge(n.id, choice="2")
        [case] = ox.attention()
        clock.advance("15m")
        ox.run_due()
        assert sorted(sent_to(channels, "sms")[1:]) == [ANA.phone, BO.phone]
        assert ox.take(case.id, by="agent-bo").taken_by == "agent-bo"


async def race(
    store: Callable[[], str | Store],
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
    templates: Path,
) -> None:
    """Two clients (two connections) take each of several records at the same moment:
    each record ends with one owner, and the other taker is told who."""
    options = {"channels": channels, "templates": templates, "clock": clock}
    async with (
        AsyncClient(store=store(), attention=paging(), **options) as one,  # type: ignore[arg-type]
        AsyncClient(store=store(), **options) as other,  # type: ignore[arg-type]
    ):
        cases = []
        for i in range(8):
            n = await one.start(CUSTOMER, REFUND_CHECK, context={"flight": "9K 1042"}, key=f"k{i}")
            await one.run_due()
            await one.acknowledge(n.id, choice="2")
            cases.append(next(a for a in await one.attention() if a.notification_id == n.id))
        for case in cases:
            results = await asyncio.gather(
                one.take(case.id, by="agent-ana"),
                other.take(case.id, by="agent-bo"),
                return_exceptions=True,
            )
            won = [r for r in results if isinstance(r, Attention)]
            lost = [r for r in results if isinstance(r, AlreadyTaken)]
            assert len(won) == len(lost) == 1, results
            assert lost[0].owner == won[0].taken_by
            [stored] = [a for a in await other.attention() if a.id == case.id]
            assert stored.taken_by == won[0].taken_by
        taken = [e async for e in one.events(kinds=[EventKind.ATTENTION_TAKEN])]
        assert len(taken) == len(cases)
        assert await other.store.paged_out(limit=10) == []  # taken: never "nobody took it"


async def test_two_staff_taking_at_once_on_a_sqlite_file_one_owner_the_other_told(
    tmp_path: Path, clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    await race(lambda: url, clock, channels, templates_dir)


@pytest.mark.integration
async def test_two_staff_taking_at_once_on_postgres_one_owner_the_other_told(
    postgres_url: str,
    postgres_schema: str,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
    templates_dir: Path,
) -> None:
    await race(
        lambda: PostgresStore(postgres_url, schema=postgres_schema), clock, channels, templates_dir
    )


def test_outreach_attention_take_from_the_command_line(
    tmp_path: Path, clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with Client(
        store=url, channels=channels, templates=templates_dir, clock=clock, attention=paging()
    ) as ox:
        n = ox.start(CUSTOMER, REFUND_CHECK, context={"flight": "9K 1042"})
        ox.run_due()
        ox.acknowledge(n.id, choice="2")
        [case] = ox.attention()
        clock.advance("15m")
        ox.run_due()  # both are paged
    runner = CliRunner()
    store = ["--store", url]
    taken = runner.invoke(app, ["attention", "take", case.id, "--by", "agent-ana", *store])
    assert taken.exit_code == 0, taken.output
    assert taken.output.startswith(f"attention {case.id} taken by agent-ana at ")
    late = runner.invoke(app, ["attention", "take", case.id, "--by", "agent-bo", *store])
    assert late.exit_code == 1
    assert f"attention {case.id} is already taken by agent-ana" in late.output
    blank = runner.invoke(app, ["attention", "take", case.id, "--by", " ", *store])
    assert blank.exit_code == 2
    listed = json.loads(runner.invoke(app, ["attention", "--json", *store]).output)
    assert [(a["id"], a["taken_by"]) for a in listed] == [(case.id, "agent-ana")]
    table = runner.invoke(app, ["attention", *store], terminal_width=200)
    assert "[taken by agent-ana]" in table.output
    again = runner.invoke(
        app, ["attention", "take", case.id, "--by", "agent-ana", "--json", *store]
    )
    assert json.loads(again.output)["taken_by"] == "agent-ana"
    with Client(store=url, channels=channels, templates=templates_dir, clock=clock) as ox:
        paged = ox.list(campaign=page_campaign(case.id))
        assert {p.status for p in paged} == {Status.CANCELLED}


async def test_reasons_limit_paging_to_those_records(
    clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    only_unreached = paging(reasons=["unreached"])
    assert only_unreached.reasons == (AttentionReason.UNREACHED,)
    async with AsyncClient(
        store="memory://",
        channels=channels,
        templates=templates_dir,
        clock=clock,
        attention=only_unreached,
    ) as ox:
        case = await open_case(ox)  # a handoff
        await later(ox, clock, "1h")
        assert await pages(ox, case) == {}
        assert sent_to(channels, "sms") == [CUSTOMER.phone]


def test_the_demos_page_carries_the_customer_the_reason_and_how_to_take_it(
    templates_dir: Path,
) -> None:
    """The page templates the docs show render on every medium, in one SMS segment."""
    templates = Templates(templates_dir)
    context = {
        "attention": {"id": "3afe41801e59e6b4", "reason": "handoff", "detail": "chose 2: No"},
        "customer": {"id": "pax-17", "phone": "+16175550123", "email": None, "attributes": {}},
        "notice": {"flight": "9K 1042"},
        "campaign": "9K1042",
        "recipient": ANA,
        "options": [TAKE],
        "ack_url": "https://air.example/ack/tok",
    }
    sms = templates.render("page", Medium.SMS, context)
    assert sms.body == "pax-17 needs a person (handoff): chose 2: No. Reply TAKE to take it."
    assert sms.segments == 1
    email = templates.render("page", Medium.EMAIL, context)
    assert email.subject == "Needs a person: pax-17 (handoff)"
    assert "Phone: +16175550123" in email.body
    assert "https://air.example/ack/tok" in email.body
    assert "pax-17" in templates.render("page", Medium.VOICE, context).body


def test_the_command_line_lists_a_record_nobody_took(
    tmp_path: Path, clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    nobody = Paging(plan=PAGE, staff=[Recipient(id="agent-nil")], respond_within="0s")
    with Client(
        store=url, channels=channels, templates=templates_dir, clock=clock, attention=nobody
    ) as ox:
        n = ox.start(CUSTOMER, REFUND_CHECK, context={"flight": "9K 1042"})
        ox.run_due()
        ox.acknowledge(n.id, choice="2")
        ox.run_due()
    table = CliRunner().invoke(app, ["attention", "--store", url], terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "[paged, nobody took it]" in table.output


async def test_with_options_of_its_own_any_answer_takes_it(
    clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    mine = Option(key="5", label="On it", keywords=["mine"])
    own = Plan(name="page", steps=[Step(channel="sms", template="page")], options=[mine])
    async with AsyncClient(
        store="memory://",
        channels=channels,
        templates=templates_dir,
        clock=clock,
        attention=Paging(plan=own, staff=[ANA], respond_within="0s"),
    ) as ox:
        case = await open_case(ox)
        await ox.run_due()
        [page] = await ox.list(campaign=page_campaign(case.id))
        await ox.acknowledge(page.id, via="sms", choice="5")
        [record] = await ox.attention()
        assert record.taken_by == "agent-ana"


async def test_a_take_whose_process_stopped_before_cancelling_the_pages_still_stops_them(
    ox: AsyncClient, clock: FakeClock, channels: dict[str, InMemoryChannel]
) -> None:
    """The record's owner is written, then the process dies before it cancels the pages: each
    page is cancelled the next time it is due, and nothing more is sent."""
    case = await open_case(ox)
    await later(ox, clock, "15m")
    await ox.store.take_attention(case.id, by="agent-ana", now=clock.now())  # and no more
    assert set((await pages(ox, case)).values()) == {Status.ACTIVE}
    await later(ox, clock, "5m")
    assert channels["email"].outbox == []
    assert await pages(ox, case) == {"agent-ana": Status.CANCELLED, "agent-bo": Status.CANCELLED}
    [page] = (await ox.list(campaign=page_campaign(case.id)))[:1]
    cancelled = [e async for e in ox.events(notification_id=page.id, kinds=["cancelled"])]
    assert [e.data.get("reason") for e in cancelled] == ["taken by agent-ana"]


async def test_pages_that_all_ended_unnoticed_are_reported_by_the_audit(
    clock: FakeClock, channels: dict[str, InMemoryChannel], templates_dir: Path
) -> None:
    """The check after the last page's ending did not happen (here the pages were cancelled
    by hand, which that check ignores; a process stopping in between is the same): a worker's
    audit reports the record, once."""
    said: asyncio.Queue[Attention] = asyncio.Queue()
    async with AsyncClient(
        store="memory://",
        channels=channels,
        templates=templates_dir,
        clock=clock,
        hooks=Hooks(on_attention_unanswered=said.put_nowait),
        attention=paging(),
    ) as ox:
        case = await open_case(ox)
        for page in await ox.list(campaign=page_campaign(case.id)):
            await ox.cancel(page.id, reason="by hand")
        assert said.empty()
        worker = asyncio.create_task(ox.run())
        try:
            reported = await asyncio.wait_for(said.get(), timeout=30)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        assert reported.id == case.id
        assert (await ox.store.paged_out(limit=10)) == []
        [record] = await ox.attention()
        assert record.unanswered_at is not None


async def test_a_customer_answering_late_closes_the_case_and_stops_its_pages(
    ox: AsyncClient, clock: FakeClock
) -> None:
    n = await ox.start(CUSTOMER, REFUND_CHECK, context={"flight": "9K 1042"})
    await ox.run_due()
    await later(ox, clock, "1h")  # exhausted: unreached, a record
    [case] = await ox.attention()
    assert case.reason is AttentionReason.UNREACHED
    await later(ox, clock, "15m")
    assert set((await pages(ox, case)).values()) == {Status.ACTIVE}
    await ox.acknowledge(n.id, via="sms", choice="1")
    assert await ox.attention() == []
    assert await pages(ox, case) == {"agent-ana": Status.CANCELLED, "agent-bo": Status.CANCELLED}
