"""What every command of the CLI promises: help with an example, --json, exit codes that
mean something, one line for an expected error, user text never read as markup, no colour
off a terminal, and read-only commands that never create a store."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from outreach import Client, Plan, Recipient, Step
from outreach.cli import app
from outreach.testing import InMemoryChannel

COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
LONG_RUNNING = {"worker", "serve"}  # they print logs, not a result
NO_RESULT = {"db", "init"}  # a group (its commands take --json); init writes files
ROOT = Path(__file__).resolve().parent.parent
MARKUP = "[/bold][red]x"


def test_the_command_list_is_what_the_readme_promises() -> None:
    assert {"send", "cancel", "status", "report", "rehearse", "templates"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example: outreach " in result.output


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - LONG_RUNNING - NO_RESULT))
def test_every_command_that_prints_a_result_has_json(command: str) -> None:
    assert "--json" in CliRunner().invoke(app, [command, "--help"]).output


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"outreach {version('outreach')}\n"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite store with one notification in a campaign whose name is rich markup."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'o.db'}"
    notice = tmp_path / "templates" / "notice"
    notice.mkdir(parents=True)
    (notice / "sms.txt").write_text("Hello.")
    plan = Plan(name="p", steps=[Step(channel="sms", template="notice")])
    with Client(
        store=url, channels={"sms": InMemoryChannel(name="sms")}, templates=tmp_path / "templates"
    ) as ox:
        ox.start(Recipient(id=MARKUP, phone="+16175550101"), plan, key=MARKUP, campaign=MARKUP)
    return url


READ_ONLY = [
    ["status", "--campaign", "c"],
    ["status", "some-id"],
    ["report", "c"],
    ["cancel", "--campaign", "c"],
    ["cancel", "some-id"],
]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_mistyped_store_path_is_an_error_and_creates_nothing(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*command, "--store", "sqlite:///nowhere/o.db"])
    assert result.exit_code == 2
    assert result.output.count("error:") == 1
    assert "no store at nowhere/o.db" in result.output
    assert list(tmp_path.iterdir()) == []


EXPECTED_ERRORS = [
    (["send", "nope.toml", "pax.csv", "--campaign", "c"], "nope.toml"),
    (["rehearse", "nope.toml", "pax.csv", "--personas", "mix.toml"], "nope.toml"),
    (["templates", "nope"], "nope"),
    (["send", "p.toml", "pax.csv", "--campaign", "c", "--context-file", "nope.json"], "nope"),
    (["status", "--campaign", "c", "--store", "ftp://x"], "unknown store URL 'ftp://x'"),
    (["report", "c", "--format", "xml"], "--format 'xml'"),
]


@pytest.mark.parametrize(("command", "said"), EXPECTED_ERRORS, ids=lambda v: str(v)[:40])
def test_an_expected_error_is_one_line_and_exit_2(
    command: list[str], said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.toml").write_text('name = "p"\n[[steps]]\nchannel = "sms"\ntemplate = "n"\n')
    (tmp_path / "pax.csv").write_text("id,phone\np1,+16175550101\n")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert said in errors[0]


@pytest.mark.parametrize(
    "command", [["status", "--campaign", "c"], ["report", "c"], ["cancel", "--campaign", "c"]]
)
def test_an_invalid_setting_names_its_variable_and_debug_shows_the_trace(
    command: list[str], store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTREACH_STORE", store)
    monkeypatch.setenv("OUTREACH_SIGNATURE_MAX_AGE", "soon")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2
    assert result.output.startswith("error: invalid settings: OUTREACH_SIGNATURE_MAX_AGE: ")
    assert "'soon' is not a duration" in result.output
    assert len(result.output.splitlines()) == 1
    traced = CliRunner().invoke(app, ["--debug", *command])
    assert traced.exit_code == 2
    assert "Traceback (most recent call last)" in traced.output
    assert "OUTREACH_SIGNATURE_MAX_AGE" in traced.output.splitlines()[-1]


def test_a_refused_configuration_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OUTREACH_SECRET_KEY")
    module = f"refused_{abs(hash(tmp_path))}"
    (tmp_path / f"{module}.py").write_text(
        "from outreach import AsyncClient\n\n"
        "def make():\n    return AsyncClient(store='memory://', channels={})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(app, ["worker", "--app", f"{module}:make"])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "needs OUTREACH_SECRET_KEY" in errors[0]
    assert "Traceback" not in result.output


def test_a_failure_while_working_exits_1(store: str) -> None:
    result = CliRunner().invoke(app, ["status", "no-such-id", "--store", store])
    assert result.exit_code == 1
    assert result.output == "error: no notification with id 'no-such-id'\n"


@pytest.mark.parametrize(
    "command",
    [
        ["status", "--campaign", MARKUP],
        ["status", "--key", MARKUP],
        ["report", MARKUP],
        ["report", MARKUP, "--format", "csv"],
        ["cancel", "--campaign", MARKUP],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_user_text_is_never_read_as_markup(command: list[str], store: str) -> None:
    result = CliRunner().invoke(app, [*command, "--store", store])
    assert result.exit_code == 0, result.output
    assert MARKUP in result.output


def test_user_text_in_an_error_is_not_markup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["send", f"{MARKUP}.toml", "x.csv", "--campaign", "c"])
    assert result.exit_code == 2
    assert MARKUP in result.output


@pytest.mark.parametrize(("no_color", "coloured"), [(None, True), ("1", False)])
def test_colour_only_on_a_terminal_and_never_with_no_color(
    no_color: str | None, coloured: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    command = ["report", "c", "--store", "sqlite:///nowhere/o.db"]
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[" not in CliRunner().invoke(app, command).output  # not a terminal
    monkeypatch.setenv("FORCE_COLOR", "1")  # as if it were one
    if no_color is not None:
        monkeypatch.setenv("NO_COLOR", no_color)
    assert ("\x1b[31m" in CliRunner().invoke(app, command).output) is coloured


def test_json_results_are_json(store: str) -> None:
    for command in (
        ["status", "--campaign", MARKUP],
        ["report", MARKUP],
        ["status", "--key", MARKUP],
    ):
        result = CliRunner().invoke(app, [*command, "--store", store, "--json"])
        assert result.exit_code == 0, result.output
        json.loads(result.stdout)
