"""``outreach rehearse``: a campaign played on the sandbox, with a mix of simulated customers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from outreach._durations import parse_duration
from outreach._models import Plan
from outreach.campaigns import read_recipients
from outreach.cli._app import app
from outreach.cli._common import (
    JsonOption,
    bad_input,
    console,
    run_command,
    settings,
    template_values,
)
from outreach.cli._progress import Watch
from outreach.exceptions import OutreachError
from outreach.rehearsal import Rehearsal, load_mix, reach_chart_html, rehearse


def _print(result: Rehearsal) -> None:
    out = console()
    out.print(
        f"{result.recipients:,} recipient(s), seed {result.seed}, "
        f"{timedelta(seconds=result.horizon_seconds)} of virtual time",
        markup=False,
    )
    out.print(
        "personas: " + ", ".join(f"{k} {v:,}" for k, v in result.personas.items()),
        markup=False,
    )
    reach = ", ".join(f"{k} {v:.1%}" for k, v in result.reach.items())
    out.print(f"reached by: {reach or '-'} ({result.acknowledged:,} acknowledged)", markup=False)
    steps = ", ".join(f"{k}: {v:,}" for k, v in result.by_step.items())
    out.print(f"acknowledged after step: {steps or '-'}", markup=False)
    sent = ", ".join(f"{k} {v:,}" for k, v in result.messages.items())
    out.print(f"sent: {sent or 'nothing'} (voice: calls)", markup=False)
    priced = ", ".join(f"{k} {v:,.2f}" for k, v in result.cost.items())
    unpriced = sorted(set(result.messages) - set(result.cost))
    note = f"; no price for {', '.join(unpriced)}" if unpriced else ""
    total = f"{result.total_cost:,.2f} {result.currency}".strip()
    out.print(f"estimated cost: {total} ({priced or 'no prices given'}{note})", markup=False)
    out.print(f"left for a person: {len(result.left_for_a_person):,}", markup=False)
    for row in result.left_for_a_person[:20]:
        out.print(f"  {row['recipient']} ({row['persona']}): {row['reason']}", markup=False)
    if len(result.left_for_a_person) > 20:
        out.print(f"  ... and {len(result.left_for_a_person) - 20:,} more (--json)", markup=False)


@app.command("rehearse")
def rehearse_command(
    plan_file: Annotated[Path, typer.Argument(help="The plan, as .toml or .json.")],
    recipients: Annotated[Path, typer.Argument(help="CSV or .jsonl, as for `send`.")],
    personas: Annotated[
        Path, typer.Option("--personas", help="The mix of simulated customers (TOML).")
    ],
    horizon: Annotated[str, typer.Option(help="Virtual time to play.")] = "24h",
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Also write a page with the reach curve.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Draws the personas (default: the mix's, else 0).")
    ] = None,
    start: Annotated[
        str, typer.Option(help="Virtual start time (ISO 8601, with offset).")
    ] = "2026-11-23T13:30:00+00:00",
    context: Annotated[
        list[str] | None, typer.Option(help="Template variable as name=value (repeatable).")
    ] = None,
    context_file: Annotated[
        Path | None, typer.Option(help="Template variables from a JSON or TOML file.")
    ] = None,
    templates_dir: Annotated[
        Path | None, typer.Option("--templates", help="Templates folder (OUTREACH_TEMPLATES).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Rehearse a campaign on the sandbox: simulated customers, a virtual clock, no real sends.

    Example: outreach rehearse plan.toml passengers.csv --personas mix.toml --html reach.html
    """
    values = template_values(context, context_file)
    try:
        plan = Plan.load(plan_file)
        rows, errors = read_recipients(recipients, key_prefix="rehearsal")
        mix = load_mix(personas)
    except OutreachError as error:
        raise bad_input(str(error)) from error
    if errors:
        for problem in errors:
            typer.echo(f"{recipients.name} {problem}", err=True)
        raise bad_input(f"{len(errors):,} invalid row(s): fix them first (see `send --dry-run`)")
    folder = templates_dir or settings().templates
    if folder is None:
        raise bad_input("give --templates or set OUTREACH_TEMPLATES")
    try:
        span = parse_duration(horizon)
    except ValueError as error:
        raise bad_input(f"--horizon {horizon!r}: {error}") from error
    if not isinstance(span, timedelta) or span <= timedelta(0):
        raise bad_input(f"--horizon {horizon!r}: give a duration such as 24h")
    try:
        began = datetime.fromisoformat(start)
    except ValueError as error:
        raise bad_input(f"--start {start!r}: {error}") from error
    if began.tzinfo is None:
        raise bad_input(f"--start {start!r}: give the UTC offset, e.g. {start}+00:00")
    with Watch("rehearsing (virtual time)", total=span.total_seconds(), enabled=not as_json) as w:

        def advance(elapsed: timedelta) -> None:
            w.update(elapsed.total_seconds(), str(elapsed).split(".")[0])

        async def go() -> Rehearsal:
            return await rehearse(
                plan,
                rows,
                mix,
                templates=folder,
                context=values,
                horizon=span,
                seed=seed,
                start=began,
                on_step=advance,
            )

        result = run_command(go())
    if html_file is not None:
        page = reach_chart_html(result, title=f"Rehearsal of {plan.name}")
        try:
            html_file.write_text(page, encoding="utf-8")
        except OSError as error:
            raise bad_input(f"--html {html_file}: {error}") from error
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    _print(result)
    if html_file is not None:
        typer.echo(f"reach curve written to {html_file}")
