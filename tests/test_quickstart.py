"""The README's quick start: ``outreach init`` writes it, and it runs from the built wheel."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach.cli import app
from outreach.cli._init import starter_files

ROOT = Path(__file__).resolve().parent.parent
STARTER = ROOT / "src" / "outreach" / "cli" / "starter" / "notify.py"


def _quick_start() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the quick start has a python block"
    return match.group(1)


def test_the_readme_shows_the_script_init_writes() -> None:
    assert _quick_start() == STARTER.read_text(encoding="utf-8")


def test_init_writes_a_project_that_renders(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", str(tmp_path / "hello")])
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(tmp_path / "hello")) for p in tmp_path.rglob("*.*"))
    assert written == sorted(starter_files())
    assert {"plan.toml", "notify.py", "people.csv", "templates/flight_cancelled/sms.txt"} <= set(
        written
    )
    checked = CliRunner().invoke(
        app, ["templates", str(tmp_path / "hello" / "templates"), "--context", "flight=9K 1042"]
    )
    assert checked.exit_code == 0, checked.output


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    (tmp_path / "plan.toml").write_text("# mine\n")
    result = CliRunner().invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 2
    assert "plan.toml" in result.output
    assert "nothing written" in result.output
    assert (tmp_path / "plan.toml").read_text() == "# mine\n"
    assert not (tmp_path / "notify.py").exists()
    forced = CliRunner().invoke(app, ["init", str(tmp_path), "--force"])
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "plan.toml").read_text() != "# mine\n"


def test_init_into_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    result = CliRunner().invoke(app, ["init", str(tmp_path / "taken")])
    assert result.exit_code == 2
    assert "is a file" in result.output


def test_init_where_nothing_can_be_written_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "templates").write_text("a file where a folder goes")
    result = CliRunner().invoke(app, ["init", str(tmp_path), "--force"])
    assert result.exit_code == 2
    assert "cannot write the project" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_the_quick_start_runs_from_the_built_wheel(tmp_path: Path) -> None:
    """As a new user would: the wheel in a fresh venv, an empty folder, the README's steps."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "PYTHON", "VIRTUAL"))
    }
    python = shutil.which("python3") or sys.executable
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", "dist", str(ROOT)],
         tmp_path, env)  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("outreach-*.whl")
    _run([python, "-m", "venv", "venv"], tmp_path, env)
    venv = tmp_path / "venv" / "bin"
    _run([str(venv / "pip"), "install", "-q", str(wheel)], tmp_path, env)
    empty = tmp_path / "work"
    empty.mkdir()
    _run([str(venv / "outreach"), "init", "hello"], empty, env)
    project = empty / "hello"
    out = _run([str(venv / "python"), "notify.py"], project, env)
    assert "9K1042/pax-17: acknowledged, choice 2" in out
    out = _run(
        [str(venv / "outreach"), "templates", "templates", "--context", "flight=9K 1042"],
        project,
        env,
    )
    assert "refund_check" in out
    assert (project / "outreach.db").is_file()
