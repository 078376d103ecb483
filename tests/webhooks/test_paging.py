"""A page answered after someone else took its record: the call and the email's page say who
has it (the SMS reply is covered end to end, in tests/e2e/test_paging.py)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from outreach import AsyncClient, Notification, Option, Paging, Plan, Recipient, Status, Step
from outreach.demo import templates_dir as demo_templates
from outreach.testing import FakeClock, InMemoryChannel

from ._helpers import CONTEXT, PAX, call_status, inbound, path_of, sid, twilio_post

ANA = Recipient(id="agent-ana", phone="+16175550150", email="ana@example.com")
BO = Recipient(id="agent-bo", phone="+16175550151", email="bo@example.com")
HANDOFF = Plan(
    name="refund-check",
    steps=[Step(channel="sms", template="refund_check", wait="1h")],
    options=[Option(key="1", label="Arrived"), Option(key="2", label="Not", handoff=True)],
)


def paging(channel: str) -> Paging:
    plan = Plan(name="page", steps=[Step(channel=channel, template="page", wait="10m")])
    return Paging(plan=plan, staff=[ANA, BO], respond_within="0s")


@pytest.fixture
def page_templates(templates_dir: Path) -> Path:
    shutil.copytree(Path(demo_templates()) / "page", templates_dir / "page")
    return templates_dir


async def paged(client: AsyncClient, clock: FakeClock) -> dict[str, Notification]:
    """A handoff, paged at once: each staff member's page, by staff id."""
    n = await client.start(PAX, HANDOFF, context=CONTEXT)
    await client.run_due()
    await client.acknowledge(n.id, choice="2")
    await client.run_due()
    [case] = await client.attention()
    found = await client.list(campaign=f"attention/{case.id}")
    return {p.recipient.id: p for p in found}


@pytest.fixture
async def client(
    request: pytest.FixtureRequest,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
    page_templates: Path,
) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        store="memory://",
        channels=channels,
        templates=page_templates,
        clock=clock,
        attention=paging(request.param),
    ) as ox:
        yield ox


@pytest.mark.parametrize("client", ["voice"], indirect=True)
async def test_a_key_pressed_after_someone_else_took_it_says_who_has_it(
    client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    pages = await paged(client, clock)
    [bo_call] = pages["agent-bo"].attempts
    await client.take(pages["agent-ana"].metadata["paged_for"], by="agent-ana")
    params = {**call_status("in-progress", sid("CA"), 2), "Digits": "1"}
    response = await twilio_post(http, f"/twilio/voice/{bo_call.id}/gather", params)
    assert "agent-ana already has this one." in response.text
    assert "<Hangup />" in response.text
    assert (await client.get(pages["agent-bo"].id)).status is Status.CANCELLED


@pytest.mark.parametrize("client", ["email"], indirect=True)
async def test_the_link_after_someone_else_took_it_says_who_has_it(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
) -> None:
    await paged(client, clock)
    links = {m.to: m.ack_url for m in channels["email"].outbox}
    taken = await http.post(path_of(links[ANA.email]), data={"choice": "1"})
    assert taken.status_code == 200
    [case] = await client.attention()
    assert case.taken_by == "agent-ana"
    for told in (
        await http.get(path_of(links[BO.email])),
        await http.post(path_of(links[BO.email]), data={"choice": "1"}),
    ):
        assert told.status_code == 200
        assert "agent-ana already has this one." in told.text


@pytest.mark.parametrize("client", ["sms"], indirect=True)
async def test_a_page_answered_after_the_record_was_closed_says_it_is_closed(
    client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    """Closed (resolved) is not taken: the staff member is told the case is closed, never
    that its resolver ("customer", an agent) "already has" it."""
    await paged(client, clock)
    [case] = await client.attention()
    await client.resolve(case.id, by="customer", note="answered after all")
    response = await twilio_post(http, "/twilio/sms", inbound("1", phone=BO.phone or ""))
    assert "This case is already closed." in response.text
    assert "already has" not in response.text
