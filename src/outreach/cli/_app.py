"""The Typer application every command module registers with, and its global options."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from outreach.cli._common import DEBUG

app = typer.Typer(
    help="Reach customers by SMS, email and voice until they acknowledge.\n\n"
    "Example: outreach send plan.toml passengers.csv --campaign 9K1042 --dry-run",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        try:
            typer.echo(f"outreach {version('outreach')}")
        except PackageNotFoundError:  # running from a source tree that is not installed
            typer.echo("outreach (not installed)")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full trace of an error, not one line.")
    ] = False,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version, exit."
        ),
    ] = False,
) -> None:
    """outreach: escalating customer notifications."""
    DEBUG.set(debug)
