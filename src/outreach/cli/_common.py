"""What the commands share: building a client, options, errors, signals."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import signal
import sys
import tomllib
import traceback
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from outreach._client import AsyncClient
from outreach._factory import load_client
from outreach._settings import Settings
from outreach.exceptions import (
    ConfigurationError,
    IdempotencyConflict,
    InvalidRecipient,
    OutreachError,
    TemplateError,
)
from outreach.stores import OpensExisting

T = TypeVar("T")


AppOption = Annotated[
    str | None,
    typer.Option("--app", help="module:factory returning an AsyncClient (default: from settings)."),
]


def console(*, stderr: bool = False) -> Console:
    """Where commands print: colour only on a terminal and without ``NO_COLOR`` (rich's
    rules), no highlighting of numbers or paths in what we print."""
    return Console(stderr=stderr, highlight=False, emoji=False, soft_wrap=True)


DEBUG: contextvars.ContextVar[bool] = contextvars.ContextVar("outreach_cli_debug", default=False)
"""Set from ``--debug`` for each command line (expected errors then show their trace)."""


def error_line(message: str) -> None:
    """``error: message`` on standard error, the message never read as markup; with
    ``--debug``, the trace of the exception being handled first."""
    err = console(stderr=True)
    if DEBUG.get() and sys.exc_info()[1] is not None:
        err.print(traceback.format_exc(), markup=False, end="")
    err.print(Text.assemble(("error:", "red"), " ", message))


def fail(message: str) -> NoReturn:
    """A configuration problem: one line on stderr, exit status 2, no traceback."""
    raise bad_input(message)


def settings(**overrides: Any) -> Settings:
    """The settings, or exit 2 with one line naming the ``OUTREACH_*`` variable at fault."""
    try:
        return Settings(**overrides)
    except ConfigurationError as error:
        raise bad_input(str(error)) from error
    except ValidationError as error:
        problems = "; ".join(
            f"OUTREACH_{str(e['loc'][0]).upper() if e['loc'] else '?'}: {e['msg']}"
            for e in error.errors()
        )
        raise bad_input(f"invalid setting {problems}") from error


def load_settings() -> Settings:
    return settings()


def client_from_app(app_path: str | None) -> AsyncClient:
    loaded = load_settings()
    try:
        return load_client(app_path, loaded)
    except OutreachError as error:
        fail(str(error))


InsecureDevKey = Annotated[
    bool,
    typer.Option(
        "--insecure-dev-key",
        help="Run without OUTREACH_SECRET_KEY: links signed with a throw-away key (local only!).",
    ),
]


def require_secret_key(client: AsyncClient, command: str, *, insecure_dev_key: bool) -> None:
    """Long-running commands sign links that every process must verify: no throw-away key."""
    if client.settings.secret_key is not None:
        return
    if not insecure_dev_key:
        fail(
            f"outreach {command} needs OUTREACH_SECRET_KEY (a long random value, the same in "
            "every process) to sign acknowledgement and unsubscribe links that stay valid; "
            "--insecure-dev-key runs without one, for local experiments only"
        )
    console(stderr=True).print(
        "[yellow]warning:[/yellow] --insecure-dev-key: links are signed with a throw-away key "
        "and stop working when this process exits"
    )


async def until_signalled(work: Coroutine[Any, Any, object]) -> None:
    """Run ``work`` until SIGTERM or SIGINT cancels it (its graceful stop), then return."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run_command(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's work: bad input (a refused configuration, a template or recipient
    that cannot be used, a conflicting key) exits 2, any other failure of ours while working
    exits 1, each as one line (``--debug``: with its trace)."""
    try:
        return asyncio.run(coroutine)
    except (ConfigurationError, TemplateError, InvalidRecipient, IdempotencyConflict) as error:
        raise bad_input(str(error)) from error
    except OutreachError as error:
        raise bad_input(str(error), 1) from error


def id_or_key(notification_id: str | None, key: str | None) -> tuple[str | None, str | None]:
    if (notification_id is None) == (key is None):
        raise typer.BadParameter("give a notification id or --key, not both")
    return notification_id, key


StoreOption = Annotated[
    str | None, typer.Option("--store", help="Store URL (default: OUTREACH_STORE).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def bad_input(message: str, code: int = 2) -> typer.Exit:
    """Say what went wrong in one line on standard error; the exit to raise (2: bad input)."""
    error_line(message)
    return typer.Exit(code)


def build_client(
    app_path: str | None, store: str | None, templates: Path | None = None
) -> AsyncClient:
    """The client for a command: ``--app``'s, or one from settings with these overrides."""
    overrides: dict[str, Any] = {}
    if store is not None:
        overrides["store"] = store
    if templates is not None:
        overrides["templates"] = str(templates)
    if app_path is not None and overrides:
        raise bad_input("--app builds its own client: give --store/--templates to it, not here")
    try:
        return load_client(app_path, settings(**overrides))
    except OutreachError as error:
        raise bad_input(str(error)) from error


@contextlib.asynccontextmanager
async def existing(client: AsyncClient) -> AsyncIterator[AsyncClient]:
    """``async with client``, on a store that is already there and migrated: commands that
    read or change stored work never create a store, its folders or its tables (a mistyped
    path or an un-migrated database is an error naming what to run)."""
    if isinstance(client.store, OpensExisting):
        try:
            await client.store.open_existing()
        except BaseException:
            await client.close()
            raise
    async with client as ox:
        yield ox


def template_values(pairs: list[str] | None, context_file: Path | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if context_file is not None:
        try:
            text = context_file.read_text(encoding="utf-8")
            data = tomllib.loads(text) if context_file.suffix == ".toml" else json.loads(text)
        except FileNotFoundError:
            raise bad_input(f"--context-file {context_file}: no such file") from None
        except (OSError, ValueError) as exc:
            raise bad_input(f"--context-file {context_file}: {exc}") from None
        if not isinstance(data, dict):
            raise bad_input(f"--context-file {context_file}: not a JSON object or TOML table")
        values.update(data)
    values.update(parse_pairs(pairs, "--context"))
    return values


def parse_pairs(items: list[str] | None, option: str) -> dict[str, str]:
    values = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{option} {item!r}: write it as name=value")
        values[name] = value
    return values
