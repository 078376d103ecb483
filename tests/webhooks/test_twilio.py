"""Twilio's routes: signatures, inbound SMS, status callbacks, the call's TwiML and keys."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.datastructures import MultiDict
from twilio.request_validator import RequestValidator

from outreach import AsyncClient, AttemptStatus, EventKind, Medium, Plan, Status, Step
from outreach._settings import Settings
from outreach.channels import Message, Receipt
from outreach.channels.twilio import TwilioVoice
from outreach.testing import FakeClock, InMemoryChannel
from outreach.webhooks import create_app

from ._helpers import (
    PAX,
    PUBLIC,
    TWILIO_TOKEN,
    call_status,
    connect,
    inbound,
    kinds,
    message_status,
    opted_out,
    sid,
    snapshot,
    start,
    to_step,
    twilio_post,
    twilio_signature,
)

# --- request verification: 4xx and nothing changes ---------------------------------------


def _forged(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    return params, {"X-Twilio-Signature": twilio_signature(PUBLIC + "/twilio/sms", params, "x")}


def _missing(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    return params, {}


def _wrong_host(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    url = "https://evil.example.com/twilio/sms"
    return params, {"X-Twilio-Signature": twilio_signature(url, params)}


def _wrong_path(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    return params, {"X-Twilio-Signature": twilio_signature(PUBLIC + "/twilio/status", params)}


def _tampered(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    signature = twilio_signature(PUBLIC + "/twilio/sms", params)
    return {**params, "Body": "1"}, {"X-Twilio-Signature": signature}


def _extra_field(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    signature = twilio_signature(PUBLIC + "/twilio/sms", params)
    return {**params, "OptOutType": "STOP"}, {"X-Twilio-Signature": signature}


@pytest.mark.parametrize(
    "forge", [_forged, _missing, _wrong_host, _wrong_path, _tampered, _extra_field]
)
async def test_bad_twilio_signatures_get_403_and_change_nothing(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan, forge: Any
) -> None:
    await start(client, plan)
    before = await snapshot(client)
    data, headers = forge(inbound("2"))
    response = await http.post("/twilio/sms", data=data, headers=headers)
    assert response.status_code == 403
    assert await snapshot(client) == before


async def test_status_callback_signed_for_another_attempt_is_refused(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    n = await start(client, plan)
    [attempt] = n.attempts
    params = message_status("undelivered", sid("SM"), ErrorCode="30003")
    before = await snapshot(client)
    signed = f"{PUBLIC}/twilio/status?attempt=someone-else"
    response = await twilio_post(
        http, f"/twilio/status?attempt={attempt.id}", params, signed_url=signed
    )
    assert response.status_code == 403
    assert await snapshot(client) == before


@pytest.mark.parametrize("signed_host", ["hooks.example.com", "hooks.example.com:443"])
async def test_a_signature_with_or_without_the_port_is_accepted(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan, signed_host: str
) -> None:
    n = await start(client, plan)
    signed = f"https://{signed_host}/twilio/sms"
    response = await twilio_post(http, "/twilio/sms", inbound("1"), signed_url=signed)
    assert response.status_code == 200
    assert (await client.get(n.id)).status is Status.ACKNOWLEDGED


async def test_repeated_fields_are_signed_value_by_value_and_a_dropped_one_is_refused(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    await start(client, plan)
    pairs = [*inbound("HELP").items(), ("MediaUrl", "https://a.example"), ("MediaUrl", "b")]
    body = httpx.QueryParams(pairs)
    signed = RequestValidator(TWILIO_TOKEN).compute_signature(
        PUBLIC + "/twilio/sms", MultiDict(pairs)
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signed}
    response = await http.post("/twilio/sms", content=str(body), headers=headers)
    assert response.status_code == 200
    dropped = str(httpx.QueryParams(pairs[:-1]))
    assert (await http.post("/twilio/sms", content=dropped, headers=headers)).status_code == 403


async def test_oversize_and_malformed_forms_get_4xx_and_change_nothing(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    await start(client, plan)
    before = await snapshot(client)
    huge = inbound("2" + " " * 70_000)
    assert (await twilio_post(http, "/twilio/sms", huge)).status_code == 413
    signature = {"X-Twilio-Signature": twilio_signature(PUBLIC + "/twilio/sms", {})}
    form = {"Content-Type": "application/x-www-form-urlencoded", **signature}
    for body in (b"Body=%ff&From=%2B16175550123", b"From=%2B16175550123&Body", b"\xff\xfe"):
        response = await http.post("/twilio/sms", content=body, headers=form)
        assert response.status_code == 400, body
    as_json = {"Content-Type": "application/json", **signature}
    response = await http.post("/twilio/sms", content=b'{"Body": "2"}', headers=as_json)
    assert response.status_code == 415
    assert await snapshot(client) == before


# --- inbound SMS ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "choice"),
    [
        ("2", "2"),
        (" 2. ", "2"),
        ("I'd like a REFUND please", "2"),
        ("rebook", "1"),
        ("Taxi!", "3"),
        ("ok", None),
        ("Got it, thanks", None),
        ("OK!", None),
        ("Y", None),
    ],
)
async def test_replies_acknowledge_with_the_option_they_name(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan, body: str, choice: str | None
) -> None:
    n = await start(client, plan)
    [sms] = n.attempts
    response = await twilio_post(http, "/twilio/sms", inbound(body))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert "<Message>Thank you." in response.text
    n = await client.get(n.id)
    assert (n.status, n.choice, n.acknowledged_via) == (Status.ACKNOWLEDGED, choice, "sms")
    [ack] = [e async for e in client.events() if e.kind is EventKind.ACKNOWLEDGED]
    assert ack.attempt_id == sms.id


async def test_a_second_answer_is_kept_but_the_first_wins(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    n = await start(client, plan)
    await twilio_post(http, "/twilio/sms", inbound("2"))
    response = await twilio_post(http, "/twilio/sms", inbound("1"))
    assert "already have your answer: Refund" in response.text
    assert (await client.get(n.id)).choice == "2"
    assert EventKind.REPLY_RECORDED in await kinds(client, n)


@pytest.mark.parametrize(
    "body", ["YES", "rebook or refund?", "What happened?", "Stop please", "I am not OK"]
)
async def test_other_replies_are_kept_and_answered_with_the_options(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan, body: str
) -> None:
    n = await start(client, plan)
    response = await twilio_post(http, "/twilio/sms", inbound(body))
    assert response.status_code == 200
    n = await client.get(n.id)
    assert n.status is Status.ACTIVE
    assert not await opted_out(client, Medium.SMS, PAX.phone)
    if body == "YES":  # Twilio's opt-in word: never an acknowledgement by default
        assert "<Message>" not in response.text
        return
    assert "Reply 1 for Rebook me, 2 for Refund, 3 for Taxi to my destination" in response.text
    replies = [e async for e in client.events() if e.kind is EventKind.REPLY]
    assert [r.data["text"] for r in replies] == [body]


async def test_help_answers_with_the_configured_text_and_changes_nothing(
    client: AsyncClient, settings: Settings, plan: Plan
) -> None:
    await start(client, plan)
    before = await snapshot(client)
    custom = settings.model_copy(update={"help_text": "Cape Air: call 555-0199. STOP to end."})
    async with connect(create_app(client, settings=custom)) as http:
        for params in (inbound("help"), inbound("INFO"), inbound("?", OptOutType="HELP")):
            response = await twilio_post(http, "/twilio/sms", params)
            assert "<Message>Cape Air: call 555-0199. STOP to end.</Message>" in response.text
    assert await snapshot(client) == before


async def test_an_unknown_sender_gets_a_polite_answer_and_nothing_is_stored(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    await start(client, plan)
    before = await snapshot(client)
    response = await twilio_post(http, "/twilio/sms", inbound("2", phone="+16175550999"))
    assert response.status_code == 200
    assert "could not match your message" in response.text
    assert await snapshot(client) == before


async def test_a_repeated_inbound_message_is_handled_once(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    n = await start(client, plan)
    params = inbound("Where is my bag?")
    await twilio_post(http, "/twilio/sms", params)
    second = await twilio_post(http, "/twilio/sms", params)
    assert second.status_code == 200
    assert (await kinds(client, n)).count(EventKind.REPLY) == 1


@pytest.mark.parametrize(
    "params",
    [
        *(
            inbound(word)
            for word in (
                "STOP", "stop", " Stop ", "sToP", "STOPALL", "unsubscribe", "Cancel", "END",
                "quit", "REVOKE", "optout",
            )
        ),
        inbound("please don't text me", OptOutType="STOP"),
    ],
)  # fmt: skip
async def test_stop_words_opt_the_number_out(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan, params: dict[str, str]
) -> None:
    n = await start(client, plan)
    response = await twilio_post(http, "/twilio/sms", params)
    assert response.status_code == 200
    assert "<Message>" not in response.text  # Twilio confirms STOP itself
    assert await opted_out(client, Medium.SMS, PAX.phone)
    n = await client.get(n.id)
    assert n.status is Status.ACTIVE  # an opt-out is not an acknowledgement
    assert EventKind.REPLY in await kinds(client, n)  # kept in the audit trail


async def test_stop_ends_the_sms_wait_and_the_email_goes_at_once(
    client: AsyncClient,
    http: httpx.AsyncClient,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    await start(client, plan)
    await twilio_post(http, "/twilio/sms", inbound("STOP"))
    await client.run_due()  # no 15-minute wait for an answer that cannot come by SMS
    assert len(channels["email"].outbox) == 1


@pytest.mark.parametrize("params", [inbound("START"), inbound("unstop"), inbound("Yes")])
async def test_start_words_lift_the_opt_out(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan, params: dict[str, str]
) -> None:
    await start(client, plan)
    await twilio_post(http, "/twilio/sms", inbound("STOP"))
    assert await opted_out(client, Medium.SMS, PAX.phone)
    await twilio_post(http, "/twilio/sms", params)
    assert not await opted_out(client, Medium.SMS, PAX.phone)


async def test_opt_out_type_start_lifts_the_opt_out(
    client: AsyncClient, http: httpx.AsyncClient
) -> None:
    await client.suppress(Medium.SMS, PAX.phone or "")
    await twilio_post(http, "/twilio/sms", inbound("go ahead", OptOutType="START"))
    assert not await opted_out(client, Medium.SMS, PAX.phone)


async def test_stop_then_a_later_plan_skips_sms_and_sends_the_email(
    client: AsyncClient,
    http: httpx.AsyncClient,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    first = await start(client, plan, key="first")
    await twilio_post(http, "/twilio/sms", inbound("STOP"))
    later = Plan(
        name="gate-change",
        steps=[
            Step(channel="sms", template="flight_cancelled"),
            Step(channel="email", template="flight_cancelled"),
        ],
    )
    n = await start(client, later, key="second")
    sms, email = n.attempts
    assert sms.status is AttemptStatus.SKIPPED
    assert sms.error is not None
    assert "opted out" in sms.error
    assert email.status is AttemptStatus.SENT
    assert len(channels["sms"].outbox) == 1  # only the first plan's text
    # Both notifications emailed: the first moved on from its SMS wait at the STOP.
    assert {m.notification_id for m in channels["email"].outbox} == {n.id, first.id}


# --- status callbacks ----------------------------------------------------------------------


async def test_message_status_moves_the_attempt_forward(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    n = await start(client, plan)
    [attempt] = n.attempts
    message = sid("SM")
    path = f"/twilio/status?attempt={attempt.id}"
    for status in ("sent", "delivered", "sent"):  # a late "sent" never moves it back
        response = await twilio_post(http, path, message_status(status, message))
        assert response.status_code == 200
    [attempt] = (await client.get(n.id)).attempts
    assert attempt.status is AttemptStatus.DELIVERED


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("30003", "unreachable"),
        ("30005", "unknown handset"),
        ("30006", "landline"),
        ("30007", "filtered by the carrier"),
        ("30034", "10DLC"),
        ("30999", "Twilio error 30999"),
    ],
)
async def test_undelivered_sms_escalates_at_once_with_the_reason(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
    code: str,
    words: str,
) -> None:
    n = await start(client, plan)
    [attempt] = n.attempts
    params = message_status("undelivered", sid("SM"), ErrorCode=code)
    await twilio_post(http, f"/twilio/status?attempt={attempt.id}", params)
    n = await client.get(n.id)
    [attempt] = n.attempts
    assert attempt.status is AttemptStatus.UNDELIVERED
    assert attempt.error is not None
    assert code in attempt.error
    assert words in attempt.error
    assert n.due_at == clock.now()  # the 15-minute wait is over
    await client.run_due()
    assert len(channels["email"].outbox) == 1


async def test_status_callback_without_attempt_finds_the_message_by_its_sid(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    n = await start(client, plan)
    [attempt] = n.attempts
    assert attempt.provider_id is not None
    await twilio_post(http, "/twilio/status", message_status("delivered", attempt.provider_id))
    assert (await client.get(n.id)).attempts[0].status is AttemptStatus.DELIVERED


async def test_status_for_an_unknown_attempt_is_accepted_and_ignored(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan
) -> None:
    await start(client, plan)
    before = await snapshot(client)
    params = message_status("delivered", sid("SM"))
    response = await twilio_post(http, "/twilio/status?attempt=nope.0.0.0", params)
    assert response.status_code == 200
    assert await snapshot(client) == before


@pytest.mark.parametrize(
    ("status", "extra", "expected", "error"),
    [
        ("busy", {}, AttemptStatus.UNDELIVERED, "busy"),
        ("no-answer", {}, AttemptStatus.UNDELIVERED, "no answer"),
        ("failed", {}, AttemptStatus.FAILED, "the call failed"),
        ("in-progress", {"AnsweredBy": "human"}, AttemptStatus.ENGAGED, None),
        ("in-progress", {"AnsweredBy": "machine_end_beep"}, AttemptStatus.ENGAGED, "voicemail"),
        ("in-progress", {"AnsweredBy": "fax"}, AttemptStatus.UNDELIVERED, "fax"),
        ("completed", {"CallDuration": "31"}, AttemptStatus.ENGAGED, None),
    ],
)
async def test_call_status_and_answering_machine(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    status: str,
    extra: dict[str, str],
    expected: AttemptStatus,
    error: str | None,
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    path = f"/twilio/status?attempt={call.id}"
    await twilio_post(http, path, call_status(status, sid("CA"), 3, **extra))
    n = await client.get(n.id)
    attempt = n.attempt(call.id)
    assert attempt is not None
    assert attempt.status is expected
    assert attempt.error == error or (error and attempt.error and error in attempt.error)
    assert n.status is Status.ACTIVE  # voicemail and answering are not acknowledgements
    if expected in (AttemptStatus.UNDELIVERED, AttemptStatus.FAILED):
        assert n.due_at == clock.now()  # early escalation
        await client.run_due()
        assert (await client.get(n.id)).status is Status.EXHAUSTED  # the call was the last step


# --- voice ----------------------------------------------------------------------------------


async def test_the_call_reads_the_message_and_offers_the_options(
    client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock, plan: Plan
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    params = call_status("in-progress", sid("CA"), 2, AnsweredBy="human")
    response = await twilio_post(http, f"/twilio/voice/{call.id}", params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert "your flight 9K 1042 is cancelled" in response.text
    assert f'action="{PUBLIC}/twilio/voice/{call.id}/gather"' in response.text
    assert "Press 2: Refund." in response.text
    attempt = (await client.get(n.id)).attempt(call.id)
    assert attempt is not None
    assert attempt.status is AttemptStatus.ENGAGED  # answered


async def test_a_machine_gets_the_message_without_the_menu(
    client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock, plan: Plan
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    params = call_status("in-progress", sid("CA"), 2, AnsweredBy="machine_end_beep")
    response = await twilio_post(http, f"/twilio/voice/{call.id}", params)
    assert "is cancelled" in response.text
    assert "<Gather" not in response.text
    n = await client.get(n.id)
    attempt = n.attempt(call.id)
    assert attempt is not None
    assert (attempt.status, attempt.error, n.status) == (
        AttemptStatus.ENGAGED,
        "voicemail",
        Status.ACTIVE,
    )


async def test_the_call_speaks_in_the_voice_its_adapter_gives_the_language(
    client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock, plan: Plan
) -> None:
    """The TwiML names a voice for every ``<Say>``: the table's, or the one the call's
    ``TwilioVoice(voices=...)`` gives that language; also in the menu repeated after a bad key."""
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    params = call_status("in-progress", sid("CA"), 2, AnsweredBy="human")
    default = await twilio_post(http, f"/twilio/voice/{call.id}", params)
    assert default.text.count('voice="Polly.Joanna"') == default.text.count("<Say") == 4
    client.channels["voice"] = TwilioVoice(  # what the call went out on, as the app sees it
        settings=Settings(
            twilio_account_sid="AC" + "a" * 32,
            twilio_auth_token="t" * 32,
            twilio_from="+16175550100",
            public_url=PUBLIC,
        ),
        voices={"en-US": "Polly.Matthew"},
    )
    chosen = await twilio_post(http, f"/twilio/voice/{call.id}", params)
    assert chosen.text.count('voice="Polly.Matthew"') == chosen.text.count("<Say") == 4
    retry = {**call_status("in-progress", sid("CA"), 3), "Digits": "7"}
    again = await twilio_post(http, f"/twilio/voice/{call.id}/gather", retry)
    assert again.text.count('voice="Polly.Matthew"') == again.text.count("<Say") > 0


@pytest.mark.parametrize("in_progress_first", [False, True])
async def test_voicemail_from_the_twiml_request_is_kept_by_later_callbacks(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    in_progress_first: bool,
) -> None:
    """``AnsweredBy`` comes on the TwiML request; status callbacks, before or after it, do not
    carry it and must not lose the voicemail note."""
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    call_sid = sid("CA")
    status_path = f"/twilio/status?attempt={call.id}"
    await twilio_post(http, status_path, call_status("ringing", call_sid, 1))
    if in_progress_first:
        await twilio_post(http, status_path, call_status("in-progress", call_sid, 2))
    params = call_status("in-progress", call_sid, 2, AnsweredBy="machine_end_beep")
    await twilio_post(http, f"/twilio/voice/{call.id}", params)
    if not in_progress_first:
        await twilio_post(http, status_path, call_status("in-progress", call_sid, 2))
    await twilio_post(http, status_path, call_status("completed", call_sid, 3, CallDuration="25"))
    attempt = (await client.get(n.id)).attempt(call.id)
    assert attempt is not None
    assert (attempt.status, attempt.error) == (AttemptStatus.ENGAGED, "voicemail")


async def test_a_keypress_acknowledges_with_that_choice(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    call_sid = sid("CA")
    await twilio_post(
        http, f"/twilio/status?attempt={call.id}", call_status("ringing", call_sid, 1)
    )
    params = {**call_status("in-progress", call_sid, 2), "Digits": "2", "FinishedOnKey": ""}
    response = await twilio_post(http, f"/twilio/voice/{call.id}/gather", params)
    assert "We have recorded your choice: Refund." in response.text
    assert "<Hangup />" in response.text
    n = await client.get(n.id)
    assert (n.status, n.choice, n.acknowledged_via) == (Status.ACKNOWLEDGED, "2", "voice")
    assert channels["voice"].cancelled == []  # nobody hung up on the confirmation


async def test_an_invalid_key_repeats_the_menu_once(
    client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock, plan: Plan
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    gather = f"/twilio/voice/{call.id}/gather"
    params = {**call_status("in-progress", sid("CA"), 2), "Digits": "9"}
    first = await twilio_post(http, gather, params)
    assert "not one of the options" in first.text
    assert f'action="{PUBLIC}{gather}?retry=1"' in first.text
    second = await twilio_post(http, f"{gather}?retry=1", params)
    assert "not one of the options" in second.text
    assert "<Gather" not in second.text
    assert "<Hangup />" in second.text
    n = await client.get(n.id)
    assert n.status is Status.ACTIVE
    assert (await kinds(client, n)).count(EventKind.REPLY) == 2


async def test_no_key_is_answered_but_not_acknowledged(
    client: AsyncClient, http: httpx.AsyncClient, clock: FakeClock, plan: Plan
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    params = {**call_status("in-progress", sid("CA"), 2), "Digits": ""}
    response = await twilio_post(http, f"/twilio/voice/{call.id}/gather", params)
    assert "<Hangup />" in response.text
    n = await client.get(n.id)
    attempt = n.attempt(call.id)
    assert attempt is not None
    assert (n.status, attempt.status) == (Status.ACTIVE, AttemptStatus.ENGAGED)


async def test_an_unknown_call_is_hung_up(http: httpx.AsyncClient) -> None:
    params = call_status("in-progress", sid("CA"), 2)
    response = await twilio_post(http, "/twilio/voice/nope.0.2.0", params)
    assert response.status_code == 200
    assert "<Hangup />" in response.text
    response = await twilio_post(http, "/twilio/voice/nope.0.2.0/gather", {**params, "Digits": "1"})
    assert "<Hangup />" in response.text


async def test_an_ack_elsewhere_hangs_up_the_ringing_call(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    n = await start(client, plan)
    call = await to_step(client, clock, n, 2)
    await twilio_post(http, "/twilio/sms", inbound("taxi"))
    assert channels["voice"].cancelled == [call.provider_id]
    assert (await client.get(n.id)).choice == "3"


# --- races ----------------------------------------------------------------------------------


class HeldChannel(InMemoryChannel):
    """Sends only when the test lets it: a send caught in flight."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, message: Message) -> Receipt:
        self.entered.set()
        await self.release.wait()
        return await super().send(message)


async def test_an_ack_racing_a_send_in_progress_stops_everything_after_it(
    clock: FakeClock, templates_dir: Path, plan: Plan, settings: Settings
) -> None:
    held = HeldChannel("email")
    channels = {
        "sms": InMemoryChannel(name="sms"),
        "email": held,
        "voice": InMemoryChannel(name="voice"),
    }
    async with (
        AsyncClient(
            store="memory://", channels=channels, templates=templates_dir, clock=clock
        ) as client,
        connect(create_app(client, settings=settings)) as http,
    ):
        n = await start(client, plan)
        clock.advance("15m")
        running = asyncio.create_task(client.run_due())
        await asyncio.wait_for(held.entered.wait(), 5)
        response = await twilio_post(http, "/twilio/sms", inbound("refund"))
        assert response.status_code == 200
        assert (await client.get(n.id)).status is Status.ACKNOWLEDGED  # before the answer
        held.release.set()
        await asyncio.wait_for(running, 5)
        for _ in range(4):
            clock.advance("1h")
            await client.run_due()
        n = await client.get(n.id)
    assert (n.status, n.choice) == (Status.ACKNOWLEDGED, "2")
    assert len(held.outbox) == 1  # the one in flight
    assert channels["voice"].outbox == []  # nothing after the acknowledgement


# --- duplicate and out-of-order callbacks ---------------------------------------------------

_SM, _CA = "SM" + "1" * 32, "CA" + "2" * 32
_HUMAN, _BEEP = {"AnsweredBy": "human"}, {"AnsweredBy": "machine_end_beep"}
SCENARIOS: dict[str, tuple[int, list[dict[str, str]]]] = {
    "sms delivered": (
        0,
        [message_status(s, _SM, **({"RawDlrDoneDate": "2611231401"} if s == "delivered" else {}))
         for s in ("sent", "delivered", "read")],
    ),
    "sms undelivered": (
        0,
        [message_status("sent", _SM), message_status("undelivered", _SM, ErrorCode="30003")],
    ),
    "call answered": (
        2,
        [call_status("initiated", _CA, 0), call_status("ringing", _CA, 1),
         call_status("in-progress", _CA, 2, **_HUMAN),
         call_status("completed", _CA, 3, CallDuration="40", **_HUMAN)],
    ),
    "call voicemail": (
        2,
        [call_status("initiated", _CA, 0), call_status("ringing", _CA, 1),
         call_status("in-progress", _CA, 2, **_BEEP),
         call_status("completed", _CA, 3, CallDuration="25", **_BEEP)],
    ),
    "call busy": (
        2,
        [call_status("initiated", _CA, 0), call_status("ringing", _CA, 1),
         call_status("busy", _CA, 2, SipResponseCode="486")],
    ),
}  # fmt: skip


async def replay(
    templates_dir: Path, settings: Settings, plan: Plan, scenario: str, order: list[int]
) -> tuple[Any, ...]:
    """Post a scenario's callbacks in ``order``; the attempt's and notification's final state."""
    step, callbacks = SCENARIOS[scenario]
    clock = FakeClock("2026-11-23T14:00:00+00:00")
    channels = {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}
    async with (
        AsyncClient(
            store="memory://", channels=channels, templates=templates_dir, clock=clock
        ) as ox,
        connect(create_app(ox, settings=settings)) as http,
    ):
        n = await start(ox, plan)
        target = await to_step(ox, clock, n, step)
        for index in order:
            path = f"/twilio/status?attempt={target.id}"
            assert (await twilio_post(http, path, callbacks[index])).status_code == 200
        n = await ox.get(n.id)
        attempt = n.attempt(target.id)
        assert attempt is not None
        applied = [
            e.data["status"]
            async for e in ox.events()
            if e.kind is EventKind.ATTEMPT_STATUS and e.attempt_id == target.id
        ]
    assert len(applied) == len(set(applied)), applied  # no report applied twice
    return attempt.status, attempt.error, n.status, n.due_at, n.step, n.pass_


@hypothesis_settings(
    deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario=st.sampled_from(sorted(SCENARIOS)), data=st.data())
def test_duplicate_and_out_of_order_callbacks_end_in_the_same_state(
    templates_dir: Path, settings: Settings, plan: Plan, scenario: str, data: st.DataObject
) -> None:
    count = len(SCENARIOS[scenario][1])
    extra = data.draw(st.lists(st.integers(0, count - 1), max_size=4), label="duplicates")
    order = data.draw(st.permutations([*range(count), *extra]), label="order")
    in_order = asyncio.run(replay(templates_dir, settings, plan, scenario, list(range(count))))
    shuffled = asyncio.run(replay(templates_dir, settings, plan, scenario, order))
    assert shuffled == in_order
