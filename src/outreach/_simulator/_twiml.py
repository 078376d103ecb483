"""Plays a call's TwiML on the simulated clock: what Twilio's voice engine would do.

Supported verbs: ``<Say>`` (about 150 words a minute), ``<Play>``, ``<Pause>``,
``<Gather>`` (DTMF: the persona's key press goes to ``action``), ``<Redirect>``,
``<Hangup>``, ``<Reject>``; any other verb takes no time. A document that ends hangs up,
as on Twilio.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Final
from urllib.parse import urljoin

from outreach._simulator._personas import delta

if TYPE_CHECKING:
    from outreach._simulator._twilio import Call, TwilioSim

__all__ = ["Player", "speaking_time"]

log = logging.getLogger("outreach.simulator")

_WORDS_PER_SECOND: Final = 2.5
_PLAY: Final = timedelta(seconds=5)
_GATHER_TIMEOUT: Final = 5


def speaking_time(text: str) -> timedelta:
    """How long ``<Say>`` takes to read ``text`` (at least a second)."""
    return timedelta(seconds=max(1, round(len(text.split()) / _WORDS_PER_SECOND)))


def _loops(verb: ET.Element) -> int:
    try:
        return max(1, int(verb.get("loop", "1")))
    except ValueError:
        return 1


def _seconds(value: str | None, default: int) -> int:
    try:
        return max(0, int(value)) if value is not None else default
    except ValueError:
        return default


def _length(verbs: Iterable[ET.Element]) -> timedelta:
    """How long a run of ``<Say>``/``<Play>``/``<Pause>`` verbs lasts."""
    total = timedelta(0)
    for verb in verbs:
        if verb.tag == "Say":
            total += speaking_time(verb.text or "") * _loops(verb)
        elif verb.tag == "Play":
            total += _PLAY * _loops(verb)
        elif verb.tag == "Pause":
            total += timedelta(seconds=_seconds(verb.get("length"), 1))
    return total


class Player:
    """Turns one TwiML document into timed actions of a call."""

    def __init__(self, twilio: TwilioSim) -> None:
        self._twilio = twilio

    def play(self, call: Call, twiml: str, url: str | None, start: datetime) -> None:
        """Play ``twiml`` (fetched from ``url``) from ``start``; schedules what follows."""
        call.documents.append(twiml)
        scheduler = self._twilio.world.scheduler
        try:
            root = ET.fromstring(twiml)
        except ET.ParseError:
            root = None
        if root is None or root.tag != "Response":
            log.warning("simulator: call %s got invalid TwiML from %s", call.sid, url)
            self._end(call, start)
            return
        at = start
        for verb in root:
            if verb.tag in ("Say", "Play", "Pause"):
                at += _length([verb])
            elif verb.tag == "Gather":
                prompt = _length(verb)
                timeout = timedelta(seconds=_seconds(verb.get("timeout"), _GATHER_TIMEOUT))
                action = urljoin(url or "", verb.get("action") or url or "")
                method = verb.get("method", "POST").upper()
                digits = self._digits(call, verb)
                if digits is not None and action:
                    pressed = at + prompt + delta(call.behaviour.press_after)
                    if pressed <= at + prompt + timeout:
                        run = partial(self._pressed, call, action, method, digits)
                        scheduler.add(pressed, call.sid, run)
                        return
                at += prompt + timeout
                if verb.get("actionOnEmptyResult", "").lower() == "true" and action:
                    scheduler.add(at, call.sid, partial(self._pressed, call, action, method, ""))
                    return
            elif verb.tag == "Redirect":
                target = urljoin(url or "", (verb.text or "").strip())
                method = verb.get("method", "POST").upper()
                run = partial(self._twilio.fetch, call, "call-redirect", target, method, {})
                scheduler.add(at, call.sid, run)
                return
            elif verb.tag in ("Hangup", "Reject"):
                break
        self._end(call, at)

    def _digits(self, call: Call, gather: ET.Element) -> str | None:
        """The keys the persona presses at this gather (only the first gather of a call)."""
        press, call.press = call.press, None
        if press is None:
            return None
        finish = gather.get("finishOnKey", "#")
        if finish and finish in press:
            press = press.split(finish, 1)[0]
        limit = _seconds(gather.get("numDigits"), 0)
        return press[:limit] if limit else press

    def _end(self, call: Call, at: datetime) -> None:
        async def hang_up() -> None:
            self._twilio.finish(call, "completed", at)

        self._twilio.world.scheduler.add(at, call.sid, hang_up)

    async def _pressed(self, call: Call, action: str, method: str, digits: str) -> None:
        if call.done:
            return
        if digits:
            call.digits.append(digits)
        await self._twilio.fetch(
            call, "call-gather", action, method, {"Digits": digits, "FinishedOnKey": ""}
        )
