"""Personas: the simulated customers, one declarative record per phone number and/or address.

A persona says what happens to what we send them, for each channel::

    Persona(phone="+16175550123")                                   # ignores SMS, never answers
    Persona(phone="+16175550124", landline=True)                    # SMS refused: Twilio 21614
    Persona(phone="+16175550125", on_sms=SmsBehaviour(reply="STOP"))
    Persona(phone="+16175550126", on_sms=SmsBehaviour(reply="2", reply_after="5m"))
    Persona(phone="+16175550127", on_sms=SmsBehaviour(undelivered=30003))
    Persona(phone="+16175550128", on_call=CallBehaviour(answer="voicemail"))
    Persona(phone="+16175550129", on_call=CallBehaviour(answer="human", press="1"))
    Persona(email="zoe@example.com", on_email=EmailBehaviour(choose="2"))  # clicks, picks refund
    Persona(email="old@example.com", on_email=EmailBehaviour(delivery="bounce"))

Durations are ``"15m"``-style strings or timedeltas, counted on the simulator's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from outreach._durations import parse_duration

__all__ = ["CallBehaviour", "EmailBehaviour", "Persona", "SmsBehaviour", "delta"]

Duration = str | timedelta
"""``"15m"``, ``"1h30m"``, ``"45s"`` or a timedelta."""


def delta(value: Duration) -> timedelta:
    """A persona duration as a timedelta (never negative)."""
    result = parse_duration(value)
    if not isinstance(result, timedelta) or result < timedelta(0):
        raise ValueError(f"not a duration: {value!r}")
    return result


def _check(*values: Duration | None) -> None:
    for value in values:
        if value is not None:
            delta(value)


@dataclass(frozen=True, slots=True)
class SmsBehaviour:
    """What the handset does with our texts.

    ``reply``: the text the customer sends back (``"2"``, ``"STOP"``), ``reply_after`` the
    message was delivered; ``None`` ignores the texts. With ``reply_once`` (the default) only
    the first text from a sender gets a reply. ``undelivered``: the ``ErrorCode`` of an
    ``undelivered`` status callback (30003 unreachable, 30005 unknown, 30006 landline...)
    instead of ``delivered``. ``sent_after``/``delivered_after`` time the status callbacks.
    """

    reply: str | None = None
    reply_after: Duration = "1m"
    reply_once: bool = True
    undelivered: int | None = None
    sent_after: Duration = "1s"
    delivered_after: Duration = "3s"

    def __post_init__(self) -> None:
        _check(self.reply_after, self.sent_after, self.delivered_after)


@dataclass(frozen=True, slots=True)
class CallBehaviour:
    """How the customer's phone takes our calls.

    ``answer``: ``"human"`` picks up, ``"voicemail"`` is a machine (answering-machine detection
    reports it), ``"no-answer"`` rings until Twilio gives up (the call's ``Timeout``, 60 s by
    default), ``"busy"``, ``"failed"``. A human presses ``press`` at the first ``<Gather>``,
    ``press_after`` its prompt ended (too slow for the gather's timeout: nothing is pressed);
    ``None`` listens and presses nothing. ``ring_for``: rings before someone (or something)
    answers.
    """

    answer: Literal["human", "voicemail", "no-answer", "busy", "failed"] = "no-answer"
    press: str | None = None
    press_after: Duration = "2s"
    ring_for: Duration = "5s"

    def __post_init__(self) -> None:
        _check(self.press_after, self.ring_for)
        if self.press is not None and not self.press:
            raise ValueError("press must be at least one key, or None")


@dataclass(frozen=True, slots=True)
class EmailBehaviour:
    """What happens to our email and what the customer does with it.

    ``delivery``: ``"delivered"``, ``"bounce"`` (hard bounce, 5.1.1), ``"blocked"`` (a bounce
    of type blocked) or ``"dropped"``. ``opens_after``: an ``open`` event. ``choose``: the
    customer clicks the acknowledgement link (a ``click`` event, then a browser visit of the
    first ``/ack/`` link of the email) and presses the button of that option; ``clicks_after``
    (default 10 minutes when ``choose`` is set) times the click. A click without ``choose``
    submits the page's form as it is (the link's own choice, or "I got this message").
    """

    delivery: Literal["delivered", "bounce", "blocked", "dropped"] = "delivered"
    delivered_after: Duration = "5s"
    opens_after: Duration | None = None
    clicks_after: Duration | None = None
    choose: str | None = None

    def __post_init__(self) -> None:
        _check(self.delivered_after, self.opens_after, self.clicks_after)

    @property
    def click_delay(self) -> timedelta | None:
        """When the customer clicks (after delivery), or None if they never do."""
        if self.clicks_after is not None:
            return delta(self.clicks_after)
        return timedelta(minutes=10) if self.choose is not None else None


@dataclass(frozen=True, slots=True)
class Persona:
    """One simulated customer: a phone number and/or an email address, and their habits.

    Numbers and addresses without a persona behave like ``Persona()``: texts and emails are
    delivered and ignored, calls ring out unanswered. ``landline=True``: Twilio refuses texts
    to the number (400, error 21614); calls still ring.
    """

    phone: str | None = None
    email: str | None = None
    name: str = ""
    landline: bool = False
    on_sms: SmsBehaviour = field(default_factory=SmsBehaviour)
    on_call: CallBehaviour = field(default_factory=CallBehaviour)
    on_email: EmailBehaviour = field(default_factory=EmailBehaviour)

    def __post_init__(self) -> None:
        if self.phone is not None and not self.phone.strip():
            raise ValueError("phone must not be empty")
        if self.email is not None and "@" not in self.email:
            raise ValueError(f"not an email address: {self.email!r}")


DEFAULT = Persona()
"""Anyone the simulator has no persona for."""
