"""Ordinary tasks need no private import: the examples and the docs use public names only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import outreach

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
PRIVATE = re.compile(r"\boutreach(?:\.\w+)*\._\w+")


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _code(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return text if path.suffix == ".py" else "\n".join(FENCE.findall(text))


@pytest.mark.parametrize(
    "path",
    [*sorted((ROOT / "examples").glob("*.py")), *_documents()],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_private_module_is_used(path: Path) -> None:
    found = PRIVATE.findall(_code(path))
    assert not found, f"{path.relative_to(ROOT)} uses private modules: {sorted(set(found))}"


def test_the_scan_sees_code_blocks_and_private_names() -> None:
    sample = "text outreach._x\n```python\nfrom outreach._settings import Settings\n```\n"
    assert PRIVATE.findall("\n".join(FENCE.findall(sample))) == ["outreach._settings"]
    assert PRIVATE.findall("import outreach.channels._http") == ["outreach.channels._http"]
    assert not PRIVATE.findall("from outreach.testing import Sandbox")


def test_settings_and_channels_from_settings_are_public() -> None:
    settings = outreach.Settings(
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token="token",
        twilio_from="+16175550100",
        sendgrid_api_key="SG.key",
        sendgrid_from="Cape Air <noreply@example.com>",
    )
    channels = outreach.channels_from_settings(settings)
    assert sorted(channels) == ["email", "sms", "voice"]
    assert outreach.channels_from_settings(outreach.Settings()) == {}
