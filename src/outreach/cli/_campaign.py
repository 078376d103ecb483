"""Commands for campaigns: send, check templates, cancel, status, report."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from outreach._client import AsyncClient
from outreach._messages import template_context
from outreach._models import Event, Medium, Notification, Option, Plan, Recipient, Status
from outreach._templates import Templates
from outreach.campaigns import (
    CampaignCheck,
    CampaignProgress,
    CampaignReport,
    StartResult,
    iter_recipients,
    read_campaign_report,
    run_until_finished,
    start_campaign,
    validate_campaign,
    write_rejects,
)
from outreach.cli._app import app
from outreach.cli._common import (
    AppOption,
    InsecureDevKey,
    JsonOption,
    StoreOption,
    bad_input,
    build_client,
    console,
    existing,
    id_or_key,
    load_settings,
    parse_pairs,
    require_secret_key,
    run_command,
    template_values,
    until_signalled,
)
from outreach.cli._progress import Watch
from outreach.exceptions import OutreachError, TemplateError
from outreach.outcomes import describe, describe_event


def _print_check(check: CampaignCheck, name: str, *, dry_run: bool) -> None:
    for error in check.errors:
        typer.echo(f"{name} {error}", err=True)
    typer.echo(f"{check.valid:,} valid row(s), {len({e.line for e in check.errors}):,} invalid")
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
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Run the escalations here until every notification of the campaign is "
            "finished (Ctrl-C: the rest stays queued for a worker or the next run).",
        ),
    ] = False,
    as_json: JsonOption = False,
    app_path: AppOption = None,
    insecure_dev_key: InsecureDevKey = False,
) -> None:
    """Start a plan for everyone in a file, after checking every row.

    Nothing is sent while any row is invalid (unless --skip-invalid). Each notification is
    keyed by campaign and recipient id, so running it again resumes and never sends twice.
    The escalations run in `outreach worker` or `serve` sharing the store, or here with --wait.

    Example: outreach send plan.toml passengers.csv --campaign 9K1042 --context flight="9K 1042"
    """
    values = template_values(context, context_file)
    try:
        plan = Plan.load(plan_file)
    except OutreachError as error:
        raise bad_input(str(error)) from error
    client = build_client(app_path, store, templates_dir)
    try:  # read and check one record at a time; a dry run keeps none of them
        rows = iter_recipients(recipients, key_prefix=campaign)
        check = validate_campaign(client, plan, rows, context=values, keep_rows=not dry_run)
    except OutreachError as error:
        raise bad_input(str(error)) from error
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

    if wait:
        require_secret_key(client, "send --wait", insecure_dev_key=insecure_dev_key)
    shown = not as_json
    last: list[CampaignProgress] = []

    def watched(now: CampaignProgress) -> None:
        last[:] = [now]
        finishing.update(now.finished, _progress_detail(now), total=now.total)

    async def go() -> StartResult:
        async with client as ox:
            with enqueueing:
                started = await start_campaign(
                    ox,
                    plan,
                    check.rows,
                    campaign=campaign,
                    context=values,
                    progress=lambda done, _: enqueueing.update(done),
                )
            if shown:
                typer.echo(
                    f"campaign {campaign}: {started.new:,} new, "
                    f"{started.existing:,} already started"
                )
                if rejects is not None:
                    typer.echo(
                        f"{len(check.errors):,} invalid row(s) not sent, listed in {rejects}"
                    )
            if wait:
                with finishing:
                    await until_signalled(run_until_finished(ox, campaign, plan, progress=watched))
            return started

    enqueueing = Watch("started or found", total=len(check.rows), enabled=shown)
    finishing = Watch("finished", total=1, enabled=shown)
    started = run_command(go())
    result |= {"sent": True, "new": started.new, "existing": started.existing}
    result["rejects"] = str(rejects or "")
    if wait and last:
        final = last[0]
        result["counts"] = final.counts
        result["follow_ups"] = final.follow_ups
        result["finished"] = final.done
        if shown and not final.done:
            typer.echo(
                f"stopped: {final.total - final.finished:,} notification(s) left queued; "
                "`outreach worker`, or `send --wait` again, carries on"
            )
        elif shown:
            typer.echo(f"campaign {campaign}: all finished ({_progress_detail(final)})")
    if as_json:
        typer.echo(json.dumps(result, indent=2))


def _progress_detail(now: CampaignProgress) -> str:
    counts = ", ".join(f"{k} {v:,}" for k, v in now.counts.items())
    follow = sum(now.follow_ups.values())
    counts += f", follow-ups {follow:,}" if follow else ""
    if now.first_sends_left is None or now.done:
        return counts
    bound = now.first_sends_left + now.longest_escalation
    first = str(now.first_sends_left).split(".")[0]
    return f"{counts}; first sends done in {first}, all by {str(bound).split('.')[0]} at most"


@app.command()
def templates(
    folder: Annotated[
        Path | None, typer.Argument(help="Templates folder (default: OUTREACH_TEMPLATES).")
    ] = None,
    context: Annotated[
        list[str] | None, typer.Option(help="Sample variable as name=value (repeatable).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check every notice: which media it has, and whether each renders with sample data.

    Example: outreach templates templates/ --context flight="9K 1042"
    """
    configured = load_settings().templates
    root = folder or (Path(configured) if configured else None)
    if root is None:
        raise bad_input("give a folder or set OUTREACH_TEMPLATES")
    try:
        notices = Templates(root)
    except OutreachError as error:
        raise bad_input(str(error)) from error
    options = (Option(key="1", label="First choice"), Option(key="2", label="Second choice"))
    sample = template_context(
        parse_pairs(context, "--context"),
        Recipient(id="sample", phone="+16175550123", email="sample@example.com"),
        options,
        ack_url="https://example.com/ack/sample",
        option_urls={o.key: f"https://example.com/ack/sample-{o.key}" for o in options},
    )
    table = Table("notice", *(m.value for m in Medium))
    found: dict[str, dict[str, str]] = {}
    broken = 0
    for name in notices.names():
        cells = []
        found[name] = {}
        for medium in Medium:
            try:
                rendered = notices.render(name, medium, sample)
            except TemplateError as error:
                missing = "has no" in str(error)
                broken += not missing
                found[name][medium.value] = "missing" if missing else str(error)
                cells.append(Text("-", "dim") if missing else Text(str(error), "red"))
                continue
            extra = f" ({rendered.segments} SMS segment(s))" if rendered.segments else ""
            found[name][medium.value] = "ok" + extra
            cells.append(Text.assemble(("ok", "green"), extra))
        table.add_row(Text(name), *cells)
    if as_json:
        typer.echo(json.dumps({"notices": found, "broken": broken}, indent=2))
    else:
        console().print(table)
    if broken:
        raise typer.Exit(1)


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
    """Withdraw a notification, or a whole campaign: nothing more is sent for it.

    Example: outreach cancel --campaign 9K1042 --reason "flight reinstated"
    """
    if campaign is not None:
        if notification_id is not None or key is not None:
            raise bad_input("give a notification id, --key or --campaign, not several")
        client = build_client(app_path, store)

        async def cancel_all() -> int:
            async with existing(client) as ox:
                why = reason or f"campaign {campaign} cancelled"
                return await ox.cancel_campaign(campaign, reason=why)

        count = run_command(cancel_all())
        if as_json:
            typer.echo(json.dumps({"campaign": campaign, "cancelled": count}))
        else:
            typer.echo(f"campaign {campaign}: cancelled {count:,} notification(s)")
        return
    ids = id_or_key(notification_id, key)
    client = build_client(app_path, store)

    async def go() -> Notification:
        async with existing(client) as ox:
            return await ox.cancel(ids[0], key=ids[1], reason=reason)

    n = run_command(go())
    if as_json:
        typer.echo(json.dumps({"id": n.id, "status": n.status.value}))
    else:
        typer.echo(f"{n.id} {n.status.value}")


def print_timeline(client: AsyncClient, recipient_id: str, *, as_json: bool) -> None:
    """Everything that happened with one customer, in order, one line per entry."""

    async def go() -> list[Event]:
        async with existing(client) as ox:
            return await ox.timeline(recipient_id)

    events = run_command(go())
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in events], indent=2))
        return
    if not events:
        raise bad_input(f"nothing is stored for recipient {recipient_id!r}", code=1)
    out = console()
    for event in events:
        when = event.at.isoformat(timespec="seconds")
        out.print(
            f"{when}  {event.notification_id[:8]}  {escape(describe_event(event))}",
            soft_wrap=True,
        )


@app.command()
def status(
    notification_id: Annotated[str | None, typer.Argument(help="Notification id.")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key instead of the id.")] = None,
    campaign: Annotated[
        str | None, typer.Option(help="Count a campaign's notifications by status instead.")
    ] = None,
    recipient: Annotated[
        str | None,
        typer.Option(help="Show one customer's timeline across all their notifications instead."),
    ] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
    app_path: AppOption = None,
) -> None:
    """Show one notification and its attempts, a campaign's counts, or a customer's timeline.

    Example: outreach status --campaign 9K1042 --json
    """
    if recipient is not None:
        if notification_id is not None or key is not None or campaign is not None:
            raise bad_input("give a notification id, --key, --campaign or --recipient, not several")
        print_timeline(build_client(app_path, store), recipient, as_json=as_json)
        return
    if campaign is not None:
        if notification_id is not None or key is not None:
            raise bad_input("give a notification id, --key or --campaign, not several")
        client = build_client(app_path, store)

        async def count() -> dict[tuple[Status, bool], int]:
            async with existing(client) as ox:
                return await ox.store.campaign_counts(campaign)

        counts = {
            f"follow-up {state.value}" if child else state.value: n
            for (state, child), n in run_command(count()).items()
        }
        if as_json:
            typer.echo(json.dumps({"campaign": campaign, "counts": dict(sorted(counts.items()))}))
        else:
            shown = ", ".join(f"{k}: {v:,}" for k, v in sorted(counts.items()))
            typer.echo(f"campaign {campaign}: {shown or 'no notifications'}")
        return
    ids = id_or_key(notification_id, key)
    client = build_client(app_path, store)

    async def go() -> Notification:
        async with existing(client) as ox:
            return await ox.get(ids[0], key=ids[1])

    n = run_command(go())
    if as_json:
        typer.echo(n.model_dump_json(indent=2))
        return
    out = console()
    out.print(
        f"[bold]{escape(n.id)}[/bold] key={escape(n.key or '')} "
        f"campaign={escape(n.campaign or '')} status={n.status.value}"
        + (f" choice={escape(n.choice)} via={escape(n.acknowledged_via or '')}" if n.choice else "")
    )
    out.print(f"outcome: {escape(describe(n))}")
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
    out.print(table)


@app.command()
def report(
    campaign: Annotated[str, typer.Argument(help="Campaign name given to start().")],
    format_: Annotated[
        str, typer.Option("--format", help="table, csv (one line per recipient) or json.")
    ] = "table",
    store: StoreOption = None,
    as_json: JsonOption = False,
    app_path: AppOption = None,
) -> None:
    """What happened in a campaign: reach, acknowledgements, choices, who was never reached.

    Example: outreach report 9K1042 --format csv > to-call.csv
    """
    if format_ not in ("table", "csv", "json"):
        raise bad_input(f"--format {format_!r}: use table, csv or json")
    if as_json:
        format_ = "json"
    client = build_client(app_path, store)

    async def go() -> CampaignReport:
        async with existing(client) as ox:
            return await read_campaign_report(ox, campaign, lines=format_ == "csv")

    result = run_command(go())
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
    out = console()
    table = Table(title=f"campaign {escape(campaign)}", show_header=False)
    rate = f"{result.reach_rate:.1%}" if result.reach_rate is not None else "-"

    def seconds(value: float | None) -> str:
        return "-" if value is None else str(timedelta(seconds=round(value)))

    rows = [
        ("notifications", f"{result.notifications:,}"),
        ("status", ", ".join(f"{k}: {v:,}" for k, v in result.by_status.items())),
        ("reached", f"{result.reached:,} ({rate})"),
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
    out.print(table)
    for row in result.never_reached:
        out.print(
            f"never reached {escape(row['recipient'])} ({escape(row['key'])}): "
            f"{escape(row['reason'])}"
        )
