"""``outreach init [DIR]``: a starter project (plan, templates, a script, recipients) to edit."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Annotated

import typer

from outreach.cli._app import app
from outreach.cli._common import bad_input
from outreach.demo import PAGE_TEMPLATE


def starter_files() -> dict[str, Traversable]:
    """What ``init`` writes, by path relative to the project folder, from package data (the
    demo's notices, but not what it pages its duty agent with: that needs Paging's context)."""
    demo = resources.files("outreach.demo")
    starter = resources.files("outreach.cli") / "starter"
    files = {
        "plan.toml": demo / "plan.toml",
        "notify.py": starter / "notify.py",
        "people.csv": starter / "people.csv",
    }
    templates = demo / "templates"
    for notice in sorted(templates.iterdir(), key=lambda t: t.name):
        if notice.is_dir() and notice.name != PAGE_TEMPLATE:
            for part in sorted(notice.iterdir(), key=lambda t: t.name):
                files[f"templates/{notice.name}/{part.name}"] = part
    return files


@app.command(epilog="Example: outreach init hello")
def init(
    folder: Annotated[
        Path, typer.Argument(help="Where to write the project (created if missing).")
    ] = Path(),
    force: Annotated[bool, typer.Option(help="Overwrite files that are already there.")] = False,
) -> None:
    """Write a starter project: plan.toml, templates/, notify.py and people.csv."""
    files = starter_files()
    taken = sorted(name for name in files if (folder / name).exists())
    if taken and not force:
        shown = ", ".join(taken[:3]) + (f" and {len(taken) - 3} more" if len(taken) > 3 else "")
        raise bad_input(f"{folder}: {shown} already there; nothing written (--force overwrites)")
    if folder.exists() and not folder.is_dir():
        raise bad_input(f"{folder} is a file, not a folder")
    try:
        for name, source in files.items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    except OSError as error:
        raise bad_input(f"{folder}: cannot write the project: {error}") from None
    typer.echo(f"wrote {len(files)} files to {folder}/:")
    for name in files:
        typer.echo(f"  {name}")
    steps = [] if folder == Path() else [f"cd {folder}"]
    steps += [
        "python notify.py  # one passenger; the messages are printed here",
        "outreach templates templates --context flight='9K 1042'  # every notice renders",
        "# with OUTREACH_TWILIO_* and OUTREACH_SENDGRID_* set:",
        "outreach send plan.toml people.csv --campaign try --context flight='9K 1042' --dry-run",
    ]
    typer.echo("next:\n" + "\n".join(f"  {step}" for step in steps))
