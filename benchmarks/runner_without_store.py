"""What the runner, engine and templates cost per step transition, with no store underneath.

Run by hand (it is not a test)::

    .venv/bin/python benchmarks/runner_without_store.py            # N = 5,000, best of 3
    .venv/bin/python benchmarks/runner_without_store.py --no-render

The workload is the one of ``engine_sqlite.py`` (N recipients, a 3-step plan, 4N transitions:
every SMS, every email, every call, every exhaustion) but the store is a dict in the event
loop's thread: no SQLite, no serialisation, no second thread. What is left is the Python the
runner, the engine, the templates and the token signer spend; the difference to
``engine_sqlite.py`` is what the store adds. ``--no-render`` replaces rendering (templates and
signed links) by a fixed message, to see its share. Reported: CPU time per transition (the
process's CPU, best of ``--repeat`` runs, since this machine is noisy) and the rate it implies.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from engine_sqlite import (
    CONTEXT,
    PHASES,
    START,
    bench_client,
    build_requests,
    counting_channels,
    make_plan,
)

from outreach import Medium, Notification
from outreach._models import Attempt, Event
from outreach.channels import Message
from outreach.stores import Change, Claimed, Limit
from outreach.testing import FakeClock


class DictStore:
    """Just enough of the Store protocol for ``start_many`` and ``run_due``, in a dict."""

    def __init__(self) -> None:
        self.rows: dict[str, Notification] = {}
        self.leased: set[str] = set()

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def create(
        self, notifications: Sequence[Notification], events: Sequence[Event]
    ) -> list[Notification]:
        self.rows.update((n.id, n) for n in notifications)
        return list(notifications)

    async def claim_due(
        self, now: datetime, *, owner: str, lease: timedelta, limit: int
    ) -> Claimed:
        claimed: list[Notification] = []
        for n in self.rows.values():
            if n.due_at is not None and n.due_at <= now and n.id not in self.leased:
                claimed.append(n)
                self.leased.add(n.id)
                if len(claimed) == limit:
                    break
        return Claimed(claimed, {n.id: 1 for n in claimed})

    async def renew(self, leases: Mapping[str, int], *, owner: str, until: datetime) -> set[str]:
        return set(leases)

    async def pace(
        self, sends: Sequence[Sequence[Limit]], *, now: datetime | None, horizon: timedelta
    ) -> list[timedelta]:
        """No limits are kept: every send may start at once."""
        return [timedelta(0)] * len(sends)

    async def charge(self, limits: Sequence[Limit]) -> None:
        pass

    async def save(self, changes: Sequence[Change]) -> list[Notification | None]:
        saved: list[Notification | None] = []
        for change in changes:
            n = change.notification
            if self.rows[n.id].version != n.version:
                saved.append(None)
                continue
            stored = self.rows[n.id] = n.model_copy(update={"version": n.version + 1})
            if change.owner is not None:
                self.leased.discard(n.id)
            saved.append(stored)
        return saved

    async def opted_out(self, addresses: Sequence[tuple[Medium, str]]) -> set[tuple[Medium, str]]:
        return set()

    async def next_due(self) -> datetime | None:
        return None

    async def get(self, notification_id: str) -> Notification | None:
        return self.rows.get(notification_id)


def fixed_message(notification: Notification, attempt: Attempt) -> Message:
    assert attempt.medium is not None
    assert attempt.address is not None
    return Message(notification.id, attempt.id, attempt.medium, attempt.address, body="x")


async def one_run(n: int, render: bool) -> float:
    """CPU seconds per transition for one run of N recipients."""
    requests, _ = build_requests(n)
    channels = counting_channels()
    clock = FakeClock(START)
    async with bench_client(DictStore(), clock, channels) as ox:
        if not render:
            ox._runner.messages.render = fixed_message  # type: ignore[method-assign]
        await ox.start_many(make_plan(), requests, context=CONTEXT)
        started = time.process_time()
        for _, advance in PHASES:
            if advance is not None:
                clock.advance(advance)
            await ox.run_due()
        spent = time.process_time() - started
    if sum(c.sent for c in channels.values()) != 3 * n:
        raise SystemExit("not every step was sent")
    return spent / (4 * n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5_000, help="recipients (default 5000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    parser.add_argument("--no-render", action="store_true", help="send a fixed message")
    args = parser.parse_args()
    best = min(asyncio.run(one_run(args.n, not args.no_render)) for _ in range(args.repeat))
    what = "without rendering" if args.no_render else "with rendering"
    print(
        f"runner + engine {what}, no store, N = {args.n:,}: best of {args.repeat}"
        f" {best * 1e6:.0f} us CPU per transition = {1 / best:,.0f} transitions/s"
    )


if __name__ == "__main__":
    main()
