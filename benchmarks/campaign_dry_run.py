"""``outreach send --dry-run`` on a generated list: rows checked per second and peak memory.

    python benchmarks/campaign_dry_run.py [ROWS]            # both ways, one after the other
    python benchmarks/campaign_dry_run.py ROWS stream|list  # one way, in this process

Every row is validated (phone, email, time zone, locale) and every message of the demo plan
(SMS, email, voice, the refund follow-up) rendered with the repository's templates, as the
command does; nothing is stored (the store file must not appear). ``stream`` is what the
command does now (:func:`iter_recipients` into :func:`validate_campaign` with
``keep_rows=False``: one record in memory at a time); ``list`` is what it did before (every
row read into a list, then checked, and kept). Each way runs in a process of its own, so each
peak RSS is its own. Rates are given per second of wall time and of CPU time: on a shared
machine the CPU rate is the one to compare.
"""

from __future__ import annotations

import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from outreach import AsyncClient
from outreach.campaigns import iter_recipients, read_recipients, validate_campaign
from outreach.demo import demo_plan
from outreach.testing import InMemoryChannel

ROOT = Path(__file__).resolve().parent.parent


def _write(path: Path, rows: int) -> None:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "phone", "email", "timezone", "locale", "gate"])
        for i in range(rows):
            out.writerow(
                [
                    f"pax-{i}",
                    f"+1617{2_000_000 + i % 8_000_000:07d}",
                    f"p{i}@example.com",
                    "America/New_York",
                    "fr" if i % 10 == 0 else "en",
                    "B12",
                ]
            )


def one_way(rows: int, way: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pax.csv"
        _write(path, rows)
        client = AsyncClient(
            store=f"sqlite:///{folder}/never.db",
            channels={n: InMemoryChannel(name=n) for n in ("sms", "email", "voice")},
            templates=ROOT / "templates",
        )
        wall, cpu = time.perf_counter(), time.process_time()
        if way == "stream":
            records = iter_recipients(path, key_prefix="bench")
            check = validate_campaign(
                client, demo_plan(), records, context={"flight": "9K 1042"}, keep_rows=False
            )
        else:
            good, errors = read_recipients(path, key_prefix="bench")
            check = validate_campaign(
                client, demo_plan(), good, context={"flight": "9K 1042"}, errors=errors
            )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert not (Path(folder) / "never.db").exists()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{way:>6}: {rows:,} rows, {rows / wall:,.0f} rows/s wall, {rows / cpu:,.0f} rows/s CPU; "
        f"{check.valid:,} valid, {len(check.errors)} invalid; peak RSS {peak_mb:,.0f} MB",
        flush=True,
    )


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    if len(sys.argv) > 2:
        one_way(rows, sys.argv[2])
        return
    env = {**os.environ, "OUTREACH_SECRET_KEY": "benchmark-only-" + "x" * 32}
    for way in ("list", "stream"):
        subprocess.run([sys.executable, __file__, str(rows), way], check=True, env=env)


if __name__ == "__main__":
    main()
