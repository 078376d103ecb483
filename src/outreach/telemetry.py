"""OpenTelemetry for outreach (``pip install 'outreach[otel]'``): the client's instruments and
a Prometheus scrape route for your own ASGI app::

    provider, route = prometheus_metrics()
    client = AsyncClient(..., telemetry=Telemetry(meter_provider=provider))
    app = Starlette(routes=[route, Mount("/hooks", create_app(client))])

``outreach serve --metrics`` does the same for the webhooks app it serves.
"""

from __future__ import annotations

from outreach._telemetry import Telemetry, prometheus_metrics

__all__ = ["Telemetry", "prometheus_metrics"]
