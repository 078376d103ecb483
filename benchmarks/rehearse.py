"""``outreach rehearse`` of a generated cohort: wall time, CPU time and peak memory.

    python benchmarks/rehearse.py [RECIPIENTS]     # default 10,000

The demo's 3-step plan (SMS, email, call) over 24 virtual hours, on the sandbox (the real
adapters and webhooks, handed each other's requests in process, the provider simulator, an
in-memory store), with the example mix of personas in ``examples/rehearse_mix.toml``. Target
at 10,000 recipients: under 2 minutes of wall time on a quiet machine.

It also says how many notifications the runner claimed per recipient: a figure that grows
with the cohort means sends are deferred and claimed again and again (a paced burst longer
than the pacing horizon), the work that grows faster than the cohort.
"""

from __future__ import annotations

import asyncio
import csv
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from outreach.campaigns import read_recipients
from outreach.demo import demo_plan
from outreach.rehearsal import load_mix, rehearse
from outreach.stores import Claimed
from outreach.stores.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent


def count_claims() -> list[int]:
    """Count the notifications every claim of the (in-memory SQLite) store hands out."""
    claimed = [0]
    claim_due = SQLiteStore.claim_due

    async def counted(self: SQLiteStore, *args: Any, **options: Any) -> Claimed:
        batch = await claim_due(self, *args, **options)
        claimed[0] += len(batch)
        return batch

    SQLiteStore.claim_due = counted  # type: ignore[method-assign]
    return claimed


def main(recipients: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pax.csv"
        with path.open("w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["id", "phone", "email", "timezone"])
            for i in range(recipients):
                phone = f"+1617{2_000_000 + i:07d}"
                out.writerow([f"pax-{i}", phone, f"p{i}@example.com", "America/New_York"])
        rows, errors = read_recipients(path, key_prefix="bench")
    assert not errors, errors[:3]
    mix = load_mix(ROOT / "examples" / "rehearse_mix.toml")
    claimed = count_claims()
    wall, cpu = time.perf_counter(), time.process_time()
    result = asyncio.run(
        rehearse(
            demo_plan(), rows, mix, templates=ROOT / "templates", context={"flight": "9K 1042"}
        )
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reach = ", ".join(f"{k} {v:.1%}" for k, v in result.reach.items())
    print(
        f"{recipients:,} recipients, 24 virtual hours: {wall:,.1f} s wall, {cpu:,.1f} s CPU, "
        f"peak RSS {peak_mb:,.0f} MB; reached by {reach}; sent {result.messages}; "
        f"{claimed[0] / recipients:.1f} claims per recipient"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
