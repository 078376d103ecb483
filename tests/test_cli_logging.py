"""The long-running commands configure logging once: one handler of ours on the ``outreach``
logger however often they start in a process, and the host's configuration left alone."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach.cli import app
from outreach.cli._logging import LogFormat, LogLevel, StderrHandler, log_to_stderr

OURS = ("outreach", "uvicorn")


@pytest.fixture(autouse=True)
def _fresh_loggers() -> None:
    """Each test starts from loggers without handlers (conftest gives the real ones back)."""
    for name in OURS:
        logging.getLogger(name).handlers = []


@contextlib.contextmanager
def unconfigured_root() -> Iterator[list[logging.Handler]]:
    """A process whose root logger nobody configured: pytest's own handlers (added as each
    test phase starts, after the fixtures) set aside within the block."""
    root = logging.getLogger()
    saved, root.handlers = root.handlers, []
    try:
        yield root.handlers
    finally:
        root.handlers = saved


def _ours(name: str) -> list[logging.Handler]:
    return [h for h in logging.getLogger(name).handlers if isinstance(h, StderrHandler)]


def test_starting_again_replaces_our_handler_instead_of_adding_one() -> None:
    with unconfigured_root() as root:
        log_to_stderr(LogLevel.INFO, LogFormat.TEXT)
        first = _ours("outreach")
        log_to_stderr(LogLevel.DEBUG, LogFormat.JSON)
        log_to_stderr(LogLevel.DEBUG, LogFormat.JSON)
        assert root == []  # the root logger is never touched
    assert len(first) == 1
    assert len(_ours("outreach")) == 1
    assert _ours("outreach") != first
    assert logging.getLogger("outreach").level == logging.DEBUG


def test_the_handler_writes_to_stderr_as_it_is_now(capsys: pytest.CaptureFixture[str]) -> None:
    with unconfigured_root():
        log_to_stderr(LogLevel.INFO, LogFormat.JSON)
        capsys.readouterr()  # a new capture: the stream the handler was made under is gone
        logging.getLogger("outreach.runner").info("notification %s acknowledged", "n1")
        logging.getLogger("outreach.runner").debug("below the level")
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["notification n1 acknowledged"]


def test_each_record_is_written_once_even_if_the_host_configures_the_root_later(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with unconfigured_root() as root:
        log_to_stderr(LogLevel.INFO, LogFormat.TEXT)
        root.append(logging.StreamHandler())  # the host's basicConfig, after ours
        logging.getLogger("outreach.cli").info("worker running")
    assert capsys.readouterr().err.count("worker running") == 1


def test_a_host_that_configured_the_root_logger_keeps_it() -> None:
    heard: list[str] = []
    host = logging.Handler()
    host.emit = lambda record: heard.append(record.getMessage())  # type: ignore[method-assign]
    with unconfigured_root() as root:
        root.append(host)  # the host's configuration
        log_to_stderr(LogLevel.DEBUG, LogFormat.JSON, loggers=OURS)
        logging.getLogger("outreach.runner").debug("claimed 3")
        assert root == [host]
    assert _ours("outreach") == []
    assert _ours("uvicorn") == []
    assert heard == ["claimed 3"]  # at the level asked for, through the host's handler


def test_a_host_configuring_after_us_gets_our_handler_removed_on_the_next_start() -> None:
    with unconfigured_root() as root:
        log_to_stderr(LogLevel.INFO, LogFormat.TEXT)
        root.append(logging.NullHandler())
        log_to_stderr(LogLevel.INFO, LogFormat.TEXT)
    assert _ours("outreach") == []
    assert logging.getLogger("outreach").propagate


def test_an_app_factory_that_configures_logging_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``outreach worker --app host:make`` whose factory sets up the host's logging: the
    command steps back once the client is built, so no record is written twice."""
    (tmp_path / "host_app.py").write_text(
        "import logging\n"
        "from outreach import AsyncClient\n"
        "HOST = logging.NullHandler()\n"
        "def make():\n"
        "    logging.getLogger().addHandler(HOST)\n"
        "    return AsyncClient(store='memory://', channels={})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("OUTREACH_SECRET_KEY")  # the worker refuses to go on: it stops there
    with unconfigured_root() as root:
        result = CliRunner().invoke(app, ["worker", "--app", "host_app:make"])
        host = list(root)
    assert result.exit_code == 2, result.output
    assert [type(h).__name__ for h in host] == ["NullHandler"]
    assert _ours("outreach") == []
    assert logging.getLogger("outreach").propagate
