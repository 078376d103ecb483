"""SendGrid: ``POST /v3/mail/send`` and the signed Event Webhook that follows it.

Each recipient of an accepted email gets ``processed``, then ``delivered`` (or ``bounce`` /
``dropped``), then whatever the persona does: ``open``, ``click`` and a visit of the email's
acknowledgement link in a browser. Events due together are posted as one JSON array, each
with the email's ``custom_args`` at top level, signed like SendGrid's signed Event Webhook.
A batch the receiver does not accept (non-2xx, no answer) is posted again later.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final
from urllib.parse import urlencode, urljoin, urlsplit

from outreach._simulator._browser import BROWSER_HEADERS, ack_link, first_form
from outreach._simulator._personas import Persona, delta
from outreach._simulator._signing import SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP
from outreach._simulator._world import World

__all__ = ["Email", "SendGridError", "SendGridSim", "sendgrid_error_body"]

log = logging.getLogger("outreach.simulator")

_ADDRESS: Final = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+")
_RETRIES: Final = tuple(timedelta(minutes=5 * 2**n) for n in range(8))  # ~21 h in all
_BOUNCES: Final[Mapping[str, dict[str, str]]] = {
    "bounce": {
        "type": "bounce",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
        "status": "5.1.1",
        "bounce_classification": "Invalid Address",
    },
    "blocked": {
        "type": "blocked",
        "reason": "550 5.7.1 Message rejected due to local policy",
        "status": "5.7.1",
        "bounce_classification": "Reputation",
    },
}
_OPENER: Final = {
    "useragent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
    "ip": "203.0.113.7",
}


def sendgrid_error_body(message: str, field: str | None = None) -> dict[str, Any]:
    """SendGrid's error JSON with one error."""
    return {"errors": [{"field": field, "message": message, "help": None}]}


class SendGridError(Exception):
    """A request SendGrid refuses, with its ``errors`` list."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"] if errors else str(status))
        self.status = status
        self.errors = errors

    def body(self) -> dict[str, Any]:
        return {"errors": self.errors}


def _error(message: str, field: str | None) -> dict[str, Any]:
    return {"field": field, "message": message, "help": None}


@dataclass(eq=False)
class Email:
    """One accepted Mail Send request."""

    message_id: str
    sender: str
    subject: str
    text: str | None
    html: str | None
    recipients: list[tuple[str, dict[str, str]]]
    """Each recipient's address and custom args (the request's, overridden per personalization)."""
    headers: dict[str, str]
    created: datetime
    payload: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """What ``sim.emails`` shows."""
        return {
            "message_id": self.message_id,
            "to": [address for address, _ in self.recipients],
            "from": self.sender,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "custom_args": dict(self.recipients[0][1]) if self.recipients else {},
            "headers": dict(self.headers),
            "created_at": self.created,
            "payload": self.payload,
        }


def _addresses(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _validate(payload: Any) -> None:
    """Refuse what SendGrid refuses, with its messages; collects every error like SendGrid."""
    if not isinstance(payload, dict):
        raise SendGridError(400, [_error("Bad Request", None)])
    errors = []
    sender = payload.get("from")
    if not isinstance(sender, dict) or not _ADDRESS.fullmatch(str(sender.get("email", ""))):
        errors.append(
            _error(
                "The from object must be provided for every email send. It is an object that "
                "requires the email parameter, but may also contain a name parameter.",
                "from.email",
            )
        )
    personalizations = payload.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            _error(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
            )
        )
        personalizations = []
    for i, personalization in enumerate(personalizations):
        to = personalization.get("to") if isinstance(personalization, dict) else None
        if not isinstance(to, list) or not to:
            errors.append(
                _error(
                    "The to array is required for all personalization objects, and must have "
                    "at least one email object with a valid email address.",
                    f"personalizations.{i}.to",
                )
            )
            continue
        for kind in ("to", "cc", "bcc"):
            for j, address in enumerate(_addresses(personalization.get(kind))):
                email = address.get("email", "") if isinstance(address, dict) else ""
                if not _ADDRESS.fullmatch(str(email)):
                    errors.append(
                        _error(
                            "Does not contain a valid address.",
                            f"personalizations.{i}.{kind}.{j}.email",
                        )
                    )
    subject = payload.get("subject")
    if not subject and not all(isinstance(p, dict) and p.get("subject") for p in personalizations):
        errors.append(
            _error(
                "The subject is required. You can get around this requirement if you use a "
                "template with a subject defined or if every personalization has a subject "
                "defined.",
                "subject",
            )
        )
    content = payload.get("content")
    if not payload.get("template_id"):
        if not isinstance(content, list) or not content:
            errors.append(
                _error(
                    "Unless a valid template_id is provided, the content parameter is required. "
                    "There must be at least one defined content block. We typically suggest "
                    "both text/plain and text/html blocks are included, but only one block is "
                    "required.",
                    "content",
                )
            )
        else:
            for i, block in enumerate(content):
                value = block.get("value") if isinstance(block, dict) else None
                if not isinstance(value, str) or not value:
                    errors.append(
                        _error(
                            "The content value must be a string at least one character in length.",
                            f"content.{i}.value",
                        )
                    )
    args = [payload.get("custom_args") or {}] + [
        p.get("custom_args") or {} for p in personalizations if isinstance(p, dict)
    ]
    if any(
        not isinstance(a, dict) or not all(isinstance(v, str) for v in a.values()) for a in args
    ):
        errors.append(_error("Bad Request", None))  # SendGrid's answer to non-string args
    if errors:
        raise SendGridError(400, errors)


class SendGridSim:
    """The SendGrid account the email adapter talks to."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.emails: list[Email] = []
        self.events: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []

    def mail_send(self, payload: Any) -> str:
        """Accept one Mail Send request; its ``X-Message-Id``."""
        _validate(payload)
        content = {block.get("type"): block.get("value") for block in payload.get("content") or []}
        top_args: dict[str, str] = dict(payload.get("custom_args") or {})
        recipients = []
        subject = str(payload.get("subject") or "")
        for personalization in payload["personalizations"]:
            args = top_args | dict(personalization.get("custom_args") or {})
            subject = subject or str(personalization.get("subject") or "")
            for kind in ("to", "cc", "bcc"):
                for address in _addresses(personalization.get(kind)):
                    recipients.append((str(address["email"]), args))
        email = Email(
            message_id=self.world.token(16),
            sender=str(payload["from"]["email"]),
            subject=subject,
            text=content.get("text/plain"),
            html=content.get("text/html"),
            recipients=recipients,
            headers=dict(payload.get("headers") or {}),
            created=self.world.now(),
            payload=payload,
        )
        self.emails.append(email)
        for index, (address, args) in enumerate(recipients):
            self._schedule(email, index, address, args)
        return email.message_id

    def _schedule(self, email: Email, index: int, address: str, args: dict[str, str]) -> None:
        persona = self.world.personas.by_email(address) or Persona()
        behaviour = persona.on_email
        sg_message_id = (
            f"{email.message_id}.filterdrecv-{self.world.hex(9)}-{self.world.token(4).lower()}"
            f"-1-{self.world.hex(8).upper()}-{index}.0"
        )
        smtp_id = f"<{email.message_id}@geopod-ismtpd-{self.world.hex(4)}>"

        def event(at: datetime, name: str, **fields: Any) -> None:
            item = {
                **args,
                "email": address,
                "event": name,
                "sg_event_id": self.world.token(16),
                "sg_message_id": sg_message_id,
                "smtp-id": smtp_id,
                "timestamp": int(at.timestamp()),
                **fields,
            }
            self.world.scheduler.add(
                at, email.message_id, partial(self._buffer, item), batchable=True
            )

        start = email.created
        event(start, "processed")
        if behaviour.delivery == "dropped":
            event(start, "dropped", reason="Bounced Address", status="5.0.0")
            return
        done = start + delta(behaviour.delivered_after)
        if behaviour.delivery in _BOUNCES:
            event(done, "bounce", **_BOUNCES[behaviour.delivery])
            return
        event(done, "delivered", response="250 2.0.0 OK", tls=1, ip="149.72.154.232")
        opens = done + delta(behaviour.opens_after) if behaviour.opens_after else None
        click = behaviour.click_delay
        clicks = done + click if click is not None else None
        if opens is not None and (clicks is None or opens <= clicks):
            event(opens, "open", sg_machine_open=False, **_OPENER)
        if clicks is None:
            return
        if opens is None or opens > clicks:
            event(clicks, "open", sg_machine_open=False, **_OPENER)
        link = ack_link(email.text, email.html)
        if link is None:
            log.warning("simulator: %s would click, but the email has no /ack/ link", address)
            return
        event(clicks, "click", url=link, url_offset={"index": 0, "type": "text"}, **_OPENER)
        visit = partial(self._visit, link, behaviour.choose)
        self.world.scheduler.add(clicks, email.message_id, visit)

    async def _buffer(self, item: dict[str, Any]) -> None:
        self._pending.append(item)

    async def flush(self) -> None:
        """Post the events buffered so far as one batch."""
        batch, self._pending = self._pending, []
        if batch:
            self.events.extend(batch)
            await self._post(batch, 0)

    async def _post(self, batch: list[dict[str, Any]], attempt: int) -> None:
        url = self.world.hook("/sendgrid/events")
        if url is None:
            return
        body = (json.dumps(batch, ensure_ascii=False) + "\r\n").encode("utf-8")
        timestamp = str(int(self.world.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "SendGrid Event API",
            SENDGRID_SIGNATURE: self.world.signer.sign(timestamp, body),
            SENDGRID_TIMESTAMP: timestamp,
        }
        response = await self.world.outbound.request(
            "sendgrid-events", "POST", url, headers=headers, content=body, record={"json": batch}
        )
        if (response is None or not response.is_success) and attempt < len(_RETRIES):
            retry = partial(self._post, batch, attempt + 1)
            self.world.scheduler.add(self.world.now() + _RETRIES[attempt], "sendgrid", retry)

    async def _visit(self, link: str, choice: str | None) -> None:
        """Open the acknowledgement page and press the button of ``choice``."""
        outbound = self.world.outbound
        page = await outbound.request("ack-page", "GET", link, headers=dict(BROWSER_HEADERS))
        if page is None or not page.is_success:
            return
        form = first_form(page.text)
        if form is None:
            return  # nothing to press: "already answered" or "no longer needed"
        data = list(form.fields)
        if choice is not None:
            if ("choice", choice) not in form.buttons:
                log.warning("simulator: the page at %s offers no option %r", link, choice)
                return
            data.append(("choice", choice))
        target = urljoin(link, form.action)
        query = urlencode(data)
        if form.method != "post":
            target = f"{target.partition('?')[0]}?{query}"
            await outbound.request(
                "ack-submit",
                "GET",
                target,
                headers=dict(BROWSER_HEADERS),
                record={"params": dict(data)},
            )
            return
        headers = dict(BROWSER_HEADERS) | {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "{0.scheme}://{0.netloc}".format(urlsplit(link)),
        }
        await outbound.request(
            "ack-submit",
            "POST",
            target,
            headers=headers,
            content=query.encode("utf-8"),
            record={"params": dict(data)},
        )
