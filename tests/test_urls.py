"""PublicUrls: normalising the base and building webhook URLs."""

from __future__ import annotations

import pytest

from outreach._urls import PublicUrls
from outreach.exceptions import ConfigurationError


def test_routes() -> None:
    u = PublicUrls("https://hooks.example")
    assert u.ack("abc.def") == "https://hooks.example/ack/abc.def"
    assert u.unsubscribe("abc.def") == "https://hooks.example/unsubscribe/abc.def"
    assert u.twilio_sms() == "https://hooks.example/twilio/sms"
    assert u.twilio_status("at_1") == "https://hooks.example/twilio/status?attempt=at_1"
    assert u.twilio_voice("at_1") == "https://hooks.example/twilio/voice/at_1"
    assert u.twilio_gather("at_1") == "https://hooks.example/twilio/voice/at_1/gather"
    assert u.sendgrid_events() == "https://hooks.example/sendgrid/events"


@pytest.mark.parametrize(
    "base", ["https://hooks.example/", "https://hooks.example//", " https://hooks.example "]
)
def test_trailing_slash_stripped(base: str) -> None:
    assert PublicUrls(base).base == "https://hooks.example"
    assert PublicUrls(base).twilio_sms() == "https://hooks.example/twilio/sms"


def test_userinfo_stripped() -> None:
    u = PublicUrls("https://user:pa%40ss@hooks.example:8443/x/")
    assert u.base == "https://hooks.example:8443/x"
    assert "pa" not in u.sendgrid_events()


def test_path_prefix_kept() -> None:
    u = PublicUrls("https://x.example/hooks")
    assert u.ack("t") == "https://x.example/hooks/ack/t"
    assert u.twilio_gather("a") == "https://x.example/hooks/twilio/voice/a/gather"
    assert u.for_request("/twilio/status?attempt=a1") == (
        "https://x.example/hooks/twilio/status?attempt=a1"
    )


def test_ipv6_and_port() -> None:
    assert PublicUrls("http://[::1]:8000/").base == "http://[::1]:8000"


def test_scheme_normalised() -> None:
    assert PublicUrls("HTTPS://hooks.example").base == "https://hooks.example"


@pytest.mark.parametrize(
    "base",
    [
        "",
        "hooks.example",
        "ftp://hooks.example",
        "https://",
        "https:///path",
        "//hooks.example",
        "https://hooks.example:notaport",
        "https://hooks.example:99999",
        "https://hooks.example/?a=1",
        "https://hooks.example/#frag",
    ],
)
def test_invalid_base_rejected(base: str) -> None:
    with pytest.raises(ConfigurationError):
        PublicUrls(base)


def test_ids_are_quoted() -> None:
    u = PublicUrls("https://hooks.example")
    assert u.twilio_voice("a/b c?d") == "https://hooks.example/twilio/voice/a%2Fb%20c%3Fd"
    assert u.twilio_gather("a/b") == "https://hooks.example/twilio/voice/a%2Fb/gather"
    assert u.twilio_status("a&b=c d") == "https://hooks.example/twilio/status?attempt=a%26b%3Dc+d"
    assert u.ack("x/y") == "https://hooks.example/ack/x%2Fy"
    assert u.unsubscribe("x#y") == "https://hooks.example/unsubscribe/x%23y"


@pytest.mark.parametrize(
    "call",
    [
        lambda u: u.twilio_voice(""),
        lambda u: u.twilio_status(""),
        lambda u: u.ack(""),
    ],
)
def test_empty_ids_rejected(call: object) -> None:
    with pytest.raises(ValueError, match="empty"):
        call(PublicUrls("https://hooks.example"))  # type: ignore[operator]


def test_for_request_keeps_exact_query() -> None:
    u = PublicUrls("https://hooks.example/")
    raw = "/twilio/status?attempt=a%2F1&b=2&b=1"
    assert u.for_request(raw) == "https://hooks.example" + raw
    assert u.for_request("/twilio/sms") == "https://hooks.example/twilio/sms"


def test_for_request_needs_a_path() -> None:
    with pytest.raises(ValueError, match="path"):
        PublicUrls("https://hooks.example").for_request("twilio/sms")


def test_equality_and_repr() -> None:
    assert PublicUrls("https://a.example/") == PublicUrls("https://a.example")
    assert PublicUrls("https://a.example") != PublicUrls("https://b.example")
    assert len({PublicUrls("https://a.example/"), PublicUrls("https://a.example")}) == 1
    assert "https://a.example" in repr(PublicUrls("https://u:p@a.example"))
    assert "u:p" not in repr(PublicUrls("https://u:p@a.example"))
