"""The time zones a recipient's quiet hours are read in.

A recipient's own ``timezone`` wins. Without one, a phone number names its zones
(``phonenumbers``' geographic data: one for a Boston number, several for a mobile or toll-free
number of a country that spans zones); without a phone, or for a number of no known zone, the
plan's ``timezone`` is used. The engine holds a call or text while it is quiet in *any* of them.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

from outreach._models import Recipient


def quiet_hours_zones(recipient: Recipient, default: str) -> tuple[ZoneInfo, ...]:
    """The zones to keep quiet hours in for ``recipient``: theirs, their number's, else
    ``default`` (the plan's)."""
    if recipient.timezone:
        return (ZoneInfo(recipient.timezone),)
    if recipient.phone:
        zones = phone_zones(recipient.phone)
        if zones:
            return zones
    return (ZoneInfo(default),)


@lru_cache(maxsize=4096)
def phone_zones(phone: str) -> tuple[ZoneInfo, ...]:
    """The IANA zones ``phone`` (E.164) may be in, sorted by name; empty when unknown."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    names = sorted(set(number_zones.time_zones_for_number(number)))
    zones = []
    for name in names:
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):  # "Etc/Unknown", or a zone tzdata lacks
            continue
    return tuple(zones)
