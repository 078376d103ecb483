"""What each piece of a step transition costs, in microseconds, one piece at a time.

Run by hand (it is not a test)::

    .venv/bin/python benchmarks/transition_parts.py

``engine_sqlite.py`` measures the whole path; this one takes it apart, so a per-transition
budget can be checked against what its pieces cost on the machine at hand. The workload is
``engine_sqlite.py``'s: the same plan, templates and recipients. A few notifications are
driven through the SMS and email steps on a SQLite file; then, on the stored record of one of
them (two attempts, as the voice step finds it), each piece is timed with ``timeit``, best of
``--repeat`` rounds (shared machines are noisy):

- load: a stored body back into a ``Notification`` (and, of that, ``json.loads`` alone);
- decide: the engine's decision on the record's next tick (the call; pacing is not in it);
- encode: the decision's change turned into the store's rows (the body, events, attempts);
- render: one message per medium, with its signed links; and one token signature;
- trial render: what ``start`` renders per recipient before storing anything.

SQL itself is not here: ``engine_sqlite.py`` reports the store thread's CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import timeit
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from engine_sqlite import CONTEXT, START, bench_client, build_requests, counting_channels, make_plan

from outreach import Medium
from outreach._engine import Due, Send, State, Tick, decide
from outreach._runner import Paced
from outreach._tokens import TokenClaims
from outreach.stores._codec import load_notification
from outreach.testing import FakeClock


def best_us(fn: Callable[[], Any], number: int, repeat: int) -> float:
    """The best of ``repeat`` rounds of ``number`` calls, in microseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


async def measure(number: int, repeat: int) -> list[tuple[str, float]]:
    """Per piece, a label and its cost in microseconds per call."""
    requests, _ = build_requests(20)
    clock = FakeClock(START)
    plan = make_plan()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "parts.db"
        async with bench_client(f"sqlite:///{path}", clock, counting_channels()) as ox:
            started = await ox.start_many(plan, requests, context=CONTEXT)
            await ox.run_due()
            clock.advance("15m")
            await ox.run_due()
            clock.advance("30m")
            with sqlite3.connect(path) as db:
                [body] = db.execute(
                    "SELECT body FROM notifications WHERE id = ?", (started[0].id,)
                ).fetchone()
            record = load_notification(body, plan)
            runner, store, now = ox._runner, ox.store, clock.now()
            messages = runner.messages
            state = State(record, runner.facts())
            decision = decide(state, Tick(), now)
            decided, change = decision.notification, runner.change(Paced(decision), now)
            [call] = [a.attempt for a in decision.actions if isinstance(a, Due | Send)]
            sent = {attempt.medium: attempt for attempt in record.attempts}
            sms, email = sent[Medium.SMS], sent[Medium.EMAIL]
            fingerprints = {id(plan): plan.fingerprint}
            claims = TokenClaims("ack", record.id, call.id, None, now + timedelta(days=7))

            pieces: list[tuple[str, Callable[[], Any]]] = [
                (f"load a stored record ({len(body):,} B)", lambda: load_notification(body, plan)),
                ("  of which json.loads", lambda: json.loads(body)),
                ("engine: decide the next tick (a call)", lambda: decide(state, Tick(), now)),
                ("encode its change into rows", lambda: store.encoder.change(change, fingerprints)),
                ("render sms, with its signed link", lambda: messages.render(record, sms)),
                ("render email, with its signed links", lambda: messages.render(record, email)),
                ("render voice, with its signed link", lambda: messages.render(decided, call)),
                ("sign one token", lambda: messages.signer.sign(claims)),
                (
                    "trial render at start (every step)",
                    lambda: messages.trial_render(record, runner.media),
                ),
            ]
            return [(label, best_us(fn, number, repeat)) for label, fn in pieces]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=2_000, help="calls per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best is reported")
    args = parser.parse_args()
    parts = asyncio.run(measure(args.number, args.repeat))
    print(f"per call, best of {args.repeat} rounds of {args.number:,}:")
    for label, micros in parts:
        print(f"  {label:<45} {micros:8.1f} us")


if __name__ == "__main__":
    main()
