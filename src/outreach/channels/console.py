"""A channel that writes messages to a terminal instead of sending them, for local runs."""

from __future__ import annotations

import itertools
import sys
from typing import TextIO

from outreach._models import AttemptStatus, Medium
from outreach.channels._base import Channel, Message, Receipt


class Console(Channel):
    """Prints each message (to stdout unless ``stream`` is given) and reports it sent."""

    def __init__(
        self,
        medium: Medium | str | None = None,
        *,
        name: str = "console",
        stream: TextIO | None = None,
    ) -> None:
        self.name = name
        self.medium = None if medium is None else Medium(medium)
        self._stream = stream
        self._ids = itertools.count(1)

    async def send(self, message: Message) -> Receipt:
        stream = self._stream or sys.stdout
        header = f"--- {message.medium} to {message.to}"
        if message.subject:
            header += f" | {message.subject}"
        stream.write(f"{header}\n{message.body}\n")
        stream.flush()
        return Receipt(provider_id=f"console-{next(self._ids)}", status=AttemptStatus.SENT)

    async def aclose(self) -> None:
        """Nothing to release."""
