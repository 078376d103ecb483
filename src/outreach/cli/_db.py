"""``outreach db``: the store's schema (``upgrade``) and retention (``prune``)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated

import typer

from outreach._durations import parse_duration
from outreach.cli._app import app
from outreach.cli._common import (
    AppOption,
    JsonOption,
    StoreOption,
    bad_input,
    build_client,
    existing,
    run_command,
)
from outreach.stores import Pruned

db = typer.Typer(
    help="The store's schema and retention.",
    no_args_is_help=True,
    epilog="Example: outreach db prune --older-than 90d --json",
)
app.add_typer(db, name="db")


@db.command()
def upgrade(
    store: StoreOption = None, app_path: AppOption = None, as_json: JsonOption = False
) -> None:
    """Apply the store's migrations and say which schema version it is at.

    Safe while other processes start (they migrate under the same lock when they open it).
    """
    client = build_client(app_path, store)

    async def go() -> int:
        async with client as ox:
            return await ox.store.schema_version()

    version = run_command(go())
    if as_json:
        typer.echo(json.dumps({"store": repr(client.store), "schema_version": version}))
        return
    typer.echo(f"{client.store!r} is at schema version {version}")


def _age(text: str) -> timedelta:
    try:
        age = parse_duration(text)
    except ValueError as error:
        raise bad_input(f"--older-than: {error}") from None
    if not isinstance(age, timedelta) or age <= timedelta(0):
        raise bad_input(f"--older-than {text!r}: give an age such as 90d")
    return age


@db.command()
def prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="Prune notifications that finished longer ago, e.g. 90d."
        ),
    ],
    store: StoreOption = None,
    app_path: AppOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete old finished notifications' personal data; keep what reports count.

    Removed: recipients' phone numbers, email addresses, time zones and attributes, template
    contexts, attempts' addresses, reply texts. Kept: recipient ids, statuses, times, steps,
    channels, choices, errors. Notifications still running are never touched; each is pruned
    once. Webhook receipts (the de-duplication keys of provider callbacks) older than the age
    given, and than the signature max age (OUTREACH_SIGNATURE_MAX_AGE), are deleted.
    """
    age = _age(older_than)
    client = build_client(app_path, store)

    async def go() -> tuple[Pruned, datetime, datetime]:
        async with existing(client) as ox:
            now = ox.clock.now()
            before = now - age
            receipts_before = now - max(age, ox.settings.signature_max_age)
            pruned = await ox.store.prune(before, receipts_before=receipts_before)
            return pruned, before, receipts_before

    pruned, before, receipts_before = run_command(go())
    if as_json:
        answer = {
            "pruned": int(pruned),
            "finished_before": before.isoformat(),
            "receipts_deleted": pruned.receipts,
            "receipts_before": receipts_before.isoformat(),
        }
        typer.echo(json.dumps(answer))
        return
    typer.echo(
        f"pruned {pruned} notification(s) finished before {before.isoformat(timespec='seconds')};"
        f" deleted {pruned.receipts} webhook receipt(s) received before"
        f" {receipts_before.isoformat(timespec='seconds')}"
    )
