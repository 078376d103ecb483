"""Real ``outreach worker`` processes for the tests that start them: each runs
``process_app:make_client`` (this folder on ``PYTHONPATH``), logging to one shared file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

OUTREACH = Path(sys.executable).with_name("outreach")
TESTS = Path(__file__).parent


@dataclass
class Worker:
    """One ``outreach worker`` process; its standard error goes to a file."""

    process: subprocess.Popen[bytes]
    stderr_path: Path
    stderr_file: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"worker {self.pid} exited with {self.process.returncode}:\n{self.stderr()}"
            )

    async def exit_code(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.pid} did not exit:\n{self.stderr()}")
            await asyncio.sleep(0.02)
        return self.process.returncode

    def kill(self, timeout: float = 120.0) -> None:
        """``kill -9``, and reap it."""
        os.kill(self.pid, signal.SIGKILL)
        assert self.process.wait(timeout=timeout) == -signal.SIGKILL


def spawn_worker(
    *,
    store: str,
    secret: str,
    templates: Path,
    log: Path,
    stderr_path: Path,
    settings: Mapping[str, str],
) -> Worker:
    """Start ``outreach worker`` on ``store`` with ``PROCESS_APP_<NAME>`` ``settings``."""
    env = {
        **os.environ,
        "OUTREACH_STORE": store,
        "OUTREACH_SECRET_KEY": secret,
        "OUTREACH_TEMPLATES": str(templates),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
        "PROCESS_APP_LOG": str(log),
        **{f"PROCESS_APP_{name.upper()}": value for name, value in settings.items()},
    }
    stderr_file = stderr_path.open("wb")
    process = subprocess.Popen(
        [str(OUTREACH), "worker", "--app", "process_app:make_client"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr_file,
    )
    return Worker(process, stderr_path, stderr_file)
