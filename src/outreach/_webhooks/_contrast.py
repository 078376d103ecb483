"""WCAG 2 contrast ratios, to keep the pages' colours readable (AA: 4.5:1 for text, 3:1 for
large text and the edges of controls)."""

from __future__ import annotations

import re

_HEX = re.compile(r"#([0-9a-fA-F]{6})")

TEXT = 4.5
"""WCAG AA for body text."""
CONTROL = 3.0
"""WCAG AA for the visible edge of a control and for a focus ring (non-text contrast)."""


def luminance(colour: str) -> float:
    """The relative luminance of ``#rrggbb`` (WCAG 2.x)."""
    match = _HEX.fullmatch(colour.strip())
    if match is None:
        raise ValueError(f"{colour!r} is not a colour of the form #rrggbb")
    channels = [int(match[1][i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: str, background: str) -> float:
    """The contrast ratio of two colours, from 1 (none) to 21 (black on white)."""
    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)
