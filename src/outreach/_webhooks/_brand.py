"""How the link pages look: the brand's name, contact line, logo and accent colour, checked
for WCAG AA contrast when the app is built."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

import httpx

from outreach._settings import Settings
from outreach._webhooks._contrast import CONTROL, TEXT, contrast
from outreach.exceptions import ConfigurationError

_INK: Final = ("#ffffff", "#1f1f1f")
"""The text colours a button of the accent colour may carry: the one that contrasts more."""


class Palette(NamedTuple):
    """One colour scheme of the pages."""

    background: str
    text: str
    muted: str
    edge: str
    accent: str
    on_accent: str


def _on(accent: str) -> str:
    return max(_INK, key=lambda ink: contrast(ink, accent))


def palettes(accent: str, accent_dark: str) -> dict[str, Palette]:
    """The light and dark schemes around the brand's accents."""
    return {
        "light": Palette("#ffffff", "#1f1f1f", "#545454", "#767676", accent, _on(accent)),
        "dark": Palette("#131314", "#ececec", "#b4b4b4", "#8e8e8e", accent_dark, _on(accent_dark)),
    }


def contrast_checks(palette: Palette) -> list[tuple[str, str, str, float]]:
    """Every pair of colours the pages put on top of each other: (what, fore, back, minimum)."""
    return [
        ("text", palette.text, palette.background, TEXT),
        ("hint text", palette.muted, palette.background, TEXT),
        ("a chosen button's label", palette.on_accent, palette.accent, TEXT),
        ("a button's edge and the focus ring", palette.accent, palette.background, CONTROL),
        ("the summary's border", palette.edge, palette.background, CONTROL),
    ]


@dataclass(frozen=True, slots=True)
class Brand:
    """What the acknowledgement pages show of the sender.

    ``name`` heads every page; ``contact`` ("Cape Air on 0800 123 456") is what the expired and
    already-answered pages tell the customer to reach; ``logo_url`` (https, or a ``data:image``
    URL) is shown beside the name; ``accent`` and ``accent_dark`` colour the buttons in the
    light and dark schemes (refused unless they meet WCAG AA contrast). ``templates`` is a
    folder of the host's own page templates (``ack.html``, ``notice.html``, ``base.html``),
    looked up before the package's.
    """

    name: str | None = None
    contact: str | None = None
    logo_url: str | None = None
    accent: str = "#0b57d0"
    accent_dark: str = "#a8c7fa"
    templates: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        problems = [*self._logo_problems(), *self._colour_problems()]
        if self.templates is not None and not Path(self.templates).is_dir():
            problems.append(f"templates {str(self.templates)!r} is not a directory")
        if problems:
            raise ConfigurationError("invalid Brand: " + "; ".join(problems))

    def _logo_problems(self) -> list[str]:
        if self.logo_url is None or self.logo_url.startswith("data:image/"):
            return []
        try:
            url = httpx.URL(self.logo_url)
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme != "https" or not url.host:
            return [f"logo_url {self.logo_url!r} must be an https:// or data:image/ URL"]
        return []

    def _colour_problems(self) -> list[str]:
        try:
            schemes = palettes(self.accent, self.accent_dark)
        except ValueError as exc:
            return [str(exc)]
        problems = []
        for scheme, palette in schemes.items():
            for what, fore, back, minimum in contrast_checks(palette):
                ratio = contrast(fore, back)
                if ratio < minimum:
                    problems.append(
                        f"{scheme} scheme: {what} ({fore} on {back}) has contrast "
                        f"{ratio:.2f}:1, below WCAG AA {minimum}:1"
                    )
        return problems

    @classmethod
    def from_settings(cls, settings: Settings) -> Brand:
        """The brand ``OUTREACH_BRAND_NAME``, ``_CONTACT`` and ``_LOGO_URL`` describe."""
        return cls(
            name=settings.brand_name,
            contact=settings.brand_contact,
            logo_url=settings.brand_logo_url,
        )

    @property
    def image_source(self) -> str | None:
        """What the pages' Content-Security-Policy must allow for the logo."""
        if self.logo_url is None:
            return None
        if self.logo_url.startswith("data:"):
            return "data:"
        url = httpx.URL(self.logo_url)
        port = f":{url.port}" if url.port else ""
        return f"https://{url.host}{port}"
