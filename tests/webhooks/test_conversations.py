"""A reply when one customer has two notices at once: which one it lands on, and what the
confirmation says (the simulator's end-to-end version is ``tests/e2e/test_conversations.py``)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from outreach import AsyncClient, EventKind, Plan, Status
from outreach._templates import Templates
from outreach.channels.twilio import TwilioSMS
from outreach.exceptions import ConfigurationError, TemplateError
from outreach.testing import FakeClock, InMemoryChannel

from ._helpers import OUR_NUMBER, PAX, inbound, twilio_post

SECOND = "+16175550101"


async def two_notices(client: AsyncClient, clock: FakeClock, plan: Plan) -> tuple[str, str]:
    first = await client.start(PAX, plan, context={"flight": "9K 1042"}, key="outbound")
    await client.run_due()
    clock.advance("1m")
    second = await client.start(PAX, plan, context={"flight": "9K 1043"}, key="return")
    await client.run_due()
    return first.id, second.id


@pytest.fixture
def channels() -> dict[str, InMemoryChannel]:
    return {
        "sms": InMemoryChannel(name="sms", senders=(OUR_NUMBER, SECOND)),
        "email": InMemoryChannel(name="email"),
        "voice": InMemoryChannel(name="voice"),
    }


async def test_concurrent_notices_get_different_senders_and_replies_their_own(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    first, second = await two_notices(client, clock, plan)
    assert [m.sender for m in channels["sms"].outbox] == [OUR_NUMBER, SECOND]
    answer = await twilio_post(http, "/twilio/sms", inbound("refund", To=SECOND))
    assert "<Message>Thank you. We have recorded your choice: Refund.</Message>" in answer.text
    assert (await client.get(second)).choice == "2"
    assert (await client.get(first)).status is Status.ACTIVE
    assert EventKind.REPLY not in [
        e.kind async for e in client.events() if e.notification_id == first
    ]


async def test_two_notices_started_together_go_out_from_different_numbers(
    client: AsyncClient,
    http: httpx.AsyncClient,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    """Both texts are in flight at once (one ``run_due``): neither is in the store with its
    number yet when the other's is chosen."""
    first = await client.start(PAX, plan, context={"flight": "9K 1042"}, key="outbound")
    second = await client.start(PAX, plan, context={"flight": "9K 1043"}, key="return")
    await client.run_due()
    by_flight = {
        ("9K 1042" in m.body, "9K 1043" in m.body): m.sender for m in channels["sms"].outbox
    }
    assert sorted(by_flight.values()) == sorted([OUR_NUMBER, SECOND])
    await twilio_post(http, "/twilio/sms", inbound("1", To=by_flight[True, False] or ""))
    await twilio_post(http, "/twilio/sms", inbound("3", To=by_flight[False, True] or ""))
    assert (await client.get(first.id)).choice == "1"
    assert (await client.get(second.id)).choice == "3"


async def test_a_third_notice_with_every_number_taken_reuses_the_longest_unused(
    client: AsyncClient, clock: FakeClock, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    await two_notices(client, clock, plan)
    clock.advance("1m")
    await client.start(PAX, plan, context={"flight": "9K 1044"}, key="hotel")
    await client.run_due()
    assert [m.sender for m in channels["sms"].outbox] == [OUR_NUMBER, SECOND, OUR_NUMBER]


async def test_a_finished_notice_frees_its_number(
    client: AsyncClient, clock: FakeClock, plan: Plan, channels: dict[str, InMemoryChannel]
) -> None:
    first, _ = await two_notices(client, clock, plan)
    await client.acknowledge(first, via="api")
    await client.start(PAX, plan, context={"flight": "9K 1044"}, key="hotel")
    await client.run_due()
    assert [m.sender for m in channels["sms"].outbox] == [OUR_NUMBER, SECOND, OUR_NUMBER]


class TestOneNumber:
    @pytest.fixture
    def channels(self) -> dict[str, InMemoryChannel]:
        return {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}

    async def test_the_confirmation_names_the_notice_in_the_recipients_language(
        self, client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock, plan: Plan
    ) -> None:
        french = PAX.model_copy(update={"locale": "fr"})
        await client.start(french, plan, context={"flight": "9K 1042"}, key="outbound")
        await client.run_due()
        clock.advance("1m")
        latest = await client.start(french, plan, context={"flight": "9K 1043"}, key="return")
        await client.run_due()
        answer = await twilio_post(http, "/twilio/sms", inbound("2"))
        assert "Nous avons enregistré votre choix : Refund." in answer.text
        named = '(Cette réponse concerne : "Cape Air : le vol 9K 1043 est annulé...")'
        assert named in answer.text
        assert (await client.get(latest.id)).status is Status.ACKNOWLEDGED

    async def test_a_notices_confirm_template_is_its_confirmation(
        self,
        client: AsyncClient,
        http: httpx.AsyncClient,
        clock: FakeClock,
        plan: Plan,
        templates_dir: Path,
    ) -> None:
        folder = templates_dir / "flight_cancelled"
        (folder / "confirm.txt").write_text(
            "Flight {{ flight }}: we have your answer ({{ label }}).", encoding="utf-8"
        )
        (folder / "confirm.fr.txt").write_text(
            "Vol {{ flight }} : réponse notée ({{ label }}).", encoding="utf-8"
        )
        first, second = await two_notices(client, clock, plan)
        answer = await twilio_post(http, "/twilio/sms", inbound("refund"))
        assert "<Message>Flight 9K 1043: we have your answer (Refund).</Message>" in answer.text
        assert (await client.get(first)).status is Status.ACTIVE
        replies = [e async for e in client.events() if e.kind is EventKind.REPLY]
        assert [(r.notification_id, r.data["text"]) for r in replies] == [(first, "refund")]
        again = await twilio_post(http, "/twilio/sms", inbound("1"))  # already answered
        assert "We already have your answer: Refund." in again.text
        assert second != first


@pytest.mark.parametrize(
    ("senders", "problem"),
    [
        ("+16175550100", "a list of numbers, not one string"),
        (["+16175550100", "555"], r"senders\[1\] '555' is not a valid E.164 number"),
        (["+16175550100", "+1 617 555 0100"], r"senders\[1\] .* is listed twice"),
    ],
)
def test_bad_sender_lists_are_refused_naming_the_entry(senders: object, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        TwilioSMS(account_sid="AC" + "a" * 32, auth_token="t", senders=senders)  # type: ignore[arg-type]


def test_senders_and_a_messaging_service_exclude_each_other() -> None:
    with pytest.raises(ConfigurationError, match="exclude each other"):
        TwilioSMS(
            account_sid="AC" + "a" * 32,
            auth_token="t",
            senders=["+16175550100", SECOND],
            messaging_service_sid="MG" + "b" * 32,
        )


@pytest.mark.parametrize("stem", ["confirm", "page"])
async def test_start_refuses_a_confirm_or_page_template_with_an_unknown_variable(
    client: AsyncClient, plan: Plan, templates_dir: Path, stem: str
) -> None:
    (templates_dir / "flight_cancelled" / f"{stem}.txt").write_text("{{ gate }}", encoding="utf-8")
    with pytest.raises(TemplateError, match=f"flight_cancelled/{stem}.txt: variable 'gate'"):
        await client.start(PAX, plan, context={"flight": "9K 1042"})
    assert await client.list() == []


def test_senders_come_from_the_environment_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OUTREACH_TWILIO_ACCOUNT_SID", "AC" + "a" * 32)
    monkeypatch.setenv("OUTREACH_TWILIO_AUTH_TOKEN", "t")
    monkeypatch.setenv("OUTREACH_TWILIO_SENDERS", "+1 617 555 0100, +16175550101")
    sms = TwilioSMS()
    assert sms.senders == ("+16175550100", SECOND)
    assert sms.from_ == "+16175550100"


async def test_a_confirm_template_broken_after_start_falls_back_to_the_default(
    client: AsyncClient,
    http: httpx.AsyncClient,
    plan: Plan,
    templates_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    confirm = templates_dir / "flight_cancelled" / "confirm.txt"
    confirm.write_text("Noted ({{ label }}).", encoding="utf-8")
    n = await client.start(PAX, plan, context={"flight": "9K 1042"})
    await client.run_due()
    confirm.write_text("Noted ({{ gate }}).", encoding="utf-8")
    client._messages.templates = Templates(templates_dir)  # a process restarted on the edit
    answer = await twilio_post(http, "/twilio/sms", inbound("2"))
    assert answer.status_code == 200
    assert "<Message>Thank you. We have recorded your choice: Refund.</Message>" in answer.text
    assert (await client.get(n.id)).choice == "2"
    assert "without its confirm.txt" in caplog.text
