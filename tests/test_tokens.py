"""TokenSigner: round trips, forgeries, purposes, garbage and expiry."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outreach._tokens import TokenClaims, TokenSigner
from outreach.exceptions import ConfigurationError, ExpiredToken, InvalidToken

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=7)
SECRET = "correct horse battery staple"


def claims(**changes: object) -> TokenClaims:
    values: dict[str, object] = {
        "purpose": "ack",
        "notification_id": "ntf_01JD8X4ZQ3",
        "attempt_id": "att_01JD8X5B7K",
        "choice": "2",
        "expires_at": EXPIRES,
    }
    values.update(changes)
    return TokenClaims(**values)  # type: ignore[arg-type]


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner(SECRET)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_round_trip(signer: TokenSigner) -> None:
    c = claims()
    assert signer.verify(signer.sign(c), now=NOW, purpose="ack") == c


@pytest.mark.parametrize("attempt_id", [None, "att_1"])
@pytest.mark.parametrize("choice", [None, "1", "Rébook ✈"])
def test_round_trip_optional_fields(
    signer: TokenSigner, attempt_id: str | None, choice: str | None
) -> None:
    c = claims(purpose="unsubscribe", attempt_id=attempt_id, choice=choice)
    assert signer.verify(signer.sign(c), now=NOW, purpose="unsubscribe") == c


def test_bytes_secret_equals_str_secret() -> None:
    token = TokenSigner(SECRET).sign(claims())
    assert TokenSigner(SECRET.encode()).verify(token, now=NOW, purpose="ack") == claims()


def test_token_is_short_and_url_safe(signer: TokenSigner) -> None:
    token = signer.sign(claims(choice=None))
    assert len(token) <= 120
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    payload = json.loads(_unb64(token.split(".")[0]))
    assert payload["e"] == int(EXPIRES.timestamp())


def test_expiry_in_other_zone_and_subseconds(signer: TokenSigner) -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 11, 23, 7, 0, 0, 900_000, tzinfo=ZoneInfo("America/New_York"))
    got = signer.verify(
        signer.sign(claims(expires_at=local)), now=NOW - timedelta(hours=1), purpose="ack"
    )
    assert got.expires_at == local.replace(microsecond=0)
    assert got.expires_at.tzinfo is UTC


def test_empty_secret_rejected() -> None:
    with pytest.raises(ConfigurationError):
        TokenSigner("")
    with pytest.raises(ConfigurationError):
        TokenSigner(b"")


def test_secret_not_in_repr(signer: TokenSigner) -> None:
    assert SECRET not in repr(signer)


def test_naive_datetimes_rejected(signer: TokenSigner) -> None:
    with pytest.raises(ValueError, match="aware"):
        signer.sign(claims(expires_at=EXPIRES.replace(tzinfo=None)))
    token = signer.sign(claims())
    with pytest.raises(ValueError, match="aware"):
        signer.verify(token, now=NOW.replace(tzinfo=None), purpose="ack")


def test_tampered_payload(signer: TokenSigner) -> None:
    token = signer.sign(claims(choice="1"))
    payload, mac = token.split(".")
    body = json.loads(_unb64(payload))
    body["c"] = "2"
    forged = _b64(json.dumps(body, separators=(",", ":")).encode()) + "." + mac
    with pytest.raises(InvalidToken, match="signature") as info:
        signer.verify(forged, now=NOW, purpose="ack")
    assert not isinstance(info.value, ExpiredToken)


def test_extended_expiry_is_forgery(signer: TokenSigner) -> None:
    token = signer.sign(claims(expires_at=NOW - timedelta(seconds=1)))
    payload, mac = token.split(".")
    body = json.loads(_unb64(payload))
    body["e"] += 86400
    forged = _b64(json.dumps(body, separators=(",", ":")).encode()) + "." + mac
    with pytest.raises(InvalidToken, match="signature"):
        signer.verify(forged, now=NOW, purpose="ack")


def test_tampered_mac(signer: TokenSigner) -> None:
    token = signer.sign(claims())
    payload, mac = token.split(".")
    flipped = ("A" if mac[0] != "A" else "B") + mac[1:]
    with pytest.raises(InvalidToken, match="signature"):
        signer.verify(f"{payload}.{flipped}", now=NOW, purpose="ack")
    with pytest.raises(InvalidToken):
        signer.verify(f"{payload}.{mac[:-1]}", now=NOW, purpose="ack")
    with pytest.raises(InvalidToken):
        signer.verify(f"{payload}.{mac}A", now=NOW, purpose="ack")


def test_wrong_secret(signer: TokenSigner) -> None:
    token = TokenSigner("some-other-secret").sign(claims())
    with pytest.raises(InvalidToken, match="signature") as info:
        signer.verify(token, now=NOW, purpose="ack")
    assert SECRET not in str(info.value)
    assert "some-other-secret" not in str(info.value)


def test_wrong_purpose(signer: TokenSigner) -> None:
    token = signer.sign(claims(purpose="unsubscribe"))
    with pytest.raises(InvalidToken, match="unsubscribe") as info:
        signer.verify(token, now=NOW, purpose="ack")
    assert not isinstance(info.value, ExpiredToken)


def test_expiry_boundary(signer: TokenSigner) -> None:
    token = signer.sign(claims())
    assert signer.verify(token, now=EXPIRES - timedelta(microseconds=1), purpose="ack") == claims()
    with pytest.raises(ExpiredToken):
        signer.verify(token, now=EXPIRES, purpose="ack")
    with pytest.raises(ExpiredToken):
        signer.verify(token, now=EXPIRES + timedelta(days=365), purpose="ack")


def test_expired_is_invalid_token(signer: TokenSigner) -> None:
    token = signer.sign(claims(expires_at=NOW))
    with pytest.raises(InvalidToken):
        signer.verify(token, now=NOW, purpose="ack")


def test_forgery_checked_before_expiry(signer: TokenSigner) -> None:
    token = TokenSigner("some-other-secret").sign(claims(expires_at=NOW - timedelta(days=1)))
    with pytest.raises(InvalidToken) as info:
        signer.verify(token, now=NOW, purpose="ack")
    assert not isinstance(info.value, ExpiredToken)


@pytest.mark.parametrize(
    "token",
    ["", ".", "abc", "abc.", ".abc", "a.b.c", "a b.c", "abc=.def", "é.é", "a" * 5000 + ".b"],
)
def test_malformed(signer: TokenSigner, token: str) -> None:
    with pytest.raises(InvalidToken):
        signer.verify(token, now=NOW, purpose="ack")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1,2]",
        b'{"p":"ack"}',
        b'{"p":"ack","n":"x","e":"soon"}',
        b'{"p":"ack","n":"x","e":true}',
        b'{"p":"ack","n":"x","e":1,"a":5}',
        b'{"p":"ack","n":"x","e":99999999999999999999}',
        b"\xff\xfe",
    ],
)
def test_genuinely_signed_garbage_payloads(signer: TokenSigner, body: bytes) -> None:
    payload = _b64(body)
    token = f"{payload}.{signer._mac(payload)}"
    with pytest.raises(InvalidToken, match="malformed"):
        signer.verify(token, now=NOW, purpose="ack")


@settings(deadline=None)
@given(st.text())
def test_garbage_text_only_raises_invalid_token(text: str) -> None:
    with pytest.raises(InvalidToken):
        TokenSigner(SECRET).verify(text, now=NOW, purpose="ack")


@settings(deadline=None)
@given(st.from_regex(r"[A-Za-z0-9_-]{1,60}\.[A-Za-z0-9_-]{1,40}", fullmatch=True))
def test_well_shaped_garbage_only_raises_invalid_token(text: str) -> None:
    with pytest.raises(InvalidToken):
        TokenSigner(SECRET).verify(text, now=NOW, purpose="ack")


@settings(deadline=None)
@given(
    notification_id=st.text(min_size=1, max_size=40),
    attempt_id=st.none() | st.text(max_size=40),
    choice=st.none() | st.text(max_size=10),
    seconds=st.integers(min_value=1, max_value=10**9),
)
def test_round_trip_property(
    notification_id: str, attempt_id: str | None, choice: str | None, seconds: int
) -> None:
    signer = TokenSigner(SECRET)
    c = claims(
        notification_id=notification_id,
        attempt_id=attempt_id,
        choice=choice,
        expires_at=NOW + timedelta(seconds=seconds),
    )
    assert signer.verify(signer.sign(c), now=NOW, purpose="ack") == c
