"""Campaigns from the command line: check every row first, resume safely, report truthfully."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach import AsyncClient, Client, Recipient, Status
from outreach.campaigns import campaign_report, read_recipients
from outreach.cli import app
from outreach.testing import FakeClock, InMemoryChannel

PLAN = """\
name = "flight-cancelled"
options = [{ key = "1", label = "Rebook me" }, { key = "2", label = "Refund" }]

[[steps]]
channel = "sms"
template = "notice"
wait = "15m"

[[steps]]
channel = "email"
template = "notice"
wait = "30m"
"""

APP = """\
from outreach import AsyncClient
from outreach.testing import FakeClock, InMemoryChannel

TEMPLATES = {templates!r}


def make():
    channels = {{name: InMemoryChannel(name=name) for name in ("sms", "email")}}
    return AsyncClient(
        channels=channels, templates=TEMPLATES, clock=FakeClock("2026-11-23T14:00:00+00:00")
    )
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A plan, templates that use a per-row ``gate`` column, an --app factory, a store URL."""
    notice = tmp_path / "templates" / "notice"
    notice.mkdir(parents=True)
    (notice / "sms.txt").write_text("Flight {{ flight }} is cancelled. Gate {{ gate }}.")
    (notice / "email.subject").write_text("Flight {{ flight }}")
    (notice / "email.txt").write_text("Flight {{ flight }} is cancelled. Gate {{ gate }}.")
    (tmp_path / "plan.toml").write_text(PLAN)
    module = f"campaign_app_{abs(hash(tmp_path))}"
    (tmp_path / f"{module}.py").write_text(APP.format(templates=str(tmp_path / "templates")))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("OUTREACH_STORE", f"sqlite:///{tmp_path / 'store' / 'o.db'}")
    monkeypatch.setenv("APP", f"{module}:make")
    yield tmp_path
    sys.modules.pop(module, None)


def _send(*args: str) -> list[str]:
    return ["send", "plan.toml", *args, "--app", os.environ["APP"], "--context", "flight=9K 1042"]


def _rows(n: int) -> list[list[str]]:
    return [[f"pax-{i}", f"+1617555{i:04d}", f"p{i}@example.com", "UTC", "B12"] for i in range(n)]


def _write(path: Path, rows: list[list[str]], header: str = "id,phone,email,timezone,gate") -> None:
    with path.open("w", newline="") as handle:
        handle.write(header + "\n")
        csv.writer(handle).writerows(rows)


def _stored(tmp: Path) -> list[tuple[str, str]]:
    db = tmp / "store" / "o.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, key FROM notifications").fetchall()


def _broken(tmp: Path) -> Path:
    rows = _rows(1000)
    rows[10][1] = "12"  # line 12: bad phone
    rows[500][3] = "Mars/Base"  # line 502: unknown time zone
    rows[998][4] = ""  # line 1000: the template's variable is empty
    _write(tmp / "pax.csv", rows)
    return tmp / "pax.csv"


def test_one_bad_row_sends_nothing_and_every_bad_row_is_listed(
    setup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(setup)
    _broken(setup)
    result = CliRunner().invoke(app, _send("pax.csv", "--campaign", "c1"))
    assert result.exit_code == 2, result.output
    assert "line 12, column phone: '12' is not a valid phone number" in result.output
    assert "line 502, column timezone: 'Mars/Base'" in result.output
    assert "line 1000, column gate: notice/sms.txt: variable 'gate' is undefined" in result.output
    assert "997 valid row(s), 3 invalid" in result.output
    assert "Traceback" not in result.output
    assert _stored(setup) == []


def test_skip_invalid_sends_the_others_and_writes_the_rejects(
    setup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(setup)
    _broken(setup)
    result = CliRunner().invoke(app, [*_send("pax.csv", "--campaign", "c1"), "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert "campaign c1: 997 new, 0 already started" in result.output
    assert "started or found: 500 of 997" in result.output  # progress, per batch
    assert len(_stored(setup)) == 997
    with (setup / "pax.rejects.csv").open(newline="") as handle:
        rejects = list(csv.DictReader(handle))
    assert [r["line"] for r in rejects] == ["12", "502", "1000"]
    assert rejects[0]["id"] == "pax-10"
    assert all(r["reason"] for r in rejects)
    again = CliRunner().invoke(app, [*_send("pax.csv", "--campaign", "c1"), "--skip-invalid"])
    assert "campaign c1: 0 new, 997 already started" in again.output
    assert len(_stored(setup)) == 997


def test_line_numbers_survive_quoted_newlines_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "pax.csv"
    path.write_text(
        "id,phone,note\n"
        'pax-1,+16175550101,"two\nlines"\n'
        "\n"
        "pax-2,12,\n"
        '"pax-3","+16175550103","a\n\nb"\n'
        "pax-4,+1,\n"
    )
    rows, errors = read_recipients(path)
    assert [(r.line, r.request.recipient.id) for r in rows] == [(2, "pax-1"), (6, "pax-3")]
    assert [(e.line, e.column) for e in errors] == [(5, "phone"), (9, "phone")]
    assert rows[0].request.context == {"note": "two\nlines"}


def test_a_semicolon_file_with_capitalised_headers_reads(tmp_path: Path) -> None:
    path = tmp_path / "pax.csv"
    path.write_text("ID;Phone;Time Zone\npax-1;+16175550101;Europe/Paris\n")
    rows, errors = read_recipients(path)
    assert errors == []
    assert rows[0].request.recipient.timezone == "Europe/Paris"


def test_a_bad_header_is_one_error(setup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(setup)
    (setup / "pax.csv").write_text("ident|phone\npax-1|+16175550101\npax-2|+16175550102\n")
    result = CliRunner().invoke(app, _send("pax.csv", "--campaign", "c1"))
    assert result.exit_code == 2
    assert result.output.count("error:") == 1
    assert "line 1: the header has no 'id' column" in result.output
    (setup / "pax.csv").write_text("id,phnoe\npax-1,+16175550101\n")
    misspelt = CliRunner().invoke(app, _send("pax.csv", "--campaign", "c1"))
    assert misspelt.exit_code == 2
    assert "'phnoe' looks like a misspelt 'phone'" in misspelt.output


def test_duplicates_and_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "pax.jsonl"
    path.write_text(
        '{"id": "pax-1", "phone": "+16175550101", "gate": "B1"}\n'
        "\n"
        '{"id": "pax-1", "phone": "+16175550102"}\n'
        "not json\n"
    )
    rows, errors = read_recipients(path, key_prefix="c")
    assert [r.request.key for r in rows] == ["c/pax-1"]
    assert [(e.line, e.column) for e in errors] == [(3, "id"), (4, None)]
    assert "already on line 1" in errors[0].reason


def test_a_broken_template_is_one_error(setup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(setup)
    _write(setup / "pax.csv", _rows(50))
    (setup / "templates" / "notice" / "email.txt").unlink()
    result = CliRunner().invoke(app, _send("pax.csv", "--campaign", "c1"))
    assert result.exit_code == 2
    assert result.output.count("error:") == 1
    assert "has no email text" in result.output


def test_missing_files_are_one_line(setup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(setup)
    result = CliRunner().invoke(app, _send("nope.csv", "--campaign", "c1"))
    assert result.exit_code == 2
    assert result.output.strip() == "error: nope.csv: no such file"


def test_markup_in_a_cell_is_printed_as_text(setup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(setup)
    _write(setup / "pax.csv", [["pax-[/bold]", "+16175550101", "", "UTC", "[/bold]"]])
    result = CliRunner().invoke(app, [*_send("pax.csv", "--campaign", "c1"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Gate [/bold]." in result.output
    report = CliRunner().invoke(
        app, ["report", "[/bold]", "--app", __import__("os").environ["APP"]]
    )
    assert report.exit_code == 2  # no store yet: a read-only command does not create one
    assert "no store at" in report.output


def test_dry_run_counts_messages_segments_and_encodings(
    setup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(setup)
    rows = _rows(3)
    rows[1][4] = "Bâtiment 2"  # â is not in GSM-7
    rows[2][2] = ""  # no email: one message fewer
    _write(setup / "pax.csv", rows)
    result = CliRunner().invoke(app, [*_send("pax.csv", "--campaign", "c1"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "sms: 3 message(s), 3 segment(s); GSM-7 2, UCS-2 1" in result.output
    assert "email: 2 message(s)" in result.output
    assert "UCS-2: line 3 (pax-1), notice: 'â' not in GSM-7" in result.output
    assert "preview line 2 sms: Flight 9K 1042 is cancelled. Gate B12." in result.output
    assert "dry run: nothing sent" in result.output
    (setup / "ctx.json").write_text('{"flight": "AF 12"}')
    from_file = CliRunner().invoke(
        app, [*_send("pax.csv", "--campaign", "c1")[:-2], "--context-file", "ctx.json", "--dry-run"]
    )
    assert "Flight AF 12 is cancelled" in from_file.output, from_file.output
    assert not (setup / "store").exists()
    as_json = CliRunner().invoke(
        app, [*_send("pax.csv", "--campaign", "c1"), "--dry-run", "--json"]
    )
    data = json.loads(as_json.output)
    assert data["rows_valid"] == 3
    assert data["channels"]["sms"]["ucs2"] == 1


def test_a_run_killed_while_enqueueing_resumes_without_sending_twice(
    setup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(setup)
    _write(setup / "pax.csv", _rows(1200))
    real = AsyncClient.start_many
    calls = {"n": 0}

    async def dies_on_the_second_batch(self: AsyncClient, *args: object, **kw: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return await real(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(AsyncClient, "start_many", dies_on_the_second_batch)
    with pytest.raises(RuntimeError, match="killed"):
        CliRunner().invoke(app, _send("pax.csv", "--campaign", "c1"), catch_exceptions=False)
    assert len(_stored(setup)) == 500
    monkeypatch.setattr(AsyncClient, "start_many", real)
    result = CliRunner().invoke(app, _send("pax.csv", "--campaign", "c1"))
    assert result.exit_code == 0, result.output
    assert "campaign c1: 700 new, 500 already started" in result.output
    keys = [key for _, key in _stored(setup)]
    assert sorted(keys) == sorted(f"c1/pax-{i}" for i in range(1200))


def _scripted(store: str) -> None:
    """c1: pax-0 answers the SMS (choice 2) 10 min in, pax-1 the email (choice 1) 30 min in,
    pax-2 never answers; c2 has one notification of its own."""
    clock = FakeClock("2026-11-23T14:00:00+00:00")
    channels = {n: InMemoryChannel(name=n) for n in ("sms", "email")}
    from outreach import Plan

    templates = Path(store.removeprefix("sqlite:///")).parent.parent / "templates"
    plan = Plan.load(templates.parent / "plan.toml")
    ctx = {"flight": "9K", "gate": "B1"}
    with Client(store=store, channels=channels, templates=templates, clock=clock) as ox:
        people = [
            Recipient(id=f"pax-{i}", phone=f"+1617555010{i}", email=f"p{i}@example.com")
            for i in range(3)
        ]
        for person in people:
            ox.start(person, plan, context=ctx, key=f"c1/{person.id}", campaign="c1")
        ox.run_due()
        clock.advance("10m")
        ox.acknowledge(key="c1/pax-0", via="sms", choice="2")
        clock.advance("10m")
        ox.run_due()
        clock.advance("10m")
        ox.acknowledge(key="c1/pax-1", via="email", choice="1")
        for _ in range(4):
            clock.advance("30m")
            ox.run_due()
        ox.start(people[0], plan, context=ctx, key="c2/pax-0", campaign="c2")
        ox.start(people[1], plan, context=ctx, key="c3/pax-1", campaign="c3")


def test_report_status_and_cancel_match_the_store(
    setup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{setup / 'store' / 'o.db'}"
    _scripted(store)
    runner = CliRunner()
    data = json.loads(runner.invoke(app, ["report", "c1", "--format", "json"]).output)
    assert data["notifications"] == 3
    assert data["acknowledged"] == 2
    assert data["reach_rate"] == pytest.approx(2 / 3)
    assert data["by_channel"] == {"sms": 1, "email": 1}
    assert data["by_step"] == {"1 sms": 1, "2 email": 1}
    assert data["seconds_to_ack_p50"] == 600
    assert data["seconds_to_ack_p90"] == 1800
    assert data["choices"] == {"Refund": 1, "Rebook me": 1}
    assert [r["recipient"] for r in data["never_reached"]] == ["pax-2"]
    assert "no answer to sms, email" in data["never_reached"][0]["reason"]
    table = runner.invoke(app, ["report", "c1"])
    assert "never reached pax-2" in table.output
    lines = runner.invoke(app, ["report", "c1", "--format", "csv"]).output.splitlines()
    assert lines[0].startswith("recipient,key,status")
    assert lines[0].endswith(",outcome")
    assert len(lines) == 4
    assert any(line.endswith(',"exhausted: no answer to sms, email"') for line in lines)
    status = runner.invoke(app, ["status", "--campaign", "c2"])
    assert "campaign c2: pending: 1" in status.output
    cancelled = runner.invoke(app, ["cancel", "--campaign", "c2"])
    assert "campaign c2: cancelled 1 notification(s)" in cancelled.output
    with Client(store=store) as ox:
        assert ox.get(key="c2/pax-0").status is Status.CANCELLED
        assert ox.get(key="c3/pax-1").status is Status.PENDING  # another campaign: untouched
        assert ox.get(key="c1/pax-2").status is Status.EXHAUSTED
        report = campaign_report("c1", ox.list(campaign="c1"), ox.events())
    assert report.acknowledged == 2
    missing = runner.invoke(app, ["status", "--campaign", "c1", "--store", "sqlite:///no/x.db"])
    assert missing.exit_code == 2
    assert not Path("no").exists()


def test_the_readme_names_the_campaign_commands() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "--skip-invalid" in readme
    assert "cancel --campaign" in readme
