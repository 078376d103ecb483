"""The ``outreach`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import tempfile
import tomllib
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from outreach._client import AsyncClient
from outreach._factory import load_client
from outreach._messages import template_context
from outreach._models import Medium, Notification, Option, Plan, Recipient
from outreach._settings import Settings
from outreach._templates import Templates
from outreach.campaigns import (
    CampaignCheck,
    campaign_report,
    read_recipients,
    start_campaign,
    validate_campaign,
    write_rejects,
)
from outreach.demo import run_story
from outreach.demo._report import LiveBoard, print_summary, print_timeline, summary
from outreach.exceptions import ConfigurationError, OutreachError, TemplateError

T = TypeVar("T")

app = typer.Typer(
    help="Reach customers by SMS, email and voice until they acknowledge.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """outreach: escalating customer notifications."""


AppOption = Annotated[
    str | None,
    typer.Option("--app", help="module:factory returning an AsyncClient (default: from settings)."),
]


def _fail(message: str) -> NoReturn:
    """A configuration problem: one line on stderr, exit status 2, no traceback."""
    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


def _settings() -> Settings:
    try:
        return Settings()
    except ConfigurationError as error:
        _fail(str(error))


def _client(app_path: str | None) -> AsyncClient:
    settings = _settings()
    try:
        return load_client(app_path, settings)
    except OutreachError as error:
        _fail(str(error))


InsecureDevKey = Annotated[
    bool,
    typer.Option(
        "--insecure-dev-key",
        help="Run without OUTREACH_SECRET_KEY: links signed with a throw-away key (local only!).",
    ),
]


def _require_secret_key(client: AsyncClient, command: str, *, insecure_dev_key: bool) -> None:
    """Long-running commands sign links that every process must verify: no throw-away key."""
    if client.settings.secret_key is not None:
        return
    if not insecure_dev_key:
        _fail(
            f"outreach {command} needs OUTREACH_SECRET_KEY (a long random value, the same in "
            "every process) to sign acknowledgement and unsubscribe links that stay valid; "
            "--insecure-dev-key runs without one, for local experiments only"
        )
    Console(stderr=True).print(
        "[yellow]warning:[/yellow] --insecure-dev-key: links are signed with a throw-away key "
        "and stop working when this process exits"
    )


def _log_to_stderr() -> None:
    """Long-running commands say what they do (INFO and up) on standard error."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


async def _until_signalled(work: Coroutine[Any, Any, None]) -> None:
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


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except OutreachError as error:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from error


def _ids(notification_id: str | None, key: str | None) -> tuple[str | None, str | None]:
    if (notification_id is None) == (key is None):
        raise typer.BadParameter("give a notification id or --key, not both")
    return notification_id, key


StoreOption = Annotated[
    str | None, typer.Option("--store", help="Store URL (default: OUTREACH_STORE).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _error(message: str, code: int = 2) -> typer.Exit:
    """Say what went wrong in one line on standard error; the exit to raise (2: bad input)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _build(app_path: str | None, store: str | None, templates: Path | None = None) -> AsyncClient:
    """The client for a command: ``--app``'s, or one from settings with these overrides."""
    overrides: dict[str, Any] = {}
    if store is not None:
        overrides["store"] = store
    if templates is not None:
        overrides["templates"] = str(templates)
    if app_path is not None and overrides:
        raise _error("--app builds its own client: give --store/--templates to it, not here")
    try:
        return load_client(app_path, Settings(**overrides))
    except OutreachError as error:
        raise _error(str(error)) from error


def _existing(client: AsyncClient) -> AsyncClient:
    """Read-only commands never create a store: a SQLite file that is not there is an error."""
    path = getattr(client.store, "path", None)
    if isinstance(path, str) and path != ":memory:" and not Path(path).is_file():
        raise _error(f"no store at {path} (check --store or OUTREACH_STORE)")
    return client


def _context(pairs: list[str] | None, context_file: Path | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if context_file is not None:
        try:
            text = context_file.read_text(encoding="utf-8")
            data = tomllib.loads(text) if context_file.suffix == ".toml" else json.loads(text)
        except FileNotFoundError:
            raise _error(f"--context-file {context_file}: no such file") from None
        except (OSError, ValueError) as exc:
            raise _error(f"--context-file {context_file}: {exc}") from None
        if not isinstance(data, dict):
            raise _error(f"--context-file {context_file}: not a JSON object or TOML table")
        values.update(data)
    values.update(_pairs(pairs, "--context"))
    return values


def _print_check(check: CampaignCheck, name: str, *, dry_run: bool) -> None:
    for error in check.errors:
        typer.echo(f"{name} {error}", err=True)
    typer.echo(f"{len(check.rows):,} valid row(s), {len({e.line for e in check.errors}):,} invalid")
    if not dry_run:
        return
    for channel, count in check.channels.items():
        line = f"  {channel}: {count.messages:,} message(s)"
        if count.medium == "sms":
            line += f", {count.segments:,} segment(s); GSM-7 {count.gsm7:,}, UCS-2 {count.ucs2:,}"
        typer.echo(line)
    for channel, count in check.follow_ups.items():
        typer.echo(f"  follow-up {channel}: up to {count.messages:,} message(s)")
    for row in check.ucs2:
        typer.echo(
            f"  UCS-2: line {row.line} ({row.recipient_id}), {row.template}: "
            f"{', '.join(repr(c) for c in row.characters)} not in GSM-7"
        )
    for preview in check.previews:
        subject = f" [{preview.subject}]" if preview.subject else ""
        body = preview.body if len(preview.body) <= 200 else preview.body[:197] + "..."
        typer.echo(f"  preview line {preview.line} {preview.channel}{subject}: {body}")


@app.command()
def send(
    plan_file: Annotated[Path, typer.Argument(help="The plan, as .toml or .json.")],
    recipients: Annotated[
        Path, typer.Argument(help="CSV (id, phone, email, timezone, locale, ...) or .jsonl.")
    ],
    campaign: Annotated[str, typer.Option(help="Campaign name; also prefixes each key.")],
    context: Annotated[
        list[str] | None, typer.Option(help="Template variable as name=value (repeatable).")
    ] = None,
    context_file: Annotated[
        Path | None, typer.Option(help="Template variables from a JSON or TOML file.")
    ] = None,
    templates_dir: Annotated[
        Path | None, typer.Option("--templates", help="Templates folder (OUTREACH_TEMPLATES).")
    ] = None,
    store: StoreOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render every message and report; send nothing.")
    ] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid", help="Send the valid rows; write the others to NAME.rejects.csv."
        ),
    ] = False,
    as_json: JsonOption = False,
    app_path: AppOption = None,
) -> None:
    """Start a plan for everyone in a file, after checking every row.

    Nothing is sent while any row is invalid (unless --skip-invalid). Each notification is
    keyed by campaign and recipient id, so running it again resumes and never sends twice.
    """
    values = _context(context, context_file)
    try:
        plan = Plan.load(plan_file)
        rows, errors = read_recipients(recipients, key_prefix=campaign)
    except OutreachError as error:
        raise _error(str(error)) from error
    client = _build(app_path, store, templates_dir)
    try:
        check = validate_campaign(client, plan, rows, context=values, errors=errors)
    except OutreachError as error:
        raise _error(str(error)) from error
    result: dict[str, Any] = {"campaign": campaign, **check.to_dict()}
    if not as_json:
        _print_check(check, recipients.name, dry_run=dry_run)
    rejects = None
    if dry_run or (check.errors and not skip_invalid):
        if as_json:
            typer.echo(json.dumps({**result, "sent": False}, indent=2))
        elif check.errors:
            typer.echo("nothing sent: fix the rows above, or send the others with --skip-invalid")
        else:
            typer.echo("dry run: nothing sent")
        if check.errors:
            raise typer.Exit(2)
        return
    if check.errors:
        rejects = write_rejects(
            recipients.with_name(f"{recipients.stem}.rejects.csv"), check.errors
        )

    def progress(done: int, total: int) -> None:
        if not as_json:
            typer.echo(f"  {done:,} of {total:,} row(s) started or found", err=True)

    async def go() -> tuple[int, int]:
        async with client as ox:
            started = await start_campaign(
                ox, plan, check.rows, campaign=campaign, context=values, progress=progress
            )
            return started.new, started.existing

    new, existing = _run(go())
    if as_json:
        result |= {"sent": True, "new": new, "existing": existing, "rejects": str(rejects or "")}
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"campaign {campaign}: {new:,} new, {existing:,} already started")
    if rejects is not None:
        typer.echo(f"{len(check.errors):,} invalid row(s) not sent, listed in {rejects}")


@app.command()
def templates(
    folder: Annotated[
        Path | None, typer.Argument(help="Templates folder (default: OUTREACH_TEMPLATES).")
    ] = None,
    context: Annotated[
        list[str] | None, typer.Option(help="Sample variable as name=value (repeatable).")
    ] = None,
) -> None:
    """Check every notice: which media it has, and whether each renders with sample data."""
    configured = _settings().templates
    root = folder or (Path(configured) if configured else None)
    if root is None:
        raise typer.BadParameter("give a folder or set OUTREACH_TEMPLATES")
    try:
        notices = Templates(root)
    except OutreachError as error:
        raise typer.BadParameter(str(error)) from error
    options = (Option(key="1", label="First choice"), Option(key="2", label="Second choice"))
    sample = template_context(
        _pairs(context, "--context"),
        Recipient(id="sample", phone="+16175550123", email="sample@example.com"),
        options,
        ack_url="https://example.com/ack/sample",
        option_urls={o.key: f"https://example.com/ack/sample-{o.key}" for o in options},
    )
    table = Table("notice", *(m.value for m in Medium))
    broken = 0
    for name in notices.names():
        cells = []
        for medium in Medium:
            try:
                rendered = notices.render(name, medium, sample)
            except TemplateError as error:
                missing = "has no" in str(error)
                broken += not missing
                cells.append("[dim]-[/dim]" if missing else f"[red]{error}[/red]")
                continue
            extra = f" ({rendered.segments} SMS segment(s))" if rendered.segments else ""
            cells.append(f"[green]ok[/green]{extra}")
        table.add_row(name, *cells)
    Console().print(table)
    if broken:
        raise typer.Exit(1)


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    values = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{option} {item!r}: write it as name=value")
        values[name] = value
    return values


@app.command()
def ack(
    notification_id: Annotated[str | None, typer.Argument(help="Notification id.")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key instead of the id.")] = None,
    choice: Annotated[str | None, typer.Option(help="The option the customer chose.")] = None,
    via: Annotated[str, typer.Option(help="How the answer came in.")] = "support",
    app_path: AppOption = None,
) -> None:
    """Record a customer's acknowledgement (for support staff)."""
    ids = _ids(notification_id, key)

    async def go() -> Notification:
        async with _client(app_path) as ox:
            return await ox.acknowledge(ids[0], key=ids[1], via=via, choice=choice)

    n = _run(go())
    typer.echo(f"{n.id} {n.status.value}" + (f" choice {n.choice}" if n.choice else ""))


@app.command()
def cancel(
    notification_id: Annotated[str | None, typer.Argument(help="Notification id.")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key instead of the id.")] = None,
    campaign: Annotated[
        str | None, typer.Option(help="Cancel every unfinished notification of this campaign.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why, for the event log.")] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
    app_path: AppOption = None,
) -> None:
    """Withdraw a notification, or a whole campaign: nothing more is sent for it."""
    if campaign is not None:
        if notification_id is not None or key is not None:
            raise _error("give a notification id, --key or --campaign, not several")
        client = _existing(_build(app_path, store))

        async def cancel_all() -> int:
            async with client as ox:
                cancelled = 0
                for n in await ox.list(campaign=campaign, limit=10_000_000):
                    if not n.status.is_terminal:
                        await ox.cancel(n.id, reason=reason or f"campaign {campaign} cancelled")
                        cancelled += 1
                return cancelled

        count = _run(cancel_all())
        if as_json:
            typer.echo(json.dumps({"campaign": campaign, "cancelled": count}))
        else:
            typer.echo(f"campaign {campaign}: cancelled {count:,} notification(s)")
        return
    ids = _ids(notification_id, key)
    client = _existing(_build(app_path, store))

    async def go() -> Notification:
        async with client as ox:
            return await ox.cancel(ids[0], key=ids[1], reason=reason)

    n = _run(go())
    if as_json:
        typer.echo(json.dumps({"id": n.id, "status": n.status.value}))
    else:
        typer.echo(f"{n.id} {n.status.value}")


@app.command()
def status(
    notification_id: Annotated[str | None, typer.Argument(help="Notification id.")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key instead of the id.")] = None,
    campaign: Annotated[
        str | None, typer.Option(help="Count a campaign's notifications by status instead.")
    ] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
    app_path: AppOption = None,
) -> None:
    """Show one notification and its attempts, or a campaign's counts."""
    if campaign is not None:
        if notification_id is not None or key is not None:
            raise _error("give a notification id, --key or --campaign, not several")
        client = _existing(_build(app_path, store))

        async def count() -> list[Notification]:
            async with client as ox:
                return await ox.list(campaign=campaign, limit=10_000_000)

        found = _run(count())
        counts: dict[str, int] = {}
        for n in found:
            name = n.status.value if n.parent_id is None else f"follow-up {n.status.value}"
            counts[name] = counts.get(name, 0) + 1
        if as_json:
            typer.echo(json.dumps({"campaign": campaign, "counts": dict(sorted(counts.items()))}))
        else:
            shown = ", ".join(f"{k}: {v:,}" for k, v in sorted(counts.items()))
            typer.echo(f"campaign {campaign}: {shown or 'no notifications'}")
        return
    ids = _ids(notification_id, key)
    client = _existing(_build(app_path, store))

    async def go() -> Notification:
        async with client as ox:
            return await ox.get(ids[0], key=ids[1])

    n = _run(go())
    if as_json:
        typer.echo(n.model_dump_json(indent=2))
        return
    console = Console()
    console.print(
        f"[bold]{escape(n.id)}[/bold] key={escape(n.key or '')} "
        f"campaign={escape(n.campaign or '')} status={n.status.value}"
        + (f" choice={escape(n.choice)} via={escape(n.acknowledged_via or '')}" if n.choice else "")
    )
    table = Table("attempt", "channel", "status", "sent", "error")
    for a in n.attempts:
        sent = a.sent_at.isoformat(timespec="seconds") if a.sent_at else ""
        table.add_row(
            f"{a.pass_}.{a.step}.{a.reattempt}",
            escape(a.channel),
            a.status.value,
            sent,
            escape(a.error or ""),
        )
    console.print(table)


@app.command()
def report(
    campaign: Annotated[str, typer.Argument(help="Campaign name given to start().")],
    format_: Annotated[
        str, typer.Option("--format", help="table, csv (one line per recipient) or json.")
    ] = "table",
    store: StoreOption = None,
    app_path: AppOption = None,
) -> None:
    """What happened in a campaign: reach, acknowledgements, choices, who was never reached."""
    if format_ not in ("table", "csv", "json"):
        raise _error(f"--format {format_!r}: use table, csv or json")
    client = _existing(_build(app_path, store))

    async def go() -> tuple[list[Notification], list[Any]]:
        async with client as ox:
            found = await ox.list(campaign=campaign, limit=10_000_000)
            ids = {n.id for n in found}
            events = [e async for e in ox.events() if e.notification_id in ids]
            return found, events

    notifications, events = _run(go())
    result = campaign_report(campaign, notifications, events)
    if format_ == "json":
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    if format_ == "csv":
        import csv
        import io

        buffer = io.StringIO()
        columns = list(result.recipients[0]) if result.recipients else ["recipient"]
        writer = csv.DictWriter(buffer, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(result.recipients)
        typer.echo(buffer.getvalue(), nl=False)
        return
    if not result.notifications:
        typer.echo(f"campaign {campaign}: no notifications")
        return
    console = Console()
    table = Table(title=f"campaign {escape(campaign)}", show_header=False)
    rate = f"{result.reach_rate:.1%}" if result.reach_rate is not None else "-"

    def seconds(value: float | None) -> str:
        return "-" if value is None else str(timedelta(seconds=round(value)))

    rows = [
        ("notifications", f"{result.notifications:,}"),
        ("status", ", ".join(f"{k}: {v:,}" for k, v in result.by_status.items())),
        ("reached", f"{result.acknowledged:,} ({rate})"),
        ("acknowledged by channel", ", ".join(f"{k}: {v}" for k, v in result.by_channel.items())),
        ("acknowledged by step", ", ".join(f"{k}: {v}" for k, v in result.by_step.items())),
        (
            "time to acknowledge",
            f"p50 {seconds(result.seconds_to_ack_p50)}, p90 {seconds(result.seconds_to_ack_p90)}",
        ),
        ("choices", ", ".join(f"{k}: {v}" for k, v in result.choices.items())),
        ("opted out", f"{result.opted_out:,}"),
        ("follow-ups", ", ".join(f"{k}: {v}" for k, v in result.follow_ups.items())),
    ]
    for name, value in rows:
        table.add_row(name, escape(value or "-"))
    console.print(table)
    for row in result.never_reached:
        console.print(
            f"never reached {escape(row['recipient'])} ({escape(row['key'])}): "
            f"{escape(row['reason'])}"
        )


@app.command()
def worker(app_path: AppOption = None, insecure_dev_key: InsecureDevKey = False) -> None:
    """Run escalations until SIGTERM or Ctrl-C (no webhooks; see `serve`).

    On either it stops claiming, lets requests already handed to a provider finish, gives
    everything else back to the store for another process, and exits 0.
    """
    _log_to_stderr()
    client = _client(app_path)
    _require_secret_key(client, "worker", insecure_dev_key=insecure_dev_key)

    async def go() -> None:
        async with client as ox:
            await _until_signalled(ox.run())

    _run(go())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    insecure_dev: Annotated[
        bool, typer.Option("--insecure-dev", help="Skip webhook signature checks (local only!).")
    ] = False,
    app_path: AppOption = None,
    insecure_dev_key: InsecureDevKey = False,
) -> None:
    """Serve the webhooks and run escalations in one process (the embedded default)."""
    import uvicorn

    from outreach.webhooks import create_app

    client = _client(app_path)
    _require_secret_key(client, "serve", insecure_dev_key=insecure_dev_key or insecure_dev)
    web = create_app(
        client,
        insecure_dev=insecure_dev,
        insecure_dev_key=insecure_dev_key,
        twilio="sms" in client.channels or "voice" in client.channels or insecure_dev,
        sendgrid="email" in client.channels or insecure_dev,
    )

    _log_to_stderr()

    async def go() -> None:
        server = uvicorn.Server(uvicorn.Config(web, host=host, port=port, lifespan="off"))
        async with client:  # closing it stops the escalations gracefully, as worker does
            escalations = asyncio.create_task(client.run())
            try:
                await server.serve()  # uvicorn handles SIGTERM and Ctrl-C itself
            finally:
                escalations.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await escalations

    _run(go())


@app.command()
def demo(
    store: Annotated[
        str | None, typer.Option(help="Store URL; default: a SQLite file in a temporary folder.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Virtual minutes per real second, to watch it unfold (default: flat out)."
        ),
    ] = None,
) -> None:
    """Play the Cape Air story: six passengers of a cancelled flight, on a virtual clock."""
    console = Console()
    with tempfile.TemporaryDirectory(prefix="outreach-demo-") as folder:
        url = store or f"sqlite:///{Path(folder) / 'outreach.db'}"
        if as_json:
            story = _run(run_story(url))
            typer.echo(json.dumps(summary(story), indent=2))
            return
        with LiveBoard(console, speed=speed) as board:
            story = _run(run_story(url, on_step=board.update))
    console.rule("[bold]Cape Air flight 9K 1042 is cancelled")
    for notification in story.notifications:
        print_timeline(console, story, notification)
    print_summary(console, story)
