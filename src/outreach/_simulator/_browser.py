"""A customer's browser, just enough of it: find the email's link, open it, press a button."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Final

__all__ = ["BROWSER_HEADERS", "PageForm", "ack_link", "first_form"]

BROWSER_HEADERS: Final = {
    "User-Agent": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0 Safari/537.36 outreach-simulator"
    ),
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
}

_ACK: Final = re.compile(r"""https?://[^\s"'<>]+?/ack/[^\s"'<>]+""")


def ack_link(text: str | None, html_body: str | None) -> str | None:
    """The first ``/ack/`` URL in the plain-text part, else in the HTML part."""
    for part, escaped in ((text, False), (html_body, True)):
        if not part:
            continue
        match = _ACK.search(part)
        if match:
            link = match.group(0).rstrip(".,;:!?)")
            return html.unescape(link) if escaped else link
    return None


@dataclass
class PageForm:
    """The first ``<form>`` of a page: where it posts, its hidden fields and its buttons."""

    action: str = ""
    method: str = "get"
    fields: list[tuple[str, str]] = field(default_factory=list)
    buttons: list[tuple[str, str]] = field(default_factory=list)
    """``(name, value)`` of each submit button; a button without a name sends nothing."""


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.form: PageForm | None = None
        self._inside = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._done:
            return
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and self.form is None:
            self.form = PageForm(
                action=values.get("action", ""), method=values.get("method", "get").lower()
            )
            self._inside = True
            return
        if not self._inside or self.form is None:
            return
        kind = values.get("type", "submit" if tag == "button" else "text").lower()
        name = values.get("name", "")
        if tag in ("button", "input") and kind == "submit":
            self.form.buttons.append((name, values.get("value", "")))
        elif tag == "input" and kind == "hidden" and name:
            self.form.fields.append((name, values.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._inside:
            self._inside = False
            self._done = True


def first_form(page: str) -> PageForm | None:
    """The page's first form, or None when it has none (a thank-you page)."""
    parser = _FormParser()
    parser.feed(page)
    parser.close()
    return parser.form
