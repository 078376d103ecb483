"""A private, throw-away store for tests and simulations.

It is the SQLite store on an in-memory database rather than a second implementation, so tests
on ``memory://`` exercise exactly the SQL the embedded default runs.
"""

from __future__ import annotations

from outreach.stores.sqlite import SQLiteStore


class MemoryStore(SQLiteStore):
    """A store that lives as long as the process (or until closed)."""

    def __init__(self) -> None:
        super().__init__(":memory:")
