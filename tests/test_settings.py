"""Settings: environment variables, argument precedence, durations and word lists."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach import Settings, channels_from_settings
from outreach._settings import FALLBACKS as _FALLBACKS
from outreach.cli import app
from outreach.exceptions import ConfigurationError

FALLBACKS = set(_FALLBACKS.values())


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("OUTREACH_") or name.upper() in FALLBACKS:
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
    with pytest.raises(ConfigurationError, match=r"^invalid settings: OUTREACH_SIGNATURE_MAX_AGE:"):
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


@pytest.mark.parametrize(
    ("field", "own", "sdk"),
    [
        ("twilio_account_sid", "OUTREACH_TWILIO_ACCOUNT_SID", "TWILIO_ACCOUNT_SID"),
        ("twilio_auth_token", "OUTREACH_TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN"),
        ("sendgrid_api_key", "OUTREACH_SENDGRID_API_KEY", "SENDGRID_API_KEY"),
    ],
)
def test_the_sdks_own_variables_are_the_fallback(
    monkeypatch: pytest.MonkeyPatch, field: str, own: str, sdk: str
) -> None:
    def value(settings: Settings) -> str | None:
        found = getattr(settings, field)
        return found if isinstance(found, str | None) else found.get_secret_value()

    monkeypatch.setenv(sdk, "from-the-sdk-variable")
    assert value(Settings()) == "from-the-sdk-variable"
    monkeypatch.setenv(own, "ours")
    assert value(Settings()) == "ours"  # the OUTREACH_ name wins
    assert value(Settings(**{field: "argument"})) == "argument"  # and an argument wins over both


def test_pacing_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert (s.twilio_sms_rate, s.twilio_sms_max_in_flight) == (1.0, 100)
    assert (s.twilio_voice_rate, s.twilio_voice_max_in_flight) == (1.0, 20)
    assert (s.sendgrid_rate, s.sendgrid_max_in_flight) == (None, 100)
    monkeypatch.setenv("OUTREACH_TWILIO_SMS_RATE", "off")
    monkeypatch.setenv("OUTREACH_TWILIO_SMS_MAX_IN_FLIGHT", "7")
    monkeypatch.setenv("OUTREACH_TWILIO_VOICE_RATE", "0.5")
    monkeypatch.setenv("OUTREACH_SENDGRID_RATE", "40")
    monkeypatch.setenv("OUTREACH_SENDGRID_MAX_IN_FLIGHT", "3")
    s = Settings()
    assert (s.twilio_sms_rate, s.twilio_sms_max_in_flight) == (None, 7)
    assert s.twilio_voice_rate == 0.5
    assert (s.sendgrid_rate, s.sendgrid_max_in_flight) == (40.0, 3)


async def test_channels_from_settings_are_paced_as_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.key")
    monkeypatch.setenv("OUTREACH_TWILIO_SMS_RATE", "25")
    monkeypatch.setenv("OUTREACH_TWILIO_VOICE_MAX_IN_FLIGHT", "4")
    monkeypatch.setenv("OUTREACH_SENDGRID_RATE", "off")
    settings = Settings(twilio_from="+16175550100", sendgrid_from="Air <noreply@example.com>")
    channels = channels_from_settings(settings)
    try:
        assert (channels["sms"].rate, channels["sms"].max_in_flight) == (25.0, 100)
        assert (channels["voice"].rate, channels["voice"].max_in_flight) == (1.0, 4)
        assert channels["email"].rate is None
    finally:
        for channel in channels.values():
            await channel.aclose()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OUTREACH_SIGNATURE_MAX_AGE", "soon"),
        ("OUTREACH_GRACE", "-1d"),
        ("OUTREACH_TWILIO_SMS_RATE", "fast"),
        ("OUTREACH_TWILIO_VOICE_RATE", "-2"),
        ("OUTREACH_SENDGRID_MAX_IN_FLIGHT", "0"),
    ],
)
def test_every_settings_error_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=f"^invalid settings: {variable}: ") as caught:
        Settings()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "command",
    [
        ["status", "--campaign", "c"],
        ["worker", "--insecure-dev-key"],
        ["serve", "--insecure-dev-key"],
        ["ack", "n1"],
        ["cancel", "n1"],
        ["report", "c"],
        ["demo"],
        ["templates", "templates"],
    ],
    ids=lambda c: c[0],
)
def test_a_bad_variable_is_one_line_from_every_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str]
) -> None:
    # The commands (and uvicorn, in other tests) configure logging to a runner's stderr,
    # closed once it returns: start from no such handler and leave none behind.
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "templates").mkdir()
    monkeypatch.setenv("OUTREACH_SIGNATURE_MAX_AGE", "soon")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "OUTREACH_SIGNATURE_MAX_AGE" in result.output
    assert "Traceback" not in result.output, result.output
