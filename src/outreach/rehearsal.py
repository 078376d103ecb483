"""Rehearsals: a campaign played on the sandbox before a single real message goes out.

Every recipient of the list is given a simulated customer (a persona of the provider
simulator) drawn by weight from a *mix* file, seeded so the same mix gives the same figures.
The real adapters, webhooks and store then run the plan on a virtual clock for the horizon,
and :class:`Rehearsal` says what happened: reach over time and by step, messages and calls per
channel, the estimated cost, and who would be left for a person.

The mix is TOML (documented in ``docs/rehearse.md``)::

    seed = 7                       # optional; --seed wins
    [prices]                       # per message the provider accepted (voice: per call)
    sms = 0.0079
    email = 0.001
    voice = 0.014
    [rates]                        # optional: sends per second per sender (default: adapter's)
    sms = 10
    [personas]
    answers-sms = 50               # a built-in persona: its weight
    never-answers = 10
    [personas.late-emailer]        # one of your own: a weight and its habits
    weight = 40
    email = { choose = "2", clicks_after = "2h" }
"""

from __future__ import annotations

import html
import random
import tomllib
import typing
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from outreach._durations import parse_duration
from outreach._models import Notification, Plan, Recipient, Status
from outreach._sandbox import SANDBOX_NUMBER, SANDBOX_SECRET, SANDBOX_SENDER, Sandbox
from outreach._simulator import (
    CallBehaviour,
    EmailBehaviour,
    Persona,
    ProviderSimulator,
    SmsBehaviour,
)
from outreach.campaigns import REPORTED_EVENTS, Row, campaign_report
from outreach.channels import Channel
from outreach.channels.sendgrid import SendGridEmail
from outreach.channels.twilio import TwilioSMS, TwilioVoice
from outreach.exceptions import ConfigurationError

__all__ = [
    "BUILT_IN",
    "Mix",
    "MixPersona",
    "Rehearsal",
    "assign_personas",
    "load_mix",
    "reach_chart_html",
    "rehearse",
]

CHECKPOINTS = (
    ("15m", timedelta(minutes=15)),
    ("1h", timedelta(hours=1)),
    ("4h", timedelta(hours=4)),
    ("24h", timedelta(hours=24)),
)
"""When reach is read off: reached by then, counted from the start."""

_CHANNELS = ("sms", "email", "voice")
_EVERYONE = 100_000_000
_RESOLUTION = timedelta(seconds=1)
"""Virtual time moves on by at least this much a round (reach is read off in minutes)."""
CHOICE = "{choice}"
"""Stands for the persona's choice (the plan's first option, or ``OK``) in a built-in."""

BUILT_IN: Mapping[str, Mapping[str, Any]] = {
    "answers-sms": {"sms": {"reply": CHOICE, "reply_after": "5m"}},
    "answers-email": {"email": {"choose": CHOICE, "clicks_after": "10m"}},
    "answers-call": {"call": {"answer": "human", "press": CHOICE}},
    "landline": {"landline": True, "call": {"answer": "human", "press": CHOICE}},
    "voicemail": {"call": {"answer": "voicemail"}},
    "mailbox-bounces": {"email": {"delivery": "bounce"}},
    "replies-stop": {"sms": {"reply": "STOP", "reply_after": "2m"}},
    "never-answers": {},
}
"""The personas a mix may name with just a weight: what each does with our messages."""

_PERSONA_KEYS = {"weight", "choice", "landline", "sms", "call", "email"}
_BEHAVIOURS: Mapping[str, type[SmsBehaviour | CallBehaviour | EmailBehaviour]] = {
    "sms": SmsBehaviour,
    "call": CallBehaviour,
    "email": EmailBehaviour,
}


def _behaviour(
    kind: type[SmsBehaviour | CallBehaviour | EmailBehaviour], fields: dict[str, Any]
) -> SmsBehaviour | CallBehaviour | EmailBehaviour:
    """``kind(**fields)``, refusing a value outside a field's listed choices."""
    for name, hint in typing.get_type_hints(kind).items():
        allowed = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else ()
        if allowed and name in fields and fields[name] not in allowed:
            raise ValueError(f"{name} = {fields[name]!r}: use one of {list(allowed)}")
    return kind(**fields)


@dataclass(frozen=True, slots=True)
class MixPersona:
    """One kind of customer in the mix: its name, weight and habits (a persona's fields:
    ``landline``, and ``sms``/``call``/``email`` behaviours; ``choice`` fills ``{choice}``)."""

    name: str
    weight: float
    habits: Mapping[str, Any] = field(default_factory=dict)
    choice: str | None = None

    def persona(self, recipient: Recipient, default_choice: str) -> Persona:
        """This kind of customer behind ``recipient``'s phone number and address."""
        choice = self.choice or default_choice
        built: dict[str, Any] = {}
        for key, value in self.habits.items():
            if key in _BEHAVIOURS:
                if not isinstance(value, dict):
                    raise TypeError(f'{key} must be a table, such as {{ reply = "1" }}')
                fields: dict[str, Any] = {k: choice if v == CHOICE else v for k, v in value.items()}
                built[f"on_{key}"] = _behaviour(_BEHAVIOURS[key], fields)
            elif not isinstance(value, bool):
                raise TypeError(f"{key} = {value!r}: use true or false")
            else:
                built[key] = value
        return Persona(phone=recipient.phone, email=recipient.email, name=self.name, **built)


@dataclass(frozen=True, slots=True)
class Mix:
    """A mix file: the kinds of customer by weight, prices and pacing per channel."""

    personas: Sequence[MixPersona]
    prices: Mapping[str, float] = field(default_factory=dict)
    rates: Mapping[str, float] = field(default_factory=dict)
    seed: int | None = None
    currency: str = ""


def _problem(path: Path, where: str, message: str) -> ConfigurationError:
    return ConfigurationError(f"{path}: {where}: {message}")


def _numbers(path: Path, data: Any, table: str) -> dict[str, float]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _problem(path, table, "must be a table of channel = number")
    out = {}
    for name, value in data.items():
        if name not in _CHANNELS:
            raise _problem(path, f"{table}.{name}", f"not a sandbox channel (use {_CHANNELS})")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise _problem(path, f"{table}.{name}", f"{value!r} is not a number >= 0")
        out[name] = float(value)
    return out


def _mix_persona(path: Path, name: str, spec: Any) -> MixPersona:
    where = f"personas.{name}"
    if not isinstance(spec, dict):
        if name not in BUILT_IN:
            known = ", ".join(BUILT_IN)
            raise _problem(path, where, f"no built-in persona has this name (built-in: {known})")
        spec = {"weight": spec, **BUILT_IN[name]}
    unknown = sorted(set(spec) - _PERSONA_KEYS)
    if unknown:
        raise _problem(path, where, f"unknown key(s) {unknown} (use {sorted(_PERSONA_KEYS)})")
    weight = spec.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise _problem(path, f"{where}.weight", f"{weight!r}: give a number > 0")
    choice = spec.get("choice")
    if choice is not None and not isinstance(choice, str):
        raise _problem(path, f"{where}.choice", f"{choice!r} is not text")
    habits = {k: v for k, v in spec.items() if k not in ("weight", "choice")}
    mix_persona = MixPersona(name, float(weight), habits, choice)
    try:  # build one now, so a bad habit is reported here, naming the persona
        mix_persona.persona(Recipient(id="check", phone="+16175550100"), "1")
    except (TypeError, ValueError) as error:
        raise _problem(path, where, str(error)) from None
    return mix_persona


def load_mix(path: str | Path) -> Mix:
    """Read a mix file; a :class:`~outreach.exceptions.ConfigurationError` names the file
    and the table at fault."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigurationError(f"{path}: cannot be read: {error}") from None
    unknown = sorted(set(data) - {"personas", "prices", "rates", "seed", "currency"})
    if unknown:
        raise _problem(path, "top level", f"unknown key(s) {unknown}")
    personas = data.get("personas")
    if not isinstance(personas, dict) or not personas:
        raise _problem(path, "personas", "give at least one persona and its weight")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _problem(path, "seed", f"{seed!r} is not a whole number")
    return Mix(
        personas=[_mix_persona(path, str(name), spec) for name, spec in personas.items()],
        prices=_numbers(path, data.get("prices"), "prices"),
        rates=_numbers(path, data.get("rates"), "rates"),
        seed=seed,
        currency=str(data.get("currency", "")),
    )


def assign_personas(rows: Sequence[Row], mix: Mix, seed: int) -> list[MixPersona]:
    """For each row, in order, the kind of customer drawn for it (the same for the same seed)."""
    draw = random.Random(seed)
    weights = [p.weight for p in mix.personas]
    return draw.choices(list(mix.personas), weights, k=len(rows))


@dataclass(slots=True)
class Rehearsal:
    """What a rehearsal found (follow-ups are counted in messages and cost only)."""

    recipients: int
    horizon_seconds: float
    seed: int
    personas: dict[str, int]
    """Recipients drawn per persona."""
    reach: dict[str, float]
    """Share reached by ``15m``, ``1h``, ``4h`` and ``24h`` (within the horizon): acknowledged,
    or, for a plan with ``until=``, delivered or engaged."""
    by_step: dict[str, int]
    """Acknowledgements by the step last sent before them (``"1 sms"``)."""
    by_channel: dict[str, int]
    """Acknowledgements by how they came in."""
    acknowledged: int
    messages: dict[str, int]
    """Messages (voice: calls) the provider accepted, per channel."""
    cost: dict[str, float]
    """``messages`` times the channel's price; channels without a price are left out."""
    total_cost: float
    currency: str
    by_status: dict[str, int]
    left_for_a_person: list[dict[str, str]]
    """``recipient``, ``persona``, ``status`` and ``reason`` of everyone not reached."""
    curve: list[tuple[float, int]] = field(default_factory=list, repr=False)
    """(seconds from the start, reached so far) at each ending that reached someone."""

    def to_dict(self) -> dict[str, Any]:
        """As JSON data."""
        return asdict(self)


def _sandbox_channels(rates: Mapping[str, float]) -> Callable[..., dict[str, Channel]]:
    def build(sims: Sequence[ProviderSimulator]) -> dict[str, Channel]:
        settings = sims[0].settings(
            secret_key=SANDBOX_SECRET, twilio_from=SANDBOX_NUMBER, sendgrid_from=SANDBOX_SENDER
        )
        transport = sims[0].api_transport()  # no sockets: straight into the simulator

        def rate(name: str) -> dict[str, Any]:
            return {"rate": rates[name]} if name in rates else {}

        return {
            "sms": TwilioSMS(settings=settings, http="httpx", transport=transport, **rate("sms")),
            "email": SendGridEmail(
                settings=settings, http="httpx", transport=transport, **rate("email")
            ),
            "voice": TwilioVoice(
                settings=settings, http="httpx", transport=transport, **rate("voice")
            ),
        }

    return build


def _messages(notifications: Sequence[Notification]) -> dict[str, int]:
    counts: Counter[str] = Counter(
        a.channel for n in notifications for a in n.attempts if a.provider_id is not None
    )
    return {name: counts[name] for name in sorted(counts)}


async def rehearse(
    plan: Plan,
    rows: Sequence[Row],
    mix: Mix,
    *,
    templates: str | Path,
    context: Mapping[str, Any] | None = None,
    horizon: str | timedelta = "24h",
    seed: int | None = None,
    start: datetime | str = "2026-11-23T13:30:00+00:00",
    campaign: str = "rehearsal",
    on_step: Callable[[timedelta], None] | None = None,
) -> Rehearsal:
    """Play ``plan`` for ``rows`` on a private sandbox (an in-memory store, the simulator,
    a virtual clock from ``start``) for ``horizon``; ``seed`` (default: the mix's, else 0)
    draws the personas. ``on_step(elapsed)`` is called as virtual time moves on."""
    span = parse_duration(horizon)
    if not isinstance(span, timedelta) or span <= timedelta(0):
        raise ConfigurationError(f"horizon {horizon!r}: give a duration such as '24h'")
    chosen_seed = seed if seed is not None else mix.seed if mix.seed is not None else 0
    kinds = assign_personas(rows, mix, chosen_seed)
    default_choice = plan.options[0].key if plan.options else "OK"
    personas = [
        kind.persona(row.request.recipient, default_choice)
        for row, kind in zip(rows, kinds, strict=True)
    ]
    async with Sandbox(
        store="memory://",
        templates=templates,
        personas=personas,
        start=start,
        channels=_sandbox_channels(mix.rates),
        in_process=True,
    ) as box:
        began = box.clock.now()
        requests = [row.request for row in rows]
        for first in range(0, len(requests), 500):
            await box.client.start_many(
                plan, requests[first : first + 500], context=context, campaign=campaign
            )

        end = began + span
        while True:
            await box.step()
            if on_step is not None:
                on_step(box.clock.now() - began)
            upcoming = await box.due_by(end)
            if not upcoming:
                break
            # Whatever falls due within the resolution runs together: far fewer rounds.
            box.clock.set(max(min(upcoming), box.clock.now() + _RESOLUTION))
        found = await box.client.list(campaign=campaign, limit=_EVERYONE)
        events = [e async for e in box.client.events(kinds=REPORTED_EVENTS)]
    return _summarise(found, events, kinds, rows, mix, chosen_seed, began, span, campaign)


def _summarise(
    found: Sequence[Notification],
    events: Sequence[Any],
    kinds: Sequence[MixPersona],
    rows: Sequence[Row],
    mix: Mix,
    seed: int,
    began: datetime,
    span: timedelta,
    campaign: str,
) -> Rehearsal:
    report = campaign_report(campaign, found, events)
    order = {row.request.recipient.id: i for i, row in enumerate(rows)}
    roots = sorted(
        (n for n in found if n.parent_id is None), key=lambda n: order.get(n.recipient.id, 0)
    )  # file order: the store's order breaks ties by random ids
    persona_of = {
        row.request.recipient.id: kind.name for row, kind in zip(rows, kinds, strict=True)
    }
    reached = sorted(
        (at - began).total_seconds()
        for n in roots
        if n.status.reached and (at := n.acknowledged_at or n.finished_at) is not None
    )
    total = len(roots) or 1
    reach = {
        label: sum(s <= at.total_seconds() for s in reached) / total
        for label, at in CHECKPOINTS
        if at <= span
    }
    messages = _messages(found)
    cost = {
        name: round(count * mix.prices[name], 6)
        for name, count in messages.items()
        if name in mix.prices
    }
    why = {}
    for row in reversed(report.never_reached):  # the first row of a recipient wins
        why[row["recipient"]] = row["reason"]
    left = [
        {
            "recipient": n.recipient.id,
            "persona": persona_of.get(n.recipient.id, ""),
            "status": n.status.value,
            "reason": why.get(n.recipient.id, "still escalating at the horizon"),
        }
        for n in roots
        if not n.status.reached
    ]
    return Rehearsal(
        recipients=len(rows),
        horizon_seconds=span.total_seconds(),
        seed=seed,
        personas=dict(Counter(kind.name for kind in kinds).most_common()),
        reach=reach,
        by_step=report.by_step,
        by_channel=report.by_channel,
        acknowledged=sum(n.status is Status.ACKNOWLEDGED for n in roots),
        messages=messages,
        cost=cost,
        total_cost=round(sum(cost.values()), 6),
        currency=mix.currency,
        by_status=report.by_status,
        left_for_a_person=left,
        curve=[(seconds, i + 1) for i, seconds in enumerate(reached)],
    )


# -- the page ----------------------------------------------------------------------------------

_W, _H, _PAD = 640, 300, 48


def _svg_curve(result: Rehearsal) -> str:
    """The reach curve (share acknowledged over virtual time) as an inline SVG chart."""
    span = result.horizon_seconds or 1.0
    total = result.recipients or 1

    def x(seconds: float) -> float:
        return _PAD + (_W - 2 * _PAD) * min(seconds, span) / span

    def y(count: int) -> float:
        return _H - _PAD - (_H - 2 * _PAD) * count / total

    points = [(x(0), y(0))]
    for seconds, count in result.curve:
        points += [(x(seconds), points[-1][1]), (x(seconds), y(count))]
    points.append((x(span), points[-1][1]))
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" role="img" aria-label="share acknowledged over time">',
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#555"/>',
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#555"/>',
    ]
    for share in (0, 25, 50, 75, 100):
        level = y(round(total * share / 100))
        parts.append(
            f'<line x1="{_PAD}" y1="{level:.1f}" x2="{_W - _PAD}" y2="{level:.1f}" '
            f'stroke="#ddd"/><text x="{_PAD - 6}" y="{level + 4:.1f}" font-size="11" '
            f'text-anchor="end">{share}%</text>'
        )
    for label, at in CHECKPOINTS:
        if at.total_seconds() <= span:
            px = x(at.total_seconds())
            parts.append(
                f'<line x1="{px:.1f}" y1="{_PAD}" x2="{px:.1f}" y2="{_H - _PAD}" '
                f'stroke="#eee"/><text x="{px:.1f}" y="{_H - _PAD + 16}" font-size="11" '
                f'text-anchor="middle">{label}</text>'
            )
    parts.append(f'<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="{path}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: Sequence[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
        for name, value in rows
    )
    return f"<table>{cells}</table>"


def reach_chart_html(result: Rehearsal, *, title: str) -> str:
    """A self-contained page (no scripts, no outside files): the reach curve and the figures."""
    money = f"{result.total_cost:,.2f} {result.currency}".strip()
    figures = [
        ("recipients", f"{result.recipients:,}"),
        ("acknowledged", f"{result.acknowledged:,}"),
        *((f"reached by {k}", f"{v:.1%}") for k, v in result.reach.items()),
        *((f"acknowledged after step {k}", f"{v:,}") for k, v in result.by_step.items()),
        *((f"{k} sent", f"{v:,}") for k, v in result.messages.items()),
        ("estimated cost", money),
        ("left for a person", f"{len(result.left_for_a_person):,}"),
    ]
    left = "".join(
        f"<li>{html.escape(r['recipient'])} ({html.escape(r['persona'])}): "
        f"{html.escape(r['reason'])}</li>"
        for r in result.left_for_a_person[:500]
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "th{text-align:left;padding-right:1em}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{_svg_curve(result)}{_table(figures)}"
        f"<h2>Left for a person</h2><ul>{left}</ul></body></html>\n"
    )
