"""Absolute URLs of the webhook routes, built from the public base URL."""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from outreach.exceptions import ConfigurationError


def _segment(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} must not be empty")
    return quote(value, safe="")


class PublicUrls:
    """Where providers and customers reach the webhooks app (``OUTREACH_PUBLIC_URL``).

    The base may carry a path prefix (``https://x.example/hooks``) when the app is mounted
    or proxied under one; a trailing slash and any ``user:pass@`` are dropped.
    """

    __slots__ = ("_base",)

    def __init__(self, base_url: str) -> None:
        try:
            parts = urlsplit(base_url.strip())
            _ = parts.port  # raises ValueError for a port that is not a number in range
        except ValueError as exc:
            raise ConfigurationError(f"public URL {base_url!r} is not a valid URL") from exc
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"public URL {base_url!r} needs an http:// or https:// scheme and a host"
            )
        if parts.query or parts.fragment:
            raise ConfigurationError(
                f"public URL {base_url!r} must not have a query string or fragment"
            )
        host = parts.netloc.rpartition("@")[2]
        self._base = urlunsplit((scheme, host, parts.path.rstrip("/"), "", ""))

    @property
    def base(self) -> str:
        """The normalised base URL, without a trailing slash."""
        return self._base

    def __repr__(self) -> str:
        return f"PublicUrls({self._base!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicUrls) and other._base == self._base

    def __hash__(self) -> int:
        return hash(self._base)

    def ack(self, token: str) -> str:
        """Acknowledgement page linked from emails and SMS."""
        return f"{self._base}/ack/{_segment(token, 'token')}"

    def unsubscribe(self, token: str) -> str:
        """One-click unsubscribe (``List-Unsubscribe-Post``)."""
        return f"{self._base}/unsubscribe/{_segment(token, 'token')}"

    def twilio_sms(self) -> str:
        """Inbound SMS webhook of the Twilio number."""
        return f"{self._base}/twilio/sms"

    def twilio_status(self, attempt_id: str) -> str:
        """Status callback for one message or call."""
        if not attempt_id:
            raise ValueError("attempt_id must not be empty")
        return f"{self._base}/twilio/status?{urlencode({'attempt': attempt_id})}"

    def twilio_voice(self, attempt_id: str) -> str:
        """TwiML for one call."""
        return f"{self._base}/twilio/voice/{_segment(attempt_id, 'attempt_id')}"

    def twilio_gather(self, attempt_id: str) -> str:
        """Where a call posts the key the customer pressed."""
        return f"{self.twilio_voice(attempt_id)}/gather"

    def sendgrid_events(self) -> str:
        """SendGrid event webhook."""
        return f"{self._base}/sendgrid/events"

    def for_request(self, path_with_query: str) -> str:
        """The public URL a provider signed for a request the app received.

        ``path_with_query`` is the raw path as the webhooks app routes it (relative to the
        app, without any mount or proxy prefix, which the base already holds) plus the exact
        raw query string, e.g. ``"/twilio/status?attempt=a1"``. It is appended unchanged,
        because signatures cover the URL byte for byte.
        """
        if not path_with_query.startswith("/"):
            raise ValueError(f"expected a path starting with '/', got {path_with_query!r}")
        return f"{self._base}{path_with_query}"
