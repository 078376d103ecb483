from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from outreach.testing import Persona

from ._stack import MakeStack, Stack, open_stack


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the simulators' settings count, whatever this shell exports."""
    for name in [*os.environ]:
        if name.startswith(("OUTREACH_", "TWILIO_", "SENDGRID_")):
            monkeypatch.delenv(name)


@pytest.fixture
async def make_stack(tmp_path: Path) -> AsyncIterator[MakeStack]:
    """``stack = await make_stack([Persona(...)], simulators=2, channels=...)``; torn down
    after the test."""
    async with contextlib.AsyncExitStack() as exits:
        made = itertools.count(1)

        async def make(personas: Iterable[Persona] = (), **options: Any) -> Stack:
            folder = tmp_path / f"stack-{next(made)}"  # each stack its own database
            folder.mkdir()
            return await exits.enter_async_context(open_stack(folder, personas, **options))

        yield make
