"""Settings: environment variables, argument precedence, durations and word lists."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from outreach._settings import Settings
from outreach.exceptions import ConfigurationError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("OUTREACH_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = Settings()
    assert s.store == "sqlite:///outreach.db"
    assert s.templates is None
    assert s.secret_key is None
    assert s.public_url == "http://127.0.0.1:8000"
    assert s.twilio_base_url == "https://api.twilio.com"
    assert s.sendgrid_base_url == "https://api.sendgrid.com"
    assert s.signature_max_age == timedelta(hours=25)  # SendGrid retries for 24 hours
    assert s.grace == timedelta(days=7)
    assert s.ack_words == ("OK", "ACK", "GOT IT", "Y")
    assert s.help_text


def test_env_vars_are_picked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_STORE", "memory://")
    monkeypatch.setenv("OUTREACH_SECRET_KEY", "s3cret")
    monkeypatch.setenv("OUTREACH_TWILIO_ACCOUNT_SID", "AC123")
    monkeypatch.setenv("OUTREACH_TWILIO_AUTH_TOKEN", "tok")
    monkeypatch.setenv("OUTREACH_TWILIO_FROM", "+15550001111")
    monkeypatch.setenv("OUTREACH_TWILIO_VOICE_FROM", "+15550002222")
    monkeypatch.setenv("OUTREACH_TWILIO_MESSAGING_SERVICE_SID", "MG1")
    monkeypatch.setenv("OUTREACH_SENDGRID_API_KEY", "SG.key")
    monkeypatch.setenv("OUTREACH_SENDGRID_FROM", "alerts@airline.example")
    monkeypatch.setenv("OUTREACH_SENDGRID_WEBHOOK_PUBLIC_KEY", "MFkw")
    monkeypatch.setenv("OUTREACH_HELP_TEXT", "Call us")
    s = Settings()
    assert s.store == "memory://"
    assert s.secret_key is not None
    assert s.secret_key.get_secret_value() == "s3cret"
    assert s.twilio_account_sid == "AC123"
    assert s.twilio_auth_token is not None
    assert s.twilio_auth_token.get_secret_value() == "tok"
    assert s.twilio_from == "+15550001111"
    assert s.twilio_voice_from == "+15550002222"
    assert s.twilio_messaging_service_sid == "MG1"
    assert s.sendgrid_api_key is not None
    assert s.sendgrid_api_key.get_secret_value() == "SG.key"
    assert s.sendgrid_from == "alerts@airline.example"
    assert s.sendgrid_webhook_public_key == "MFkw"
    assert s.help_text == "Call us"


def test_secrets_are_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_TWILIO_AUTH_TOKEN", "hunter2")
    s = Settings(secret_key="topsecret")
    assert "hunter2" not in repr(s)
    assert "topsecret" not in repr(s)


def test_arguments_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_STORE", "memory://")
    monkeypatch.setenv("OUTREACH_PUBLIC_URL", "https://env.example")
    monkeypatch.setenv("OUTREACH_ACK_WORDS", "YES")
    s = Settings(store="sqlite:///other.db", ack_words=("SURE",))
    assert s.store == "sqlite:///other.db"
    assert s.ack_words == ("SURE",)
    assert s.public_url == "https://env.example"


def test_ack_words_from_comma_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_ACK_WORDS", "OK, roger ,GOT IT,,")
    assert Settings().ack_words == ("OK", "roger", "GOT IT")


def test_ack_words_from_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_ACK_WORDS", '["OK", "A, B"]')
    assert Settings().ack_words == ("OK", "A, B")


def test_ack_words_argument_as_string() -> None:
    assert Settings(ack_words="OK,YES").ack_words == ("OK", "YES")


def test_durations_from_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_SIGNATURE_MAX_AGE", "10m")
    monkeypatch.setenv("OUTREACH_GRACE", "1h30m")
    s = Settings()
    assert s.signature_max_age == timedelta(minutes=10)
    assert s.grace == timedelta(hours=1, minutes=30)
    assert Settings(signature_max_age="5m").signature_max_age == timedelta(minutes=5)
    assert Settings(grace=timedelta(days=2)).grace == timedelta(days=2)


@pytest.mark.parametrize("value", ["soon", "10 parsecs", "0s"])
def test_bad_signature_max_age_rejected(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("OUTREACH_SIGNATURE_MAX_AGE", value)
    with pytest.raises(ValidationError, match="signature_max_age"):
        Settings()


def test_unknown_env_vars_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_NOT_A_SETTING", "x")
    assert Settings().store == "sqlite:///outreach.db"


def test_no_dotenv_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OUTREACH_STORE=memory://\n")
    assert Settings().store == "sqlite:///outreach.db"


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_a_secret_key_set_but_empty_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """docker-compose passes an unset ``${VAR}`` as "": that is no key, not a random one."""
    monkeypatch.setenv("OUTREACH_SECRET_KEY", value)
    with pytest.raises(ConfigurationError, match="OUTREACH_SECRET_KEY"):
        Settings()
    monkeypatch.delenv("OUTREACH_SECRET_KEY")
    with pytest.raises(ConfigurationError, match="OUTREACH_SECRET_KEY"):
        Settings(secret_key=value)
    assert Settings().secret_key is None  # unset is still allowed (a throw-away key)
