"""The README's main command and the examples a developer copies from."""

from __future__ import annotations

import asyncio
import json
import runpy
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach.cli import app

ROOT = Path(__file__).resolve().parent.parent


def test_demo_tells_the_whole_story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "4 of 6 passengers answered" in result.output
    assert "Never reached Dana Kim" in result.output
    assert list(tmp_path.iterdir()) == []  # nothing left behind in the working directory


def test_demo_json_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--json", "--store", f"sqlite:///{tmp_path}/d.db"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    by_id = {row["recipient"]: row for row in summary["passengers"]}
    assert by_id["pax-01"]["via"] == "sms"
    assert by_id["pax-01"]["choice_label"] == "Refund"
    assert by_id["pax-01"]["follow_ups"][0]["key"].endswith("/refund_check")
    assert by_id["pax-02"]["via"] == "email"
    assert by_id["pax-03"]["via"] == "voice"
    assert by_id["pax-05"]["after_minutes"] > 150  # held back by quiet hours in Los Angeles
    assert summary["never_reached"] == ["pax-04", "pax-06"]
    assert "no phone" in by_id["pax-04"]["never_reached"]


def test_cape_air_example_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        example = runpy.run_path(str(ROOT / "examples" / "cape_air.py"))
    finally:
        sys.path.remove(str(ROOT / "examples"))
    outcome = asyncio.run(example["main"](f"sqlite:///{tmp_path}/x.db"))
    assert outcome == "acknowledged (choice 2); follow-up voice sent"
    printed = capsys.readouterr().out
    assert "--- sms to +16175550123" in printed
    assert printed.count("--- voice") == 1
