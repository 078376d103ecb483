"""Observability: spans and metrics through OpenTelemetry (asserted with its in-memory
exporters), the Prometheus route of ``outreach serve --metrics``, and the log options of the
long-running commands."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from typer.testing import CliRunner

from outreach import AsyncClient, ChannelAlert, Plan, Recipient, Step, Telemetry
from outreach._settings import Settings
from outreach.cli import app as cli
from outreach.cli._logging import JsonLines
from outreach.exceptions import PermanentDeliveryError
from outreach.telemetry import prometheus_metrics
from outreach.testing import FakeClock, InMemoryChannel
from outreach.webhooks import create_app

PHONE = "+16175550123"
EMAIL = "zoe.private@example.com"
FLIGHT = "9K 1042"
PAX = Recipient(id="pax-17", phone=PHONE, email=EMAIL, timezone="UTC")
PLAN = Plan(
    name="flight-cancelled",
    steps=[
        Step(channel="sms", template="flight_cancelled", wait="15m"),
        Step(channel="email", template="flight_cancelled", wait="30m"),
    ],
)


@dataclass
class Otel:
    telemetry: Telemetry
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if name is None or s.name == name]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        """Each data point of ``metric``: its attributes and the point (value, sum, count)."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found += [(dict(p.attributes or {}), p) for p in m.data.data_points]
        return found

    def counts(self, metric: str) -> dict[tuple[tuple[str, Any], ...], float]:
        return {tuple(sorted(attrs.items())): p.value for attrs, p in self.points(metric)}


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    yield Otel(Telemetry(tracer_provider=tracers, meter_provider=meters), spans, reader)
    tracers.shutdown()
    meters.shutdown()


@pytest.fixture
def sms() -> InMemoryChannel:
    return InMemoryChannel(name="memory-sms")


@pytest.fixture
async def ox(
    otel: Otel, sms: InMemoryChannel, clock: FakeClock, templates_dir: Path
) -> AsyncIterator[AsyncClient]:
    channels = {"sms": sms, "email": InMemoryChannel(name="memory-email")}
    async with AsyncClient(
        store="memory://",
        channels=channels,
        templates=templates_dir,
        clock=clock,
        telemetry=otel.telemetry,
    ) as client:
        yield client


def _no_personal_data(span: ReadableSpan) -> None:
    text = span.to_json()
    for secret in (PHONE, PHONE[2:], EMAIL, FLIGHT):
        assert secret not in text, f"{secret!r} in span {span.name}"


async def test_each_send_is_a_span_with_channel_provider_and_outcome(
    ox: AsyncClient, otel: Otel, sms: InMemoryChannel, clock: FakeClock
) -> None:
    n = await ox.start(PAX, PLAN, context={"flight": FLIGHT})
    await ox.run_due()
    assert FLIGHT in sms.outbox[0].body  # the body the span must not carry
    [span] = otel.finished("outreach.send")
    assert span.kind is SpanKind.CLIENT
    [attempt] = (await ox.get(n.id)).attempts
    assert dict(span.attributes or {}) == {
        "outreach.channel": "sms",
        "outreach.provider": "memory-sms",
        "outreach.attempt.id": attempt.id,
        "outreach.outcome": "sent",
        "outreach.tries": 1,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.end_time is not None
    assert span.start_time is not None
    assert span.end_time >= span.start_time  # its duration is the send's latency
    _no_personal_data(span)

    sms.fail_next(error=PermanentDeliveryError("sms: Twilio refused the request (HTTP 400)"))
    await ox.start(PAX.model_copy(update={"id": "pax-18"}), PLAN, context={"flight": FLIGHT})
    await ox.run_due()
    failed = next(s for s in otel.finished("outreach.send") if s is not span)
    assert failed.attributes is not None
    assert failed.attributes["outreach.outcome"] == "permanent"
    assert failed.attributes["outreach.error.code"] == "HTTP 400"
    assert failed.status.status_code is StatusCode.ERROR
    _no_personal_data(failed)


async def test_sends_are_counted_and_timed_by_channel_and_outcome(
    ox: AsyncClient, otel: Otel, sms: InMemoryChannel, clock: FakeClock
) -> None:
    sms.fail_next(permanent=True)
    await ox.start(PAX, PLAN, context={"flight": FLIGHT})  # sms fails, email goes at once
    await ox.start(PAX.model_copy(update={"id": "pax-18"}), PLAN, context={"flight": FLIGHT})
    await ox.run_due()
    sends = otel.counts("outreach.sends")
    base = (("outreach.channel", "sms"), ("outreach.outcome", "permanent"))
    assert sends == {
        (*base, ("outreach.provider", "memory-sms")): 1,
        (
            ("outreach.channel", "sms"),
            ("outreach.outcome", "sent"),
            ("outreach.provider", "memory-sms"),
        ): 1,
        (
            ("outreach.channel", "email"),
            ("outreach.outcome", "sent"),
            ("outreach.provider", "memory-email"),
        ): 1,
    }
    durations = otel.points("outreach.send.duration")
    assert sorted(p.count for _, p in durations) == [1, 1, 1]


async def test_acknowledgements_time_to_acknowledge_and_statuses(
    ox: AsyncClient, otel: Otel, clock: FakeClock
) -> None:
    first = await ox.start(PAX, PLAN, context={"flight": FLIGHT})
    second = await ox.start(
        PAX.model_copy(update={"id": "pax-18"}), PLAN, context={"flight": FLIGHT}
    )
    await ox.run_due()
    clock.advance("5m")
    await ox.acknowledge(first.id, via="api")
    clock.advance("55m")
    await ox.cancel(second.id)
    assert otel.counts("outreach.acknowledgements") == {(("outreach.channel", "api"),): 1}
    [(attrs, waited)] = otel.points("outreach.time_to_acknowledge")
    assert attrs == {"outreach.channel": "api"}
    assert (waited.count, waited.sum) == (1, 300.0)  # virtual minutes, from start to answer
    assert otel.counts("outreach.notifications") == {
        (("outreach.status", "active"),): 2,
        (("outreach.status", "acknowledged"),): 1,
        (("outreach.status", "cancelled"),): 1,
    }


async def test_an_acknowledgement_by_reply_counts_for_the_channel_replied_on(
    ox: AsyncClient, otel: Otel, clock: FakeClock
) -> None:
    n = await ox.start(PAX, PLAN, context={"flight": FLIGHT})
    await ox.run_due()
    [attempt] = (await ox.get(n.id)).attempts
    clock.advance("2m")
    await ox.acknowledge(n.id, via="sms", attempt_id=attempt.id)
    assert otel.counts("outreach.acknowledgements") == {(("outreach.channel", "sms"),): 1}
    [(_, waited)] = otel.points("outreach.time_to_acknowledge")
    assert waited.sum == 120.0


async def test_a_customer_never_reached_counts_as_attention_opened(
    ox: AsyncClient, otel: Otel, clock: FakeClock
) -> None:
    await ox.start(PAX, PLAN, context={"flight": FLIGHT})
    for _ in range(10):
        await ox.run_due()
        clock.advance("1h")
    assert otel.counts("outreach.attention.opened") == {(("outreach.reason", "unreached"),): 1}


def test_attention_and_alert_counters(otel: Otel, clock: FakeClock) -> None:
    otel.telemetry.attention_opened("exhausted")
    otel.telemetry.attention_opened("exhausted")
    raised = ChannelAlert("sms", "Twilio 30034", 0.6, 12, 20, clock.now())
    otel.telemetry.channel_alert(raised)
    otel.telemetry.channel_alert(ChannelAlert("sms", "Twilio 30034", 0.1, 2, 20, clock.now(), True))
    assert otel.counts("outreach.attention.opened") == {(("outreach.reason", "exhausted"),): 2}
    assert otel.counts("outreach.channel.alerts") == {
        (("outreach.channel", "sms"), ("outreach.code", "Twilio 30034")): 1
    }


# -- webhooks ---------------------------------------------------------------------------------


async def test_each_webhook_request_is_a_server_span_named_by_its_route(
    ox: AsyncClient, otel: Otel
) -> None:
    settings = Settings(public_url="https://hooks.example", twilio_auth_token="token")
    web = create_app(ox, settings=settings, sendgrid=False)
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="https://hooks.example") as http:
        assert (await http.get("/healthz")).status_code == 200
        unsigned = await http.post("/twilio/status", data={"MessageSid": "SM1", "To": PHONE})
        assert unsigned.status_code == 403
        page = await http.get("/ack/not-a-real-token-123")
        assert page.status_code >= 400
        assert (await http.get(f"/no/such/{PHONE}")).status_code == 404
    spans = {s.name: s for s in otel.finished()}
    assert set(spans) == {
        "GET /healthz",
        "POST /twilio/status",
        "GET /ack/{token}",
        "GET unmatched",
    }
    refused = spans["POST /twilio/status"]
    assert refused.kind is SpanKind.SERVER
    assert dict(refused.attributes or {}) == {
        "http.request.method": "POST",
        "http.route": "/twilio/status",
        "http.response.status_code": 403,
    }
    for span in spans.values():
        _no_personal_data(span)
        assert "not-a-real-token" not in span.to_json()
    counted = otel.counts("outreach.webhook.requests")
    assert sum(counted.values()) == 4


# -- Prometheus -------------------------------------------------------------------------------


async def test_the_metrics_route_serves_prometheus_text(
    sms: InMemoryChannel, clock: FakeClock, templates_dir: Path
) -> None:
    provider, route = prometheus_metrics()
    try:
        client = AsyncClient(
            store="memory://",
            channels={"sms": sms, "email": InMemoryChannel()},
            templates=templates_dir,
            clock=clock,
            telemetry=Telemetry(meter_provider=provider),
        )
        async with client as ox:
            await ox.start(PAX, PLAN, context={"flight": FLIGHT})
            await ox.run_due()
        transport = httpx.ASGITransport(app=Starlette(routes=[route]))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            answer = await http.get("/metrics")
    finally:
        provider.shutdown()
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    sends = [line for line in answer.text.splitlines() if line.startswith("outreach_sends_total{")]
    [line] = sends
    assert 'outreach_channel="sms"' in line
    assert 'outreach_outcome="sent"' in line
    assert line.endswith(" 1.0")
    assert "outreach_send_duration_seconds_count{" in answer.text
    assert PHONE not in answer.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.integration
async def test_serve_with_metrics_and_json_logs(tmp_path: Path) -> None:
    """``outreach serve --metrics --log-format json`` in a real process: /metrics answers in
    Prometheus' format and every line on standard error is a JSON object."""
    port = _free_port()
    env = {
        **os.environ,
        "OUTREACH_STORE": f"sqlite:///{tmp_path / 'outreach.db'}",
        "OUTREACH_SECRET_KEY": "k" * 32,
    }
    stderr_path = tmp_path / "serve.stderr"
    outreach = Path(sys.executable).parent / "outreach"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [
                *(str(outreach), "serve", "--insecure-dev", "--metrics", "--port", str(port)),
                *("--log-format", "json", "--log-level", "debug"),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                deadline = time.monotonic() + 60
                while True:
                    assert process.poll() is None, stderr_path.read_text()
                    try:
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        assert time.monotonic() < deadline, stderr_path.read_text()
                        await asyncio.sleep(0.05)
                scraped = await http.get("/metrics")
        finally:
            process.terminate()
            process.wait(timeout=60)
    assert scraped.status_code == 200
    assert 'outreach_webhook_requests_total{http_request_method="GET"' in scraped.text
    lines = stderr_path.read_text().splitlines()
    assert lines
    entries = [json.loads(line) for line in lines]  # every line is JSON, uvicorn's too
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    loggers = {e["logger"] for e in entries}
    assert "outreach.webhooks" in loggers  # the insecure-dev warning
    assert any(name.startswith("uvicorn") for name in loggers)


# -- logging options --------------------------------------------------------------------------


def test_json_lines_carry_time_level_logger_message_and_traceback() -> None:
    record = logging.LogRecord("outreach.runner", logging.ERROR, __file__, 1, "x %s", ("y",), None)
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonLines().format(record))
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "outreach.runner"
    assert entry["message"] == "x y"
    assert entry["time"].endswith("+00:00")
    assert "ValueError: boom" in entry["exception"]


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_the_long_running_commands_take_log_options(command: str) -> None:
    help_text = CliRunner().invoke(cli, [command, "--help"], terminal_width=200).output
    assert "--log-level" in help_text
    assert "--log-format" in help_text
    refused = CliRunner().invoke(cli, [command, "--log-level", "loud"])
    assert refused.exit_code == 2
    assert "loud" in refused.output


# -- without the otel extra -------------------------------------------------------------------


def test_the_library_works_without_opentelemetry(tmp_path: Path) -> None:
    """With every ``opentelemetry`` import failing, a client still sends, and asking for
    telemetry or metrics says which extra to install."""
    script = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # import opentelemetry... now raises ImportError
from outreach import AsyncClient, Plan, Recipient, Step, Telemetry
from outreach.exceptions import ConfigurationError
from outreach.telemetry import prometheus_metrics
from outreach.testing import FakeClock, InMemoryChannel

async def main():
    sms = InMemoryChannel(name="sms")
    plan = Plan(name="p", steps=[Step(channel="sms", template="flight_cancelled")])
    async with AsyncClient(store="memory://", channels={"sms": sms}, templates=sys.argv[1],
                           clock=FakeClock("2026-11-23T14:00:00+00:00")) as ox:
        await ox.start(Recipient(id="r", phone="+16175550123"), plan, context={"flight": "x"})
        await ox.run_due()
    assert len(sms.outbox) == 1 and not Telemetry().enabled
    for attempt in (lambda: Telemetry(meter_provider=object()), prometheus_metrics):
        try:
            attempt()
        except ConfigurationError as error:
            assert "outreach[otel]" in str(error), error
        else:
            raise AssertionError("no error")
    print("ok")

asyncio.run(main())
"""
    templates = Path(__file__).parent.parent / "templates"
    env = {**os.environ, "OUTREACH_SECRET_KEY": "test-secret"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(templates)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_public_telemetry_module() -> None:
    import outreach.telemetry

    assert outreach.telemetry.__all__ == ["Telemetry", "prometheus_metrics"]
    assert outreach.telemetry.Telemetry is Telemetry


class _RefusingTracer:
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a span was built with no tracer configured")


def test_with_the_api_no_op_providers_a_send_builds_no_span() -> None:
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    silent = Telemetry(tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
    silent._tracer = _RefusingTracer()  # type: ignore[assignment]
    with silent.send("sms", "memory-sms", "attempt-1") as record:
        record.outcome = "sent"
    assert record.outcome == "sent"


def test_a_tracer_given_without_a_meter_still_gets_each_send_span() -> None:
    spans = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(spans))
    try:
        with Telemetry(tracer_provider=tracers).send("sms", "memory-sms", "a-1") as record:
            record.outcome = "sent"
    finally:
        tracers.shutdown()
    [span] = spans.get_finished_spans()
    assert span.name == "outreach.send"
    assert (span.attributes or {})["outreach.outcome"] == "sent"
