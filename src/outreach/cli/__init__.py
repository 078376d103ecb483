"""The ``outreach`` command line: one module per group of commands, all on one Typer app."""

from outreach.cli import _campaign, _rehearse, _running, _support  # noqa: F401  (they register commands)
from outreach.cli._app import app

__all__ = ["app"]
