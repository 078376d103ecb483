"""Campaigns: everyone on a list, checked before anything is sent, started safely, reported.

The building blocks of ``outreach send``, ``outreach report`` and friends, for scripts:

- :func:`read_recipients` (or :func:`iter_recipients`, one record at a time) reads a CSV
  file (``,``, ``;`` or tab, sniffed from the header) or JSON lines (``.jsonl``). Columns
  ``id`` (required), ``phone``, ``email``, ``timezone``, ``locale`` and ``key`` map to the
  recipient (header names are matched case-insensitively);
  every other non-empty cell becomes a template variable of that row and a recipient
  attribute. A bad row becomes a :class:`RowError` naming its line (the line the record starts
  on, right across quoted newlines and blank lines), its column and the reason; a bad header is
  one :class:`~outreach.exceptions.ConfigurationError`.
- :func:`validate_campaign` renders every message of every row as ``start()`` would, and
  reports rows that cannot be sent, with per-channel counts, SMS segments and encodings.
- :func:`start_campaign` starts the valid rows in batches, each batch one transaction, keyed
  so a re-run resumes and never sends twice; it says how many were new.
- :func:`run_until_finished` runs the escalations in process until the campaign is done, and
  :func:`campaign_progress` says where it stands (counts by status, first sends left).
- :func:`campaign_report` (:func:`read_campaign_report` from a client) sums up what
  happened: reach, acknowledgements by channel and step, time to acknowledge, choices,
  opt-outs, follow-ups and who was never reached, and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import difflib
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO, TypeVar

from outreach._client import AsyncClient
from outreach._models import (
    AttemptStatus,
    Event,
    EventKind,
    Medium,
    Notification,
    Plan,
    Recipient,
    StartRequest,
    Status,
)
from outreach._templates import not_gsm7
from outreach.channels import resolve_media
from outreach.exceptions import ConfigurationError, InvalidRecipient, TemplateError
from outreach.outcomes import describe, never_reached

__all__ = [
    "CampaignCheck",
    "CampaignProgress",
    "CampaignReport",
    "ChannelCount",
    "Preview",
    "Row",
    "RowError",
    "StartResult",
    "Ucs2Row",
    "campaign_progress",
    "campaign_report",
    "iter_recipients",
    "never_reached",
    "read_campaign_report",
    "read_recipients",
    "run_until_finished",
    "start_campaign",
    "validate_campaign",
    "write_rejects",
]

T = TypeVar("T")

FIELDS = ("id", "phone", "email", "timezone", "locale")
"""Columns that map to :class:`~outreach.Recipient` fields; ``key`` is the notification key."""
_KNOWN = (*FIELDS, "key")
_ALIASES = {"time_zone": "timezone", "tz": "timezone", "language": "locale", "lang": "locale"}
_DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True, slots=True)
class Row:
    """One good record of the file: the line it starts on, and what to start for it."""

    line: int
    request: StartRequest


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one record of the file cannot be sent: its line, the column at fault (if one is),
    and the reason. ``values`` are the record's cells as read, for a rejects file."""

    line: int
    reason: str
    column: str | None = None
    values: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.reason}"


# -- reading ----------------------------------------------------------------------------------


def read_recipients(
    path: str | Path, *, key_prefix: str | None = None
) -> tuple[list[Row], list[RowError]]:
    """Read ``path`` (CSV, or JSON lines when it ends in ``.jsonl``): the good rows and the
    errors of the bad ones. ``key_prefix`` makes each row's key ``<prefix>/<id>`` unless the
    file has a ``key`` column. Recipient ids must be unique in the file.

    Raises :class:`~outreach.exceptions.ConfigurationError` for what spoils the whole file: it
    cannot be read, or its header has no ``id`` column, a column twice, or a misspelt name.
    """
    rows: list[Row] = []
    errors: list[RowError] = []
    for item in iter_recipients(path, key_prefix=key_prefix):
        if isinstance(item, RowError):
            errors.append(item)
        else:
            rows.append(item)
    return rows, errors


def iter_recipients(path: str | Path, *, key_prefix: str | None = None) -> Iterator[Row | RowError]:
    """:func:`read_recipients` one record at a time, in file order, holding one record in
    memory (and the ids and keys seen, to report duplicates): for files of any size."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            if path.suffix.lower() in (".jsonl", ".ndjson"):
                records = _json_lines(path, handle)
            else:
                records = _csv_records(path, handle)
            yield from _parse(records, key_prefix)
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot be read: {exc}") from None
    except csv.Error as exc:
        raise ConfigurationError(f"{path}: not a readable CSV file: {exc}") from None


_Record = tuple[int, dict[str, Any], dict[str, str]] | RowError
"""(line, values by canonical column, cells as read) or the error of an unreadable record."""


def _normal(name: str) -> str:
    plain = name.strip().lower().replace(" ", "_").replace("-", "_")
    return _ALIASES.get(plain, plain)


def _check_header(path: Path, header: Sequence[str], delimiter: str | None) -> list[str]:
    """Canonical column names, or one error that says what is wrong with the header."""
    names = [_normal(name) for name in header]
    shown = ", ".join(repr(name) for name in header[:8]) + (" ..." if len(header) > 8 else "")
    if "id" not in names:
        hint = ""
        if delimiter is not None and len(header) == 1:
            others = [d for d in _DELIMITERS if d in header[0]]
            if others:
                hint = f"; the file seems to use {others[0]!r} between columns, not {delimiter!r}"
        close = difflib.get_close_matches("id", names, n=1, cutoff=0.6)
        if close and not hint:
            hint = f"; is {close[0]!r} meant to be 'id'?"
        raise ConfigurationError(
            f"{path} line 1: the header has no 'id' column (found {shown}){hint}"
        )
    twice = sorted({n for n in names if n and names.count(n) > 1})
    if twice:
        raise ConfigurationError(f"{path} line 1: the header names {twice} more than once")
    for name in names:
        if name in _KNOWN:
            continue
        close = difflib.get_close_matches(name, [k for k in _KNOWN if k not in names], 1, 0.8)
        if close:
            raise ConfigurationError(
                f"{path} line 1: column {name!r} looks like a misspelt {close[0]!r}; rename it"
                " (any other column is a template variable)"
            )
    return names


def _sniff(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _csv_records(path: Path, handle: TextIO) -> Iterator[_Record]:
    sample = handle.readline()
    while sample and not sample.strip():  # blank lines before the header
        sample += handle.readline()
    handle.seek(0)
    delimiter = _sniff(sample.strip().splitlines()[0] if sample.strip() else "")
    reader = csv.reader(handle, delimiter=delimiter)
    header: list[str] | None = None
    names: list[str] = []
    ended = 0  # the physical line the previous record ended on
    for cells in reader:
        start, ended = ended + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        if header is None:
            header = [cell.strip() for cell in cells]
            names = _check_header(path, header, delimiter)
            continue
        raw = dict(zip(header, cells, strict=False))
        if len(cells) > len(header):
            extra = ", ".join(repr(c) for c in cells[len(header) :])
            yield RowError(start, f"more values than the header has columns ({extra})", None, raw)
            continue
        yield start, dict(zip(names, cells, strict=False)), raw
    if header is None:
        raise ConfigurationError(f"{path}: the file is empty (no header line)")


def _json_lines(path: Path, handle: TextIO) -> Iterator[_Record]:
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        raw = {"record": text.rstrip("\r\n")}
        try:
            record = json.loads(text)
        except ValueError as exc:
            yield RowError(line, f"not JSON: {exc}", None, raw)
            continue
        if not isinstance(record, dict):
            yield RowError(line, "not a JSON object", None, raw)
            continue
        names = [_normal(str(k)) for k in record]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            yield RowError(line, f"names {twice} more than once", None, raw)
            continue
        yield line, dict(zip(names, record.values(), strict=True)), raw


def _cell(value: Any) -> str:
    return value.strip() if isinstance(value, str) else "" if value is None else str(value)


def _parse(records: Iterable[_Record], key_prefix: str | None) -> Iterator[Row | RowError]:
    seen: dict[str, int] = {}
    keys: dict[str, int] = {}
    for record in records:
        if isinstance(record, RowError):
            yield record
            continue
        line, values, raw = record
        ident = _cell(values.get("id"))
        if not ident:
            yield RowError(line, "the id is empty", "id", raw)
            continue
        if ident in seen:
            yield RowError(line, f"id {ident!r} is already on line {seen[ident]}", "id", raw)
            continue
        seen[ident] = line
        fields = {f: _cell(values.get(f)) for f in FIELDS if _cell(values.get(f))}
        extra = {
            k: (v.strip() if isinstance(v, str) else v)
            for k, v in values.items()
            if k not in _KNOWN and k and v is not None and _cell(v)
        }
        try:
            recipient = Recipient(**fields, attributes=extra)
        except InvalidRecipient as exc:
            for column, reason in _problems(str(exc)):
                yield RowError(line, reason, column, raw)
            continue
        key = _cell(values.get("key")) or (f"{key_prefix}/{ident}" if key_prefix else None)
        if key is not None:
            if key in keys:
                yield RowError(line, f"key {key!r} is already on line {keys[key]}", "key", raw)
                continue
            keys[key] = line
        yield Row(line, StartRequest(recipient, context=extra, key=key))


_PROBLEM = re.compile(r"(?:^|; )(id|phone|email|timezone|locale|attributes)[.\w]*: ")


def _problems(message: str) -> list[tuple[str | None, str]]:
    """``"invalid Recipient: phone: ...; email: ..."`` -> ``[("phone", ...), ("email", ...)]``."""
    text = message.removeprefix("invalid Recipient: ")
    found = list(_PROBLEM.finditer(text))
    if not found:
        return [(None, text)]
    ends = [m.start() for m in found[1:]] + [len(text)]
    return [(m[1], text[m.end() : end]) for m, end in zip(found, ends, strict=True)]


def write_rejects(path: str | Path, errors: Sequence[RowError]) -> Path:
    """Write ``errors`` to ``path`` as CSV: ``line``, ``column``, ``reason``, then the
    record's cells as read (to fix and send again). Returns the path."""
    path = Path(path)
    columns = ["line", "column", "reason"]
    for error in errors:
        columns += [c for c in error.values if c not in columns]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        for error in errors:
            writer.writerow(
                {
                    **error.values,
                    "line": error.line,
                    "column": error.column or "",
                    "reason": error.reason,
                }
            )
    return path


# -- validating ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ChannelCount:
    """The messages a campaign would send on one channel (each step, once per valid row)."""

    medium: str
    messages: int = 0
    segments: int = 0
    """SMS only: segments billed, summed."""
    gsm7: int = 0
    ucs2: int = 0


@dataclass(frozen=True, slots=True)
class Ucs2Row:
    """A row whose SMS goes out as UCS-2 (70 characters a segment), and the characters why."""

    line: int
    recipient_id: str
    template: str
    characters: str


@dataclass(frozen=True, slots=True)
class Preview:
    """One rendered message, as the dry run shows it."""

    line: int
    recipient_id: str
    channel: str
    subject: str | None
    body: str


@dataclass(slots=True)
class CampaignCheck:
    """What :func:`validate_campaign` found: the rows that can be sent, the ones that cannot,
    and what sending the good ones would mean per channel."""

    rows: list[Row]
    """The rows that can be sent (empty when :func:`validate_campaign` was told not to keep
    them: a dry run of a file of any size)."""
    errors: list[RowError]
    valid: int = 0
    """How many rows can be sent."""
    channels: dict[str, ChannelCount] = field(default_factory=dict)
    follow_ups: dict[str, ChannelCount] = field(default_factory=dict)
    """Messages of follow-ups, sent only to customers who make their choice."""
    ucs2: list[Ucs2Row] = field(default_factory=list)
    previews: list[Preview] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every row can be sent."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """Everything but the rows themselves, as JSON data."""
        return {
            "rows_valid": self.valid,
            "rows_invalid": len({e.line for e in self.errors}),
            "errors": [
                {"line": e.line, "column": e.column, "reason": e.reason} for e in self.errors
            ],
            "channels": {name: asdict(c) for name, c in self.channels.items()},
            "follow_ups": {name: asdict(c) for name, c in self.follow_ups.items()},
            "ucs2": [asdict(u) for u in self.ucs2],
            "previews": [asdict(p) for p in self.previews],
        }


_SPOILS_ALL = re.compile(r"unknown template|has no |syntax error|invalid template name")


def _template_column(error: TemplateError) -> str | None:
    """The column to blame: ``locale`` for a bad tag, else the undefined variable (an empty
    cell gives the row no such variable)."""
    message = str(error)
    if message.startswith("invalid locale"):
        return "locale"
    match = re.search(r"variable '(\w+)' is undefined", message)
    return match[1] if match else None


def validate_campaign(
    client: AsyncClient,
    plan: Plan,
    rows: Iterable[Row | RowError],
    *,
    context: Mapping[str, Any] | None = None,
    errors: Iterable[RowError] = (),
    previews: int = 3,
    ucs2_listed: int = 50,
    keep_rows: bool = True,
) -> CampaignCheck:
    """Render every message of every row (``client.preview``) and sort the rows into those
    that can be sent and those that cannot (a template variable missing or empty, a locale
    that is not a language tag, no address for any step of the plan), sending nothing.

    ``rows`` may be :func:`iter_recipients` itself: its errors join the others, and with
    ``keep_rows=False`` the good rows are counted, not kept, so memory stays flat however
    long the file. ``errors`` (reading errors got apart) are carried into the result, sorted
    with the others by line. Raises ``ConfigurationError`` for what spoils every row (a
    channel the client lacks).
    """
    check = CampaignCheck([], list(errors))
    media = _plan_media(client, plan)
    for row in _in_chunks(rows):
        if isinstance(row, RowError):
            check.errors.append(row)
            continue
        recipient = row.request.recipient
        if not any(recipient.address(medium) for medium in media):
            wanted = " or ".join(sorted({"email" if m is Medium.EMAIL else "phone" for m in media}))
            check.errors.append(RowError(row.line, f"no {wanted}: no step can reach them"))
            continue
        try:
            trials = client.preview(plan, row.request, context=context)
        except TemplateError as error:
            column = _template_column(error)
            if column is None and _SPOILS_ALL.search(str(error)):
                # A missing notice or file, a syntax error: the templates, not the row.
                raise ConfigurationError(f"the templates cannot be used: {error}") from None
            check.errors.append(RowError(row.line, str(error), column))
            continue
        check.valid += 1
        if keep_rows:
            check.rows.append(row)
        for trial in trials:
            counts = check.follow_ups if trial.follow_up else check.channels
            count = counts.setdefault(trial.channel, ChannelCount(trial.medium.value))
            if not recipient.address(trial.medium):
                continue  # skipped at send time: no address for it
            count.messages += 1
            rendered = trial.rendered
            if rendered.segments is not None:
                count.segments += rendered.segments
                if rendered.encoding == "UCS-2":
                    count.ucs2 += 1
                    if len(check.ucs2) < ucs2_listed and not trial.follow_up:
                        check.ucs2.append(
                            Ucs2Row(row.line, recipient.id, trial.template, not_gsm7(rendered.body))
                        )
                else:
                    count.gsm7 += 1
            if len(check.previews) < previews and not trial.follow_up:
                check.previews.append(
                    Preview(row.line, recipient.id, trial.channel, rendered.subject, rendered.body)
                )
    check.errors.sort(key=lambda e: e.line)
    return check


def _in_chunks(items: Iterable[T], size: int = 1000) -> Iterator[T]:
    """``items`` again, pulled ``size`` at a time: reading a chunk, then checking it, keeps
    each phase's code and data warm (measurably cheaper than one record of each in turn)."""
    source = iter(items)
    while chunk := list(itertools.islice(source, size)):
        yield from chunk


def _plan_media(client: AsyncClient, plan: Plan) -> set[Medium]:
    """The media the plan's steps use, after checking the client has every channel."""
    media = resolve_media(client.channels)
    names = set(plan.channel_names())
    missing = sorted(names - set(media))
    if missing:
        raise ConfigurationError(
            f"plan {plan.name!r} uses channel(s) {missing}, but the client has "
            f"{sorted(client.channels) or 'no channels'}"
        )
    return {media[step.channel] for step in plan.steps}


# -- starting -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartResult:
    """What :func:`start_campaign` did: notifications created now, and those a previous run
    had already started (same key: nothing was sent again)."""

    new: int
    existing: int


async def start_campaign(
    client: AsyncClient,
    plan: Plan,
    rows: Sequence[Row],
    *,
    campaign: str,
    context: Mapping[str, Any] | None = None,
    batch: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> StartResult:
    """Start ``plan`` for every row, ``batch`` rows per transaction. Rows are keyed (campaign
    and recipient id by default), so a run stopped half-way resumes when run again and never
    starts anyone twice. ``progress(done, total)`` is called after each committed batch."""
    new = existing = 0
    for first in range(0, len(rows), batch):
        requests = [row.request for row in rows[first : first + batch]]
        started = await client.start_many(plan, requests, context=context, campaign=campaign)
        created = getattr(started, "new", None)
        if created is None:  # a client that predates Started: tell by creation time
            created = sum(n.created_at == started[0].created_at for n in started)
        new += created
        existing += len(started) - created
        if progress is not None:
            progress(min(first + batch, len(rows)), len(rows))
    return StartResult(new, existing)


@dataclass(frozen=True, slots=True)
class CampaignProgress:
    """A campaign's notifications by status (follow-ups apart), and when its first messages
    should all be out at the pacing of its first channel (``None``: not paced)."""

    counts: dict[str, int]
    follow_ups: dict[str, int]
    first_sends_left: timedelta | None
    longest_escalation: timedelta
    """From a first send to the end of the plan: every step's wait, every pass (or the
    deadline, if sooner). With ``first_sends_left``, an upper bound on the time to go."""

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + sum(self.follow_ups.values())

    @property
    def finished(self) -> int:
        """Notifications (follow-ups included) nothing more will be sent for."""
        return sum(
            count
            for counts in (self.counts, self.follow_ups)
            for status, count in counts.items()
            if Status(status).is_terminal
        )

    @property
    def done(self) -> bool:
        return self.finished == self.total


async def campaign_progress(client: AsyncClient, campaign: str, plan: Plan) -> CampaignProgress:
    """Where ``campaign`` stands, counted by the store (nothing is loaded)."""
    counts = await client.store.campaign_counts(campaign)
    roots = {s.value: c for (s, child), c in sorted(counts.items()) if not child}
    children = {s.value: c for (s, child), c in sorted(counts.items()) if child}
    rate = getattr(client.channels.get(plan.steps[0].channel), "rate", None)
    pending = roots.get(Status.PENDING.value, 0)
    first = timedelta(seconds=pending / rate) if isinstance(rate, int | float) and rate else None
    chain = sum((step.wait for step in plan.steps), timedelta(0)) * (plan.repeat + 1)
    if plan.deadline is not None:
        chain = min(chain, plan.deadline)
    return CampaignProgress(roots, children, first, chain)


async def run_until_finished(
    client: AsyncClient,
    campaign: str,
    plan: Plan,
    *,
    progress: Callable[[CampaignProgress], None] | None = None,
    every: timedelta = timedelta(seconds=1),
) -> CampaignProgress:
    """Run the escalations in this process (``client.run()``) until every notification of
    ``campaign`` is finished, follow-ups included, looking ``every`` so often (on the
    client's clock). Cancelled (Ctrl-C), it stops as ``run()`` does: what is left stays
    queued for a worker or the next run."""
    running = asyncio.ensure_future(client.run())
    try:
        while True:
            now = await campaign_progress(client, campaign, plan)
            if progress is not None:
                progress(now)
            if running.done():
                await running  # it stopped: say why
            if now.done:
                return now
            await client.clock.sleep_until(client.clock.now() + every, asyncio.Event())
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


# -- reporting ----------------------------------------------------------------------------------

_UNREACHED = (Status.EXHAUSTED, Status.EXPIRED, Status.FAILED)
_EVERYONE = 100_000_000  # no limit on a campaign's notifications


@dataclass(slots=True)
class CampaignReport:
    """What happened in a campaign, counted over its notifications (follow-ups apart)."""

    campaign: str
    notifications: int
    by_status: dict[str, int]
    acknowledged: int
    reach_rate: float | None
    """Reached / notifications (None for an empty campaign)."""
    by_channel: dict[str, int]
    """Acknowledgements by how they came in (``sms``, ``email``, ``voice``, ``api`` ...)."""
    by_step: dict[str, int]
    """Acknowledgements by the step last sent before them (``"1 sms"``), or ``"none sent"``."""
    seconds_to_ack_p50: float | None
    seconds_to_ack_p90: float | None
    choices: dict[str, int]
    """By option label (the key when the plan has no such option)."""
    opted_out: int
    """Notifications whose customer opted out of a channel."""
    follow_ups: dict[str, int]
    """Follow-up notifications by status."""
    never_reached: list[dict[str, str]]
    """``recipient``, ``key``, ``status`` and ``reason`` of everyone not reached."""
    recipients: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """One line per notification (the CSV form of the report)."""
    reached: int = 0
    """Acknowledged, engaged or delivered: the notifications that did their job (a plan's
    ``until`` says which rung that is)."""

    def to_dict(self) -> dict[str, Any]:
        """As JSON data, without the per-recipient lines."""
        data = asdict(self)
        del data["recipients"]
        return data


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _acked_step(n: Notification, attempt_id: str | None) -> str:
    """The step an acknowledgement answered: the attempt the log names, else the last one
    sent before it."""
    attempt = n.attempt(attempt_id) if attempt_id else None
    if attempt is None and n.acknowledged_at is not None:
        sent = [a for a in n.attempts if a.sent_at is not None and a.sent_at <= n.acknowledged_at]
        attempt = max(sent, key=lambda a: a.sent_at or n.created_at, default=None)
    return "none sent" if attempt is None else f"{attempt.step + 1} {attempt.channel}"


REPORTED_EVENTS = (EventKind.ACKNOWLEDGED, EventKind.OPTED_OUT)
"""The only log entries a campaign report reads (acknowledgements, opt-outs)."""


@dataclass(slots=True)
class _Logged:
    """What a report takes from the event log about some notifications (``ids``): the
    attempt each was first acknowledged on, and which opted out. Small: one entry per
    acknowledgement or opt-out, whatever the length of the log."""

    ids: set[str]
    acked_on: dict[str, str | None] = field(default_factory=dict)
    opted: set[str] = field(default_factory=set)

    def add(self, event: Event) -> None:
        if event.notification_id not in self.ids:
            return
        if event.kind is EventKind.ACKNOWLEDGED:
            self.acked_on.setdefault(event.notification_id, event.attempt_id)
        elif event.kind is EventKind.OPTED_OUT:
            self.opted.add(event.notification_id)


class _Tally:
    """A campaign's report, summed one notification at a time (nothing kept but counters,
    the waits, the unreached and, when asked, one line per notification)."""

    def __init__(self, campaign: str, logged: _Logged, *, lines: bool) -> None:
        self.campaign = campaign
        self.logged = logged
        self.lines = lines
        self.roots = 0
        self.reached = 0
        self.by_status: Counter[str] = Counter()
        self.by_channel: Counter[str] = Counter()
        self.by_step: Counter[str] = Counter()
        self.waits: list[float] = []
        self.choices: Counter[str] = Counter()
        self.opted = 0
        self.follow_ups: Counter[str] = Counter()
        self.unreached: list[dict[str, str]] = []
        self.recipients: list[dict[str, Any]] = []

    def add(self, n: Notification) -> None:
        if n.parent_id is not None:
            self.follow_ups[n.status.value] += 1
            return
        self.roots += 1
        self.reached += n.status.reached
        self.by_status[n.status.value] += 1
        opted = n.id in self.logged.opted or any(
            a.status is AttemptStatus.SKIPPED and "opted out" in (a.error or "") for a in n.attempts
        )
        self.opted += opted
        acked = n.status is Status.ACKNOWLEDGED
        step = _acked_step(n, self.logged.acked_on.get(n.id)) if acked else ""
        if acked:
            self.by_channel[n.acknowledged_via or "unknown"] += 1
            self.by_step[step] += 1
            if n.acknowledged_at is not None:
                self.waits.append((n.acknowledged_at - n.created_at) / timedelta(seconds=1))
            if n.choice is not None:
                option = n.plan.option(n.choice)
                self.choices[option.label if option else n.choice] += 1
        unreached = n.status in _UNREACHED
        reason = never_reached(n) if unreached else ""
        if unreached:
            self.unreached.append(
                {
                    "recipient": n.recipient.id,
                    "key": n.key or n.id,
                    "status": n.status.value,
                    "reason": reason,
                }
            )
        if self.lines:
            self.recipients.append(
                {
                    "recipient": n.recipient.id,
                    "key": n.key or "",
                    "status": n.status.value,
                    "via": n.acknowledged_via or "",
                    "step": step,
                    "choice": n.choice or "",
                    "seconds_to_ack": ""
                    if n.acknowledged_at is None
                    else round((n.acknowledged_at - n.created_at) / timedelta(seconds=1)),
                    "opted_out": opted,
                    "never_reached": reason,
                    "outcome": describe(n),
                }
            )

    def report(self) -> CampaignReport:
        acknowledged = self.by_status[Status.ACKNOWLEDGED.value]
        return CampaignReport(
            campaign=self.campaign,
            notifications=self.roots,
            by_status=dict(sorted(self.by_status.items())),
            acknowledged=acknowledged,
            reach_rate=self.reached / self.roots if self.roots else None,
            by_channel=dict(self.by_channel.most_common()),
            by_step=dict(sorted(self.by_step.items())),
            seconds_to_ack_p50=_percentile(self.waits, 0.5),
            seconds_to_ack_p90=_percentile(self.waits, 0.9),
            choices=dict(self.choices.most_common()),
            opted_out=self.opted,
            follow_ups=dict(sorted(self.follow_ups.items())),
            never_reached=self.unreached,
            recipients=self.recipients,
            reached=self.reached,
        )


def campaign_report(
    campaign: str, notifications: Sequence[Notification], events: Iterable[Event] = ()
) -> CampaignReport:
    """Sum up a campaign from its notifications (``ox.list(campaign=...)``, follow-ups
    included) and, for acknowledgement steps and opt-outs, the event log (only its
    ``acknowledged`` and ``opted_out`` entries count). :func:`read_campaign_report` reads
    both from a client, a page of the log at a time."""
    logged = _Logged({n.id for n in notifications if n.parent_id is None})
    for event in events:
        logged.add(event)
    tally = _Tally(campaign, logged, lines=True)
    for n in notifications:
        tally.add(n)
    return tally.report()


async def read_campaign_report(
    client: AsyncClient, campaign: str, *, lines: bool = True
) -> CampaignReport:
    """:func:`campaign_report` of ``campaign`` as stored: its notifications (one read of
    the campaign) and, from the event log, only the acknowledgements and opt-outs, which the
    store filters and hands over a page at a time (the log of every campaign is never held).
    ``lines=False`` leaves out the per-notification lines (``recipients``)."""
    notifications = await client.list(campaign=campaign, limit=_EVERYONE)
    logged = _Logged({n.id for n in notifications if n.parent_id is None})
    async for event in client.events(kinds=REPORTED_EVENTS):
        logged.add(event)
    tally = _Tally(campaign, logged, lines=lines)
    for n in notifications:
        tally.add(n)
    return tally.report()
