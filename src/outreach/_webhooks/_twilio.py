"""Twilio webhooks: inbound SMS, message and call status callbacks, the call's TwiML and keys.

Every handler reads and verifies the whole request first (``Ctx.twilio_form``), then changes
the store, then answers: a verified request has taken effect before Twilio hears back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from twilio.twiml.messaging_response import (  # type: ignore[import-untyped, unused-ignore]
    MessagingResponse,
)
from twilio.twiml.voice_response import (  # type: ignore[import-untyped, unused-ignore]
    VoiceResponse,
)

from outreach._engine import notification_id_of
from outreach._models import AttemptStatus, Medium, Notification, Status
from outreach._redact import mask
from outreach._webhooks._common import Ctx, Form, Rejected
from outreach._webhooks._phrases import (
    UNMATCHED,
    Phrases,
    answer_to_late_taker,
    phrases,
    twilio_language,
)
from outreach._webhooks._twiml import call_twiml
from outreach._webhooks._words import Intent, keyword, meaning
from outreach.channels.twilio import CALL_STATUS, MESSAGE_STATUS, SAY_VOICES, TwilioVoice
from outreach.exceptions import AlreadyTaken, NotFound, TemplateError

log = logging.getLogger("outreach.webhooks")

_CALL_ERROR: Final[Mapping[str, str]] = {
    "busy": "busy",
    "no-answer": "no answer",
    "failed": "the call failed",
    "canceled": "the call was canceled",
}
ERROR_CODES: Final[Mapping[str, str]] = {
    "30001": "queue overflow",
    "30002": "account suspended",
    "30003": "unreachable handset (switched off or out of coverage)",
    "30004": "message blocked",
    "30005": "unknown handset (the number does not exist)",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier (spam or content filter)",
    "30008": "unknown error",
    "30034": "sender number not registered for A2P 10DLC",
}
"""Twilio's asynchronous delivery errors, as shown in reports."""


def describe_error(code: str) -> str | None:
    """``"Twilio 30003: unreachable handset ..."``; None for no code."""
    code = code.strip()
    if not code or code == "0":
        return None
    known = ERROR_CODES.get(code)
    return f"Twilio {code}: {known}" if known else f"Twilio error {code}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one status callback reports: the provider's id, a dedupe tag, our status."""

    sid: str
    tag: str
    status: AttemptStatus | None
    error: str | None = None
    person: bool = False
    """Answering-machine detection says a person answered (``AnsweredBy=human``)."""


def call_outcome(form: Form) -> Outcome:
    """A call status callback (or an asynchronous answering-machine result)."""
    raw = form.get("CallStatus").strip().lower()
    answered_by = form.get("AnsweredBy").strip().lower()
    tag = form.get("SequenceNumber").strip() or raw or f"answered-by-{answered_by}"
    code = describe_error(form.get("ErrorCode"))
    status: AttemptStatus | None
    if raw in ("in-progress", "completed") or (not raw and answered_by):
        status, error = answered(answered_by)
    else:
        status = CALL_STATUS.get(raw)
        error = code or _CALL_ERROR.get(raw)
    return Outcome(form.get("CallSid"), tag, status, error, answered_by == "human")


def answered(answered_by: str) -> tuple[AttemptStatus, str | None]:
    """A call was picked up: by a person, a voicemail box or a fax machine."""
    if answered_by.startswith("machine"):
        return AttemptStatus.ENGAGED, "voicemail"
    if answered_by == "fax":
        return AttemptStatus.UNDELIVERED, "a fax machine answered"
    return AttemptStatus.ENGAGED, None


def message_outcome(form: Form) -> Outcome:
    """A message status callback."""
    sid = form.get("MessageSid") or form.get("SmsSid")
    raw = (form.get("MessageStatus") or form.get("SmsStatus")).strip().lower()
    status = MESSAGE_STATUS.get(raw)
    error = None
    if status in (AttemptStatus.UNDELIVERED, AttemptStatus.FAILED):
        error = describe_error(form.get("ErrorCode")) or f"message {raw}"
    return Outcome(sid, raw, status, error)


def _xml(response: MessagingResponse | VoiceResponse) -> Response:
    return Response(str(response.to_xml()), media_type="text/xml")


_NO_REPLY: Final = str(MessagingResponse().to_xml())
"""The TwiML of no reply: most answers, built once."""


def _sms(text: str | None = None) -> Response:
    if not text:
        return Response(_NO_REPLY, media_type="text/xml")
    response = MessagingResponse()
    response.message(text)
    return _xml(response)


def _say(text: str | None, locale: str, voices: Mapping[str, str] = SAY_VOICES) -> Response:
    response = VoiceResponse()
    if text:
        language = twilio_language(locale)
        response.say(text, voice=voices[language], language=language)
    response.hangup()
    return _xml(response)


def _voices(ctx: Ctx, notification: Notification, attempt_id: str) -> Mapping[str, str]:
    """The voices of the adapter the call went out on: ``TwilioVoice(voices=...)``, else the
    default table."""
    attempt = notification.attempt(attempt_id)
    channel = ctx.client.channels.get(attempt.channel) if attempt else None
    return channel.voices if isinstance(channel, TwilioVoice) else SAY_VOICES


def ack_reply(p: Phrases, before: Status, after: Notification, choice: str | None) -> str:
    """How to confirm an acknowledgement, or say it was already given, or is no longer needed."""
    if after.status is not Status.ACKNOWLEDGED:
        return p.closed
    option = after.plan.option(after.choice) if after.choice is not None else None
    label = option.label_for(after.recipient.locale) if option else None
    if before is Status.ACKNOWLEDGED or after.choice != choice:
        return p.already_choice.format(label=label) if label else p.already
    return p.choice_recorded.format(label=label) if label else p.recorded


def _last_sms(notification: Notification, phone: str) -> str | None:
    sent = [
        a
        for a in notification.attempts
        if a.medium is Medium.SMS and a.address == phone and a.sent_at is not None
    ]
    return max(sent, key=lambda a: a.sent_at or a.created_at).id if sent else None


@dataclass(frozen=True, slots=True)
class _Text:
    """One inbound SMS: the customer's number, which of our numbers it went to, what it says."""

    phone: str
    to: str
    body: str


async def inbound_sms(ctx: Ctx, request: Request) -> Response:
    """``POST /twilio/sms``: a reply from a customer: a keyword (HELP, STOP, START) or an answer."""
    form = await ctx.twilio_form(request)
    text = _Text(form.get("From").strip(), form.get("To").strip(), form.get("Body"))
    if not text.phone:
        raise Rejected(400, "missing From")
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid")
    if sid and not await ctx.first_sighting(f"twilio:{sid}:received"):
        return _sms()
    intent = keyword(text.body, form.get("OptOutType"))
    log.info("inbound SMS from %s (%s)", mask(text.phone), intent.value if intent else "reply")
    reply = await _keyword_reply(ctx, text, intent)
    if reply is not None:
        return reply
    return await _answer(ctx, text, opted_in=intent is Intent.OPT_IN)


async def _reply_target(ctx: Ctx, text: _Text) -> Notification | None:
    """The notification last sent to the customer's number (from the number they texted)."""
    return await ctx.inbound.reply_target(Medium.SMS, text.phone, sender=text.to or None)


async def _keyword_reply(ctx: Ctx, text: _Text, intent: Intent | None) -> Response | None:
    """HELP and STOP are answered here. START re-subscribes, then (like any other text, for
    which this returns None) goes on to ``_answer``."""
    if intent is Intent.HELP:
        return _sms(ctx.settings.help_text)
    if intent is Intent.OPT_IN:
        await ctx.client.unsuppress(Medium.SMS, text.phone)
    if intent is not Intent.OPT_OUT:
        return None
    # No more SMS from any sender; the notification it answered moves to its next channel.
    target = await _reply_target(ctx, text)
    await ctx.client.opt_out(
        Medium.SMS,
        text.phone,
        reason="replied STOP",
        notification_id=None if target is None else target.id,
    )
    if target is not None:  # kept in the audit trail
        await ctx.inbound.record_reply(
            target.id, via="sms", text=text.body, attempt_id=_last_sms(target, text.phone)
        )
    return _sms()  # Twilio answers STOP itself and blocks any reply of ours


async def _answer(ctx: Ctx, text: _Text, *, opted_in: bool) -> Response:
    """An answer to the notification last sent to this number: a choice or an ack word
    acknowledges it; anything else is kept in its audit trail and answered with what to send."""
    target = await _reply_target(ctx, text)
    if target is None:
        return _sms(None if opted_in else UNMATCHED)
    p = phrases(target.recipient.locale)
    attempt_id = _last_sms(target, text.phone)
    understood = meaning(
        text.body, target.plan.options, ctx.settings.ack_words, locale=target.recipient.locale
    )
    if opted_in and understood.intent is not Intent.ACK:
        return _sms()  # YES/START re-subscribes; only an explicitly configured ack word acks
    if understood.intent in (Intent.CHOICE, Intent.ACK):
        choice = understood.option.key if understood.option else None
        try:
            after = await ctx.client.acknowledge(
                target.id, via="sms", choice=choice, attempt_id=attempt_id
            )
        except AlreadyTaken as taken:  # a page someone else answered first
            return _sms(answer_to_late_taker(p, taken))
        return _sms(await _confirm(ctx, text, p, target, after, choice, attempt_id))
    await ctx.inbound.record_reply(
        target.id, via="sms", text=text.body, attempt_id=attempt_id, unmatched=True
    )
    return _sms(_prompt(p, target, ctx.settings.ack_words))


async def _confirm(
    ctx: Ctx,
    text: _Text,
    p: Phrases,
    target: Notification,
    after: Notification,
    choice: str | None,
    attempt_id: str | None,
) -> str:
    """The answer to a reply that acknowledged ``target``. When another active notice was
    texted from the same number, the reply is recorded on it too (it stays active) and the
    answer names the notice it applied to: the notice's ``confirm.txt``, else the default
    phrase quoting the start of its text."""
    others = await ctx.inbound.concurrent(target, text.phone, sender=text.to or None)
    for other in others:
        await ctx.inbound.record_reply(
            other.id, via="sms", text=text.body, attempt_id=_last_sms(other, text.phone)
        )
    reply = ack_reply(p, target.status, after, choice)
    applied = after.status is Status.ACKNOWLEDGED and after.choice == choice
    if applied and target.status is not Status.ACKNOWLEDGED:
        own = ctx.inbound.confirmation(after, attempt_id, choice)
        if own:
            return own
    if not others:
        return reply
    return f"{reply} {p.applied_to.format(notice=ctx.inbound.notice_name(after, attempt_id))}"


def _prompt(p: Phrases, target: Notification, ack_words: Sequence[str]) -> str:
    """What to say to a reply that answered nothing: thanks, or how to answer."""
    if target.status.is_terminal:
        return p.noted
    options = target.plan.options
    if options:
        locale = target.recipient.locale
        menu = ", ".join(p.option.format(key=o.key, label=o.label_for(locale)) for o in options)
        return p.not_understood.format(menu=menu)
    return p.reply_word.format(word=ack_words[0]) if ack_words else p.noted


async def status_callback(ctx: Ctx, request: Request) -> Response:
    """``POST /twilio/status?attempt=<id>``: message and call progress."""
    form = await ctx.twilio_form(request)
    attempt_id = request.query_params.get("attempt") or None
    outcome = call_outcome(form) if form.get("CallSid") else message_outcome(form)
    if not outcome.sid and attempt_id is None:
        raise Rejected(400, "no CallSid, MessageSid or attempt")
    if outcome.status is None:
        log.debug("ignored Twilio status %r for %s", outcome.tag, outcome.sid)
        return _sms()
    if outcome.sid and not await ctx.first_sighting(f"twilio:{outcome.sid}:{outcome.tag}"):
        return _sms()
    # Both ids when we have them: the callback teaches an attempt whose send answer was lost
    # its provider id (needed to hang up the call, say).
    updated = await ctx.inbound.update_attempt(
        outcome.status,
        attempt_id=attempt_id,
        provider_id=outcome.sid or None,
        error=outcome.error,
        person=outcome.person,
    )
    if updated is None:
        log.warning("Twilio status for an unknown attempt %s (%s)", attempt_id, outcome.sid)
    return _sms()


async def _attempt_owner(ctx: Ctx, attempt_id: str) -> Notification | None:
    try:
        notification = await ctx.client.get(notification_id_of(attempt_id))
    except NotFound:
        return None
    return notification if notification.attempt(attempt_id) is not None else None


async def voice(ctx: Ctx, request: Request) -> Response:
    """``POST /twilio/voice/{attempt_id}``: the call was answered; what to say."""
    form = await ctx.twilio_form(request)
    attempt_id = request.path_params["attempt_id"]
    answered_by = form.get("AnsweredBy").strip().lower()
    try:
        notification, message = await ctx.inbound.render_attempt(attempt_id)
    except (NotFound, TemplateError) as error:
        log.warning("no script for call attempt %s: %s", attempt_id, error)
        return _say(None, "en")
    # Answered: recorded before the menu, so an acknowledgement by key does not hang up on us.
    status, note = answered(answered_by)
    person = answered_by == "human"
    await ctx.inbound.update_attempt(status, attempt_id=attempt_id, error=note, person=person)
    p = phrases(message.locale)
    voices = _voices(ctx, notification, attempt_id)
    if status is AttemptStatus.UNDELIVERED or notification.status is Status.CANCELLED:
        return _say(None, message.locale)
    if notification.status is Status.ACKNOWLEDGED:
        already = ack_reply(p, Status.ACKNOWLEDGED, notification, None)
        return _say(f"{already} {p.goodbye}", message.locale, voices)
    xml = call_twiml(
        message.body,
        notification.plan.options,
        gather_url=ctx.urls.twilio_gather(attempt_id),
        locale=message.locale,
        voicemail=answered_by.startswith("machine"),
        voices=voices,
    )
    return Response(xml, media_type="text/xml")


async def gather(ctx: Ctx, request: Request) -> Response:
    """``POST /twilio/voice/{attempt_id}/gather``: the key the customer pressed."""
    form = await ctx.twilio_form(request)
    attempt_id = request.path_params["attempt_id"]
    notification = await _attempt_owner(ctx, attempt_id)
    if notification is None:
        return _say(None, "en")
    client = ctx.client
    locale = notification.recipient.locale
    p = phrases(locale)
    voices = _voices(ctx, notification, attempt_id)
    digits = form.get("Digits").strip()
    # A key pressed: a person is on the line, whatever answering-machine detection said.
    person = bool(digits)
    await ctx.inbound.update_attempt(AttemptStatus.ENGAGED, attempt_id=attempt_id, person=person)
    if not digits:  # answered, but no answer: not an acknowledgement
        return _say(p.goodbye, locale, voices)
    options = notification.plan.options
    option = notification.plan.option(digits) if options else None
    if options and option is None:
        await ctx.inbound.record_reply(
            notification.id, via="voice", text=f"pressed {digits}", attempt_id=attempt_id
        )
        if request.query_params.get("retry"):
            return _say(f"{p.invalid_key} {p.goodbye}", locale, voices)
        retry_url = f"{ctx.urls.twilio_gather(attempt_id)}?retry=1"
        xml = call_twiml(p.invalid_key, options, gather_url=retry_url, locale=locale, voices=voices)
        return Response(xml, media_type="text/xml")
    choice = option.key if option else None
    try:
        after = await client.acknowledge(
            notification.id, via="voice", choice=choice, attempt_id=attempt_id
        )
    except AlreadyTaken as taken:  # a page someone else answered first
        return _say(f"{answer_to_late_taker(p, taken)} {p.goodbye}", locale, voices)
    return _say(f"{ack_reply(p, notification.status, after, choice)} {p.goodbye}", locale, voices)
