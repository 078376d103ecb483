"""Commands for support staff: record an answer."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from outreach._models import Notification
from outreach.cli._app import app
from outreach.cli._common import (
    AppOption,
    JsonOption,
    client_from_app,
    existing,
    id_or_key,
    run_command,
)


@app.command()
def ack(
    notification_id: Annotated[str | None, typer.Argument(help="Notification id.")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key instead of the id.")] = None,
    choice: Annotated[str | None, typer.Option(help="The option the customer chose.")] = None,
    via: Annotated[str, typer.Option(help="How the answer came in.")] = "support",
    as_json: JsonOption = False,
    app_path: AppOption = None,
) -> None:
    """Record a customer's acknowledgement (for support staff).

    Example: outreach ack --key 9K1042/pax-17 --choice 2 --via phone
    """
    ids = id_or_key(notification_id, key)

    async def go() -> Notification:
        async with existing(client_from_app(app_path)) as ox:
            return await ox.acknowledge(ids[0], key=ids[1], via=via, choice=choice)

    n = run_command(go())
    if as_json:
        typer.echo(json.dumps({"id": n.id, "status": n.status.value, "choice": n.choice}))
        return
    typer.echo(f"{n.id} {n.status.value}" + (f" choice {n.choice}" if n.choice else ""))
