"""Durations written the way people say them: ``"15m"``, ``"1h30m"``, ``"3d"``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: Any) -> Any:
    """Turn ``"1h30m"``-style strings into a timedelta; leave other values to pydantic."""
    if not isinstance(value, str):
        return value
    text = value.strip().replace(" ", "")
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(
            f"{value!r} is not a duration; write it like '45s', '15m', '1h30m' or '3d'"
        )
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def format_duration(delta: timedelta) -> str:
    """The shortest ``"1h30m"``-style spelling of ``delta`` ."""
    if delta.microseconds:
        return f"{delta.total_seconds():g}s"
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A timedelta field that also accepts ``"15m"`` and serialises back to it."""

DurationInput = timedelta | str
"""What a ``Duration`` field accepts when constructed: a timedelta or a ``"15m"``-style string."""
