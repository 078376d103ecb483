"""The README's main command and the examples a developer copies from."""

from __future__ import annotations

import asyncio
import json
import runpy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach.cli import app

ROOT = Path(__file__).resolve().parent.parent


def test_demo_tells_the_whole_story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "4 of 6 passengers answered" in result.output
    assert "Never reached Dana Kim" in result.output
    people = result.output[result.output.index("4 need a person") :]
    assert "Ann Lee (handoff): chose 2: My refund has not arrived" in people
    assert "Bo Diaz (not_understood): replied, not understood: 'my bag is lost, call me'" in people
    assert "Dana Kim (unreached): sms: a landline" in people
    # The next day's apology needs no answer: it stopped once the email was delivered.
    assert "Dana Kim apology: no answer needed, until delivered" in result.output
    assert "Apology to Dana Kim: delivered: email delivered" in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []  # nothing left behind in the working directory


def test_demo_json_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--json", "--store", f"sqlite:///{tmp_path}/d.db"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    by_id = {row["recipient"]: row for row in summary["passengers"]}
    assert by_id["pax-01"]["via"] == "sms"
    assert by_id["pax-01"]["choice_label"] == "Refund"
    assert by_id["pax-01"]["follow_ups"][0]["key"].endswith("/refund_check")
    assert by_id["pax-02"]["via"] == "email"
    assert by_id["pax-03"]["via"] == "voice"
    assert by_id["pax-05"]["after_minutes"] > 150  # held back by quiet hours in Los Angeles
    assert summary["never_reached"] == ["pax-04", "pax-06"]
    assert "landline" in by_id["pax-04"]["never_reached"]
    assert "bounced" in by_id["pax-06"]["never_reached"]
    assert "voicemail" in by_id["pax-06"]["never_reached"]
    assert by_id["pax-01"]["follow_ups"][0]["attempts"] == ["voice engaged"]
    assert by_id["pax-05"]["follow_ups"][0]["outcome"] == (
        "acknowledged by voice, chose 1: My refund arrived"
    )
    people = {case["recipient"]: case for case in summary["needs_a_person"]}
    assert sorted(people) == ["pax-01", "pax-02", "pax-04", "pax-06"]
    assert people["pax-01"]["reason"] == "handoff"
    assert people["pax-02"]["detail"] == "replied, not understood: 'my bag is lost, call me'"
    [apology] = summary["notices"]
    assert (apology["recipient"], apology["until"]) == ("pax-04", "delivered")
    assert apology["status"] == "delivered"
    assert apology["attempts"] == ["sms failed", "email delivered"]  # no call
    assert apology["outcome"] == "delivered: email delivered"
    assert summary["acknowledged"] == 4  # the apology counts for nobody's answer


def test_the_attention_queue_and_one_customers_timeline_from_the_command_line(
    tmp_path: Path,
) -> None:
    store = ["--store", f"sqlite:///{tmp_path}/d.db"]
    runner = CliRunner()
    assert runner.invoke(app, ["demo", "--json", *store]).exit_code == 0
    listed = runner.invoke(app, ["attention", "--json", "--campaign", "9K1042-2026-11-23", *store])
    assert listed.exit_code == 0, listed.output
    cases = {case["recipient_id"]: case for case in json.loads(listed.output)}
    assert sorted(cases) == ["pax-01", "pax-02", "pax-04", "pax-06"]
    ann = cases["pax-01"]["id"]

    table = runner.invoke(app, ["attention", *store], terminal_width=200)
    assert "my bag is lost, call me" in table.output
    closed = runner.invoke(app, ["resolve", ann, "--by", "agent-7", "--note", "re-sent", *store])
    assert closed.exit_code == 0, closed.output
    assert f"attention {ann} resolved by agent-7" in closed.output
    again = runner.invoke(app, ["resolve", ann, "--by", "agent-9", "--json", *store])
    assert json.loads(again.output)["resolved_by"] == "agent-7"
    left = json.loads(runner.invoke(app, ["attention", "--json", *store]).output)
    assert sorted(case["recipient_id"] for case in left) == ["pax-02", "pax-04", "pax-06"]
    everything = json.loads(runner.invoke(app, ["attention", "--all", "--json", *store]).output)
    assert len(everything) == 4
    unknown = runner.invoke(app, ["resolve", "nope", "--by", "agent-7", *store])
    assert unknown.exit_code == 1
    assert "no attention record with id 'nope'" in unknown.output

    timeline = runner.invoke(app, ["status", "--recipient", "pax-01", *store], terminal_width=200)
    assert timeline.exit_code == 0, timeline.output
    lines = timeline.output.splitlines()
    assert any("acknowledged via sms, chose 2" in line for line in lines)
    assert any("follow-up 'refund_check' scheduled" in line for line in lines)
    assert any(
        "needs a person (handoff): chose 2: My refund has not arrived" in line for line in lines
    )
    assert "resolved by agent-7: re-sent" in lines[-1]
    nobody = runner.invoke(app, ["status", "--recipient", "pax-99", *store])
    assert nobody.exit_code == 1
    assert "nothing is stored for recipient 'pax-99'" in nobody.output


def test_cape_air_example_runs(tmp_path: Path) -> None:
    example = runpy.run_path(str(ROOT / "examples" / "cape_air.py"))
    outcome = asyncio.run(example["main"](f"sqlite:///{tmp_path}/x.db"))
    assert outcome == (
        "acknowledged via voice (choice 2) after sms, email, voice; follow-up voice engaged"
    )


def test_support_commands_on_a_shared_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start from code, then status / ack / report / cancel from the command line."""
    from outreach import Client, Recipient
    from outreach.demo import demo_plan, templates_dir
    from outreach.testing import FakeClock, InMemoryChannel

    store = f"sqlite:///{tmp_path / 'shared.db'}"
    # Mid-afternoon UTC: at night the demo plan's quiet hours would hold the first SMS back.
    daytime = FakeClock("2026-11-23T14:00:00+00:00")
    monkeypatch.setenv("OUTREACH_STORE", store)
    channels = {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}
    with Client(store=store, channels=channels, templates=templates_dir(), clock=daytime) as ox:
        pax = Recipient(id="pax-1", phone="+16175550123", email="ann@example.com")
        ox.start(pax, demo_plan(), context={"flight": "9K 1042"}, key="k1", campaign="c1")
        ox.start(
            pax.model_copy(update={"id": "pax-2"}),
            demo_plan(),
            context={"flight": "9K 1042"},
            key="k2",
            campaign="c1",
        )
        ox.run_due()
    runner = CliRunner()
    shown = runner.invoke(app, ["status", "--key", "k1"])
    assert shown.exit_code == 0, shown.output
    assert "sms" in shown.output
    acked = runner.invoke(app, ["ack", "--key", "k1", "--choice", "2"])
    assert acked.exit_code == 0, acked.output
    assert "acknowledged choice 2" in acked.output
    wrong = runner.invoke(app, ["ack", "--key", "k2", "--choice", "9"])
    assert wrong.exit_code == 1
    cancelled = runner.invoke(app, ["cancel", "--key", "k2", "--reason", "flight restored"])
    assert "cancelled" in cancelled.output
    summary = runner.invoke(app, ["report", "c1"])
    assert "acknowledged: 1" in summary.output
    assert "cancelled: 1" in summary.output
    missing = runner.invoke(app, ["status", "--key", "nope"])
    assert missing.exit_code == 1
    assert "no notification" in missing.output


def test_app_factories_are_checked() -> None:
    from outreach._factory import load_client
    from outreach._settings import Settings
    from outreach.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="module:factory"):
        load_client("nocolon", Settings())
    with pytest.raises(ConfigurationError, match="No module"):
        load_client("no_such_module:make", Settings())
    with pytest.raises(ConfigurationError, match="not an AsyncClient"):
        load_client("uuid:uuid4", Settings())


def test_channels_come_from_configured_credentials() -> None:
    from outreach._factory import channels_from_settings
    from outreach._settings import Settings

    assert channels_from_settings(Settings()) == {}
    full = Settings(
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token="token",
        twilio_from="+16175550100",
        sendgrid_api_key="SG.key",
        sendgrid_from="alerts@example.com",
    )
    assert sorted(channels_from_settings(full)) == ["email", "sms", "voice"]


def test_templates_command_checks_every_notice(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(app, ["templates", str(ROOT / "templates"), "--context", "flight=9K 1042"])
    assert good.exit_code == 0, good.output
    assert "flight_cancelled" in good.output
    assert "refund_check" in good.output
    missing = runner.invoke(app, ["templates", str(ROOT / "templates")])
    assert missing.exit_code == 1
    assert "flight" in missing.output


@pytest.fixture
def no_loops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``worker``/``serve`` return at once instead of running forever; what started is listed."""
    import uvicorn

    from outreach import AsyncClient

    started: list[str] = []

    async def run(self: AsyncClient) -> None:
        started.append("escalations")

    async def serve(self: uvicorn.Server, sockets: object = None) -> None:
        started.append("server")

    monkeypatch.setattr(AsyncClient, "run", run)
    monkeypatch.setattr(uvicorn.Server, "serve", serve)
    monkeypatch.setenv("OUTREACH_STORE", "memory://")
    return started


@pytest.mark.parametrize(
    "command", [["status", "--key", "k1"], ["templates", str(ROOT / "templates")]]
)
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_secret_key_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, no_loops: list[str], command: list[str], value: str
) -> None:
    monkeypatch.setenv("OUTREACH_SECRET_KEY", value)
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert "OUTREACH_SECRET_KEY" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_long_running_commands_refuse_to_start_without_a_secret_key(
    monkeypatch: pytest.MonkeyPatch, no_loops: list[str], command: str
) -> None:
    monkeypatch.delenv("OUTREACH_SECRET_KEY")
    result = CliRunner().invoke(app, [command])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "OUTREACH_SECRET_KEY" in result.output
    assert "--insecure-dev-key" in result.output
    assert no_loops == []  # refused before anything started


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_insecure_dev_key_runs_without_a_key_and_says_so(
    monkeypatch: pytest.MonkeyPatch, no_loops: list[str], command: str
) -> None:
    monkeypatch.delenv("OUTREACH_SECRET_KEY")
    result = CliRunner().invoke(app, [command, "--insecure-dev-key"])
    assert result.exit_code == 0, result.output
    assert "throw-away" in result.output
    assert no_loops  # it started (serve: the server returned at once, so no escalations)


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_long_running_commands_start_with_a_secret_key(
    monkeypatch: pytest.MonkeyPatch, no_loops: list[str], command: str
) -> None:
    monkeypatch.setenv("OUTREACH_SECRET_KEY", "k" * 32)
    result = CliRunner().invoke(app, [command])
    assert result.exit_code == 0, result.output
    assert no_loops  # it started (serve: the server returned at once, so no escalations)
