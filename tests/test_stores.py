"""The store suite: the same tests on memory, a SQLite file and PostgreSQL.

Leases, version checks, keys, the attempt index and the event log behave alike in every
store. ``stores`` gives two stores on one database, as two processes would have them (for
memory, one store twice: it is private to its process).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from outreach import Notification, Plan, Recipient, Status, Step
from outreach._models import (
    Attempt,
    AttemptStatus,
    Attention,
    AttentionReason,
    Event,
    EventKind,
    Medium,
)
from outreach.exceptions import IdempotencyConflict, StoreError
from outreach.stores import Change, EventFilter, Limit, Store
from outreach.stores.memory import MemoryStore
from outreach.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
PLAN = Plan(name="p", steps=[Step(channel="sms", template="t")])
LEASE = timedelta(minutes=5)


def notification(i: int, *, key: str | None = None, due: datetime | None = NOW) -> Notification:
    return Notification(
        id=f"n{i}",
        key=key,
        recipient=Recipient(id=f"r{i}", phone="+16175550123"),
        plan=PLAN,
        created_at=NOW,
        updated_at=NOW,
        due_at=due,
    )


def sending(n: Notification, step: int = 0) -> Attempt:
    return Attempt(
        id=f"{n.id}.0.{step}.0",
        notification_id=n.id,
        pass_=0,
        step=step,
        channel="sms",
        medium=Medium.SMS,
        address="+16175550123",
        status=AttemptStatus.SENDING,
        created_at=NOW,
        updated_at=NOW,
    )


Factory = Callable[[], Store]


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.integration)]
)
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """Makes unopened stores on one database of this test's own."""
    if request.param == "memory":
        shared = MemoryStore()
        return lambda: shared
    if request.param == "sqlite":
        return lambda: SQLiteStore(tmp_path / "shared.db")
    from outreach.stores.postgres import PostgresStore

    url = request.getfixturevalue("postgres_url")
    schema = request.getfixturevalue("postgres_schema")
    return lambda: PostgresStore(url, schema=schema)


@pytest.fixture
async def stores(new_store: Factory) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database, as two processes would have."""
    first, second = new_store(), new_store()
    await first.open()
    await second.open()
    yield first, second
    await second.close()
    await first.close()


@pytest.fixture
def store(stores: tuple[Store, Store]) -> Store:
    return stores[0]


async def test_a_lease_keeps_other_runners_away_until_it_lapses(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    await a.create([notification(i) for i in range(10)], [])
    mine = await a.claim_due(NOW, owner="a", lease=LEASE, limit=6)
    theirs = await b.claim_due(NOW, owner="b", lease=LEASE, limit=10)
    assert len(mine) == 6
    assert len(theirs) == 4
    assert {n.id for n in mine}.isdisjoint(n.id for n in theirs)
    assert await b.claim_due(NOW + timedelta(minutes=4), owner="b", lease=LEASE, limit=10) == []
    lapsed = await b.claim_due(NOW + LEASE, owner="b", lease=LEASE, limit=10)
    assert len(lapsed) == 10


async def test_claims_take_the_earliest_due_first_and_skip_what_is_not_due(store: Store) -> None:
    later, sooner = NOW - timedelta(minutes=1), NOW - timedelta(minutes=2)
    await store.create(
        [
            notification(1, due=later),
            notification(2, due=sooner),
            notification(3, due=NOW + timedelta(seconds=1)),
            notification(4, due=None),
        ],
        [],
    )
    first = await store.claim_due(NOW, owner="a", lease=LEASE, limit=1)
    rest = await store.claim_due(NOW, owner="a", lease=LEASE, limit=10)
    assert [n.id for n in first] == ["n2"]
    assert [n.id for n in rest] == ["n1"]


async def test_two_racing_claimers_split_the_due_rows(stores: tuple[Store, Store]) -> None:
    """Concurrent claims over 200 due rows: disjoint batches that together are every row."""
    a, b = stores
    await a.create([notification(i) for i in range(200)], [])

    async def drain(s: Store, owner: str) -> list[str]:
        got: list[str] = []
        while batch := await s.claim_due(NOW, owner=owner, lease=LEASE, limit=7):
            got += [n.id for n in batch]
            await asyncio.sleep(0)
        return got

    mine, theirs = await asyncio.gather(drain(a, "a"), drain(b, "b"))
    assert set(mine).isdisjoint(theirs)
    assert len(mine) + len(theirs) == 200
    assert set(mine) | set(theirs) == {f"n{i}" for i in range(200)}


async def test_a_released_lease_can_be_claimed_at_once(stores: tuple[Store, Store]) -> None:
    a, b = stores
    await a.create([notification(1), notification(2)], [])
    await a.claim_due(NOW, owner="a", lease=LEASE, limit=2)
    assert await b.release(["n1", "n2"], owner="b") == 0  # not b's to give back
    assert await a.release(["n1"], owner="a") == 1
    assert [n.id for n in await b.claim_due(NOW, owner="b", lease=LEASE, limit=2)] == ["n1"]


async def test_saving_releases_only_your_own_lease(stores: tuple[Store, Store]) -> None:
    a, b = stores
    await a.create([notification(1)], [])
    [claimed] = await a.claim_due(NOW, owner="a", lease=LEASE, limit=1)
    [saved] = await b.save([Change(claimed, owner="b")])  # an ack from elsewhere
    assert saved is not None
    assert await b.claim_due(NOW, owner="b", lease=LEASE, limit=1) == []
    [released] = await a.save([Change(saved, owner="a")])
    assert released is not None
    assert len(await b.claim_due(NOW, owner="b", lease=LEASE, limit=1)) == 1


async def test_a_stale_write_loses_and_writes_nothing(stores: tuple[Store, Store]) -> None:
    a, b = stores
    [n] = await a.create([notification(1)], [])
    event = Event(at=NOW, notification_id=n.id, kind=EventKind.CANCELLED)
    [won] = await a.save([Change(n.model_copy(update={"status": Status.CANCELLED}), [event])])
    [lost] = await b.save(
        [
            Change(
                n.model_copy(update={"status": Status.ACKNOWLEDGED}),
                [event],
                children=[notification(9, key="child")],
                opt_outs=[(Medium.SMS, "+16175550123")],
            )
        ]
    )
    assert won is not None
    assert won.version == 1
    assert lost is None
    stored = await b.get(n.id)
    assert stored is not None
    assert stored.status is Status.CANCELLED
    assert len(await b.events()) == 1
    assert await b.opted_out([(Medium.SMS, "+16175550123")]) == set()
    assert await b.get_by_key("child") is None


async def test_in_one_group_a_second_change_from_the_same_version_loses(store: Store) -> None:
    [n, other] = await store.create([notification(1), notification(2)], [])
    saved = await store.save(
        [
            Change(n.model_copy(update={"status": Status.CANCELLED})),
            Change(n.model_copy(update={"status": Status.ACKNOWLEDGED})),
            Change(other.model_copy(update={"status": Status.CANCELLED})),
        ]
    )
    assert [s is not None and s.version for s in saved] == [1, False, 1]
    stored = await store.get(n.id)
    assert stored is not None
    assert stored.status is Status.CANCELLED


async def test_in_one_group_a_change_and_its_successor_both_win_in_order(store: Store) -> None:
    """Two changes of one notification in a group, the second made from the first's
    result: each is checked against the version the one before set."""
    [n, other] = await store.create([notification(1), notification(2)], [])
    first = n.model_copy(update={"status": Status.ACTIVE})
    then = first.model_copy(update={"status": Status.CANCELLED, "version": 1})
    saved = await store.save(
        [Change(first), Change(other.model_copy(update={"status": Status.ACTIVE})), Change(then)]
    )
    assert [s is not None and s.version for s in saved] == [1, 1, 2]
    stored = await store.get(n.id)
    assert stored is not None
    assert (stored.status, stored.version) == (Status.CANCELLED, 2)


async def test_a_groups_log_entries_read_back_in_the_order_given(store: Store) -> None:
    made = await store.create([notification(i) for i in range(1, 6)], [])
    kinds = [EventKind.ACTIVATED, EventKind.CANCELLED]
    changes = [
        Change(
            n.model_copy(update={"status": Status.CANCELLED}),
            [Event(at=NOW, notification_id=n.id, kind=kind) for kind in kinds],
        )
        for n in made
    ]
    assert all(await store.save(changes))
    logged = [(e.notification_id, e.kind) for e in await store.events()]
    assert logged == [(n.id, kind) for n in made for kind in kinds]


async def test_a_follow_up_is_inserted_once_and_keeps_its_key(store: Store) -> None:
    [n] = await store.create([notification(1, key="parent")], [])
    child = notification(2, key="parent/refund_check").model_copy(update={"parent_id": n.id})
    [saved] = await store.save([Change(n, children=[child])])
    assert saved is not None
    again = child.model_copy(update={"id": "n3"})
    [saved] = await store.save([Change(saved, children=[again])])  # started before: kept
    assert saved is not None
    stored = await store.get_by_key("parent/refund_check")
    assert stored is not None
    assert (stored.id, stored.parent_id) == ("n2", "n1")
    assert await store.get("n3") is None


async def test_a_saved_record_reads_back_equal(store: Store) -> None:
    [n] = await store.create([notification(1, key="k")], [])
    changed = n.model_copy(
        update={"status": Status.ACTIVE, "due_at": NOW + timedelta(minutes=15), "step": 1}
    )
    [saved] = await store.save([Change(changed)])
    assert saved is not None
    assert await store.get(n.id) == saved
    assert await store.get_by_key("k") == saved
    assert await store.next_due() == NOW + timedelta(minutes=15)


WENT_OUT = {
    "sent": {"status": AttemptStatus.SENT, "provider_id": "SM1", "sent_at": NOW},
    # A status callback can bring the provider id before the send's own answer is recorded.
    "id from a callback": {"status": AttemptStatus.DELIVERED, "provider_id": "SM1"},
    # A runner that died mid-send: never resent, but counted as sent when it started.
    "recovered": {"status": AttemptStatus.UNKNOWN, "sent_at": NOW},
}


@pytest.mark.parametrize("went_out", WENT_OUT.values(), ids=WENT_OUT.keys())
async def test_an_attempt_is_indexed_once_it_went_out(
    store: Store, went_out: dict[str, Any]
) -> None:
    [n] = await store.create([notification(1)], [])
    attempt = sending(n)
    [n] = await store.save(
        [Change(n.model_copy(update={"attempts": (attempt,)}), attempts=[attempt])]
    )
    assert n is not None
    since = NOW - timedelta(days=1)
    assert await store.latest_sent_to(Medium.SMS, "+16175550123", since=since) is None
    later = NOW + timedelta(seconds=1)
    out = attempt.model_copy(update={**went_out, "updated_at": later})
    moved_on = n.model_copy(update={"attempts": (out,), "updated_at": later})
    await store.save([Change(moved_on, attempts=[out])])
    if out.provider_id is not None:
        found = await store.find_by_provider_id(out.provider_id)
        assert found is not None
        assert found.id == n.id
    if out.sent_at is not None:
        latest = await store.latest_sent_to(Medium.SMS, "+16175550123", since=since)
        assert latest is not None
        assert latest.id == n.id
    assert await store.find_by_provider_id("SM-unknown") is None


async def test_only_the_attempts_a_change_lists_are_indexed(store: Store) -> None:
    """The store writes the attempts a change names, not those its timestamps suggest."""
    [n] = await store.create([notification(1)], [])
    listed, unlisted = (
        sending(n, step).model_copy(
            update={"status": AttemptStatus.SENT, "provider_id": f"SM{step}", "sent_at": NOW}
        )
        for step in (0, 1)
    )
    both = n.model_copy(update={"attempts": (listed, unlisted)})
    await store.save([Change(both, attempts=[listed])])
    found = await store.find_by_provider_id("SM0")
    assert found is not None
    assert found.id == n.id
    assert await store.find_by_provider_id("SM1") is None


async def test_the_latest_send_from_the_right_sender_wins(store: Store) -> None:
    first, second = await store.create([notification(1), notification(2)], [])
    for n, sender, at in ((first, "+1800A", NOW), (second, "+1800B", NOW + timedelta(minutes=1))):
        out = sending(n).model_copy(
            update={"status": AttemptStatus.SENT, "sender": sender, "sent_at": at}
        )
        await store.save([Change(n.model_copy(update={"attempts": (out,)}), attempts=[out])])
    since = NOW - timedelta(hours=1)
    for sender, expected in ((None, "n2"), ("+1800A", "n1"), ("+1800B", "n2")):
        found = await store.latest_sent_to(Medium.SMS, "+16175550123", since=since, sender=sender)
        assert found is not None
        assert found.id == expected
    assert (
        await store.latest_sent_to(Medium.SMS, "+16175550123", since=NOW + timedelta(hours=1))
        is None
    )


async def test_a_recipients_active_conversations_come_newest_first(store: Store) -> None:
    """``active_sent_to``: every pending or active notification texted to the number since
    the cut-off, the latest send first; finished ones and other numbers are left out."""
    made = await store.create([notification(i) for i in (1, 2, 3, 4)], [])
    for n, minutes in zip(made, (0, 2, 1, 3), strict=True):
        out = sending(n).model_copy(
            update={"status": AttemptStatus.SENT, "sent_at": NOW + timedelta(minutes=minutes)}
        )
        status = Status.ACKNOWLEDGED if n.id == "n4" else Status.ACTIVE
        changed = n.model_copy(update={"attempts": (out,), "status": status})
        await store.save([Change(changed, attempts=[out])])
    since = NOW - timedelta(hours=1)
    found = await store.active_sent_to(Medium.SMS, "+16175550123", since=since)
    assert [n.id for n in found] == ["n2", "n3", "n1"]
    assert [
        n.id for n in await store.active_sent_to(Medium.SMS, "+16175550123", since=since, limit=1)
    ] == ["n2"]
    assert await store.active_sent_to(Medium.SMS, "+16175550199", since=since) == []
    assert await store.active_sent_to(Medium.VOICE, "+16175550123", since=since) == []
    later = NOW + timedelta(minutes=1, seconds=30)
    assert [n.id for n in await store.active_sent_to(Medium.SMS, "+16175550123", since=later)] == [
        "n2"
    ]


async def test_keys_are_unique_and_the_first_wins(stores: tuple[Store, Store]) -> None:
    a, b = stores
    [first] = await a.create([notification(1, key="k")], [])
    retry = notification(1, key="k").model_copy(update={"id": "n2"})
    [again] = await b.create([retry], [])
    assert again.id == first.id
    assert [n.id for n in await a.query()] == ["n1"]


async def test_a_key_conflict_rolls_the_whole_batch_back(stores: tuple[Store, Store]) -> None:
    a, b = stores
    await a.create([notification(1, key="k")], [])
    with pytest.raises(IdempotencyConflict, match="'k'"):
        await b.create([notification(3, key="fresh"), notification(2, key="k")], [])
    assert [n.id for n in await a.query()] == ["n1"]


async def test_a_rolled_back_batch_leaves_no_plan_snapshot_behind(store: Store) -> None:
    """Two requests of one batch share a key but not a recipient, under a plan never stored
    before: the batch is refused, and the plan can still be used afterwards."""
    fresh = Plan(name="fresh", steps=[Step(channel="sms", template="t")])
    first, second = (notification(i, key="k") for i in (1, 2))
    batch = [first.model_copy(update={"plan": fresh}), second.model_copy(update={"plan": fresh})]
    with pytest.raises(IdempotencyConflict, match="'k'"):
        await store.create(batch, [])
    [stored] = await store.create([notification(3).model_copy(update={"plan": fresh})], [])
    assert (await store.get(stored.id)) == stored


async def test_query_filters_and_orders_oldest_first(store: Store) -> None:
    older = notification(2).model_copy(
        update={"campaign": "c", "created_at": NOW - timedelta(hours=1)}
    )
    await store.create([notification(1).model_copy(update={"campaign": "c"}), older], [])
    [n3] = await store.create([notification(3)], [])
    await store.save([Change(n3.model_copy(update={"status": Status.CANCELLED}))])
    assert [n.id for n in await store.query()] == ["n2", "n1", "n3"]
    assert [n.id for n in await store.query(campaign="c")] == ["n2", "n1"]
    assert [n.id for n in await store.query(status=Status.CANCELLED)] == ["n3"]
    assert [n.id for n in await store.query(limit=1)] == ["n2"]


async def test_events_are_appended_in_order_with_new_notifications_only(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    started = [Event(at=NOW, notification_id=f"n{i}", kind=EventKind.CREATED) for i in (1, 2)]
    [n1, _] = await a.create([notification(1, key="k1"), notification(2)], started)
    retry = notification(1, key="k1").model_copy(update={"id": "n3"})
    await b.create([retry], [started[0].model_copy(update={"notification_id": "n3"})])
    cancelled = Event(
        at=NOW + timedelta(seconds=1),
        notification_id=n1.id,
        kind=EventKind.CANCELLED,
        data={"by": "api", "at": NOW, "status": Status.CANCELLED},
    )
    await b.save([Change(n1.model_copy(update={"status": Status.CANCELLED}), [cancelled])])
    log = await a.events()
    assert [(e.notification_id, e.kind) for e in log] == [
        ("n1", EventKind.CREATED),
        ("n2", EventKind.CREATED),
        ("n1", EventKind.CANCELLED),
    ]
    assert [e.seq for e in log] == sorted(e.seq for e in log)
    assert log[2].at == NOW + timedelta(seconds=1)
    assert log[2].data == {"by": "api", "at": NOW.isoformat(), "status": "cancelled"}
    assert [e.kind for e in await a.events(since=log[0].seq, limit=1)] == [EventKind.CREATED]


async def test_suppressions(stores: tuple[Store, Store]) -> None:
    a, b = stores
    phone, email = (Medium.SMS, "+16175550123"), (Medium.EMAIL, "a@b.example")
    await a.suppress(*phone, "STOP", NOW)
    await a.suppress(*phone, "STOP again", NOW)  # replaces, no error
    assert await b.opted_out([phone, email, (Medium.VOICE, phone[1])]) == {phone}
    [n] = await a.create([notification(1)], [])
    await b.save([Change(n, opt_outs=[email, phone])])  # a provider's report keeps the first
    assert await a.opted_out([phone, email]) == {phone, email}
    await b.unsuppress(*phone)
    assert await a.opted_out([phone, email]) == {email}
    assert await a.opted_out([]) == set()


async def test_webhook_receipts_are_remembered_once_and_can_be_forgotten(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    assert await a.remember("evt-1", NOW) is True
    assert await b.remember("evt-1", NOW) is False
    await b.forget("evt-1")
    assert await a.remember("evt-1", NOW) is True


async def test_next_due(store: Store) -> None:
    assert await store.next_due() is None
    await store.create(
        [notification(1, due=NOW + timedelta(hours=1)), notification(2, due=None)], []
    )
    assert await store.next_due() == NOW + timedelta(hours=1)


async def test_a_leased_row_is_not_due_for_the_run_loop_until_its_lease_lapses(
    store: Store,
) -> None:
    await store.create([notification(1)], [])
    await store.claim_due(NOW, owner="a", lease=LEASE, limit=1)
    assert await store.next_due() == NOW + LEASE


async def test_a_store_that_is_not_open_says_so(new_store: Factory) -> None:
    store = new_store()
    with pytest.raises(StoreError, match="not open"):
        await store.get("x")
    await store.open()
    await store.open()  # twice is fine
    assert await store.get("x") is None
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.get("x")


async def test_as_stored_is_what_the_store_gives_back(store: Store) -> None:
    """``start()`` trial-renders ``as_stored(context)``: it must be the store's own round trip."""
    import uuid
    from decimal import Decimal

    from outreach import Status
    from outreach.stores._codec import as_stored

    context: dict[str, Any] = {
        "when": NOW,
        "delay": timedelta(minutes=90),
        "price": Decimal("19.90"),
        "seats": {12: "12A", 13: ("13B", "13C")},
        "ids": uuid.UUID(int=7),
        "status": Status.ACTIVE,
        "nan": float("nan"),
        "raw": b"bytes",
        "big": 2**70,
        "fare": 0.1 + 0.2,
        "nested": [{"at": NOW}, {1.5, 2.5}],
    }
    n = notification(1).model_copy(update={"context": context})
    await store.create([n], [])
    stored = await store.get(n.id)
    assert stored is not None
    assert as_stored(context) == stored.context


# fencing: a runner that lost its lease cannot finish a step twice


async def test_a_worker_whose_lease_was_taken_over_cannot_save(
    stores: tuple[Store, Store],
) -> None:
    """A claims, its lease lapses, B claims: A's write is refused even though the version it
    read is still the stored one; B's goes through."""
    a, b = stores
    await a.create([notification(1)], [])
    [mine] = claimed_a = await a.claim_due(NOW, owner="a", lease=LEASE, limit=1)
    [theirs] = claimed_b = await b.claim_due(NOW + LEASE, owner="b", lease=LEASE, limit=1)
    assert claimed_b.epochs["n1"] > claimed_a.epochs["n1"]
    attempt = sending(mine)
    late = mine.model_copy(update={"attempts": (attempt,)})
    [refused] = await a.save([Change(late, owner="a", fence=claimed_a.epochs["n1"])])
    assert refused is None
    stored = await b.get("n1")
    assert stored is not None
    assert stored.attempts == ()
    [saved] = await b.save([Change(theirs, owner="b", fence=claimed_b.epochs["n1"])])
    assert saved is not None


async def test_an_acknowledgement_commits_while_another_worker_holds_the_lease(
    stores: tuple[Store, Store],
) -> None:
    """The webhook process needs no lease; the worker's next write then loses its version."""
    a, b = stores
    await a.create([notification(1)], [])
    claimed = await a.claim_due(NOW, owner="a", lease=LEASE, limit=1)
    acked = claimed[0].model_copy(update={"status": Status.ACKNOWLEDGED, "due_at": None})
    [stored] = await b.save([Change(acked)])
    assert stored is not None
    assert stored.status is Status.ACKNOWLEDGED
    [worker] = await a.save([Change(claimed[0], owner="a", fence=claimed.epochs["n1"])])
    assert worker is None
    cancelled = stored.model_copy(update={"status": Status.CANCELLED})
    assert (await b.save([Change(cancelled)]))[0] is not None


async def test_leases_are_renewed_in_one_call_and_only_while_held(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    await a.create([notification(i) for i in range(3)], [])
    claimed = await a.claim_due(NOW, owner="a", lease=LEASE, limit=3)
    later = NOW + timedelta(minutes=4)
    renewed = await a.renew(claimed.epochs, owner="a", until=later + LEASE)
    assert renewed == {"n0", "n1", "n2"}
    assert await b.claim_due(NOW + LEASE, owner="b", lease=LEASE, limit=3) == []
    assert await b.renew(claimed.epochs, owner="b", until=later + LEASE) == set()  # not b's
    taken = await b.claim_due(later + LEASE, owner="b", lease=LEASE, limit=1)
    [lost] = taken
    held = await a.renew(claimed.epochs, owner="a", until=later + 2 * LEASE)
    assert held == {"n0", "n1", "n2"} - {lost.id}
    assert await a.renew({}, owner="a", until=later) == set()


# pacing: one set of limits for every process on the store

SMS_RATE = Limit("rate:sms", "+15550001", timedelta(seconds=0.5))


def cap(address: str, *, count: int = 3) -> Limit:
    return Limit("cap:sms", address, timedelta(hours=1), burst=count)


HORIZON = timedelta(seconds=60)


async def test_a_rate_is_shared_by_two_stores_on_one_database(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    first = await a.pace([[SMS_RATE], [SMS_RATE]], now=NOW, horizon=HORIZON)
    second = await b.pace([[SMS_RATE]], now=NOW, horizon=HORIZON)
    assert [*first, *second] == [timedelta(seconds=s) for s in (0, 0.5, 1.0)]
    other_sender = Limit("rate:sms", "+15550002", timedelta(seconds=0.5))
    assert await b.pace([[other_sender]], now=NOW, horizon=HORIZON) == [timedelta(0)]
    later = NOW + timedelta(seconds=10)  # the bucket has drained: no debt carried over
    assert await a.pace([[SMS_RATE]], now=later, horizon=HORIZON) == [timedelta(0)]


async def test_long_sms_are_charged_per_segment(store: Store) -> None:
    await store.pace([[SMS_RATE]], now=NOW, horizon=HORIZON)
    await store.charge([replace(SMS_RATE, cost=2)])  # that one was three segments
    assert await store.pace([[SMS_RATE]], now=NOW, horizon=HORIZON) == [timedelta(seconds=1.5)]


async def test_a_burst_lets_sends_go_back_to_back_after_a_quiet_spell(store: Store) -> None:
    bursty = replace(SMS_RATE, burst=3)
    delays = await store.pace([[bursty]] * 5, now=NOW, horizon=HORIZON)
    assert delays == [timedelta(seconds=s) for s in (0, 0, 0, 0.5, 1.0)]


async def test_beyond_the_horizon_nothing_is_charged(store: Store) -> None:
    slow = Limit("rate:voice", "+15550001", timedelta(minutes=2))
    assert await store.pace([[slow]], now=NOW, horizon=HORIZON) == [timedelta(0)]
    for _ in range(3):  # asked again and again: the same answer, no debt piles up
        assert await store.pace([[slow]], now=NOW, horizon=HORIZON) == [timedelta(minutes=2)]
    later = NOW + timedelta(minutes=2)
    assert await store.pace([[slow]], now=later, horizon=HORIZON) == [timedelta(0)]


async def test_the_cap_allows_count_per_period_per_address(store: Store) -> None:
    address = "+16175550123"
    for minute in range(3):
        now = NOW + timedelta(minutes=minute)
        assert await store.pace([[cap(address)]], now=now, horizon=HORIZON) == [timedelta(0)]
    five = NOW + timedelta(minutes=5)
    [wait] = await store.pace([[cap(address)]], now=five, horizon=HORIZON)
    assert five + wait == NOW + timedelta(hours=1)
    assert await store.pace([[cap("+16175550999")]], now=five, horizon=HORIZON) == [timedelta(0)]
    voice = Limit("cap:voice", address, timedelta(hours=1), burst=3)
    assert await store.pace([[voice]], now=five, horizon=HORIZON) == [timedelta(0)]


async def test_a_send_held_by_one_limit_holds_no_place_in_the_others(store: Store) -> None:
    """The cap defers the send an hour: the sender's rate is left for someone else."""
    address = "+16175550123"
    await store.pace([[cap(address, count=1)]], now=NOW, horizon=HORIZON)
    held, free = await store.pace(
        [[cap(address, count=1), SMS_RATE], [cap("+16175550999"), SMS_RATE]],
        now=NOW,
        horizon=HORIZON,
    )
    assert held == timedelta(hours=1)
    assert free == timedelta(0)
    [second] = await store.pace([[SMS_RATE]], now=NOW, horizon=HORIZON)
    assert second == timedelta(seconds=0.5)


async def test_a_refused_send_gives_its_place_in_the_cap_back(store: Store) -> None:
    address = "+16175550123"
    for second in range(6):
        now = NOW + timedelta(seconds=second)
        assert await store.pace([[cap(address)]], now=now, horizon=HORIZON) == [timedelta(0)]
        await store.charge([replace(cap(address), cost=-1)])
    for second in range(6, 9):
        now = NOW + timedelta(seconds=second)
        assert await store.pace([[cap(address)]], now=now, horizon=HORIZON) == [timedelta(0)]
    later = NOW + timedelta(seconds=10)
    [wait] = await store.pace([[cap(address)]], now=later, horizon=HORIZON)
    assert later + wait == NOW + timedelta(hours=1, seconds=6)


async def test_racing_pacers_get_distinct_slots(stores: tuple[Store, Store]) -> None:
    a, b = stores

    async def ask(s: Store) -> list[timedelta]:
        got: list[timedelta] = []
        for _ in range(10):
            got += await s.pace([[SMS_RATE]], now=NOW, horizon=HORIZON)
            await asyncio.sleep(0)
        return got

    mine, theirs = await asyncio.gather(ask(a), ask(b))
    assert sorted(mine + theirs) == [timedelta(seconds=0.5 * i) for i in range(20)]


async def test_sends_with_no_limit_need_no_answer_from_the_store(new_store: Factory) -> None:
    unopened = new_store()
    assert await unopened.pace([[], []], now=NOW, horizon=HORIZON) == [timedelta(0)] * 2


async def test_a_refusal_after_a_charge_gives_the_charge_back(store: Store) -> None:
    slow = Limit("rate:voice", "+15550001", timedelta(minutes=2))
    address = "+16175550123"
    await store.pace([[slow]], now=NOW, horizon=HORIZON)
    [held] = await store.pace([[cap(address, count=1), slow]], now=NOW, horizon=HORIZON)
    assert held == timedelta(minutes=2)
    assert await store.pace([[cap(address, count=1)]], now=NOW, horizon=HORIZON) == [timedelta(0)]


# the event feed on PostgreSQL: commits out of seq order leave no gap for a reader


@pytest.fixture
async def postgres(postgres_url: str, postgres_schema: str) -> AsyncIterator[Store]:
    from outreach.stores.postgres import PostgresStore

    store = PostgresStore(postgres_url, schema=postgres_schema)
    await store.open()
    yield store
    await store.close()


async def _join_writers(db: Any, store: Any) -> None:
    """What the store's writers do first: join the event writers' lock; then take an id."""
    await db.execute("SELECT pg_advisory_xact_lock_shared(%s)", (store._events_key,))
    await db.execute("SELECT pg_current_xact_id()")


async def _log(db: Any, notification_id: str) -> None:
    await db.execute(
        "INSERT INTO events (at, notification_id, kind, data) VALUES (%s, %s, 'created', '{}')",
        (NOW, notification_id),
    )


@pytest.mark.parametrize("older", ["early", "late"])
async def test_a_reader_never_skips_an_event_committed_after_a_later_seq(
    postgres: Store, postgres_url: str, postgres_schema: str, older: str
) -> None:
    """Real connections: `early` logs first (the smaller seq) and commits last, `late` logs
    second and commits first; either may hold the older transaction id. A reader that keeps
    its cursor gets both, and a transaction that logs nothing does not hold the feed back."""
    import psycopg

    options = f"-c search_path={postgres_schema}"
    connect = psycopg.AsyncConnection.connect
    async with (
        await connect(postgres_url, options=options) as bystander,
        await connect(postgres_url, options=options) as early,
        await connect(postgres_url, options=options) as late,
    ):
        await bystander.execute("SELECT pg_current_xact_id()")  # open all along, logs nothing
        first, second = (early, late) if older == "early" else (late, early)
        await _join_writers(first, postgres)
        await _join_writers(second, postgres)
        await _log(early, "n-early")
        await _log(late, "n-late")
        await late.commit()
        seen = await postgres.events()
        assert "n-early" not in [e.notification_id for e in seen]
        cursor = seen[-1].seq if seen else 0
        await early.commit()
        after = await postgres.events(since=cursor)
        assert sorted(e.notification_id for e in [*seen, *after]) == ["n-early", "n-late"]
        assert [e.seq for e in await postgres.events()] == [e.seq for e in [*seen, *after]]
        assert [e.seq for e in [*seen, *after]] == sorted(e.seq for e in [*seen, *after])


def test_the_feed_horizon_widens_32_bit_writer_ids_across_an_epoch() -> None:
    pytest.importorskip("psycopg")
    from outreach.stores.postgres import horizon

    epoch = 3 << 32
    assert horizon(epoch | 500, []) == epoch | 500
    assert horizon(epoch | 500, [400, 450]) == epoch | 400
    assert horizon(epoch | 5, [2**32 - 10]) == (2 << 32) | (2**32 - 10)  # before the wrap


def attention(n: Notification, i: int, *, campaign: str | None = None) -> Attention:
    return Attention(
        id=f"att-{i}",
        notification_id=n.id,
        recipient_id=n.recipient.id,
        campaign=campaign,
        reason=AttentionReason.UNREACHED,
        detail=f"detail {i}: 'my bag…'",
        opened_at=NOW + timedelta(minutes=i),
    )


async def test_attention_is_written_with_its_change_and_listed_by_filter(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    n1, n2 = notification(1), notification(2)
    await a.create([n1, n2], [])
    first, second = attention(n1, 1, campaign="c"), attention(n2, 2)
    opened = Event(at=NOW, notification_id=n1.id, kind=EventKind.ATTENTION_OPENED)
    [saved] = await a.save([Change(n1, [opened], attentions=[first])])
    assert saved is not None
    lost = Change(n1, attentions=[attention(n1, 9)])  # from a stale version: not written
    await a.save([Change(n2, attentions=[second]), lost])
    assert await b.attentions() == [first, second]
    assert await b.attentions(campaign="c") == [first]
    assert await b.attentions(recipient_id="r2") == [second]
    assert await b.attentions(open=False) == []
    assert await b.attentions(limit=1) == [first]


async def test_resolving_attention_is_logged_once_and_idempotent(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    n = notification(1)
    await a.create([n], [])
    await a.save([Change(n, attentions=[attention(n, 1)])])
    later = NOW + timedelta(hours=1)
    found = await a.resolve_attention("att-1", by="agent-7", note="called back", now=later)
    assert found is not None
    closed, event = found
    assert (closed.resolved_at, closed.resolved_by, closed.note) == (
        later,
        "agent-7",
        "called back",
    )
    assert event is not None
    assert event.kind is EventKind.ATTENTION_RESOLVED
    assert event.data == {"attention_id": "att-1", "by": "agent-7", "note": "called back"}
    assert await b.events() == [event]  # with its place in the log
    again = await b.resolve_attention("att-1", by="someone", note=None, now=later + LEASE)
    assert again == (closed, None)
    assert len(await a.events()) == 1
    assert await a.attentions() == []
    assert await a.attentions(open=None) == [closed]
    assert await a.resolve_attention("att-404", by="x", note=None, now=later) is None


async def test_events_filter_by_notification_recipient_and_kind(store: Store) -> None:
    ann = [notification(1), notification(2)]
    bob = notification(3).model_copy(update={"recipient": Recipient(id="bob")})
    created = [Event(at=NOW, notification_id=n.id, kind=EventKind.CREATED) for n in [*ann, bob]]
    await store.create([*ann, bob], created)
    cancelled = [Event(at=NOW, notification_id=n.id, kind=EventKind.CANCELLED) for n in ann]
    await store.save([Change(ann[0], [cancelled[0]]), Change(ann[1], [cancelled[1]])])
    everything = await store.events()
    assert len(everything) == 5

    def ids(events: list[Event]) -> list[tuple[str, EventKind]]:
        return [(e.notification_id, e.kind) for e in events]

    by_ann = await store.events(where=EventFilter(recipient_id="r1"))
    assert ids(by_ann) == [("n1", EventKind.CREATED), ("n1", EventKind.CANCELLED)]
    by_n2 = await store.events(where=EventFilter(notification_id="n2"))
    assert ids(by_n2) == [("n2", EventKind.CREATED), ("n2", EventKind.CANCELLED)]
    only = await store.events(where=EventFilter(kinds=frozenset({EventKind.CANCELLED})))
    assert ids(only) == [("n1", EventKind.CANCELLED), ("n2", EventKind.CANCELLED)]
    after = await store.events(everything[2].seq, 1, EventFilter(kinds=frozenset(EventKind)))
    assert after == everything[3:4]
    assert await store.events(where=EventFilter(recipient_id="nobody")) == []
