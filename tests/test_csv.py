"""CSV lists of recipients: good rows become requests, bad rows say what and where."""

from __future__ import annotations

from pathlib import Path

from outreach.campaigns import read_recipients

CSV = """id,name,phone,email,timezone,seat
pax-1,Ann Lee,+16175550101,ann@example.com,America/New_York,12A
pax-2,Bo Diaz,12,bo@example.com,America/New_York,12B
,No Id,+16175550103,,,
pax-4,Dana Kim,,dana@example,UTC,3C
pax-5,Eli Ruiz,+13105550105,,Mars/Base,4D
pax-1,Ann Again,+16175550101,,,
pax-7,Finn Olsen,+16175550107,finn@example.com,,5E,extra
pax-8,Gia,+44 7911 123456,,Europe/London,
"""


def test_good_rows_become_requests_and_bad_rows_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "pax.csv"
    path.write_text(CSV, encoding="utf-8")
    rows, errors = read_recipients(path, key_prefix="9K1042")
    requests = [row.request for row in rows]
    assert [r.recipient.id for r in requests] == ["pax-1", "pax-8"]
    assert requests[0].key == "9K1042/pax-1"
    assert requests[0].recipient.attributes == {"name": "Ann Lee", "seat": "12A"}
    assert requests[1].recipient.phone == "+447911123456"
    reasons = {e.line: str(e) for e in errors}
    assert set(reasons) == {3, 4, 5, 6, 7, 8}
    assert "phone" in reasons[3]
    assert "id is empty" in reasons[4]
    assert "email" in reasons[5]
    assert "timezone" in reasons[6]
    assert "already on line 2" in reasons[7]
    assert "more values" in reasons[8]
    assert str(errors[0]).startswith("line 3, column phone: ")
