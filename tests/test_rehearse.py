"""`outreach rehearse`: a campaign played on the sandbox with a seeded mix of personas."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach.campaigns import read_recipients
from outreach.cli import app
from outreach.exceptions import ConfigurationError
from outreach.rehearsal import assign_personas, load_mix

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "src" / "outreach" / "demo" / "plan.toml"

QUICK = """\
currency = "EUR"
[prices]
sms = 0.05
[personas.quick]
weight = 1
sms = { reply = "{choice}", reply_after = "5m" }
"""


@pytest.fixture
def cohort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OUTREACH_TEMPLATES", str(ROOT / "templates"))
    with (tmp_path / "pax.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "phone", "email", "timezone"])
        for i in range(12):
            out.writerow([f"pax-{i}", f"+1617555{i:04d}", f"p{i}@example.com", "America/New_York"])
    return tmp_path


def _rehearse(*args: str) -> list[str]:
    return ["rehearse", str(PLAN), "pax.csv", "--context", "flight=9K 1042", *args]


def test_everyone_answering_the_text_in_5_minutes_is_reached_by_sms_before_15m(
    cohort: Path,
) -> None:
    (cohort / "quick.toml").write_text(QUICK)
    result = CliRunner().invoke(app, [*_rehearse("--personas", "quick.toml"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["reach"]["15m"] == 1.0
    assert data["by_step"] == {"1 sms": 12}
    assert data["by_channel"] == {"sms": 12}
    assert data["messages"] == {"sms": 12}
    assert data["cost"] == {"sms": pytest.approx(0.6)}
    assert data["left_for_a_person"] == []


def test_the_same_seed_gives_the_same_figures(cohort: Path) -> None:
    mix = ROOT / "examples" / "rehearse_mix.toml"
    runs = [
        CliRunner().invoke(app, [*_rehearse("--personas", str(mix)), "--seed", "3", "--json"])
        for _ in range(2)
    ]
    assert all(r.exit_code == 0 for r in runs), runs[0].output
    first, second = (json.loads(r.stdout) for r in runs)
    assert first == second
    assert first["seed"] == 3
    assert sum(first["personas"].values()) == 12
    other = CliRunner().invoke(app, [*_rehearse("--personas", str(mix)), "--seed", "4", "--json"])
    assert json.loads(other.stdout)["personas"] != first["personas"]


def test_the_table_and_the_page(cohort: Path) -> None:
    mix = ROOT / "examples" / "rehearse_mix.toml"
    result = CliRunner().invoke(
        app, [*_rehearse("--personas", str(mix)), "--html", "reach.html", "--horizon", "4h"]
    )
    assert result.exit_code == 0, result.output
    assert "reached by: 15m " in result.output
    assert "24h" not in result.output.split("reached by:")[1].splitlines()[0]  # past the horizon
    assert "estimated cost:" in result.output
    assert "left for a person:" in result.output
    page = (cohort / "reach.html").read_text()
    assert page.startswith("<!doctype html>")
    assert "<svg" in page
    assert "<polyline" in page
    assert "<script" not in page
    assert "http://" not in page.replace('"http://www.w3.org', "")


def test_personas_are_drawn_by_weight_and_repeat(tmp_path: Path) -> None:
    (tmp_path / "mix.toml").write_text("[personas]\nanswers-sms = 3\nnever-answers = 1\n")
    (tmp_path / "pax.csv").write_text(
        "id,phone\n" + "".join(f"p{i},+1617555{i:04d}\n" for i in range(400))
    )
    mix = load_mix(tmp_path / "mix.toml")
    rows, _ = read_recipients(tmp_path / "pax.csv")
    drawn = [p.name for p in assign_personas(rows, mix, seed=1)]
    assert drawn == [p.name for p in assign_personas(rows, mix, seed=1)]
    assert 250 < drawn.count("answers-sms") < 350


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[personas]\nanswers-smss = 1\n", "personas.answers-smss: no built-in persona"),
        ("[personas]\nanswers-sms = 0\n", "personas.answers-sms.weight: 0: give a number > 0"),
        ("[personas.x]\nweight = 1\nsms = { reply_in = '5m' }\n", "personas.x: "),
        ("[personas.x]\nweight = 1\ncall = { answer = 'maybe' }\n", "answer = 'maybe'"),
        ("[personas.x]\nweight = 1\ncolour = 'red'\n", "unknown key(s) ['colour']"),
        ("[personas]\nvoicemail = 1\n[prices]\nfax = 1\n", "prices.fax: not a sandbox channel"),
        ("[prices]\nsms = 1\n", "personas: give at least one persona"),
        ("personas = [", "cannot be read"),
    ],
)
def test_a_bad_mix_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "mix.toml").write_text(text)
    with pytest.raises(ConfigurationError, match=r"mix\.toml") as raised:
        load_mix(tmp_path / "mix.toml")
    assert message in str(raised.value)


def test_bad_input_exits_2_in_one_line(cohort: Path) -> None:
    (cohort / "quick.toml").write_text(QUICK)
    missing = CliRunner().invoke(app, _rehearse("--personas", "nope.toml"))
    assert missing.exit_code == 2
    assert "nope.toml: no such file" in missing.output
    assert "Traceback" not in missing.output
    horizon = CliRunner().invoke(app, [*_rehearse("--personas", "quick.toml"), "--horizon", "x"])
    assert horizon.exit_code == 2
    assert "--horizon 'x'" in horizon.output
    start = CliRunner().invoke(
        app, [*_rehearse("--personas", "quick.toml"), "--start", "2026-11-23T13:30"]
    )
    assert start.exit_code == 2
    assert "give the UTC offset" in start.output
    no_flight = CliRunner().invoke(
        app, ["rehearse", str(PLAN), "pax.csv", "--personas", "quick.toml"]
    )
    assert no_flight.exit_code == 2
    errors = [line for line in no_flight.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "variable 'flight' is undefined" in errors[0]
    assert no_flight.stdout == ""


def test_the_docs_describe_every_built_in_persona_and_the_example_mix_loads() -> None:
    from outreach.rehearsal import BUILT_IN

    docs = (ROOT / "docs" / "rehearse.md").read_text()
    assert all(f"| `{name}` |" in docs for name in BUILT_IN)
    mix = load_mix(ROOT / "examples" / "rehearse_mix.toml")
    assert {p.name for p in mix.personas} >= {"answers-sms", "reads-email-at-lunch"}


def test_a_notice_until_delivered_reaches_everyone_whose_text_is_delivered(cohort: Path) -> None:
    """The demo's apology: nobody answers, and nobody needs to: a delivered text is reach."""
    (cohort / "silent.toml").write_text("[personas.silent]\nweight = 1\n")
    apology = str(ROOT / "src" / "outreach" / "demo" / "apology.toml")
    args = ["rehearse", apology, "pax.csv", "--context", "flight=9K 1042"]
    result = CliRunner().invoke(app, [*args, "--personas", "silent.toml", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["by_status"] == {"delivered": 12}
    assert data["reach"]["15m"] == 1.0
    assert (data["acknowledged"], data["left_for_a_person"]) == (0, [])
    assert data["messages"] == {"sms": 12}  # no email, no call
