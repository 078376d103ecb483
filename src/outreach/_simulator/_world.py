"""What the simulated providers share: clock, action queue, outgoing HTTP, personas, ids."""

from __future__ import annotations

import base64
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from outreach._simulator._actions import Clock, Scheduler
from outreach._simulator._http import Outbound
from outreach._simulator._personas import DEFAULT, Persona
from outreach._simulator._signing import SendGridSigner

__all__ = ["Personas", "World", "rfc2822"]


def rfc2822(when: datetime) -> str:
    """Twilio's date format: ``Mon, 23 Nov 2026 14:00:00 +0000``."""
    return format_datetime(when.astimezone(UTC))


class Personas:
    """Personas by phone number and by (case-insensitive) email address."""

    def __init__(self, personas: Iterable[Persona] = ()) -> None:
        self._phones: dict[str, Persona] = {}
        self._emails: dict[str, Persona] = {}
        for persona in personas:
            self.add(persona)

    def add(self, persona: Persona) -> None:
        """Register ``persona`` (replacing whoever had the same number or address)."""
        if persona.phone is None and persona.email is None:
            raise ValueError("a persona needs a phone number or an email address")
        if persona.phone is not None:
            self._phones[persona.phone.strip()] = persona
        if persona.email is not None:
            self._emails[persona.email.strip().lower()] = persona

    def by_phone(self, phone: str) -> Persona | None:
        """The persona with this number, or None."""
        return self._phones.get(phone.strip())

    def by_email(self, email: str) -> Persona | None:
        """The persona with this address, or None."""
        return self._emails.get(email.strip().lower())

    def phone(self, phone: str) -> Persona:
        """The persona with this number, or the default one."""
        return self.by_phone(phone) or DEFAULT

    def email(self, email: str) -> Persona:
        """The persona with this address, or the default one."""
        return self.by_email(email) or DEFAULT

    def __iter__(self) -> Iterator[Persona]:
        return iter(dict.fromkeys([*self._phones.values(), *self._emails.values()]))


@dataclass
class World:
    """The state both simulated providers work with."""

    clock: Clock
    scheduler: Scheduler
    outbound: Outbound
    personas: Personas
    rng: random.Random
    account_sid: str
    auth_token: str
    sendgrid_api_key: str
    signer: SendGridSigner = field(default_factory=SendGridSigner)
    webhook_url: str | None = None
    moment: datetime | None = None
    """The due time of the action being performed (None between actions)."""

    def now(self) -> datetime:
        """The clock's time, UTC: when an API request arrives, or a webhook is signed."""
        return self.clock.now().astimezone(UTC)

    def time(self) -> datetime:
        """When the provider does what it is doing: the due time of the action being
        performed, else the clock's time. Performing late (the clock jumped past several
        actions) does not shift what follows, so a story plays the same however the clock is
        advanced."""
        return self.moment or self.now()

    def hex(self, digits: int) -> str:
        """``digits`` random lowercase hex digits."""
        return f"{self.rng.getrandbits(digits * 4):0{digits}x}"

    def sid(self, prefix: str) -> str:
        """A Twilio SID: two letters and 32 hex digits."""
        return prefix + self.hex(32)

    def token(self, size: int = 16) -> str:
        """Random base64url text (SendGrid's ids look like this)."""
        raw = self.rng.getrandbits(size * 8).to_bytes(size, "big")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def hook(self, path: str) -> str | None:
        """``webhook_url`` + ``path``, or None without a webhook URL."""
        return f"{self.webhook_url}{path}" if self.webhook_url else None
