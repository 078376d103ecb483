"""The README's quick start: ``outreach init`` writes it, and it runs from the built wheel."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach.cli import app
from outreach.cli._init import starter_files

ROOT = Path(__file__).resolve().parent.parent
STARTER = ROOT / "src" / "outreach" / "cli" / "starter" / "notify.py"


def _quick_start(language: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert match, f"the quick start has a {language} block"
    return match.group(1)


def test_the_readme_shows_the_script_init_writes() -> None:
    assert _quick_start("python") == STARTER.read_text(encoding="utf-8")


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
    """The README's commands, as a new user runs them in an empty folder, with the wheel built
    from this tree where they say ``pip install outreach`` (pip's cache is reused)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "PYTHON", "VIRTUAL"))
    }
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
         tmp_path, env)  # fmt: skip
    [wheel] = dist.glob("outreach-*.whl")
    commands = _quick_start("bash")
    assert "pip install outreach" in commands
    script = commands.replace("pip install outreach", f"pip install -q {wheel}")
    empty = tmp_path / "work"
    empty.mkdir()
    out = _run(["bash", "-euo", "pipefail", "-c", script], empty, env)
    assert "9K1042/pax-17: acknowledged, choice 2" in out
    project = empty / "hello"
    assert (project / "outreach.db").is_file()
    assert not (empty / "src").exists()  # nothing but what the user ran
    checked = _run(
        [str(empty / ".venv" / "bin" / "outreach"), "templates", "templates", "--context",
         "flight=9K 1042"],
        project,
        env,
    )  # fmt: skip
    assert "refund_check" in checked
