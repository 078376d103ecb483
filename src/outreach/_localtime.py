"""The ``localtime`` template filter: a time as the recipient reads it, in their zone and language.

``{{ departure | localtime }}`` shows ``departure`` (an aware ``datetime``, or an ISO 8601 string
with an offset, as a stored context gives it back) in the recipient's time zone, formatted for
their locale by Babel: ``Nov 23, 2026, 7:05 PM`` in ``en``, ``23 nov. 2026, 19:05`` in ``fr``.
``localtime("short")`` / ``"long"`` / ``"full"`` (the date's style; the time is always shown
without seconds) or a Babel pattern (``"EEE d MMM HH:mm"``) picks the format;
``zone="Europe/Paris"`` overrides the zone.

The zone is the recipient's ``timezone``, else their phone number's when it has exactly one;
otherwise the time is shown in UTC and says so (a number of several zones has no one local time).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_time

from outreach._models import Recipient
from outreach._zones import phone_zones

__all__ = ["localtime"]


@jinja2.pass_context
def localtime(
    context: jinja2.runtime.Context, value: Any, format: str = "medium", zone: str | None = None
) -> str:
    """``value`` formatted in the recipient's zone and locale (see the module docstring)."""
    instant = _instant(value)
    recipient = context.get("recipient")
    locale = _babel_locale(recipient.locale if isinstance(recipient, Recipient) else "en")
    tz, certain = _zone(recipient, zone)
    if format in _STYLES:  # the date in that style, the time without seconds
        local = instant.astimezone(tz)
        shown = (
            str(locale.datetime_formats[format])
            .replace("{1}", format_date(local, format, locale=locale))
            .replace("{0}", format_time(local, "short", locale=locale))
        )
    else:
        shown = format_datetime(instant, format, tzinfo=tz, locale=locale)
    shown = shown.translate(_PLAIN_SPACES)
    return shown if certain else f"{shown} UTC"


_PLAIN_SPACES = str.maketrans(dict.fromkeys("\u00a0\u202f\u2009", " "))
"""CLDR's no-break spaces are outside GSM-7: one in a text would make it UCS-2 (70 characters
a segment instead of 160)."""

_STYLES = frozenset({"short", "medium", "long", "full"})


def _instant(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"localtime: {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, datetime):
        raise ValueError(f"localtime: expected a datetime or an ISO 8601 string, not {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"localtime: {value.isoformat()!r} has no UTC offset, so it names no instant; "
            "give an aware datetime or a string ending in +hh:mm or Z"
        )
    return value


def _zone(recipient: object, override: str | None) -> tuple[ZoneInfo, bool]:
    """The zone to show a time in, and whether it is the recipient's (else UTC, labelled)."""
    if override is not None:
        try:
            return ZoneInfo(override), True
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"localtime: zone {override!r} is not an IANA time zone") from None
    if isinstance(recipient, Recipient):
        if recipient.timezone:
            return ZoneInfo(recipient.timezone), True
        zones = phone_zones(recipient.phone) if recipient.phone else ()
        if len(zones) == 1:
            return zones[0], True
    return ZoneInfo("UTC"), False


def _babel_locale(tag: str) -> Locale:
    """Babel's locale for ``tag`` (``fr-CA``), else its language, else English."""
    for candidate in (tag, tag.replace("_", "-").split("-")[0]):
        try:
            return Locale.parse(candidate, sep="-" if "-" in candidate else "_")
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return Locale("en")
