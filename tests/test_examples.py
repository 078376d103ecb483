"""The examples a backend developer copies from keep working."""

from __future__ import annotations

import asyncio
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from outreach._settings import Settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def examples_on_path() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLES))
    yield
    sys.path.remove(str(EXAMPLES))


def load(name: str) -> dict[str, Any]:
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name=f"example_{name}")


def test_notify_flight_rehearses_against_the_simulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], examples_on_path: None
) -> None:
    example = load("notify_flight")
    outcome = asyncio.run(
        example["rehearse"](EXAMPLES / "passengers.csv", "9K 1042", f"sqlite:///{tmp_path}/r.db")
    )
    assert outcome == {f"pax-0{i}": "acknowledged" for i in range(1, 5)}
    assert "line 6, column phone: " in capsys.readouterr().err


async def test_the_webhooks_mount_inside_a_host_app(tmp_path: Path) -> None:
    example = load("starlette_embed")
    settings = Settings(
        secret_key="test-secret",
        store=f"sqlite:///{tmp_path}/host.db",
        public_url="https://api.example.com/outreach",
    )
    app = example["build"](settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://host") as http,
    ):
        assert (await http.get("/outreach/healthz")).json() == {"status": "ok"}
        assert (await http.get("/notifications")).json() == {}
        assert (await http.get("/outreach/ack/forged-token")).status_code == 404
