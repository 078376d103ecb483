"""The Typer application every command module registers with."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Reach customers by SMS, email and voice until they acknowledge.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """outreach: escalating customer notifications."""
