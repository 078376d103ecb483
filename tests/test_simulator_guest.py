"""An in-process ProviderSimulator is a good guest: the host's logging stays as it was."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from outreach import Medium
from outreach.channels import TwilioSMS
from outreach.channels._base import Message
from outreach.testing import FakeClock, ProviderSimulator

LOGGERS = ("", "uvicorn", "uvicorn.access", "uvicorn.error", "uvicorn.asgi")


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _state() -> dict[str, tuple[object, ...]]:
    loggers = {name: logging.getLogger(name) for name in LOGGERS}
    return {
        name: (tuple(lg.handlers), lg.propagate, lg.level, lg.disabled)
        for name, lg in loggers.items()
    }


@pytest.fixture
def host_access_log() -> Iterator[Recorder]:
    """What a host serving its own app with uvicorn has: an access logger with a handler."""
    access = logging.getLogger("uvicorn.access")
    recorder = Recorder()
    before = (access.handlers[:], access.propagate, access.level)
    access.handlers = [recorder]
    access.setLevel(logging.INFO)
    yield recorder
    access.handlers, access.propagate = before[0], before[1]
    access.setLevel(before[2])


async def test_the_hosts_uvicorn_access_log_is_left_alone(host_access_log: Recorder) -> None:
    before = _state()
    async with ProviderSimulator(clock=FakeClock()) as sim:
        sms = TwilioSMS(settings=sim.settings(twilio_from="+15085550199"), rate=None)
        try:
            receipt = await sms.send(
                Message(
                    notification_id="n1",
                    attempt_id="n1.0",
                    medium=Medium.SMS,
                    to="+16175550123",
                    body="Flight 9K 1042 is cancelled.",
                )
            )
        finally:
            await sms.aclose()
        assert receipt.provider_id
        async with httpx.AsyncClient() as client:
            await client.get(f"{sim.base_url}/nowhere")
        assert _state() == before  # while it runs
    assert _state() == before  # and after
    logging.getLogger("uvicorn.access").info("the host's own request")
    # The host's access log still works, and has none of the simulator's requests.
    assert [r.getMessage() for r in host_access_log.records] == ["the host's own request"]
