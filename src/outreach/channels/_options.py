"""What every provider adapter checks of its options, with errors that name what to set."""

from __future__ import annotations

import math

import httpx

from outreach._settings import Settings
from outreach.exceptions import ConfigurationError


def adapter_settings(kind: str, settings: Settings | None) -> Settings:
    """``settings``, or else those of the ``OUTREACH_*`` environment; an invalid variable is a
    ``ConfigurationError`` naming the adapter and the variable."""
    if settings is not None:
        return settings
    try:
        return Settings()
    except ConfigurationError as exc:
        raise ConfigurationError(f"{kind}: {exc}") from None


def check_pacing(kind: str, rate: float | None, max_in_flight: int) -> None:
    """``rate`` is a positive finite number or ``None``; ``max_in_flight`` at least 1."""
    if rate is not None and not (rate > 0 and math.isfinite(rate)):
        raise ConfigurationError(f"{kind}: rate must be a positive number or None, not {rate!r}")
    if max_in_flight < 1:
        raise ConfigurationError(f"{kind}: max_in_flight must be at least 1, not {max_in_flight}")


def check_base_url(kind: str, base_url: str, setting: str) -> str:
    """``base_url`` without surrounding space or trailing slash, once it is an http(s) URL
    with a host; else a ``ConfigurationError`` naming ``setting``."""
    url = base_url.strip().rstrip("/")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"{kind}: {setting} {base_url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(
            f"{kind}: {setting} {base_url!r} needs http:// or https:// and a host "
            "(set it, or pass base_url=)"
        )
    return url
