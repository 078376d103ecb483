"""Named SQL blocks: how a ``queries.sql`` file is parsed, and the SQLite store's own file."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing

import pytest

from outreach.stores import _queries
from outreach.stores.sqlite import migrations

TEXT = """\
-- What this file is for: comments before the first block are fine.

-- name: get --
-- One notification by id.
SELECT body FROM notifications WHERE id = :id

-- name: forget --
DELETE FROM webhook_receipts
-- a comment inside the statement stays in it
WHERE key = :key
"""


def test_blocks_are_named_and_lose_their_description() -> None:
    parsed = _queries.parse(TEXT, "t.sql")
    assert dict(parsed) == {
        "get": "SELECT body FROM notifications WHERE id = :id",
        "forget": "DELETE FROM webhook_receipts\n"
        "-- a comment inside the statement stays in it\nWHERE key = :key",
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (TEXT + "-- name: get --\nSELECT 1\n", "t.sql: query 'get' is defined twice"),
        ("SELECT 1\n" + TEXT, "t.sql: SQL before the first"),
        (TEXT + "-- name: empty --\n-- nothing follows\n", "t.sql: query 'empty' has no SQL"),
        (TEXT + "-- name:  --\nSELECT 1\n", "is not a '-- name: some_name --' header"),
        (TEXT + "-- name: two words --\nSELECT 1\n", "is not a '-- name: some_name --' header"),
    ],
    ids=["duplicate", "unnamed", "empty", "no name", "bad name"],
)
def test_a_malformed_file_is_refused(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        _queries.parse(text, "t.sql")


def test_asking_for_a_missing_name_says_which_file_lacks_it() -> None:
    parsed = _queries.parse(TEXT, "t.sql")
    with pytest.raises(KeyError, match=re.escape("t.sql has no query named 'gte'")):
        parsed["gte"]


def test_every_sqlite_query_compiles_against_the_migrated_schema() -> None:
    queries = _queries.load("sqlite")
    with closing(sqlite3.connect(":memory:")) as db:
        db.execute(queries["create_schema_version"])
        for _, script in migrations():
            db.executescript(script)
        for name, sql in queries.items():
            try:
                db.execute(f"EXPLAIN {sql}", dict.fromkeys(re.findall(r":(\w+)", sql)))
            except sqlite3.Error as error:
                pytest.fail(f"query {name!r}: {error}")


def test_the_queries_file_is_not_a_migration() -> None:
    numbers = [number for number, _ in migrations()]
    assert numbers == sorted(set(numbers))
    assert not any("-- name:" in script for _, script in migrations())
