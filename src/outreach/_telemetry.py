"""Spans and metrics through the OpenTelemetry API (``pip install 'outreach[otel]'``).

Without the ``otel`` extra every call here does nothing. With it, and no SDK configured by
the application, the OpenTelemetry API's own no-op providers apply; once the application sets
its tracer and meter providers (or passes them to :class:`Telemetry`), the spans and metrics
flow to whatever exporters it chose. No span or metric carries a phone number, an email
address or a message body: channels, providers, outcomes, error codes and ids only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from outreach._alerts import ChannelAlert
from outreach._models import Event, EventKind, Notification
from outreach.exceptions import ConfigurationError

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace

    HAVE_OTEL = True
except ImportError:  # pragma: no cover - exercised by a test in a subprocess
    HAVE_OTEL = False

# What the API hands out while the application has set nothing: every span and metric through
# these is dropped, so a send skips building them.
_SILENT_TRACERS: tuple[type, ...] = ()
_SILENT_METERS: tuple[type, ...] = ()
if HAVE_OTEL:
    _SILENT_TRACERS = (otel_trace.ProxyTracerProvider, otel_trace.NoOpTracerProvider)
    _SILENT_METERS = (otel_metrics.NoOpMeterProvider,)
    try:  # the global provider's stand-in is private to the API: without it, never silent
        from opentelemetry.metrics._internal import _ProxyMeterProvider

        _SILENT_METERS += (_ProxyMeterProvider,)
    except ImportError:  # pragma: no cover - an API release that moved it
        pass

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.trace import Span, TracerProvider

SCOPE = "outreach"
"""The instrumentation scope (tracer and meter name)."""
_ACK_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 259200.0)
_STATUS_OF = {
    EventKind.ACTIVATED: "active",
    EventKind.ACKNOWLEDGED: "acknowledged",
    EventKind.DELIVERED: "delivered",
    EventKind.ENGAGED: "engaged",
    EventKind.EXHAUSTED: "exhausted",
    EventKind.EXPIRED: "expired",
    EventKind.FAILED: "failed",
    EventKind.CANCELLED: "cancelled",
}


@dataclass
class WebhookRecord:
    """The route template a webhook request matched, and the status it was answered with."""

    route: str = "unmatched"
    status: int = 500


@dataclass
class SendRecord:
    """What the runner learns about one send, for its span and metrics."""

    outcome: str = "interrupted"
    """The receipt's status (``queued``, ``sent``, ``unknown``) or the failure (``permanent``,
    ``transient``, ``rate_limited``, ``unavailable``, ``opted_out``); ``interrupted`` when the
    send was cancelled (a stop) before either was known."""
    error_code: str | None = None
    tries: int = 0


class Telemetry:
    """The library's instruments. ``tracer_provider``/``meter_provider`` default to the
    global ones OpenTelemetry's API hands out (set by the application, or no-ops)."""

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.enabled = HAVE_OTEL
        if not HAVE_OTEL:
            if tracer_provider is not None or meter_provider is not None:
                raise ConfigurationError(
                    "Telemetry(tracer_provider=..., meter_provider=...) needs OpenTelemetry: "
                    "pip install 'outreach[otel]'"
                )
            return
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        release = version("outreach")
        self._tracer = otel_trace.get_tracer(SCOPE, release, tracer_provider=tracer_provider)
        meter = otel_metrics.get_meter(SCOPE, release, meter_provider=meter_provider)
        self._sends = meter.create_counter(
            "outreach.sends", "{send}", "Sends handed to a provider, by channel and outcome."
        )
        self._send_duration = meter.create_histogram(
            "outreach.send.duration", "s", "How long a send took, retries included."
        )
        self._acks = meter.create_counter(
            "outreach.acknowledgements", "{acknowledgement}", "Acknowledgements, by channel."
        )
        self._time_to_ack = meter.create_histogram(
            "outreach.time_to_acknowledge",
            "s",
            "From a notification's start to its acknowledgement, by channel.",
            explicit_bucket_boundaries_advisory=_ACK_BUCKETS,
        )
        self._notifications = meter.create_counter(
            "outreach.notifications", "{notification}", "Notifications reaching each status."
        )
        self._attention = meter.create_counter(
            "outreach.attention.opened", "{attention}", "Attention records opened, by reason."
        )
        self._alerts = meter.create_counter(
            "outreach.channel.alerts", "{alert}", "Failure spikes raised, by channel and code."
        )
        self._webhooks = meter.create_counter(
            "outreach.webhook.requests", "{request}", "Webhook requests, by route and status."
        )

    @contextlib.contextmanager
    def send(self, channel: str, provider: str, attempt_id: str) -> Iterator[SendRecord]:
        """A span around one send (retries included); fill in the yielded record."""
        record = SendRecord()
        if not self.enabled or self._silent():
            yield record
            return
        started = time.perf_counter()  # a duration, not a time of day: no clock read
        attributes = {"outreach.channel": channel, "outreach.provider": provider}
        with self._tracer.start_as_current_span(
            "outreach.send",
            kind=otel_trace.SpanKind.CLIENT,
            attributes={**attributes, "outreach.attempt.id": attempt_id},
        ) as span:
            try:
                yield record
            finally:
                _finish_send(span, record)
                measured = {**attributes, "outreach.outcome": record.outcome}
                self._sends.add(1, measured)
                self._send_duration.record(time.perf_counter() - started, measured)

    def _silent(self) -> bool:
        """Whether spans and metrics go nowhere: the providers (given, else the global ones,
        looked up now: the application may set them later) are the API's no-ops."""
        tracers = self._tracer_provider or otel_trace.get_tracer_provider()
        meters = self._meter_provider or otel_metrics.get_meter_provider()
        return isinstance(tracers, _SILENT_TRACERS) and isinstance(meters, _SILENT_METERS)

    def observe(self, notification: Notification, events: Sequence[Event]) -> None:
        """Count what ``events`` (just committed for ``notification``) report."""
        if not self.enabled:
            return
        for event in events:
            status = _STATUS_OF.get(event.kind)
            if status is not None:
                self._notifications.add(1, {"outreach.status": status})
            if event.kind is EventKind.ACKNOWLEDGED:
                attempt = notification.attempt(event.attempt_id or "")
                channel = attempt.channel if attempt else str(event.data.get("via") or "api")
                self._acks.add(1, {"outreach.channel": channel})
                waited = (event.at - notification.created_at).total_seconds()
                self._time_to_ack.record(max(waited, 0.0), {"outreach.channel": channel})
            elif event.kind is EventKind.ATTENTION_OPENED:
                self.attention_opened(str(event.data["reason"]))

    def attention_opened(self, reason: str) -> None:
        """An Attention record was opened (call it after commit)."""
        if self.enabled:
            self._attention.add(1, {"outreach.reason": reason})

    def channel_alert(self, alert: ChannelAlert) -> None:
        """A failure spike was raised (cleared ones are not counted)."""
        if self.enabled and not alert.cleared:
            self._alerts.add(1, {"outreach.channel": alert.channel, "outreach.code": alert.code})

    @contextlib.contextmanager
    def webhook(self, method: str) -> Iterator[WebhookRecord]:
        """A server span around one webhook request; fill in the yielded record."""
        record = WebhookRecord()
        if not self.enabled:
            yield record
            return
        with self._tracer.start_as_current_span(
            f"{method} webhook", kind=otel_trace.SpanKind.SERVER
        ) as span:
            try:
                yield record
            finally:
                attributes: dict[str, str | int] = {
                    "http.request.method": method,
                    "http.route": record.route,
                    "http.response.status_code": record.status,
                }
                span.update_name(f"{method} {record.route}")
                span.set_attributes(attributes)
                if record.status >= 500:
                    span.set_status(otel_trace.StatusCode.ERROR)
                self._webhooks.add(1, attributes)


def _finish_send(span: Span, record: SendRecord) -> None:
    span.set_attribute("outreach.outcome", record.outcome)
    span.set_attribute("outreach.tries", record.tries)
    if record.error_code is not None:
        span.set_attribute("outreach.error.code", record.error_code)
        span.set_status(otel_trace.StatusCode.ERROR, record.error_code)


class WebhookSpans:
    """ASGI middleware: a server span and a count per webhook request, named by its route
    template (``/twilio/voice/{attempt_id}``, never the ids or tokens in the path)."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.telemetry.enabled:
            await self.app(scope, receive, send)
            return
        with self.telemetry.webhook(scope["method"]) as record:

            async def watched(message: Message) -> None:
                if message["type"] == "http.response.start":
                    record.status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, watched)
            finally:
                record.route = getattr(scope.get("route"), "path", None) or "unmatched"


def prometheus_metrics() -> tuple[SdkMeterProvider, Route]:
    """A meter provider whose metrics a ``GET /metrics`` route serves in Prometheus' text
    format (its own registry: nothing global is touched)."""
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    except ImportError as error:
        raise ConfigurationError(
            f"metrics need the otel extra ({error.name} is missing): pip install 'outreach[otel]'"
        ) from None
    registry = CollectorRegistry()
    provider = SdkMeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])

    async def scrape(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return provider, Route("/metrics", scrape, methods=["GET"])


def install_prometheus() -> Route:
    """Make a meter provider exporting to Prometheus the global one (``outreach serve
    --metrics``); the ``GET /metrics`` route that serves it."""
    provider, route = prometheus_metrics()
    otel_metrics.set_meter_provider(provider)
    return route
