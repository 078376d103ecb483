"""The sync ``Client``: the async client's real signatures, ``run()``, no threads left behind."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path
from typing import Any

import pytest

from outreach import AsyncClient, Client, Plan, Recipient, Status
from outreach.exceptions import OutreachError
from outreach.testing import FakeClock, InMemoryChannel

TEMPLATES = Path(__file__).parent.parent / "templates"
PAX = Recipient(id="pax-17", phone="+16175550123", email="ann@example.com")

# ``open`` has no twin: the sync constructor opens the store.
NO_TWIN = {"open"}


def _async_methods() -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(AsyncClient)
        if not name.startswith("_")
        and (inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member))
    }


def test_every_async_method_has_a_sync_twin_with_the_same_parameters() -> None:
    methods = _async_methods()
    assert {"start", "acknowledge", "run", "events"} <= set(methods)
    for name, method in methods.items():
        if name in NO_TWIN:
            continue
        twin = getattr(Client, name, None)
        assert twin is not None, f"Client has no {name}()"
        assert not inspect.iscoroutinefunction(twin), name
        expected = inspect.signature(method).parameters
        assert inspect.signature(twin).parameters == expected, name


def test_sync_only_methods_match_too() -> None:
    for name in ("__init__", "preview"):
        expected = inspect.signature(getattr(AsyncClient, name)).parameters
        assert inspect.signature(getattr(Client, name)).parameters == expected, name


def _outreach_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("outreach")]


def test_a_misspelt_keyword_is_refused_before_anything_runs() -> None:
    before = len(_outreach_threads())
    with pytest.raises(TypeError, match="stor"):
        Client(stor="memory://")  # type: ignore[call-arg]
    assert len(_outreach_threads()) == before
    with Client(store="memory://") as ox, pytest.raises(TypeError, match="chioce"):
        ox.acknowledge("n1", chioce="2")  # type: ignore[call-arg]


@pytest.mark.parametrize("where", ["unknown-scheme", "open-fails"])
def test_a_failed_constructor_leaves_no_thread_running(where: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    store = "nosuch://x" if where == "unknown-scheme" else f"sqlite:///{tmp_path}/a-file/x.db"
    before = len(_outreach_threads())
    with pytest.raises((OutreachError, OSError)):
        Client(store=store)
    assert len(_outreach_threads()) == before


def test_run_sends_until_close_from_another_thread(plan: Plan) -> None:
    channels = {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}
    sent = threading.Event()

    class Signalling(InMemoryChannel):
        async def send(self, message: Any) -> Any:
            receipt = await super().send(message)
            sent.set()
            return receipt

    channels["sms"] = Signalling(name="sms")
    ox = Client(store="memory://", channels=channels, templates=TEMPLATES, clock=FakeClock())
    finished = threading.Event()

    def work() -> None:
        ox.run()
        finished.set()

    worker = threading.Thread(target=work)
    worker.start()
    ox.start(PAX, plan, context={"flight": "9K 1042"}, key="k")
    assert sent.wait(timeout=30)
    ox.close()
    worker.join(timeout=30)
    assert finished.is_set()
    assert len(channels["sms"].outbox) == 1
    assert not _outreach_threads()


def test_sync_reads_pass_their_filters_through(plan: Plan) -> None:
    channels = {name: InMemoryChannel(name=name) for name in ("sms", "email", "voice")}
    with Client(store="memory://", channels=channels, templates=TEMPLATES, clock=FakeClock()) as ox:
        ox.start(PAX, plan, context={"flight": "9K 1042"}, key="k", campaign="c1")
        assert [n.key for n in ox.list(status=Status.PENDING, campaign="c1")] == ["k"]
        assert ox.list(campaign="other") == []
        assert len(ox.events(since=0, page=1)) == 1
