"""The app the shared-limit tests (``test_shared_limits.py``) run in ``outreach worker``.

Like ``process_app`` (whose logging channel it reuses: one JSON line per send, written as the
request leaves), with a paced ``sms`` channel sending from one number:

- ``PACED_APP_LOG``: the send log;
- ``PACED_APP_RATE``: the SMS rate, sends per second (default 10);
- ``PACED_APP_CAP``: ``on`` applies the default per-recipient cap (3 an hour), else none;
- ``PACED_APP_DELAY``: seconds each send takes (default 0.05).
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from outreach import AsyncClient, RecipientCap
from process_app import LoggingChannel, append_line

SENDER = "+15550000001"


class PacedChannel(LoggingChannel):
    """The logging channel, paced at ``rate`` for one sender."""

    def __init__(self, name: str, log: str, *, delay: float, rate: float) -> None:
        super().__init__(name, log, delay=delay)
        self.rate = rate
        self.sender = SENDER
        self.max_in_flight = 100


def make_client() -> AsyncClient:
    log = os.environ["PACED_APP_LOG"]
    rate = float(os.environ.get("PACED_APP_RATE", "10"))
    delay = float(os.environ.get("PACED_APP_DELAY", "0.05"))
    cap = RecipientCap() if os.environ.get("PACED_APP_CAP") == "on" else None
    append_line(log, {"kind": "ready", "at": time.time(), "pid": os.getpid()})
    return AsyncClient(
        channels={"sms": PacedChannel("sms", log, delay=delay, rate=rate)},
        recipient_cap=cap,
        poll_interval=timedelta(seconds=0.2),
    )
