"""The app that the real-process tests (``test_processes.py``) run in ``outreach worker``.

``outreach worker --app process_app:make_client`` (with this folder on ``PYTHONPATH``) builds a
client from ``OUTREACH_*`` settings (store, secret key, templates) and these variables:

- ``PROCESS_APP_LOG``: the file every send (and hang-up) is logged to, one JSON line each,
  written with one ``os.write`` on an ``O_APPEND`` descriptor before the request "leaves", so
  a ``kill -9`` cannot lose a line already written and two processes can share the file;
- ``PROCESS_APP_DELAY``: seconds each send takes (default 0.2);
- ``PROCESS_APP_FAIL``: comma-separated channel names whose sends fail for good (after
  logging and the delay), e.g. ``sms``;
- ``PROCESS_APP_HOOK_DELAY``: seconds an ``on_attempt`` hook sleeps on every attempt outcome
  (default: no hook);
- ``PROCESS_APP_POLL``: the worker's poll interval in seconds (default 0.2);
- ``PROCESS_APP_LEASE``: the runner's lease in seconds (default: the runner's own), so a
  killed worker's notifications are taken over within a test's patience;
- ``PROCESS_APP_BATCH``: how many notifications the worker claims and drives at once (its
  ``concurrency``; default: the client's own), so several workers share a backlog.

Channels ``sms``, ``email`` and ``voice``, each allowing 10 requests in flight. The factory
logs a ``ready`` line (with its pid) as the worker starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from outreach import AsyncClient, Hooks, Notification
from outreach.channels import Channel, Message, Receipt
from outreach.exceptions import PermanentDeliveryError

MAX_IN_FLIGHT = 10


def append_line(path: str | Path, record: dict[str, Any]) -> None:
    """One JSON line, appended by a single write (atomic among appenders; never half kept in
    a buffer of ours when the process is killed)."""
    data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The complete lines of a log written by :func:`append_line` (a line still being written
    by another process is left for the next read)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


class LoggingChannel(Channel):
    """Logs each send as it starts (attempt, notification, ack link, time, pid), takes
    ``delay`` seconds, then succeeds, or fails for good when ``fail``. Logs hang-ups too."""

    def __init__(self, name: str, log: str | Path, *, delay: float, fail: bool = False) -> None:
        self.name = name
        self.max_in_flight = MAX_IN_FLIGHT
        self.log = log
        self.delay = delay
        self.fail = fail

    async def send(self, message: Message) -> Receipt:
        append_line(
            self.log,
            {
                "kind": "send",
                "channel": self.name,
                "attempt": message.attempt_id,
                "notification": message.notification_id,
                "ack_url": message.ack_url,
                "at": time.time(),
                "pid": os.getpid(),
            },
        )
        await asyncio.sleep(self.delay)
        if self.fail:
            raise PermanentDeliveryError(f"{self.name}: this test's provider refuses it")
        return Receipt(provider_id=f"{self.name}-{message.attempt_id}")

    async def cancel(self, provider_id: str) -> None:
        append_line(
            self.log,
            {"kind": "cancel", "provider_id": provider_id, "at": time.time(), "pid": os.getpid()},
        )


def make_client() -> AsyncClient:
    """The worker's client, configured by the environment (see the module docstring)."""
    log = os.environ["PROCESS_APP_LOG"]
    delay = float(os.environ.get("PROCESS_APP_DELAY", "0.2"))
    failing = {name for name in os.environ.get("PROCESS_APP_FAIL", "").split(",") if name}
    channels = {
        name: LoggingChannel(name, log, delay=delay, fail=name in failing)
        for name in ("sms", "email", "voice")
    }
    hooks = Hooks()
    hook_delay = os.environ.get("PROCESS_APP_HOOK_DELAY")
    if hook_delay:
        pause = float(hook_delay)

        async def slow_hook(notification: Notification, attempt: object) -> None:
            await asyncio.sleep(pause)

        hooks = Hooks(on_attempt=slow_hook)
    poll = float(os.environ.get("PROCESS_APP_POLL", "0.2"))
    client = AsyncClient(channels=channels, hooks=hooks, poll_interval=timedelta(seconds=poll))
    lease = os.environ.get("PROCESS_APP_LEASE")
    if lease:
        client._runner.lease = timedelta(seconds=float(lease))  # no public knob yet
    batch = os.environ.get("PROCESS_APP_BATCH")
    if batch:
        client.concurrency = int(batch)
    append_line(log, {"kind": "ready", "at": time.time(), "pid": os.getpid()})
    return client
