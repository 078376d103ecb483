"""What the instrumentation costs per send: the span, the counters and the histogram.

Run by hand (it is not a test)::

    .venv/bin/python benchmarks/telemetry.py              # N = 20,000 sends, best of 3
    .venv/bin/python benchmarks/telemetry.py -n 2000

Three set-ups of :class:`outreach.Telemetry` around an empty send: ``disabled`` (what an
install without the ``otel`` extra pays), ``api`` (the extra installed, no SDK configured: the
OpenTelemetry API's no-op providers) and ``sdk`` (an SDK tracer provider without exporter and
a meter provider with an in-memory reader: what recording costs, export aside). Reported: CPU
time per send, best of ``--repeat`` runs (this machine is noisy).
"""

from __future__ import annotations

import argparse
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from outreach import Telemetry


def per_send(telemetry: Telemetry, count: int) -> float:
    """CPU seconds per instrumented send."""
    started = time.process_time()
    for number in range(count):
        with telemetry.send("sms", "twilio-sms", f"attempt-{number}") as record:
            record.outcome, record.tries = "queued", 1
    return (time.process_time() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--sends", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    disabled = Telemetry()
    disabled.enabled = False
    setups = {
        "disabled": disabled,
        "api": Telemetry(),
        "sdk": Telemetry(
            tracer_provider=TracerProvider(),
            meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
        ),
    }
    for name, telemetry in setups.items():
        best = min(per_send(telemetry, options.sends) for _ in range(options.repeat))
        print(f"{name:>8}: {best * 1e6:7.1f} µs CPU per send ({options.sends} sends)")


if __name__ == "__main__":
    main()
