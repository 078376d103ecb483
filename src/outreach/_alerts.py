"""A channel that watches itself: a spike of one kind of failure raises an alert.

Per channel, the outcomes of its last ``window`` attempts, each filed under the provider's
error code (``"Twilio 30034"``, ``"HTTP 401"``, ``"bounce"``) or as a success. An attempt is
one entry: a text counted as sent when Twilio took it becomes ``Twilio 30034`` when the
carrier's report says so. When one code holds more than ``ratio`` of a sample of at least
``min_sample`` attempts, an alert is raised, once per episode; it clears when that code's share
falls to ``clear_ratio`` or below. Each process watches what it sees itself: a worker its
sends, a webhooks server its delivery reports.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from outreach._models import AttemptStatus, Event, EventKind, Notification

log = logging.getLogger("outreach.alerts")

_TWILIO_CODE = re.compile(r"\bTwilio (?:error )?(\d{5})\b|\berror (\d{5})\b")
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")
_CREDENTIALS = ("401", "403")
_FAILED = frozenset({AttemptStatus.FAILED, AttemptStatus.UNDELIVERED})
_COUNTED = frozenset(AttemptStatus) - {AttemptStatus.SENDING, AttemptStatus.SKIPPED}


@dataclass(frozen=True, slots=True)
class AlertThresholds:
    """When a kind of failure on a channel is a spike: more than ``ratio`` of the channel's
    last ``window`` attempts (once at least ``min_sample`` are known) failed with it. The
    alert clears when that share falls to ``clear_ratio`` (default: half of ``ratio``)."""

    window: int = 50
    min_sample: int = 10
    ratio: float = 0.5
    clear_ratio: float | None = None

    def __post_init__(self) -> None:
        for name in ("window", "min_sample", "ratio", "clear_ratio"):
            value = getattr(self, name)
            integral = name in ("window", "min_sample")
            kinds = (int,) if integral else (int, float, type(None))
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise TypeError(
                    f"AlertThresholds.{name} must be {'an integer' if integral else 'a number'}, "
                    f"not {value!r}"
                )
        if self.window < 1:
            raise ValueError(f"AlertThresholds.window must be at least 1, not {self.window}")
        if not 1 <= self.min_sample <= self.window:
            raise ValueError(
                f"AlertThresholds.min_sample must be between 1 and window ({self.window}), "
                f"not {self.min_sample}"
            )
        if not 0 < self.ratio < 1:
            raise ValueError(f"AlertThresholds.ratio must be between 0 and 1, not {self.ratio}")
        if self.clear_ratio is not None and not 0 <= self.clear_ratio < self.ratio:
            raise ValueError(
                f"AlertThresholds.clear_ratio must be at least 0 and below ratio ({self.ratio}), "
                f"not {self.clear_ratio}"
            )

    @property
    def clear_below(self) -> float:
        return self.ratio / 2 if self.clear_ratio is None else self.clear_ratio


@dataclass(frozen=True, slots=True)
class ChannelAlert:
    """A spike of one failure ``code`` on ``channel`` (or, ``cleared``, its end): ``failures``
    of the last ``sample`` attempts, a share of ``rate``, as seen at ``at``."""

    channel: str
    code: str
    rate: float
    failures: int
    sample: int
    at: datetime
    cleared: bool = False

    def describe(self) -> str:
        what = "back to normal" if self.cleared else "failing"
        return (
            f"channel {self.channel!r} {what}: {self.code} on {self.failures} of the last "
            f"{self.sample} attempts ({self.rate:.0%})"
        )


def failure_code(status: AttemptStatus, error: str | None) -> str | None:
    """The kind of failure an attempt's outcome is (None: not a failure).

    Credentials refused are ``HTTP 401``/``HTTP 403`` whatever the provider's own code; then a
    Twilio error code; then an HTTP status; then the first word of the error (``bounce``,
    ``dropped``, the exception's name); then the status itself.
    """
    if status not in _FAILED and not (status is AttemptStatus.SKIPPED and error):
        return None
    text = error or ""
    http = _HTTP_STATUS.search(text)
    if http is not None and http.group(1) in _CREDENTIALS:
        return f"HTTP {http.group(1)}"
    twilio = _TWILIO_CODE.search(text)
    if twilio is not None:
        return f"Twilio {twilio.group(1) or twilio.group(2)}"
    if http is not None:
        return f"HTTP {http.group(1)}"
    word = re.split(r"[\s:(]", text.strip(), maxsplit=1)[0]
    return word if word.isidentifier() and len(word) <= 40 else status.value


def outcomes(
    notification: Notification, events: Sequence[Event]
) -> Iterator[tuple[str, str, str | None]]:
    """Per attempt outcome that ``events`` report: its channel, attempt id and failure code
    (None: a success). Skips are counted only when a send raised them (a channel switched off
    by its credentials), not when the recipient had no address."""
    for event in events:
        if event.kind not in (EventKind.ATTEMPT, EventKind.ATTEMPT_STATUS):
            continue
        attempt = notification.attempt(event.attempt_id or "")
        if attempt is None:
            continue
        try:
            status = AttemptStatus(event.data.get("status", attempt.status))
        except ValueError:
            continue  # not a status this watch knows: nothing to count
        if status in _COUNTED or (status is AttemptStatus.SKIPPED and "failure" in event.data):
            yield attempt.channel, attempt.id, failure_code(status, event.data.get("error"))


@dataclass
class _Window:
    outcomes: OrderedDict[str, str | None] = field(default_factory=OrderedDict)
    alerting: set[str] = field(default_factory=set)


@dataclass
class ChannelWatch:
    """The sliding windows of every channel, and which alerts are up."""

    thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    _windows: dict[str, _Window] = field(default_factory=dict, init=False, repr=False)

    def observe(
        self, notification: Notification, events: Sequence[Event], now: datetime
    ) -> list[ChannelAlert]:
        """File the outcomes ``events`` report; the alerts raised or cleared by them."""
        changed: list[ChannelAlert] = []
        for channel, attempt_id, code in outcomes(notification, events):
            changed += self.record(channel, attempt_id, code, now)
        return changed

    def record(
        self, channel: str, attempt_id: str, code: str | None, now: datetime
    ) -> list[ChannelAlert]:
        """One attempt's latest outcome; the alerts on ``channel`` it raises or clears."""
        window = self._windows.setdefault(channel, _Window())
        window.outcomes[attempt_id] = code  # a later report on an attempt keeps its place
        while len(window.outcomes) > self.thresholds.window:
            window.outcomes.popitem(last=False)
        return self._evaluate(channel, window, now)

    def alerting(self, channel: str) -> frozenset[str]:
        """The failure codes with an alert up on ``channel``."""
        window = self._windows.get(channel)
        return frozenset(window.alerting) if window else frozenset()

    def _evaluate(self, channel: str, window: _Window, now: datetime) -> list[ChannelAlert]:
        sample = len(window.outcomes)
        counts: dict[str, int] = {}
        for code in window.outcomes.values():
            if code is not None:
                counts[code] = counts.get(code, 0) + 1
        changed = []
        for code in sorted(window.alerting):
            failures = counts.get(code, 0)
            if failures / sample <= self.thresholds.clear_below:
                window.alerting.discard(code)
                changed.append(
                    ChannelAlert(channel, code, failures / sample, failures, sample, now, True)
                )
        if sample >= self.thresholds.min_sample:
            for code, failures in sorted(counts.items()):
                if code not in window.alerting and failures / sample > self.thresholds.ratio:
                    window.alerting.add(code)
                    changed.append(
                        ChannelAlert(channel, code, failures / sample, failures, sample, now)
                    )
        for alert in changed:
            log_alert(alert)
        return changed


def log_alert(alert: ChannelAlert) -> None:
    """An ERROR line for a raised alert, a WARNING line for its clearing."""
    if alert.cleared:
        log.warning("%s", alert.describe())
    else:
        log.error("%s", alert.describe())
