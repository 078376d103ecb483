"""How the long-running commands log: ``outreach`` (and uvicorn's) records on standard error,
as text or JSON lines, configured once however often a command starts in one process."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


LogLevelOption = Annotated[
    LogLevel, typer.Option("--log-level", help="Log this level and up.", case_sensitive=False)
]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option("--log-format", help="text, or json: one object a line.", case_sensitive=False),
]

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours, so the next configuration replaces it; it writes to ``sys.stderr`` as it is when
    a record comes (a test's captured stream, closed since, is never written to)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # under the handler's lock
        super().emit(record)


def log_to_stderr(
    level: LogLevel = LogLevel.INFO,
    fmt: LogFormat = LogFormat.TEXT,
    *,
    loggers: Sequence[str] = ("outreach",),
) -> None:
    """Log ``loggers`` (``level`` and up) on standard error, as text or JSON lines.

    Idempotent: a handler of ours from an earlier call is replaced, never joined by a second.
    The root logger is never touched: when the host application configured it (it has
    handlers), records go to the host's handlers only, at ``level``, and none of ours is added.
    """
    host_configured = bool(logging.getLogger().handlers)
    for name in loggers:
        logger = logging.getLogger(name)
        logger.setLevel(level.upper())
        for ours in [h for h in logger.handlers if isinstance(h, StderrHandler)]:
            logger.removeHandler(ours)
            ours.close()
        logger.propagate = host_configured  # one way out for every record, never two
        if not host_configured:
            handler = StderrHandler()
            handler.setFormatter(JsonLines() if fmt is LogFormat.JSON else logging.Formatter(TEXT))
            logger.addHandler(handler)
