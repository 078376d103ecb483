"""A dry run reads and checks one record at a time and keeps none of them."""

from __future__ import annotations

from pathlib import Path

from outreach import AsyncClient
from outreach.campaigns import Row, RowError, iter_recipients, read_recipients, validate_campaign
from outreach.demo import demo_plan
from outreach.testing import InMemoryChannel

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "pax.csv"
    path.write_text(
        "id,phone,email\n"
        "p1,+16175550101,a@example.com\n"
        "p2,12,b@example.com\n"
        "p1,+16175550103,c@example.com\n"
        "p4,+16175550104,d@example.com\n"
    )
    return path


def test_records_come_one_at_a_time_in_file_order(tmp_path: Path) -> None:
    records = iter_recipients(_file(tmp_path), key_prefix="c")
    first = next(records)
    assert isinstance(first, Row)
    assert first.request.key == "c/p1"
    rest = list(records)
    assert [(type(r).__name__, r.line) for r in rest] == [
        ("RowError", 3),
        ("RowError", 4),
        ("Row", 5),
    ]
    rows, errors = read_recipients(_file(tmp_path), key_prefix="c")
    assert [r.line for r in rows] == [2, 5]
    assert [e for e in rest if isinstance(e, RowError)] == errors


def test_a_dry_run_counts_the_good_rows_without_keeping_them(tmp_path: Path) -> None:
    client = AsyncClient(
        store="memory://",
        channels={n: InMemoryChannel(name=n) for n in ("sms", "email", "voice")},
        templates=TEMPLATES,
    )
    records = iter_recipients(_file(tmp_path), key_prefix="c")
    check = validate_campaign(
        client, demo_plan(), records, context={"flight": "9K 1042"}, keep_rows=False
    )
    assert check.rows == []
    assert check.valid == 2
    assert [(e.line, e.column) for e in check.errors] == [(3, "phone"), (4, "id")]
    assert check.channels["sms"].messages == 2
    assert check.to_dict()["rows_valid"] == 2
