"""Engine + SQLite store overhead: campaign starts and step transitions per second.

Run by hand (it is not a test)::

    .venv/bin/python benchmarks/engine_sqlite.py             # N = 100,000
    .venv/bin/python benchmarks/engine_sqlite.py -n 10000    # quicker
    .venv/bin/python benchmarks/engine_sqlite.py -n 10000 --profile 2> profile.txt

What it does, all in one process, against files in a temporary directory:

0. Floor: plain ``sqlite3`` (WAL, ``synchronous=NORMAL``, the store's ``notifications`` table
   and indexes) inserting N rows with a ~1 KB JSON body in chunks of ``--chunk`` rows per
   transaction, then 4 passes of version-checked UPDATEs of all N rows, 500 rows per
   transaction. This is what SQLite alone costs on this machine; read our numbers next to it.
1. Starts: ``AsyncClient.start_many`` for N recipients (``--chunk`` per call). Recipients are
   built (phone and email validated) before the clock starts; that is the caller's cost and is
   reported on its own line.
2. Transitions: ``run_due`` at t0 (every SMS), +15m (every email), +30m (every call), +1h
   (every notification exhausted). A step transition is one committed, engine-driven state
   change: 3N sends + N exhaustions = 4N.
3. Verification: every notification is ``exhausted`` (SQL count on the file) and the channels
   were asked for exactly 3N sends; exits 1 otherwise.

The channels are ``InMemoryChannel`` subclasses that count messages instead of keeping them
(the stock one appends every message to ``.outbox``, which for 3N messages would dominate RSS).
Peak RSS is the process's ``ru_maxrss``; CPU is ``time.process_time`` (all threads, so the
store's SQLite thread is included) next to wall time. The "overlap" line says how much the
two threads really ran side by side in phase 2: how long the event loop sat idle (its selector
waiting with nothing to run, until it has Python's lock back: so a little more than idle) and
how long the store thread's jobs took, in wall and CPU time.
``--profile`` wraps phase 2 in cProfile for the event-loop thread *and* the store's SQLite
thread (cProfile only sees the thread it is enabled in) and prints both to stderr; timings
under ``--profile`` are inflated.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import resource
import selectors
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import outreach
from outreach import (
    AsyncClient,
    AttemptStatus,
    Option,
    Plan,
    Recipient,
    StartRequest,
    Step,
)
from outreach._settings import Settings
from outreach.channels import Message, Receipt
from outreach.exceptions import InvalidRecipient
from outreach.testing import FakeClock, InMemoryChannel

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"
CONTEXT = {"flight": "9K 1042"}
START = "2026-11-23T14:00:00+00:00"  # 14:00 UTC, recipients in UTC: no quiet hours anyway

TARGET_STARTS = 5_000.0
TARGET_TRANSITIONS = 5_000.0
TARGET_RSS_MB = 300.0
SLOW_RUN_S = 300.0

BASELINE_UPDATE_BATCH = 500
# Phase 2: each label, and how far the clock moves before its run_due (3 sends, then the end).
PHASES = (("t0: sms", None), ("+15m: email", "15m"), ("+30m: voice", "30m"), ("+1h: exhaust", "1h"))
AREA_CODES = ("212", "617", "415", "312", "206", "303", "404", "512", "702", "919")


# --- measuring --------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Timing:
    label: str
    count: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    rss_mb: float = 0.0

    @property
    def rate(self) -> float:
        return self.count / self.wall if self.wall > 0 else float("nan")


class Stopwatch:
    """``with Stopwatch(timing):`` adds wall and process CPU time to ``timing``."""

    def __init__(self, timing: Timing) -> None:
        self.timing = timing

    def __enter__(self) -> Timing:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self.timing

    def __exit__(self, *exc: object) -> None:
        self.timing.wall += time.perf_counter() - self._wall
        self.timing.cpu += time.process_time() - self._cpu
        self.timing.rss_mb = peak_rss_mb()


class GcTimer:
    """Counts the cyclic garbage collector's passes and the wall time they take, by generation
    (it runs on whichever thread allocates; its pauses hold Python's lock)."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        self.passes[generation] += 1
        self.seconds[generation] += time.perf_counter() - self._started


class IdleSelector(selectors.DefaultSelector):
    """The event loop's selector, timing how long the loop sat waiting with nothing to run
    (here: nothing but SQLite to wait for, since the channels answer at once)."""

    idle = 0.0

    def select(self, timeout: float | None = None) -> Any:
        began = time.perf_counter()
        try:
            return super().select(timeout)
        finally:
            IdleSelector.idle += time.perf_counter() - began


@dataclass
class StoreJobs:
    """Wall and CPU time of the jobs run on the SQLite store's thread. Wall beyond CPU is
    time a job spent waiting for Python's lock (or for the disk)."""

    count: int = 0
    wall: float = 0.0
    cpu: float = 0.0

    def install(self, ox: AsyncClient) -> None:
        executor = ox.store._executor  # type: ignore[attr-defined]
        submit = executor.submit

        def timed_submit(fn: Callable[..., Any], /, *args: Any) -> Any:
            def job() -> Any:
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    return fn(*args)
                finally:
                    self.count += 1
                    self.wall += time.perf_counter() - wall
                    self.cpu += time.thread_time() - cpu

            return submit(job)

        executor.submit = timed_submit


def source_revision() -> str:
    """The git commit of the code under test, marked dirty if src/ has local changes."""
    imported = Path(outreach.__file__).resolve()
    if not imported.is_relative_to(REPO / "src"):
        return f"not this checkout: {imported.parent}"
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' + uncommitted src changes' if dirty else ''}"


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- floor: stdlib sqlite3 alone --------------------------------------------------------

_BASELINE_SCHEMA = """
CREATE TABLE notifications (
    id TEXT PRIMARY KEY, key TEXT UNIQUE, campaign TEXT, parent_id TEXT, status TEXT NOT NULL,
    plan_id TEXT NOT NULL, due_at INTEGER, version INTEGER NOT NULL, lease_owner TEXT,
    lease_until INTEGER, created_at INTEGER NOT NULL, body TEXT NOT NULL
);
CREATE INDEX notifications_due ON notifications (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX notifications_campaign ON notifications (campaign, status);
CREATE INDEX notifications_status ON notifications (status);
"""


def baseline_body() -> str:
    """A ~1 KB JSON record shaped like a stored notification, with placeholders."""
    record = {
        "id": "@ID@",
        "key": "@KEY@",
        "campaign": None,
        "metadata": {},
        "recipient": {
            "id": "@KEY@",
            "phone": "+12125550100",
            "email": "p0@example.com",
            "timezone": None,
            "locale": "en",
            "attributes": {},
        },
        "context": CONTEXT,
        "status": "@STATUS@",
        "created_at": "2026-11-23T14:00:00Z",
        "updated_at": "2026-11-23T14:00:00Z",
        "due_at": "2026-11-23T14:15:00Z",
        "version": "@VERSION@",
        "attempts": [
            {
                "id": "@ID@.0.0.0",
                "notification_id": "@ID@",
                "pass_": 0,
                "step": 0,
                "channel": "sms",
                "medium": "sms",
                "address": "+12125550100",
                "status": "sent",
                "provider_id": "sms-1",
                "tries": 1,
                "created_at": "2026-11-23T14:00:00Z",
                "sent_at": "2026-11-23T14:00:00Z",
                "updated_at": "2026-11-23T14:00:00Z",
            }
        ],
    }
    text = json.dumps(record, separators=(",", ":"))
    pad = max(0, 1000 - len(text.replace("@ID@", "x" * 32)) - 12)
    return text[:-1] + f',"pad":"{"." * pad}"}}'


def run_baseline(path: Path, n: int, chunk: int) -> list[Timing]:
    """Insert N rows in chunks, then 4 version-checked UPDATE passes of 500 rows a commit."""
    template = baseline_body()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(_BASELINE_SCHEMA)
    ids = [f"{i:032x}" for i in range(n)]

    def body(nid: str, key: str, status: str, version: int) -> str:
        return (
            template.replace("@ID@", nid)
            .replace("@KEY@", key)
            .replace("@STATUS@", status)
            .replace('"@VERSION@"', str(version))
        )

    inserts = Timing("insert", n)
    with Stopwatch(inserts):
        for lo in range(0, n, chunk):
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO notifications (id, key, status, plan_id, due_at, version,"
                " created_at, body) VALUES (?, ?, 'pending', 'plan', 0, 0, 0, ?)",
                [
                    (ids[i], f"k{i}", body(ids[i], f"k{i}", "pending", 0))
                    for i in range(lo, min(lo + chunk, n))
                ],
            )
            db.execute("COMMIT")

    passes = []
    for version, status in enumerate(("active", "active", "active", "exhausted"), start=1):
        timing = Timing(f"update pass {version}", n)
        due = None if status == "exhausted" else version * 1_000_000
        with Stopwatch(timing):
            for lo in range(0, n, BASELINE_UPDATE_BATCH):
                db.execute("BEGIN IMMEDIATE")
                for i in range(lo, min(lo + BASELINE_UPDATE_BATCH, n)):
                    updated = db.execute(
                        "UPDATE notifications SET status = ?, due_at = ?, version = ?, body = ?"
                        " WHERE id = ? AND version = ?",
                        (
                            status,
                            due,
                            version,
                            body(ids[i], f"k{i}", status, version),
                            ids[i],
                            version - 1,
                        ),
                    ).rowcount
                    assert updated == 1
                db.execute("COMMIT")
        passes.append(timing)
    db.close()
    return [inserts, *passes]


# --- outreach ---------------------------------------------------------------------------


class CountingChannel(InMemoryChannel):
    """Counts sends instead of keeping every message in ``outbox`` (RSS would balloon)."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.sent = 0

    async def send(self, message: Message) -> Receipt:
        self.sent += 1
        return Receipt(provider_id=f"{self.name}-{self.sent}", status=AttemptStatus.SENT)


def counting_channels() -> dict[str, CountingChannel]:
    """The plan's three channels, counting."""
    return {name: CountingChannel(name) for name in ("sms", "email", "voice")}


def bench_client(store: Any, clock: FakeClock, channels: dict[str, CountingChannel]) -> AsyncClient:
    """The client every engine benchmark drives: ``store`` is a URL or a store object."""
    return AsyncClient(
        store=store,
        channels=channels,
        templates=TEMPLATES,
        clock=clock,
        settings=Settings(secret_key="bench"),
    )


@dataclass
class SaveCounter:
    """Wraps ``store.save`` to count group-commit transactions and the rows they update."""

    transactions: int = 0
    rows: int = 0

    def install(self, store: Any) -> None:
        inner: Callable[[Sequence[Any]], Awaitable[list[Any]]] = store.save

        async def save(changes: Sequence[Any]) -> list[Any]:
            self.transactions += 1
            self.rows += len(changes)
            return await inner(changes)

        store.save = save


def make_plan() -> Plan:
    return Plan(
        name="bench-flight-cancelled",
        steps=[
            Step(channel="sms", template="flight_cancelled", wait="15m"),
            Step(channel="email", template="flight_cancelled", wait="30m"),
            Step(channel="voice", template="flight_cancelled", wait="1h"),
        ],
        options=[
            Option(key="1", label="Rebook me", keywords=["rebook"]),
            Option(key="2", label="Refund", keywords=["refund"]),
            Option(key="3", label="Taxi to my destination", keywords=["taxi"]),
        ],
    )


def phone_numbers() -> Any:
    """Unique NANP numbers: +1 <area> 200-0000 upwards, area code by area code."""
    for area in AREA_CODES:
        for local in range(2_000_000, 10_000_000):
            yield f"+1{area}{local}"


def build_requests(n: int) -> tuple[list[StartRequest], int]:
    """N start requests with validated recipients; numbers phonenumbers rejects are skipped."""
    requests: list[StartRequest] = []
    rejected = 0
    numbers = phone_numbers()
    while len(requests) < n:
        i = len(requests)
        try:
            recipient = Recipient(id=f"p{i}", phone=next(numbers), email=f"p{i}@example.com")
        except InvalidRecipient:
            rejected += 1
            continue
        requests.append(StartRequest(recipient, key=f"k{i}"))
    return requests, rejected


@dataclass
class Results:
    build: Timing
    starts: Timing
    phases: list[Timing] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    saves: SaveCounter = field(default_factory=SaveCounter)
    claimed: list[int] = field(default_factory=list)
    thread_cpu: dict[str, float] = field(default_factory=dict)
    gc: GcTimer = field(default_factory=GcTimer)
    store_jobs: StoreJobs = field(default_factory=StoreJobs)
    loop_idle: float = 0.0


async def in_store_thread(ox: AsyncClient, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on the SQLite store's private thread (for per-thread CPU and profiling)."""
    executor = ox.store._executor  # type: ignore[attr-defined]
    return await asyncio.get_running_loop().run_in_executor(executor, fn)


async def run_outreach(
    db_path: Path, n: int, chunk: int, profile: bool, profile_out: Path | None
) -> Results:
    progress(f"building {n:,} recipients (phone + email validation; not timed as starts)")
    build = Timing("build recipients", n)
    with Stopwatch(build):
        requests, rejected = build_requests(n)
    if rejected:
        progress(f"  skipped {rejected} numbers phonenumbers rejected")

    channels = counting_channels()
    clock = FakeClock(START)
    plan = make_plan()
    results = Results(build=build, starts=Timing("start_many", n))
    async with bench_client(f"sqlite:///{db_path}", clock, channels) as ox:
        results.saves.install(ox.store)
        main_cpu0 = time.thread_time()
        store_cpu0 = await in_store_thread(ox, time.thread_time)

        progress(f"phase 1: start_many x {n:,} in chunks of {chunk:,}")
        with Stopwatch(results.starts):
            for lo in range(0, n, chunk):
                await ox.start_many(plan, requests[lo : lo + chunk], context=CONTEXT)
        del requests

        main_profiler = cProfile.Profile() if profile else None
        store_profiler = cProfile.Profile() if profile else None
        if main_profiler and store_profiler:
            await in_store_thread(ox, store_profiler.enable)
            main_profiler.enable()
        results.store_jobs.install(ox)
        idle_before = IdleSelector.idle
        with results.gc:
            for label, advance in PHASES:
                if advance is not None:
                    clock.advance(advance)
                progress(f"phase 2: {label}")
                timing = Timing(label, n)
                with Stopwatch(timing):
                    results.claimed.append(await ox.run_due())
                results.phases.append(timing)
        results.loop_idle = IdleSelector.idle - idle_before
        if main_profiler and store_profiler:
            main_profiler.disable()
            await in_store_thread(ox, store_profiler.disable)
            print_profile("event-loop thread (engine, runner, templates)", main_profiler)
            print_profile("SQLite store thread (sqlite3, codec)", store_profiler)
            if profile_out is not None:
                profile_out.mkdir(parents=True, exist_ok=True)
                main_profiler.dump_stats(profile_out / "phase2-event-loop.pstats")
                store_profiler.dump_stats(profile_out / "phase2-sqlite-thread.pstats")
                progress(f"profiles written to {profile_out}/phase2-*.pstats")

        results.thread_cpu["event loop thread"] = time.thread_time() - main_cpu0
        results.thread_cpu["sqlite store thread"] = (
            await in_store_thread(ox, time.thread_time) - store_cpu0
        )
    results.sent = {name: channel.sent for name, channel in channels.items()}
    return results


def print_profile(title: str, profiler: cProfile.Profile) -> None:
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(order).print_stats(25)
        print(f"\n===== profile, phase 2, {title}: top 25 by {order} =====", file=sys.stderr)
        print(out.getvalue(), file=sys.stderr)


def verify(db_path: Path, n: int, sent: dict[str, int]) -> tuple[bool, list[str]]:
    db = sqlite3.connect(db_path)
    try:
        by_status = dict(
            db.execute("SELECT status, COUNT(*) FROM notifications GROUP BY status").fetchall()
        )
        events = dict(db.execute("SELECT kind, COUNT(*) FROM events GROUP BY kind").fetchall())
        body = db.execute("SELECT AVG(LENGTH(body)), MAX(LENGTH(body)) FROM notifications")
        avg_body, max_body = body.fetchone()
    finally:
        db.close()
    sends = sum(sent.values())
    checks = [
        (by_status == {"exhausted": n}, f"notifications by status: {by_status}"),
        (sends == 3 * n, f"sends counted: {sends:,} (expected {3 * n:,}) {sent}"),
        (
            all(count == n for count in sent.values()),
            "each channel sent N messages",
        ),
        (events.get("exhausted") == n, f"'exhausted' events: {events.get('exhausted')}"),
    ]
    lines = [f"  [{'ok' if good else 'FAIL'}] {text}" for good, text in checks]
    lines.append(f"  event log: {sum(events.values()):,} rows {events}")
    lines.append(f"  stored body: avg {avg_body or 0:,.0f} B, max {max_body or 0:,} B")
    return all(good for good, _ in checks), lines


# --- report -----------------------------------------------------------------------------


def cell(timing: Timing | None) -> str:
    if timing is None:
        return f"{'-':>30}"
    return f"{timing.wall:7.2f}s {timing.cpu:6.2f}cpu {timing.rate:>9,.0f}/s"


def report(
    n: int,
    chunk: int,
    base: list[Timing] | None,
    res: Results,
    ok: bool,
    lines: list[str],
    revision: str,
) -> None:
    total_wall = sum(t.wall for t in res.phases)
    total_cpu = sum(t.cpu for t in res.phases)
    transitions = Timing("transitions (4N)", 4 * n, total_wall, total_cpu)
    rows: list[tuple[str, Timing | None, Timing | None]] = [
        ("insert N / start_many N", base[0] if base else None, res.starts),
    ]
    for i, phase in enumerate(res.phases):
        rows.append((f"update pass {i + 1} / {phase.label}", base[i + 1] if base else None, phase))
    base_total = None
    if base:
        base_total = Timing(
            "4 passes", 4 * n, sum(t.wall for t in base[1:]), sum(t.cpu for t in base[1:])
        )
    rows.append(("4N updates / 4N transitions", base_total, transitions))

    print()
    print(f"engine + SQLite store, N = {n:,}, chunk = {chunk:,}; code: {revision}")
    print(f"python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}")
    print(
        "channels: InMemoryChannel subclasses that COUNT sends and do not keep messages"
        " (no .outbox), so RSS is the engine's and the store's"
    )
    print(
        f"recipients built before timing (caller's cost, phone+email validation):"
        f" {res.build.wall:.2f}s wall, {res.build.rate:,.0f}/s"
    )
    print()
    head = f"{'phase':<34} | {'sqlite3 floor':^30} | {'outreach':^30} | {'x floor':>7}"
    print(head)
    print("-" * len(head))
    for label, floor, ours in rows:
        ratio = f"{ours.wall / floor.wall:6.1f}x" if floor and ours and floor.wall else "      -"
        print(f"{label:<34} | {cell(floor)} | {cell(ours)} | {ratio:>7}")
    print()
    print("per phase of phase 2 (outreach):")
    for phase, claimed in zip(res.phases, res.claimed, strict=True):
        print(
            f"  {phase.label:<14} claimed {claimed:>8,}  {phase.wall:7.2f}s wall"
            f"  {phase.cpu:7.2f}s cpu ({phase.cpu / phase.wall:4.0%} of wall)"
            f"  {phase.rate:>9,.0f} transitions/s  peak RSS {phase.rss_mb:6.1f} MB"
        )
    print(
        f"  store writes: {res.saves.transactions:,} save transactions,"
        f" {res.saves.rows:,} notification UPDATEs"
        f" ({res.saves.rows / n:.1f} per notification;"
        f" {res.saves.rows / max(res.saves.transactions, 1):.0f} per transaction)"
    )
    print(
        "  thread CPU over phases 1+2: "
        + ", ".join(f"{name} {cpu:.1f}s" for name, cpu in res.thread_cpu.items())
    )
    jobs = res.store_jobs
    print(
        f"  overlap in phase 2: the event loop sat idle {res.loop_idle:.1f}s"
        f" ({res.loop_idle / total_wall:.0%} of wall); the store thread ran {jobs.count:,} jobs,"
        f" {jobs.wall:.1f}s wall of which {jobs.cpu:.1f}s CPU (the rest waiting for Python's"
        " lock or the disk)"
    )
    collector = res.gc
    print(
        f"  garbage collector in phase 2: {collector.passes[2]:,} full passes"
        f" {collector.seconds[2]:.1f}s, {collector.passes[1]:,} middle {collector.seconds[1]:.1f}s,"
        f" {collector.passes[0]:,} young {collector.seconds[0]:.1f}s"
        f" ({sum(collector.seconds) / total_wall:.0%} of phase 2 wall time)"
    )
    rss = peak_rss_mb()
    print()
    print("targets:")
    for what, value, target, good in (
        ("starts/s", f"{res.starts.rate:,.0f}", f">= {TARGET_STARTS:,.0f}", None),
        ("transitions/s", f"{transitions.rate:,.0f}", f">= {TARGET_TRANSITIONS:,.0f}", None),
        ("peak RSS", f"{rss:,.1f} MB", f"< {TARGET_RSS_MB:.0f} MB", rss < TARGET_RSS_MB),
    ):
        if good is None:
            rate = res.starts.rate if what == "starts/s" else transitions.rate
            good = rate >= (TARGET_STARTS if what == "starts/s" else TARGET_TRANSITIONS)
        print(f"  {what:<14} {value:>12}   target {target:<10} {'met' if good else 'MISSED'}")
    print()
    print(f"verification: {'OK' if ok else 'FAIL'}")
    for line in lines:
        print(line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100_000, help="recipients (default 100000)")
    parser.add_argument(
        "--chunk", type=int, default=5_000, help="recipients per start_many / insert transaction"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile phase 2; top 25 to stderr")
    parser.add_argument(
        "--profile-out",
        type=Path,
        metavar="DIR",
        help="with --profile, also write the raw .pstats files here",
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the plain-sqlite3 floor measurement"
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.chunk < 1:
        parser.error("-n and --chunk must be positive")

    began = time.perf_counter()
    revision = source_revision()
    progress(f"outreach {outreach.__version__} at {revision} ({outreach.__file__})")
    with tempfile.TemporaryDirectory(prefix="outreach-bench-") as tmp:
        base = None
        if not args.no_baseline:
            progress(f"floor: plain sqlite3, {args.n:,} rows")
            base = run_baseline(Path(tmp) / "baseline.db", args.n, args.chunk)
            progress(f"  floor done; peak RSS so far {peak_rss_mb():.1f} MB")
        db_path = Path(tmp) / "bench.db"
        with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(IdleSelector())) as run:
            results = run.run(
                run_outreach(db_path, args.n, args.chunk, args.profile, args.profile_out)
            )
        ok, lines = verify(db_path, args.n, results.sent)
    report(args.n, args.chunk, base, results, ok, lines, revision)
    elapsed = time.perf_counter() - began
    note = "  (over 5 minutes)" if elapsed > SLOW_RUN_S else ""
    print(
        f"\ntotal run time {elapsed:.1f}s{note}"
        + ("; --profile inflates times" if args.profile else "")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
