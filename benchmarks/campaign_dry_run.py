"""``outreach send --dry-run`` on a generated list: rows checked per second and peak memory.

    python benchmarks/campaign_dry_run.py [ROWS]

Every row is validated (phone, email, time zone, locale) and every message of the demo plan
(SMS, email, voice, the refund follow-up) rendered with the repository's templates, as the
command does; nothing is stored (the store file must not appear).
"""

from __future__ import annotations

import csv
import resource
import sys
import tempfile
import time
from pathlib import Path

from outreach import AsyncClient
from outreach.campaigns import read_recipients, validate_campaign
from outreach.demo import demo_plan
from outreach.testing import InMemoryChannel

ROOT = Path(__file__).resolve().parent.parent


def main(rows: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pax.csv"
        with path.open("w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["id", "phone", "email", "timezone", "locale", "gate"])
            for i in range(rows):
                out.writerow(
                    [
                        f"pax-{i}",
                        f"+1617555{i % 10_000:04d}",
                        f"p{i}@example.com",
                        "America/New_York",
                        "fr" if i % 10 == 0 else "en",
                        "B12",
                    ]
                )
        client = AsyncClient(
            store=f"sqlite:///{folder}/never.db",
            channels={n: InMemoryChannel(name=n) for n in ("sms", "email", "voice")},
            templates=ROOT / "templates",
        )
        began = time.perf_counter()
        good, errors = read_recipients(path, key_prefix="bench")
        read = time.perf_counter()
        check = validate_campaign(client, demo_plan(), good, context={"flight": "9K 1042"})
        done = time.perf_counter()
        assert not (Path(folder) / "never.db").exists()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{rows:,} rows: read {rows / (read - began):,.0f} rows/s, validated and rendered "
        f"{rows / (done - read):,.0f} rows/s, overall {rows / (done - began):,.0f} rows/s; "
        f"{len(check.rows):,} valid, {len(errors) + len(check.errors)} invalid; "
        f"peak RSS {peak_mb:,.0f} MB"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
