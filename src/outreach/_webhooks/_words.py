"""What an inbound text means: an opt-out, an opt-in, a request for help, a choice, an OK.

Twilio's keywords (STOP, START, HELP and their synonyms) match only the whole message,
case-insensitively. Options match by key or keyword as a whole word or phrase anywhere in the
message, or by their label (as the recipient was shown it, or the plan's own) as the whole
message; acknowledgement words must open it ("Got it, thanks" acknowledges, "I am not OK" does
not). Matching ignores case and is done after Unicode normalisation (NFKC, so full-width letters
typed on some phones match too).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from outreach._models import Option

OPT_OUT = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"})
OPT_IN = frozenset({"start", "unstop", "yes"})
HELP = frozenset({"help", "info"})
_EDGES = " \t\r\n.!?,;:'\"()"


class Intent(enum.Enum):
    """The kind of an inbound message."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    CHOICE = "choice"
    ACK = "ack"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Meaning:
    """An inbound message's intent, and the option it chooses (``CHOICE`` only)."""

    intent: Intent
    option: Option | None = None


def normalize(text: str) -> str:
    """Case-folded, NFKC-normalised, single-spaced text."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _bare(text: str) -> str:
    return normalize(text).strip(_EDGES)


def _phrase(term: str) -> re.Pattern[str] | None:
    words = normalize(term).split()
    if not words:
        return None
    return re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)")


def _mentions(text: str, terms: Iterable[str]) -> bool:
    return any((pattern := _phrase(term)) is not None and pattern.search(text) for term in terms)


def _opens_with(text: str, terms: Iterable[str]) -> bool:
    return any((pattern := _phrase(term)) is not None and pattern.match(text) for term in terms)


def keyword(body: str, opt_out_type: str = "") -> Intent | None:
    """Twilio's compliance keywords: ``OptOutType`` when Twilio sent it, else the whole body."""
    kind = opt_out_type.strip().upper()
    if kind == "STOP":
        return Intent.OPT_OUT
    if kind == "START":
        return Intent.OPT_IN
    if kind == "HELP":
        return Intent.HELP
    word = _bare(body)
    if word in OPT_OUT:
        return Intent.OPT_OUT
    if word in OPT_IN:
        return Intent.OPT_IN
    if word in HELP:
        return Intent.HELP
    return None


def _keys(option: Option) -> set[str]:
    return {normalize(option.key)}


def _labels(option: Option, locale: str) -> set[str]:
    return {_bare(option.label), _bare(option.label_for(locale))}


def meaning(
    body: str, options: Sequence[Option], ack_words: Iterable[str], *, locale: str = "en"
) -> Meaning:
    """What a reply to a notification says (compliance keywords are checked before this).

    A message that is exactly an option's key, or exactly its label (in ``locale`` or the
    plan's own), chooses it; otherwise exactly one option must be mentioned (by key or keyword)
    for it to count; several is ambiguous and counts as neither.
    """
    text = normalize(body)
    bare = text.strip(_EDGES)
    for names in (_keys, lambda option: _labels(option, locale)):
        exact = [option for option in options if bare in names(option)]
        if len(exact) == 1:
            return Meaning(Intent.CHOICE, exact[0])
    mentioned = [o for o in options if _mentions(text, (o.key, *o.keywords))]
    if len(mentioned) == 1:
        return Meaning(Intent.CHOICE, mentioned[0])
    if not mentioned and _opens_with(bare, ack_words):
        return Meaning(Intent.ACK)
    return Meaning(Intent.OTHER)
