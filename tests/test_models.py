"""Records: durations, validation errors that name the field, plans from files, frozen plans."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from outreach import FollowUp, Option, Plan, QuietHours, Recipient, Step
from outreach._durations import format_duration, parse_duration
from outreach._models import MAX_FOLLOW_UP_DEPTH
from outreach.demo import demo_plan
from outreach.exceptions import ConfigurationError, InvalidRecipient


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("500ms", timedelta(milliseconds=500)),
    ],
)
def test_durations_round_trip(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("bad", ["15", "m", "15x", "1h 30q", ""])
def test_bad_durations_are_named(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="wait"):
        Step(channel="sms", template="t", wait=bad)


def test_recipient_normalises_phone_and_email() -> None:
    r = Recipient(id="p", phone="+1 (617) 555-0123", email="Ann@Example.COM")
    assert r.phone == "+16175550123"
    assert r.email == "Ann@example.com"
    assert r.timezone is None
    assert r.locale == "en"


def test_recipient_names_every_bad_field() -> None:
    with pytest.raises(InvalidRecipient) as caught:
        Recipient(id="p", phone="12", email="x@")
    assert "phone" in str(caught.value)
    assert "email" in str(caught.value)


def test_plans_are_frozen_and_fingerprinted_by_content() -> None:
    plan = Plan(name="p", steps=[Step(channel="sms", template="t")])
    with pytest.raises(Exception, match="frozen"):
        plan.name = "q"  # type: ignore[misc]
    assert (
        plan.fingerprint == Plan(name="p", steps=[{"channel": "sms", "template": "t"}]).fingerprint
    )
    assert plan.fingerprint != plan.model_copy(update={"name": "q"}).fingerprint


def test_plan_rules() -> None:
    with pytest.raises(ConfigurationError, match="steps"):
        Plan(name="p", steps=[])
    with pytest.raises(ConfigurationError, match="unique"):
        Plan(
            name="p",
            steps=[Step(channel="sms", template="t")],
            options=[Option(key="1", label="a"), Option(key="1", label="b")],
        )
    with pytest.raises(ConfigurationError, match="'9'"):
        Plan(
            name="p",
            steps=[Step(channel="sms", template="t")],
            follow_ups=[FollowUp(when_choice="9", after="1d", channel="voice", template="t")],
        )
    with pytest.raises(ConfigurationError, match="empty"):
        QuietHours(start="08:00", end="08:00")
    with pytest.raises(ConfigurationError, match="timezone"):
        Plan(name="p", steps=[Step(channel="sms", template="t")], timezone="Nowhere/Land")


@pytest.mark.parametrize("key", ["10", "#", "*", "A", " 1", "\u0661"])  # \u0661: Arabic-Indic one
@pytest.mark.parametrize("where", ["step", "follow-up", "follow-up plan"])
def test_a_voice_plan_refuses_option_keys_a_keypad_cannot_send(key: str, where: str) -> None:
    """``<Gather numDigits="1">`` reads one key of 0-9 (``#`` ends input): a voice step needs
    single-digit keys, and so does a voice follow-up, for the options it offers itself."""
    options = [Option(key="1", label="one"), Option(key=key, label="other")]
    sms = Step(channel="sms", template="t")
    voice = Step(channel="voice", template="t")
    build = {
        "step": lambda: Plan(name="p", steps=[sms, voice], options=options),
        "follow-up": lambda: FollowUp(after="1d", channel="voice", template="t", options=options),
        "follow-up plan": lambda: FollowUp(
            after="1d", plan=Plan(name="c", steps=[voice], options=options)
        ),
    }[where]
    with pytest.raises(ConfigurationError, match=f"option {key!r}") as raised:
        build()
    assert "0-9" in str(raised.value)


def test_a_voice_follow_up_leaves_the_parents_option_keys_free() -> None:
    """A follow-up offers only its own options, so the parent's need not be keypad digits."""
    plan = Plan(
        name="p",
        steps=[Step(channel="sms", template="t")],
        options=[Option(key="A", label="a")],
        follow_ups=[FollowUp(after="1d", channel="voice", template="t")],
    )
    assert plan.follow_ups[0].as_plan(plan).options == ()


def test_option_keys_of_a_plan_without_voice_are_free() -> None:
    plan = Plan(
        name="p",
        steps=[Step(channel="sms", template="t"), Step(channel="email", template="t")],
        options=[Option(key="10", label="ten"), Option(key="A", label="a")],
    )
    assert [o.key for o in plan.options] == ["10", "A"]


def test_plans_load_from_toml_and_json(tmp_path: Path) -> None:
    plan = demo_plan()
    assert [s.channel for s in plan.steps] == ["sms", "email", "voice"]
    assert plan.follow_ups[0].after == timedelta(days=3)
    as_json = tmp_path / "plan.json"
    as_json.write_text(plan.model_dump_json())
    assert Plan.load(as_json) == plan
    with pytest.raises(ConfigurationError, match=r"\.toml or \.json"):
        Plan.load(tmp_path / "plan.yaml")


def test_a_shorthand_follow_up_keeps_the_parents_manners_but_not_its_options() -> None:
    parent = demo_plan()
    shorthand = FollowUp(when_choice="2", after="3d", channel="voice", template="refund_check")
    child = shorthand.as_plan(parent)
    assert child.name == "flight-cancelled/refund_check"
    assert [s.channel for s in child.steps] == ["voice"]
    assert child.steps[0].wait == timedelta(hours=1)
    assert child.quiet_hours == parent.quiet_hours
    assert child.options == ()
    assert child.deadline is None


def test_the_demo_refund_check_runs_its_own_plan() -> None:
    parent = demo_plan()
    [follow_up] = parent.follow_ups
    child = follow_up.as_plan(parent)
    assert follow_up.label == "refund_check"
    assert [o.key for o in child.options] == ["1", "2"]
    assert child.option("2") is not None
    assert child.option("2").handoff  # type: ignore[union-attr]


def test_a_follow_up_is_a_plan_or_a_channel_and_template() -> None:
    step = Step(channel="sms", template="t")
    with pytest.raises(ConfigurationError, match="plan=Plan"):
        FollowUp(after="1d", channel="sms")
    with pytest.raises(ConfigurationError, match="not both"):
        FollowUp(after="1d", channel="sms", template="t", plan=Plan(name="c", steps=[step]))
    with pytest.raises(ConfigurationError, match="deadline, wait: with plan="):
        FollowUp(after="1d", wait="2h", deadline="1d", plan=Plan(name="c", steps=[step]))


def test_follow_ups_nest_only_so_deep() -> None:
    step = Step(channel="sms", template="t")
    plan = Plan(name="level-0", steps=[step])
    for level in range(1, MAX_FOLLOW_UP_DEPTH + 1):
        plan = Plan(
            name=f"level-{level}", steps=[step], follow_ups=[FollowUp(after="1d", plan=plan)]
        )
    assert plan.depth == MAX_FOLLOW_UP_DEPTH + 1
    with pytest.raises(ConfigurationError, match=r"nest 5 levels deep \(too-deep -> level-4"):
        Plan(name="too-deep", steps=[step], follow_ups=[FollowUp(after="1d", plan=plan)])


def test_fingerprints_do_not_depend_on_the_hash_seed() -> None:
    """Sets serialise in order, so every process agrees on a plan's snapshot."""
    import os
    import subprocess
    import sys

    code = "from outreach.demo import demo_plan; print(demo_plan().fingerprint)"
    prints = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(6)
    }
    assert len(prints) == 1


def test_follow_up_names_are_unique() -> None:
    with pytest.raises(ConfigurationError, match="unique"):
        Plan(
            name="p",
            steps=[Step(channel="sms", template="t")],
            follow_ups=[
                FollowUp(after="1d", channel="voice", template="check"),
                FollowUp(after="2d", channel="sms", template="check"),
            ],
        )
