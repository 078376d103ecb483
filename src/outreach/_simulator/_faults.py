"""Faults on demand: error answers, slow answers and dropped connections."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["CHANNELS", "Channel", "Fault", "Faults"]

Channel = Literal["sms", "voice", "email"]
CHANNELS: Final = ("sms", "voice", "email")
"""``sms``: Twilio's Messages; ``voice``: Calls (create and hang up); ``email``: mail/send."""


@dataclass
class Fault:
    """What to do to the next ``remaining`` matching API requests."""

    remaining: int
    channel: Channel | None = None
    status: int | None = None
    """Answer with this HTTP status and the provider's error body (None: answer normally)."""
    retry_after: float | None = None
    delay: float = 0.0
    """Real seconds to wait before answering (``asyncio.sleep``)."""
    drop: bool = False
    """Close the connection without an answer."""
    processed: bool = False
    """With ``drop``: the request takes effect first (the message exists, the reply is lost)."""


class Faults:
    """The queue of faults to inject; safe to fill from another thread."""

    def __init__(self) -> None:
        self._queue: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        """Queue ``fault``, after those already queued."""
        if fault.remaining < 1:
            raise ValueError("a fault needs a count of at least 1")
        if fault.channel is not None and fault.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}, not {fault.channel!r}")
        if fault.delay < 0:
            raise ValueError("delay must not be negative")
        with self._lock:
            self._queue.append(fault)

    def take(self, channel: Channel) -> Fault | None:
        """The first queued fault for ``channel`` (or any channel), used once."""
        with self._lock:
            for fault in self._queue:
                if fault.channel in (None, channel):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._queue.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        """Forget every queued fault."""
        with self._lock:
            self._queue.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(fault.remaining for fault in self._queue)
