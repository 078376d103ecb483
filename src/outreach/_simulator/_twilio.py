"""Twilio: the REST resources the adapters use, and what Twilio does after answering them.

Messages: ``queued`` (``accepted`` with a messaging service), then ``sent`` and ``delivered``
or ``undelivered`` status callbacks; a persona's reply arrives as an inbound message webhook.
Calls: ``initiated``, ``ringing``, ``in-progress`` callbacks (those the call asked for), the
TwiML fetched from the call's ``Url`` and played (see ``_twiml``), then the final callback
(``completed``, ``busy``, ``no-answer``, ``failed``). Every request Twilio makes is signed.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import quote_plus

import httpx
import phonenumbers

from outreach._simulator._personas import Persona, delta
from outreach._simulator._signing import TWILIO_SIGNATURE, twilio_signature
from outreach._simulator._twilio_resources import (
    API_VERSION,
    Call,
    Sms,
    TwilioError,
    twilio_error_body,
)
from outreach._simulator._twiml import Player
from outreach._simulator._world import World, rfc2822
from outreach._templates import sms_segments

__all__ = ["Call", "Sms", "TwilioError", "TwilioSim", "twilio_error_body"]

log = logging.getLogger("outreach.simulator")

Form = Mapping[str, list[str]]

_E164: Final = re.compile(r"\+[1-9]\d{1,14}")
_BODY_LIMIT: Final = 1600
_OPT_OUT: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
_OPT_IN: Final = frozenset({"START", "YES", "UNSTOP"})
_STOP_REPLY: Final = (
    "You have successfully been unsubscribed. You will not receive any more messages from "
    "this number. Reply START to resubscribe."
)
_START_REPLY: Final = (
    "You have successfully been re-subscribed to messages from this number. Reply HELP for "
    "help. Reply STOP to unsubscribe. Msg&Data Rates May Apply."
)
_GEO: Final = ("City", "State", "Zip", "Country")
_RING_DELAY: Final = timedelta(seconds=1)
_DETECTION: Final[Mapping[tuple[str, str], tuple[str, int]]] = {
    # (persona answer, MachineDetection) -> (AnsweredBy, MachineDetectionDuration in ms)
    ("human", "Enable"): ("human", 2400),
    ("human", "DetectMessageEnd"): ("human", 2400),
    ("voicemail", "Enable"): ("machine_start", 3100),
    ("voicemail", "DetectMessageEnd"): ("machine_end_beep", 9800),
}
_SIP: Final[Mapping[str, str]] = {
    "completed": "200",
    "busy": "486",
    "no-answer": "487",
    "failed": "404",
    "canceled": "487",
}


def _one(form: Form, name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _valid_number(number: str, known: bool) -> bool:
    """E.164, and a number that exists (any number a persona owns does)."""
    if not _E164.fullmatch(number):
        return False
    if known:
        return True
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(number, None)))
    except phonenumbers.NumberParseException:
        return False


def _geo(*prefixes: str) -> dict[str, str]:
    return {f"{prefix}{part}": "" for prefix in prefixes for part in _GEO}


@functools.lru_cache(maxsize=4096)
def _quoted(text: str) -> str:
    return quote_plus(text)


def form_encoded(params: Mapping[str, str]) -> str:
    """``urllib.parse.urlencode(params)``; the field names, and the values that recur, are
    quoted once rather than in every callback."""
    return "&".join(f"{_quoted(name)}={_quoted(value)}" for name, value in params.items())


class TwilioSim:
    """The Twilio account the adapters talk to."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.messages: list[Sms] = []
        self.calls: dict[str, Call] = {}
        self.auto_replies: list[dict[str, Any]] = []
        self._by_sid: dict[str, Sms] = {}
        self._opted_out: set[tuple[str, str]] = set()  # (customer, sender number or service)
        self._replied: set[tuple[str, str]] = set()
        self._pools: dict[str, str] = {}
        self._player = Player(self)

    # -- signed requests ------------------------------------------------------------------

    async def request(
        self, kind: str, method: str, url: str, params: Mapping[str, str]
    ) -> httpx.Response | None:
        """A request from Twilio to a customer's URL, signed with the auth token."""
        headers = {
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": str(uuid.UUID(int=self.world.rng.getrandbits(128))),
        }
        if method.upper() == "GET":
            query = form_encoded(params)
            url = f"{url}{'&' if '?' in url else '?'}{query}" if query else url
            headers[TWILIO_SIGNATURE] = twilio_signature(self.world.auth_token, url, {})
            return await self.world.outbound.request(
                kind, "GET", url, headers=headers, record={"params": dict(params)}
            )
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers[TWILIO_SIGNATURE] = twilio_signature(self.world.auth_token, url, params)
        return await self.world.outbound.request(
            kind,
            "POST",
            url,
            headers=headers,
            content=form_encoded(params).encode("utf-8"),
            record={"params": dict(params)},
        )

    # -- messages -------------------------------------------------------------------------

    def _pool_number(self, service: str) -> str:
        """The number a messaging service sends from (one per service, made up)."""
        if service not in self._pools:
            digits = int(hashlib.md5(service.encode(), usedforsecurity=False).hexdigest(), 16) % 100
            self._pools[service] = f"+1833555{100 + digits:04d}"
        return self._pools[service]

    def create_message(self, form: Form) -> dict[str, Any]:
        """``POST Messages.json``: validate, queue, schedule what follows."""
        to = (_one(form, "To") or "").strip()
        sender = (_one(form, "From") or "").strip()
        service = (_one(form, "MessagingServiceSid") or "").strip() or None
        body = _one(form, "Body") or ""
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        persona = self.world.personas.by_phone(to)
        if not _valid_number(to, persona is not None):
            raise TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender and service is None:
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        if not body:
            raise TwilioError(400, 21602, "Message body is required.")
        if len(body) > _BODY_LIMIT:
            raise TwilioError(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if persona is not None and persona.landline:
            raise TwilioError(400, 21614, "'To' number is not a valid mobile number")
        if (to, service or sender) in self._opted_out:
            raise TwilioError(400, 21610, "Attempt to send to unsubscribed recipient")
        now = self.world.now()
        message = Sms(
            sid=self.world.sid("SM"),
            account_sid=self.world.account_sid,
            to=to,
            sender=self._pool_number(service) if service else sender,
            body=body,
            service=service,
            callback=(_one(form, "StatusCallback") or "").strip() or None,
            created=now,
            segments=sms_segments(body)[1],
            params={name: list(values) for name, values in form.items()},
            status="accepted" if service else "queued",
            updated=now,
        )
        self.messages.append(message)
        self._by_sid[message.sid] = message
        self._schedule_message(message, persona or Persona())
        return message.resource()

    def fetch_message(self, sid: str) -> dict[str, Any]:
        """``GET Messages/{sid}.json``."""
        message = self._by_sid.get(sid)
        if message is None:
            raise self._not_found("Messages", sid)
        return message.resource()

    def _not_found(self, kind: str, sid: str) -> TwilioError:
        path = f"/{API_VERSION}/Accounts/{self.world.account_sid}/{kind}/{sid}.json"
        return TwilioError(404, 20404, f"The requested resource {path} was not found")

    def _schedule_message(self, message: Sms, persona: Persona) -> None:
        behaviour = persona.on_sms
        at = message.created
        add = self.world.scheduler.add
        if message.service:
            add(at, message.sid, lambda: self._message_status(message, "queued"))
        sent = at + delta(behaviour.sent_after)
        add(sent, message.sid, lambda: self._message_status(message, "sent"))
        done = max(sent, at + delta(behaviour.delivered_after))
        if behaviour.undelivered is not None:
            code = behaviour.undelivered
            add(done, message.sid, lambda: self._message_status(message, "undelivered", code))
            return
        add(done, message.sid, lambda: self._message_status(message, "delivered"))
        if behaviour.reply is None:
            return
        conversation = (message.to, message.service or message.sender)
        if behaviour.reply_once and conversation in self._replied:
            return
        self._replied.add(conversation)
        text = behaviour.reply
        add(
            done + delta(behaviour.reply_after),
            f"{message.sid}:reply",
            lambda: self.receive(message.to, message.sender, text, service=message.service),
        )

    async def _message_status(self, message: Sms, status: str, error: int | None = None) -> None:
        now = self.world.time()
        message.status, message.updated = status, now
        if status == "sent":
            message.sent = now
        if error is not None:
            message.error_code = error
        if message.callback is None:
            return
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "From": message.sender,
            "MessageSid": message.sid,
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if message.service:
            params["MessagingServiceSid"] = message.service
        if error is not None:
            params["ErrorCode"] = str(error)
        if status in ("delivered", "undelivered"):
            params["RawDlrDoneDate"] = now.strftime("%y%m%d%H%M")
        await self.request("sms-status", "POST", message.callback, params)

    async def receive(
        self, customer: str, number: str, body: str, *, service: str | None = None
    ) -> None:
        """A customer texts ``body`` to our ``number``: Twilio's opt-out handling, then the
        inbound message webhook (``{webhook_url}/twilio/sms``), then any TwiML ``<Message>``."""
        sid = self.world.sid("SM")
        word = body.strip().upper()
        conversation = (customer, service or number)
        twilio_reply = None
        if word in _OPT_OUT:
            self._opted_out.add(conversation)
            twilio_reply = _STOP_REPLY
        elif word in _OPT_IN and conversation in self._opted_out:
            self._opted_out.discard(conversation)
            twilio_reply = _START_REPLY
        if twilio_reply is not None:
            self._auto_reply(customer, number, twilio_reply, sid, "twilio")
        url = self.world.hook("/twilio/sms")
        if url is None:
            log.warning("simulator: an SMS reply has nowhere to go: set webhook_url")
            return
        params = {
            "AccountSid": self.world.account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": customer,
            "MessageSid": sid,
            "NumMedia": "0",
            "NumSegments": str(sms_segments(body)[1]),
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": number,
            **_geo("From", "To"),
        }
        if service:
            params["MessagingServiceSid"] = service
        response = await self.request("sms-inbound", "POST", url, params)
        if response is None or not response.is_success or twilio_reply is not None:
            return  # after STOP/START, Twilio sends its own answer and drops ours
        for text in _messages_in(response.text):
            self._auto_reply(customer, number, text, sid, "webhook")

    def _auto_reply(self, to: str, sender: str, body: str, in_reply_to: str, source: str) -> None:
        self.auto_replies.append(
            {
                "at": self.world.time(),
                "to": to,
                "from": sender,
                "body": body,
                "in_reply_to": in_reply_to,
                "source": source,
            }
        )

    # -- calls ----------------------------------------------------------------------------

    def create_call(self, form: Form) -> dict[str, Any]:
        """``POST Calls.json``: validate, queue, schedule the call's progress."""
        to = (_one(form, "To") or "").strip()
        sender = (_one(form, "From") or "").strip()
        url = (_one(form, "Url") or "").strip() or None
        twiml = _one(form, "Twiml")
        if not to:
            raise TwilioError(400, 21201, "No 'To' number is specified")
        persona = self.world.personas.by_phone(to)
        if not _valid_number(to, persona is not None):
            raise TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender:
            raise TwilioError(400, 21213, "No 'From' number is specified")
        if url is None and not twiml:
            raise TwilioError(400, 21205, "Url parameter is required.")
        events = frozenset(
            event.lower()
            for value in form.get("StatusCallbackEvent", [])
            for event in value.split()
        )
        try:
            timeout = int(_one(form, "Timeout") or 60)
        except ValueError:
            raise TwilioError(400, 21217, "Timeout must be an integer") from None
        behaviour = (persona or Persona()).on_call
        call = Call(
            sid=self.world.sid("CA"),
            account_sid=self.world.account_sid,
            to=to,
            sender=sender,
            url=url,
            twiml=twiml,
            method=(_one(form, "Method") or "POST").upper(),
            callback=(_one(form, "StatusCallback") or "").strip() or None,
            callback_method=(_one(form, "StatusCallbackMethod") or "POST").upper(),
            events=events or frozenset({"completed"}),
            machine_detection=_one(form, "MachineDetection") or None,
            timeout=max(5, min(timeout, 600)),
            behaviour=behaviour,
            created=self.world.now(),
            params={name: list(values) for name, values in form.items()},
            press=behaviour.press if behaviour.answer == "human" else None,
        )
        self.calls[call.sid] = call
        self._schedule_call(call)
        return call.resource()

    def fetch_call(self, sid: str) -> dict[str, Any]:
        """``GET Calls/{sid}.json``."""
        return self._call(sid).resource()

    def _call(self, sid: str) -> Call:
        call = self.calls.get(sid)
        if call is None:
            raise self._not_found("Calls", sid)
        return call

    def update_call(self, sid: str, form: Form) -> dict[str, Any]:
        """``POST Calls/{sid}.json``: ``Status=completed`` (or ``canceled``) hangs up."""
        call = self._call(sid)
        status = (_one(form, "Status") or "").strip().lower()
        if status not in ("", "completed", "canceled"):
            raise TwilioError(400, 21218, f"Invalid Status: {status}")
        if status and not call.done:
            now = self.world.now()
            if not call.started:
                # Canceled while still queued: no status callback is ever sent.
                call.done, call.status, call.ended_at, call.updated = True, "canceled", now, now
                self.world.scheduler.cancel(call.sid)
            else:
                self.finish(call, "completed", now)
        return call.resource()

    def _schedule_call(self, call: Call) -> None:
        behaviour = call.behaviour
        add = self.world.scheduler.add
        start = call.created
        add(start, call.sid, lambda: self._progress(call, "initiated"))
        ring = start + _RING_DELAY
        if behaviour.answer in ("busy", "failed"):
            answer = behaviour.answer
            add(ring, call.sid, lambda: self._hang_up_now(call, answer))
            return
        add(ring, call.sid, lambda: self._progress(call, "ringing"))
        ring_for = delta(behaviour.ring_for)
        timeout = timedelta(seconds=call.timeout)
        if behaviour.answer == "no-answer" or ring_for >= timeout:
            add(ring + timeout, call.sid, lambda: self._hang_up_now(call, "no-answer"))
            return
        picked_up = ring + ring_for
        detection = _DETECTION.get((behaviour.answer, call.machine_detection or ""))
        if detection is not None:
            call.answered_by, call.detection_ms = detection
        connected = picked_up + timedelta(milliseconds=call.detection_ms or 0)
        add(connected, call.sid, lambda: self._connect(call, picked_up))

    async def _hang_up_now(self, call: Call, status: str) -> None:
        self.finish(call, status, self.world.time())

    def finish(self, call: Call, status: str, at: datetime) -> None:
        """End the call at ``at``: nothing more happens but its final status callback."""
        if call.done:
            return
        call.done, call.status, call.ended_at, call.updated = True, status, at, at
        self.world.scheduler.cancel(call.sid)
        self.world.scheduler.add(at, call.sid, lambda: self._callback(call, status))

    def base_params(self, call: Call, status: str) -> dict[str, str]:
        """The parameters of every request Twilio makes about a call."""
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": status,
            "Called": call.to,
            "Caller": call.sender,
            "Direction": "outbound-api",
            "From": call.sender,
            "To": call.to,
            **_geo("Called", "Caller", "From", "To"),
        }
        if call.answered_by is not None and status in ("in-progress", "completed"):
            params["AnsweredBy"] = call.answered_by
        return params

    async def _progress(self, call: Call, status: str) -> None:
        if call.done:
            return
        call.updated = self.world.time()
        if status == "initiated":
            call.started = True
        else:
            call.status = status
        await self._callback(call, status)

    async def _callback(self, call: Call, status: str) -> None:
        """A status callback, if the call asked for this event."""
        event = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}.get(
            status, "completed"
        )
        if call.callback is None or event not in call.events:
            return
        params = self.base_params(call, status)
        params |= {
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(call.sequence),
            "Timestamp": rfc2822(self.world.time()),
        }
        if event == "completed":
            seconds = call.duration()
            params |= {
                "CallDuration": str(seconds),
                "Duration": str(-(-seconds // 60)),
                "SipResponseCode": _SIP.get(status, "200"),
            }
        call.sequence += 1
        call.callbacks.append(status)
        await self.request("call-status", call.callback_method, call.callback, params)

    async def _connect(self, call: Call, picked_up: datetime) -> None:
        """Someone (or a machine) answered: tell the status callback, then fetch the TwiML."""
        if call.done:
            return
        call.answered_at = picked_up
        call.status = "in-progress"
        await self._progress(call, "in-progress")
        if call.done:
            return
        now = self.world.time()
        if call.url is None:
            self._player.play(call, call.twiml or "", None, now)
            return
        extra = {}
        if call.detection_ms is not None:
            extra["MachineDetectionDuration"] = str(call.detection_ms)
        await self.fetch(call, "call-twiml", call.url, call.method, extra)

    async def fetch(
        self, call: Call, kind: str, url: str, method: str, extra: Mapping[str, str]
    ) -> None:
        """Ask the customer's app what to do next in the call, and do it."""
        if call.done:
            return
        params = self.base_params(call, "in-progress") | dict(extra)
        response = await self.request(kind, method, url, params)
        if call.done:
            return  # hung up (through the API) while the app was answering
        now = self.world.time()
        if response is None or not response.is_success:
            # Twilio says "an application error has occurred" and hangs up.
            self.finish(call, "completed", now)
            return
        self._player.play(call, response.text, url, now)


def _messages_in(twiml: str) -> list[str]:
    """The texts of a TwiML answer's ``<Message>`` verbs (Twilio sends each as a reply)."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError:
        return []
    if root.tag != "Response":
        return []
    texts = []
    for verb in root:
        if verb.tag != "Message":
            continue
        body = verb.find("Body")
        text = (body.text if body is not None else verb.text) or ""
        if text.strip():
            texts.append(text.strip())
    return texts
