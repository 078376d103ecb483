"""`send --wait`: the escalations run in the command until the campaign is finished."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach import AsyncClient, Plan, Recipient, StartRequest, Status, Step
from outreach.campaigns import CampaignProgress, campaign_progress, run_until_finished
from outreach.cli import app
from outreach.testing import FakeClock, InMemoryChannel

PLAN = """\
name = "short"
[[steps]]
channel = "sms"
template = "notice"
wait = "1s"
"""

APP = """\
from outreach import AsyncClient
from outreach.testing import InMemoryChannel


def make():
    return AsyncClient(
        store={store!r}, channels={{"sms": InMemoryChannel(name="sms")}}, templates={templates!r}
    )
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    notice = tmp_path / "templates" / "notice"
    notice.mkdir(parents=True)
    (notice / "sms.txt").write_text("Gate {{ gate }}.")
    (tmp_path / "plan.toml").write_text(PLAN)
    (tmp_path / "pax.csv").write_text(
        "id,phone,gate\n" + "".join(f"p{i},+1617555{i:04d},B{i}\n" for i in range(3))
    )
    module = f"wait_app_{abs(hash(tmp_path))}"
    store = f"sqlite:///{tmp_path / 'o.db'}"
    (tmp_path / f"{module}.py").write_text(
        APP.format(store=store, templates=str(tmp_path / "templates"))
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APP", f"{module}:make")
    yield tmp_path
    sys.modules.pop(module, None)


def test_wait_runs_every_notification_to_its_end(folder: Path) -> None:
    import os

    args = ["send", "plan.toml", "pax.csv", "--campaign", "c", "--app", os.environ["APP"]]
    result = CliRunner().invoke(app, [*args, "--wait"])
    assert result.exit_code == 0, result.output
    assert "campaign c: 3 new, 0 already started" in result.output
    assert "finished: 3 of 3" in result.output  # a plain line: not a terminal
    assert "campaign c: all finished (exhausted 3)" in result.output
    assert "\x1b[" not in result.output
    again = CliRunner().invoke(app, [*args, "--wait", "--json"])
    data = json.loads(again.stdout)
    assert (data["new"], data["existing"], data["finished"]) == (0, 3, True)
    assert data["counts"] == {"exhausted": 3}


async def test_cancelled_it_leaves_the_rest_queued_and_a_second_run_finishes(
    tmp_path: Path,
) -> None:
    (tmp_path / "notice").mkdir()
    (tmp_path / "notice" / "sms.txt").write_text("Hello.")
    clock = FakeClock("2026-11-23T14:00:00+00:00")
    plan = Plan(name="p", steps=[Step(channel="sms", template="notice", wait="15m")])
    sms = InMemoryChannel(name="sms")
    async with AsyncClient(
        store="memory://", channels={"sms": sms}, templates=tmp_path, clock=clock
    ) as ox:
        people = [StartRequest(Recipient(id=f"p{i}", phone=f"+1617555{i:04d}")) for i in range(4)]
        await ox.start_many(plan, people, campaign="c")
        seen: list[CampaignProgress] = []
        first = asyncio.ensure_future(run_until_finished(ox, "c", plan, progress=seen.append))
        while len(sms.outbox) < 4:
            await asyncio.sleep(0)
        first.cancel()  # Ctrl-C while everyone waits for an answer
        with pytest.raises(asyncio.CancelledError):
            await first
        assert all(n.status is Status.ACTIVE for n in await ox.list(campaign="c"))
        assert seen[0].counts == {"pending": 4}
        second = asyncio.ensure_future(run_until_finished(ox, "c", plan))
        for _ in range(100_000):  # let virtual time pass until it returns
            if second.done():
                break
            clock.advance("1s")
            await asyncio.sleep(0)
        done = await second
        assert done.done
        assert done.counts == {"exhausted": 4}
        assert len(sms.outbox) == 4  # nobody texted twice
        assert (await campaign_progress(ox, "c", plan)).finished == 4


def test_on_a_terminal_progress_is_a_live_bar(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setenv("FORCE_COLOR", "1")  # rich takes standard error for a terminal
    args = ["send", "plan.toml", "pax.csv", "--campaign", "c", "--app", os.environ["APP"]]
    result = CliRunner().invoke(app, [*args, "--wait"])
    assert result.exit_code == 0, result.output
    assert "started or found" in result.stderr
    assert "3/3" in result.stderr  # the bar's count, not a plain line
    assert "started or found: 3 of 3" not in result.stderr
    assert "campaign c: all finished (exhausted 3)" in result.stdout
