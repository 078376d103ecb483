"""The pages a customer opens from an email: acknowledge and one-click unsubscribe."""

from __future__ import annotations

from datetime import timedelta

import httpx

from outreach import AsyncClient, AttemptStatus, EventKind, Medium, Plan, Status
from outreach._tokens import TokenClaims, TokenSigner
from outreach.channels import Message
from outreach.testing import FakeClock, InMemoryChannel

from ._helpers import PAX, email_attempt, kinds, opted_out, path_of, snapshot, start, to_step

# --- acknowledgement pages ------------------------------------------------------------------


async def email_message(
    client: AsyncClient, clock: FakeClock, plan: Plan, channels: dict[str, InMemoryChannel]
) -> Message:
    await email_attempt(client, clock, plan)
    return channels["email"].outbox[-1]


async def test_the_ack_page_shows_the_message_and_changes_nothing(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    message = await email_message(client, clock, plan, channels)
    before = await snapshot(client)
    for _ in range(3):  # a mail scanner, a link preview, the customer
        page = await http.get(path_of(message.ack_url))
        assert page.status_code == 200
    assert await snapshot(client) == before
    assert page.headers["content-type"].startswith("text/html")
    assert "Flight 9K 1042 is cancelled: choose what happens next" in page.text
    assert '<meta name="viewport"' in page.text
    for option in plan.options:
        assert f'name="choice" value="{option.key}"' in page.text
        assert option.label in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


async def test_posting_the_form_acknowledges_with_the_choice(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    message = await email_message(client, clock, plan, channels)
    response = await http.post(path_of(message.ack_url), data={"choice": "3"})
    assert response.status_code == 200
    assert "We have recorded your choice: Taxi to my destination." in response.text
    n = await client.get(message.notification_id)
    assert (n.status, n.choice, n.acknowledged_via) == (Status.ACKNOWLEDGED, "3", "email")
    [ack] = [e async for e in client.events() if e.kind is EventKind.ACKNOWLEDGED]
    assert ack.attempt_id == message.attempt_id
    again = await http.get(path_of(message.ack_url))
    assert "You have already answered" in again.text
    assert "Taxi to my destination" in again.text
    second = await http.post(path_of(message.ack_url), data={"choice": "1"})
    assert "You have already answered" in second.text
    assert "Taxi to my destination" in second.text
    assert (await client.get(n.id)).choice == "3"


async def test_an_option_link_preselects_and_a_bare_post_uses_it(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    message = await email_message(client, clock, plan, channels)
    link = path_of(message.option_urls["2"])
    page = await http.get(link)
    assert 'value="2" class="primary"' in page.text
    assert (await client.get(message.notification_id)).status is Status.ACTIVE
    response = await http.post(link)  # a one-click POST without a form body
    assert response.status_code == 200
    assert (await client.get(message.notification_id)).choice == "2"


async def test_a_choice_that_is_not_an_option_is_refused(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    message = await email_message(client, clock, plan, channels)
    before = await snapshot(client)
    response = await http.post(path_of(message.ack_url), data={"choice": "7"})
    assert response.status_code == 400
    assert await snapshot(client) == before


async def test_expired_unknown_and_forged_links(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    message = await email_message(client, clock, plan, channels)
    assert message.ack_url is not None
    assert message.unsubscribe_url is not None
    token = message.ack_url.rsplit("/", 1)[1]
    payload, mac = token.split(".")
    nobody = TokenSigner("test-secret").sign(
        TokenClaims("ack", "no-such-notification", None, None, clock.now() + timedelta(days=1))
    )
    before = await snapshot(client)
    for method in ("GET", "POST"):
        for bad in (f"{payload}.{mac[::-1]}", "garbage", nobody):
            response = await http.request(method, f"/ack/{bad}")
            assert response.status_code == 404, (method, bad)
            assert "Link not recognised" in response.text
        wrong_purpose = await http.request(
            method, path_of(message.unsubscribe_url).replace("/unsubscribe/", "/ack/")
        )
        assert wrong_purpose.status_code == 404
    clock.advance("40d")  # past the deadline and the grace period
    for method in ("GET", "POST"):
        response = await http.request(method, path_of(message.ack_url))
        assert response.status_code == 410
        assert "This link has expired" in response.text
    after = await snapshot(client)
    assert after == before


async def test_the_page_escapes_what_it_shows(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    n = await client.start(PAX, plan, context={"flight": "<script>alert(1)</script>"})
    await client.run_due()
    await to_step(client, clock, n, 1)
    page = await http.get(path_of(channels["email"].outbox[-1].ack_url))
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_one_click_unsubscribe(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    message = await email_message(client, clock, plan, channels)
    link = path_of(message.unsubscribe_url)
    page = await http.get(link)
    assert page.status_code == 200
    assert "Unsubscribe" in page.text
    assert not await opted_out(client, Medium.EMAIL, PAX.email)
    response = await http.post(link, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert await opted_out(client, Medium.EMAIL, PAX.email)
    n = await start(client, plan, key="later")
    await to_step(client, clock, n, 1)
    email = (await client.get(n.id)).attempts[1]
    assert email.status is AttemptStatus.SKIPPED
    assert (await http.post("/unsubscribe/garbage")).status_code == 404


async def test_one_click_unsubscribe_is_an_event_and_ends_the_email_wait(
    client: AsyncClient,
    http: httpx.AsyncClient,
    plan: Plan,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
) -> None:
    n = await start(client, plan)
    await to_step(client, clock, n, 1)
    link = channels["email"].outbox[-1].unsubscribe_url
    assert link is not None
    response = await http.post(path_of(link), content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 200
    assert EventKind.OPTED_OUT in await kinds(client, n)
    await client.run_due()
    assert len(channels["voice"].outbox) == 1  # no 30-minute wait on a mailbox that said no
