"""The records users build and read: recipients, plans, notifications, attempts, events.

All are pydantic models except ``StartRequest`` (one recipient of a batch start), a frozen
dataclass. Configuration records (``Plan`` and its parts) are frozen, so a running notification
keeps exactly the plan it started with. Construction errors are raised as errors of our own tree
(``InvalidRecipient``, ``ConfigurationError``) whose message names the field.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, TypeAlias, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from outreach._durations import Duration, DurationInput
from outreach.exceptions import ConfigurationError, InvalidRecipient, OutreachError


class Medium(StrEnum):
    """What kind of address a channel reaches: a phone by text, a phone by call, a mailbox."""

    SMS = "sms"
    EMAIL = "email"
    VOICE = "voice"


class Status(StrEnum):
    """Where a notification is in its life.

    ``delivered`` and ``engaged`` end a plan with ``until=`` that rung: the customer was
    reached without answering (``acknowledged`` is always a customer's answer).
    """

    PENDING = "pending"
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    EXHAUSTED = "exhausted"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"
    DELIVERED = "delivered"
    ENGAGED = "engaged"

    @property
    def is_terminal(self) -> bool:
        """True once nothing more will be sent for this notification."""
        return self not in (Status.PENDING, Status.ACTIVE)

    @property
    def reached(self) -> bool:
        """True for the endings that reached the customer: acknowledged, engaged, delivered."""
        return self in (Status.ACKNOWLEDGED, Status.ENGAGED, Status.DELIVERED)


class AttemptStatus(StrEnum):
    """What became of one send."""

    SENDING = "sending"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    ENGAGED = "engaged"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


class EventKind(StrEnum):
    """What an entry of the event log records."""

    CREATED = "created"
    ACTIVATED = "activated"
    ATTEMPT = "attempt"
    ATTEMPT_STATUS = "attempt_status"
    DEFERRED = "deferred"
    ACKNOWLEDGED = "acknowledged"
    REPLY_RECORDED = "reply_recorded"
    REPLY = "reply"
    CANCELLED = "cancelled"
    EXHAUSTED = "exhausted"
    EXPIRED = "expired"
    FAILED = "failed"
    DELIVERED = "delivered"
    ENGAGED = "engaged"
    FOLLOW_UP_STARTED = "follow_up_started"
    OPTED_OUT = "opted_out"
    STUCK = "stuck"
    ATTENTION_OPENED = "attention_opened"
    ATTENTION_UPDATED = "attention_updated"
    ATTENTION_RESOLVED = "attention_resolved"
    ATTENTION_TAKEN = "attention_taken"
    ATTENTION_UNANSWERED = "attention_unanswered"


class AttentionReason(StrEnum):
    """Why a person should look at a notification."""

    UNREACHED = "unreached"
    """It ended (exhausted, expired, failed) without reaching the customer."""
    NOT_UNDERSTOOD = "not_understood"
    """The customer wrote something that matched no option, acknowledgement or keyword."""
    HANDOFF = "handoff"
    """The customer chose an option marked ``handoff=True``."""


def _describe(exc: ValidationError) -> str:
    """One line per problem, each naming the field it is about."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "value"
        lines.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(lines)


T = TypeVar("T")

Many: TypeAlias = list[T] | tuple[T, ...]
"""What a tuple field accepts when constructed: a list or a tuple (not any iterable: a ``str``
is one, and is refused)."""

TimeInput: TypeAlias = time | str
"""What a wall-clock field accepts when constructed: a ``time`` or ``"21:00"``."""


class _Checked(BaseModel):
    """Base for records users construct: validation failures raise our own error type."""

    _error: ClassVar[type[OutreachError]] = ConfigurationError

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise self._error(f"invalid {type(self).__name__}: {_describe(exc)}") from None


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'America/New_York')") from None
    return value


class Recipient(_Checked):
    """Someone to reach: a phone (E.164 once validated), an email, their time zone, language."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    _error = InvalidRecipient

    id: str = Field(min_length=1)
    phone: str | None = None
    email: str | None = None
    timezone: str | None = None
    locale: str = "en"
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            raise ValueError(
                f"{value!r} is not a valid phone number; use E.164 with the country code, "
                "e.g. '+16175550123'"
            )
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    @field_validator("email")
    @classmethod
    def _mailbox(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"{value!r} is not a valid email address: {exc}") from None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)

    def address(self, medium: Medium) -> str | None:
        """The address this recipient has for ``medium``, if any."""
        return self.email if medium is Medium.EMAIL else self.phone


@dataclass(frozen=True, slots=True)
class StartRequest:
    """One recipient of a batch start; ``context`` is merged over the batch's shared context."""

    recipient: Recipient
    context: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class _Config(_Checked):
    model_config = ConfigDict(frozen=True, extra="forbid")


MIN_RETRY_DELAY = timedelta(seconds=1)
"""The shortest wait before any retry or re-attempt, whatever the provider's hint says."""


class RetryPolicy(_Config):
    """How one step retries transient send failures, rate limits included.

    ``attempts`` counts every try of the step. Delays grow from ``initial`` by ``multiplier`` up
    to ``max_delay`` with up to ``jitter`` added, never below ``MIN_RETRY_DELAY``; a provider's
    longer hint (``Retry-After``, a rate-limit reset) wins. A delay up to ``inline_limit`` is
    waited in process; a longer one is stored as a re-attempt of the step, so a crash cannot
    lose it. No re-attempt is scheduled later than ``max_total_delay`` after the step's first
    try: once the tries or that time are spent, the step fails and escalation moves on.
    """

    attempts: int = Field(default=4, ge=1)
    initial: Duration = timedelta(seconds=1)
    multiplier: float = Field(default=2.0, ge=1.0)
    max_delay: Duration = timedelta(minutes=10)
    jitter: Duration = timedelta(seconds=1)
    inline_limit: Duration = timedelta(seconds=10)
    max_total_delay: Duration = timedelta(minutes=15)

    if TYPE_CHECKING:
        # The constructor as type checkers see it: inputs (``"15m"``), not the stored types.
        def __init__(
            self,
            *,
            attempts: int = ...,
            initial: DurationInput = ...,
            multiplier: float = ...,
            max_delay: DurationInput = ...,
            jitter: DurationInput = ...,
            inline_limit: DurationInput = ...,
            max_total_delay: DurationInput = ...,
        ) -> None: ...


class Step(_Config):
    """One send of the plan: a channel name, a template and how long to wait for an answer."""

    channel: str = Field(min_length=1)
    template: str = Field(min_length=1)
    wait: Duration = timedelta(minutes=15)
    retry: RetryPolicy | None = None

    if TYPE_CHECKING:

        def __init__(
            self,
            *,
            channel: str,
            template: str,
            wait: DurationInput = ...,
            retry: RetryPolicy | None = ...,
        ) -> None: ...


def locale_tags(locale: str) -> tuple[str, ...]:
    """``"fr_ca"`` -> ``("fr-CA", "fr")``: the tags to try for ``locale``, most specific first
    (language lower-case, region upper-case, script title-case)."""
    first, *rest = locale.replace("_", "-").split("-")
    parts = [first.lower()]
    for part in rest:
        parts.append(part.upper() if len(part) == 2 else part.title() if len(part) == 4 else part)
    return tuple("-".join(parts[:n]) for n in range(len(parts), 0, -1) if parts[n - 1])


class Option(_Config):
    """A choice the customer can make: by key ("2") or by one of its keywords ("refund").

    ``labels`` gives the label in other languages (``{"fr": "Remboursement"}``): for locale
    ``fr-CA`` the label is ``labels["fr-CA"]``, else ``labels["fr"]``, else ``label``.
    ``handoff=True``: choosing it acknowledges the notification and opens an
    :class:`Attention` record, for a person to take over ("2: the refund has not arrived").
    """

    key: str = Field(min_length=1)
    label: str = Field(min_length=1)
    keywords: tuple[str, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    handoff: bool = False

    if TYPE_CHECKING:

        def __init__(
            self,
            *,
            key: str,
            label: str,
            keywords: Many[str] = ...,
            labels: Mapping[str, str] = ...,
            handoff: bool = ...,
        ) -> None: ...

    @field_validator("labels")
    @classmethod
    def _tagged(cls, labels: dict[str, str]) -> dict[str, str]:
        """Keys as locale tags (``fr_ca`` -> ``fr-CA``), sorted, so equal options fingerprint
        alike; every label non-empty."""
        tagged = {}
        for locale, label in labels.items():
            tags = locale_tags(locale.strip())
            if not tags or not _LOCALE_TAG.fullmatch(tags[0]):
                raise ValueError(f"{locale!r} is not a locale tag such as 'fr' or 'fr-CA'")
            if not label.strip():
                raise ValueError(f"the label for {locale!r} is empty")
            tagged[tags[0]] = label
        return dict(sorted(tagged.items()))

    def label_for(self, locale: str) -> str:
        """The label in ``locale``, falling back to less specific tags, then to ``label``."""
        if self.labels:
            for tag in locale_tags(locale):
                if tag in self.labels:
                    return self.labels[tag]
        return self.label

    def __hash__(self) -> int:
        return hash((self.key, self.label, self.keywords, tuple(self.labels.items())))


def localised(options: tuple[Option, ...], locale: str) -> tuple[Option, ...]:
    """``options`` with each ``label`` in ``locale``: what templates, menus and pages show."""
    if not any(option.labels for option in options):
        return options
    return tuple(
        option.model_copy(update={"label": option.label_for(locale)}) for option in options
    )


_LOCALE_TAG = re.compile(r"[a-z0-9]{1,8}(?:-[A-Za-z0-9]{1,8})*")


class QuietHours(_Config):
    """Local hours, ``[start, end)`` in the recipient's zone, when calls and texts wait."""

    start: time
    end: time
    media: frozenset[Medium] = frozenset({Medium.SMS, Medium.VOICE})

    if TYPE_CHECKING:

        def __init__(
            self,
            *,
            start: TimeInput,
            end: TimeInput,
            media: Many[Medium | str] | AbstractSet[Medium | str] = ...,
        ) -> None: ...

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("start and end are equal: the quiet window would be empty")
        return self

    @field_serializer("media")
    def _in_order(self, media: frozenset[Medium]) -> list[str]:
        """Sorted, so equal plans serialise (and fingerprint) alike in every process."""
        return sorted(media)

    def contains(self, local: time) -> bool:
        """Whether a local wall-clock time falls inside the window."""
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


MAX_FOLLOW_UP_DEPTH = 4
"""How many levels of follow-ups a plan may have (a follow-up's own follow-ups are a second)."""


class FollowUp(_Config):
    """A later notification of its own, started when the parent is acknowledged.

    ``when_choice`` limits it to one choice (None: any acknowledgement); it is first due
    ``after`` the acknowledgement. It runs ``plan`` (steps, options, quiet hours and
    follow-ups of its own), or, in the shorthand, one step on ``channel`` with ``template``:
    the parent's quiet hours and only the ``options`` given here (none by default), waiting
    ``wait``, repeated ``repeat`` times, ending at its own ``deadline``.
    """

    after: Duration
    plan: Plan | None = None
    channel: str | None = Field(default=None, min_length=1)
    template: str | None = Field(default=None, min_length=1)
    options: tuple[Option, ...] = ()
    when_choice: str | None = None
    name: str | None = None
    wait: Duration = timedelta(hours=1)
    repeat: int = Field(default=0, ge=0)
    deadline: Duration | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        shorthand = self.channel is not None or self.template is not None
        if self.plan is not None:
            if shorthand or self.options:
                raise ValueError(
                    "give either plan=Plan(...) or the shorthand channel=, template= "
                    "(with options=), not both"
                )
            # Compared with the defaults, not "given": a stored plan spells every default out.
            defaults = {"wait": timedelta(hours=1), "repeat": 0, "deadline": None}
            timing = sorted(
                name for name, value in defaults.items() if getattr(self, name) != value
            )
            if timing:
                raise ValueError(
                    f"{', '.join(timing)}: with plan=Plan(...), the plan's steps, repeat and "
                    "deadline say this"
                )
        elif self.channel is None or self.template is None:
            raise ValueError("a follow-up needs plan=Plan(...), or both channel= and template=")
        else:
            keys = [option.key for option in self.options]
            if len(set(keys)) != len(keys):
                raise ValueError(f"option keys must be unique, got {keys}")
            if self.channel == Medium.VOICE.value:
                problem = keypad_problem(self.options, "a voice follow-up (channel 'voice')")
                if problem:
                    raise ValueError(problem)
        return self

    if TYPE_CHECKING:

        def __init__(
            self,
            *,
            after: DurationInput,
            plan: Plan | None = ...,
            channel: str | None = ...,
            template: str | None = ...,
            options: Many[Option] = ...,
            when_choice: str | None = ...,
            name: str | None = ...,
            wait: DurationInput = ...,
            repeat: int = ...,
            deadline: DurationInput | None = ...,
        ) -> None: ...

    @property
    def label(self) -> str:
        """The name used in the child's key: ``name``, else the template (or the plan's name)."""
        if self.name:
            return self.name
        if self.template is not None:
            return self.template
        assert self.plan is not None
        return self.plan.name

    def as_plan(self, parent: Plan) -> Plan:
        """The plan the child runs: its own, or the shorthand's one step with its own options,
        timing and follow-ups none, and the parent's manners (quiet hours, zone, retries)."""
        if self.plan is not None:
            return self.plan
        assert self.channel is not None
        assert self.template is not None
        return Plan(
            name=f"{parent.name}/{self.label}",
            steps=(Step(channel=self.channel, template=self.template, wait=self.wait),),
            options=self.options,
            repeat=self.repeat,
            deadline=self.deadline,
            quiet_hours=parent.quiet_hours,
            timezone=parent.timezone,
            urgent=parent.urgent,
            grace=parent.grace,
            retry=parent.retry,
        )


KEYPAD_DIGITS = frozenset("0123456789")
"""What a call's one-key menu (``<Gather numDigits="1">``) can read; ``#`` ends input."""


def keypad_problem(options: tuple[Option, ...], voice: str) -> str | None:
    """Why ``options`` cannot be offered on a call (``voice`` says what calls), or None."""
    for option in options:
        if option.key not in KEYPAD_DIGITS:
            return (
                f"option {option.key!r} ({option.label!r}) cannot be pressed on a call: with "
                f"{voice}, option keys must be single keypad digits 0-9"
            )
    return None


Until: TypeAlias = Literal["delivered", "engaged", "acknowledged"]
"""The rungs of the acknowledgement ladder a plan may stop at, lowest first."""

RUNGS: tuple[Until, ...] = ("delivered", "engaged", "acknowledged")


class Plan(_Config):
    """The escalation a notification follows, frozen once a notification starts with it.

    ``until`` is the rung of the acknowledgement ladder at which the escalation has done its
    job: ``"delivered"`` (a delivery receipt, or a call a person answered), ``"engaged"`` (a
    reply, an email opened or clicked, a read receipt, a call a person answered) or
    ``"acknowledged"`` (a customer's answer: the default). Reaching it ends the notification
    as ``delivered``/``engaged``; a higher rung counts too (an acknowledgement always ends it
    ``acknowledged``).
    """

    name: str = Field(min_length=1)
    steps: tuple[Step, ...] = Field(min_length=1)
    options: tuple[Option, ...] = ()
    repeat: int = Field(default=0, ge=0)
    deadline: Duration | None = None
    quiet_hours: QuietHours | None = None
    timezone: str = "UTC"
    urgent: bool = False
    follow_ups: tuple[FollowUp, ...] = ()
    grace: Duration = timedelta(days=7)
    retry: RetryPolicy = RetryPolicy()
    until: Until = "acknowledged"

    if TYPE_CHECKING:

        def __init__(
            self,
            *,
            name: str,
            steps: Many[Step],
            options: Many[Option] = ...,
            repeat: int = ...,
            deadline: DurationInput | None = ...,
            quiet_hours: QuietHours | None = ...,
            timezone: str = ...,
            urgent: bool = ...,
            follow_ups: Many[FollowUp] = ...,
            grace: DurationInput = ...,
            retry: RetryPolicy = ...,
            until: Until = ...,
        ) -> None: ...

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("until")
    @classmethod
    def _choice_possible(cls, value: Until, info: ValidationInfo) -> Until:
        if value == "delivered" and info.data.get("options"):
            raise ValueError(
                "'delivered' ends the plan before a choice can be made: drop the options, "
                "or use until='engaged' or 'acknowledged'"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        keys = [option.key for option in self.options]
        if len(set(keys)) != len(keys):
            raise ValueError(f"option keys must be unique, got {keys}")
        if Medium.VOICE.value in [step.channel for step in self.steps]:
            problem = keypad_problem(self.options, "a voice step (channel 'voice')")
            if problem:
                raise ValueError(problem)
        if self.depth - 1 > MAX_FOLLOW_UP_DEPTH:
            raise ValueError(
                f"follow-ups nest {self.depth - 1} levels deep "
                f"({' -> '.join(self.deepest_path())}); at most {MAX_FOLLOW_UP_DEPTH} are allowed"
            )
        names = [follow_up.label for follow_up in self.follow_ups]
        if len(set(names)) != len(names):
            raise ValueError(f"follow-up names must be unique (they end the child's key): {names}")
        for follow_up in self.follow_ups:
            if follow_up.when_choice is not None and follow_up.when_choice not in keys:
                raise ValueError(
                    f"follow-up {follow_up.label!r} waits for choice {follow_up.when_choice!r}, "
                    f"which is not an option key ({keys})"
                )
        return self

    def channel_names(self) -> list[str]:
        """The channel of every step, then of every follow-up's steps, nested ones included."""
        return [step.channel for plan in self.plans() for step in plan.steps]

    def plans(self) -> list[Plan]:
        """This plan, then every plan its follow-ups run, depth first."""
        found = [self]
        for follow_up in self.follow_ups:
            found += follow_up.as_plan(self).plans()
        return found

    @property
    def depth(self) -> int:
        """1 for a plan without follow-ups; one more for each level of nesting."""
        return 1 + max((f.as_plan(self).depth for f in self.follow_ups), default=0)

    def deepest_path(self) -> list[str]:
        """The names along the deepest chain of follow-ups, from this plan down."""
        deepest = max(
            (f.as_plan(self) for f in self.follow_ups), key=lambda p: p.depth, default=None
        )
        return [self.name] + ([] if deepest is None else deepest.deepest_path())

    @property
    def fingerprint(self) -> str:
        """A content hash: equal plans share one stored snapshot.

        Not cached: ``model_copy(update=...)`` would carry a cached value over to a changed plan.
        """
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:20]

    def option(self, choice: str) -> Option | None:
        """The option with key ``choice``."""
        return next((option for option in self.options if option.key == choice), None)

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read a plan from a ``.toml`` or ``.json`` file."""
        path = Path(path)
        if path.suffix not in (".toml", ".json"):
            raise ConfigurationError(f"{path}: a plan file must end in .toml or .json")
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
            return cls(**data)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{path}: {exc}") from None
        except ConfigurationError as exc:
            raise ConfigurationError(f"{path}: {exc}") from None


class _Copied(BaseModel):
    """Base for the engine's records: a shallow copy (``model_copy``, the engine's every
    change) without pydantic's generic one's per-attribute ``copy.copy`` (these records have
    no extra or private attributes)."""

    def __copy__(self) -> Self:
        copied = type(self).__new__(type(self))
        object.__setattr__(copied, "__dict__", self.__dict__.copy())
        object.__setattr__(copied, "__pydantic_extra__", None)
        object.__setattr__(copied, "__pydantic_fields_set__", set(self.__pydantic_fields_set__))
        object.__setattr__(copied, "__pydantic_private__", None)
        return copied


class Attempt(_Copied):
    """One try at one step of one pass: what was sent where, and what became of it."""

    model_config = ConfigDict(frozen=True)

    id: str
    notification_id: str
    pass_: int
    step: int
    reattempt: int = 0
    channel: str
    medium: Medium | None = None
    address: str | None = None
    sender: str | None = None
    status: AttemptStatus
    provider_id: str | None = None
    error: str | None = None
    tries: int = 0
    created_at: datetime
    sent_at: datetime | None = None
    updated_at: datetime
    retry_at: datetime | None = None


class Notification(_Copied):
    """One recipient's escalation under one plan, and everything that happened to it."""

    model_config = ConfigDict(frozen=True)

    id: str
    key: str | None = None
    campaign: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    parent_id: str | None = None
    recipient: Recipient
    plan: Plan
    context: dict[str, Any] = Field(default_factory=dict)
    status: Status = Status.PENDING
    choice: str | None = None
    acknowledged_via: str | None = None
    acknowledged_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    deadline_at: datetime | None = None
    due_at: datetime | None = None
    pass_: int = 0
    step: int = 0
    version: int = 0
    attempts: tuple[Attempt, ...] = ()
    last_reply: str | None = None
    """The customer's latest reply that matched nothing (kept for whoever takes over)."""
    reached_by: str | None = None
    """What met the plan's ``until`` rung ("email delivered", "sms reply"), once it did."""

    def same_request(self, other: Notification) -> bool:
        """Whether ``other`` was started for the same recipient with the same plan: what a
        repeated ``start(key=...)`` must match."""
        mine = self.recipient.model_dump(mode="json")
        return mine == other.recipient.model_dump(mode="json") and self.plan == other.plan

    def attempt(self, attempt_id: str) -> Attempt | None:
        """The attempt with this id."""
        return next((a for a in self.attempts if a.id == attempt_id), None)


class Event(BaseModel):
    """An entry of the append-only event log; ``seq`` is its position, given by the store."""

    model_config = ConfigDict(frozen=True)

    seq: int = 0
    at: datetime
    notification_id: str
    kind: EventKind
    attempt_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Attention(BaseModel):
    """A notification a person should act on: why, since when, who took it and who closed it.

    ``reason`` says what kind of case it is; ``detail`` says it in words (the truthful
    per-channel reasons, the reply's text, the option chosen). ``taken_by`` is the person who
    took it (``AsyncClient.take``, or answering a page); ``unanswered_at`` is when paging ended
    with nobody taking it.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    notification_id: str
    recipient_id: str
    campaign: str | None = None
    reason: AttentionReason
    detail: str
    opened_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    note: str | None = None
    taken_by: str | None = None
    taken_at: datetime | None = None
    unanswered_at: datetime | None = None

    @property
    def open(self) -> bool:
        """True until someone resolves it."""
        return self.resolved_at is None


FollowUp.model_rebuild()
