"""Twilio's REST resources as the simulator keeps them: messages, calls, error bodies."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import phonenumbers

from outreach._simulator._personas import CallBehaviour
from outreach._simulator._world import rfc2822

__all__ = ["API_VERSION", "Call", "Sms", "TwilioError", "twilio_error_body"]

API_VERSION: Final = "2010-04-01"


def twilio_error_body(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's (legacy) error JSON."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class TwilioError(Exception):
    """A request Twilio refuses: answered with ``twilio_error_body``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return twilio_error_body(self.status, self.code, self.message)


def _formatted(number: str) -> str:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL))


@dataclass(eq=False)
class Sms:
    """One outbound message."""

    sid: str
    account_sid: str
    to: str
    sender: str
    body: str
    service: str | None
    callback: str | None
    created: datetime
    segments: int
    params: dict[str, list[str]]
    status: str
    updated: datetime
    sent: datetime | None = None
    error_code: int | None = None

    def resource(self) -> dict[str, Any]:
        """The Message resource as Twilio's API returns it."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.created),
            "date_sent": rfc2822(self.sent) if self.sent else None,
            "date_updated": rfc2822(self.updated),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": None,
            "from": None if self.status == "accepted" else self.sender,
            "messaging_service_sid": self.service,
            "num_media": "0",
            "num_segments": str(self.segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": self.to,
            "uri": f"{uri}.json",
        }

    def record(self) -> dict[str, Any]:
        """What ``sim.messages`` shows."""
        return {
            "sid": self.sid,
            "to": self.to,
            "from": self.sender,
            "body": self.body,
            "messaging_service_sid": self.service,
            "status_callback": self.callback,
            "status": self.status,
            "error_code": self.error_code,
            "num_segments": self.segments,
            "created_at": self.created,
            "params": {name: list(values) for name, values in self.params.items()},
        }


@dataclass(eq=False)
class Call:
    """One outbound call and how far it got."""

    sid: str
    account_sid: str
    to: str
    sender: str
    url: str | None
    twiml: str | None
    method: str
    callback: str | None
    callback_method: str
    events: frozenset[str]
    machine_detection: str | None
    timeout: int
    behaviour: CallBehaviour
    created: datetime
    params: dict[str, list[str]]
    status: str = "queued"
    updated: datetime | None = None
    started: bool = False
    done: bool = False
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    answered_by: str | None = None
    detection_ms: int | None = None
    press: str | None = None
    digits: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    callbacks: list[str] = field(default_factory=list)
    sequence: int = 0

    def duration(self) -> int:
        """Seconds from pick-up to hang-up (0 if never answered)."""
        if self.answered_at is None or self.ended_at is None:
            return 0
        return max(0, round((self.ended_at - self.answered_at).total_seconds()))

    def resource(self) -> dict[str, Any]:
        """The Call resource as Twilio's API returns it."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        subresources = (
            "notifications",
            "recordings",
            "payments",
            "events",
            "siprec",
            "streams",
            "transcriptions",
            "user_defined_message_subscriptions",
            "user_defined_messages",
        )
        return {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(self.updated or self.created),
            "direction": "outbound-api",
            "duration": str(self.duration()) if self.ended_at else None,
            "end_time": rfc2822(self.ended_at) if self.ended_at else None,
            "forwarded_from": None,
            "from": self.sender,
            "from_formatted": _formatted(self.sender),
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": "PN"
            + hashlib.md5(self.sender.encode(), usedforsecurity=False).hexdigest(),
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": self.sid,
            "start_time": rfc2822(self.answered_at) if self.answered_at else None,
            "status": self.status,
            "subresource_uris": {
                name: f"{uri}/{''.join(w.title() for w in name.split('_'))}.json"
                for name in subresources
            },
            "to": self.to,
            "to_formatted": _formatted(self.to),
            "trunk_sid": None,
            "uri": f"{uri}.json",
        }

    def record(self) -> dict[str, Any]:
        """What ``sim.calls`` shows."""
        return {
            "sid": self.sid,
            "to": self.to,
            "from": self.sender,
            "url": self.url,
            "method": self.method,
            "status_callback": self.callback,
            "status_callback_event": sorted(self.events),
            "machine_detection": self.machine_detection,
            "status": self.status,
            "answered_by": self.answered_by,
            "digits": list(self.digits),
            "callbacks": list(self.callbacks),
            "twiml": list(self.documents),
            "duration": self.duration(),
            "created_at": self.created,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "params": {name: list(values) for name, values in self.params.items()},
        }
