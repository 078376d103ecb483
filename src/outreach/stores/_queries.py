"""Named SQL statements kept in a ``queries.sql`` file, one block per statement, and the
numbered migrations beside it.

A block starts with a header line ``-- name: some_name --``; ``--`` lines right after it
describe the statement, and everything up to the next header is the statement itself. Each
store parses its own file once, at import (``sql/<store>/queries.sql``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from importlib import resources

from outreach.exceptions import ConfigurationError

_MIGRATION = re.compile(r"(\d+)_\w+\.sql")
_HEADER = re.compile(r"^-- name: (\w+) --[ \t]*$", re.MULTILINE)
_ANY_HEADER = re.compile(r"^--\s*name\s*:.*$", re.MULTILINE)


class Queries(Mapping[str, str]):
    """Statements by name; asking for a name the file lacks says which file lacks it."""

    def __init__(self, statements: dict[str, str], source: str) -> None:
        self._statements = statements
        self._source = source

    def __getitem__(self, name: str) -> str:
        try:
            return self._statements[name]
        except KeyError:
            raise KeyError(f"{self._source} has no query named {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._statements)

    def __len__(self) -> int:
        return len(self._statements)


def parse(text: str, source: str) -> Queries:
    """The named blocks of ``text``; ``source`` names the file in errors."""
    for header in _ANY_HEADER.findall(text):
        if not _HEADER.fullmatch(header):
            raise ValueError(f"{source}: {header!r} is not a '-- name: some_name --' header")
    preamble, *blocks = _HEADER.split(text)
    if _sql(preamble):
        raise ValueError(f"{source}: SQL before the first '-- name: ... --' header")
    statements: dict[str, str] = {}
    for name, block in zip(blocks[::2], blocks[1::2], strict=True):
        if name in statements:
            raise ValueError(f"{source}: query {name!r} is defined twice")
        statements[name] = _sql(block)
        if not statements[name]:
            raise ValueError(f"{source}: query {name!r} has no SQL")
    return Queries(statements, source)


def _sql(block: str) -> str:
    """A block without the comment lines that open it (its description)."""
    lines = block.strip().splitlines()
    while lines and (lines[0].startswith("--") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines)


def load(store: str) -> Queries:
    """The queries of one store, from ``outreach/stores/sql/<store>/queries.sql``."""
    source = f"outreach/stores/sql/{store}/queries.sql"
    path = resources.files("outreach.stores") / "sql" / store / "queries.sql"
    return parse(path.read_text(encoding="utf-8"), source)


def migrations(store: str) -> list[tuple[int, str]]:
    """The numbered schema scripts of one store (``sql/<store>/0001_*.sql``...), in order."""
    folder = resources.files("outreach.stores") / "sql" / store
    found = []
    for entry in folder.iterdir():
        if numbered := _MIGRATION.fullmatch(entry.name):  # not queries.sql
            found.append((int(numbered[1]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def refuse_newer(current: int, newest: int, where: str) -> None:
    """Refuse a store migrated by a newer outreach than this one: its records may be laid out
    in ways this code cannot read back (a schema is never migrated down)."""
    if current > newest:
        raise ConfigurationError(
            f"the store {where} is at schema version {current}, newer than this outreach knows"
            f" ({newest}): run the outreach that migrated it, or a newer one"
        )
