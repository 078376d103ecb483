"""The ``outreach`` command line: one module per group of commands, all on one Typer app."""

from outreach.cli import (  # noqa: F401  (they register commands)
    _attention,
    _campaign,
    _db,
    _init,
    _rehearse,
    _running,
    _support,
)
from outreach.cli._app import app

__all__ = ["app"]
