"""Recipients from a CSV file, for scripts that notify everyone on a list.

Columns: ``id`` (required), ``phone``, ``email``, ``timezone``, ``locale``, ``key``; any other
column becomes a recipient attribute (``name``, ``seat``...) the templates can use. A bad row
is reported with its line number and skipped; it never stops the other rows.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from outreach._models import Recipient, StartRequest
from outreach.exceptions import InvalidRecipient

_FIELDS = ("id", "phone", "email", "timezone", "locale")


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one line of the file was skipped."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def read_recipients(
    path: str | Path, *, key_prefix: str | None = None
) -> tuple[list[StartRequest], list[RowError]]:
    """Parse ``path``; ``key_prefix`` makes each row's key ``<prefix>/<id>`` unless it has one."""
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        return parse_rows(csv.DictReader(handle), key_prefix=key_prefix)


def parse_rows(
    rows: Iterable[dict[str, str | None]], *, key_prefix: str | None = None
) -> tuple[list[StartRequest], list[RowError]]:
    """Requests for the good rows, errors for the others (line numbers count the header)."""
    requests: list[StartRequest] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        if None in row:
            errors.append(RowError(line, "more values than the header has columns"))
            continue
        values = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        ident = values.get("id", "")
        if not ident:
            errors.append(RowError(line, "the id column is empty"))
            continue
        if ident in seen:
            errors.append(RowError(line, f"id {ident!r} appears twice"))
            continue
        fields = {f: values[f] for f in _FIELDS if values.get(f)}
        attributes = {k: v for k, v in values.items() if k not in (*_FIELDS, "key") and v}
        try:
            recipient = Recipient(**fields, attributes=attributes)
        except InvalidRecipient as error:
            errors.append(RowError(line, str(error)))
            continue
        seen.add(ident)
        key = values.get("key") or (f"{key_prefix}/{ident}" if key_prefix else None)
        requests.append(StartRequest(recipient, key=key))
    return requests, errors
