"""Channels by name: the built-in ones and those other packages register.

A package adds a channel by declaring an entry point in the ``outreach.channels`` group::

    [project.entry-points."outreach.channels"]
    whatsapp = "outreach_whatsapp:WhatsAppChannel"

The object it names is a callable taking keyword arguments and returning a ``Channel``;
outreach's own channels are registered the same way (see ``pyproject.toml``).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from outreach.channels._base import Channel
from outreach.exceptions import ConfigurationError

ChannelFactory = Callable[..., Channel]

GROUP = "outreach.channels"


def available_channels() -> dict[str, ChannelFactory]:
    """Every channel factory by name. outreach registers its own the same way."""
    return {entry.name: entry.load() for entry in entry_points(group=GROUP)}


def build_channel(kind: str, **options: Any) -> Channel:
    """Create the channel registered as ``kind`` with ``options``."""
    factories = available_channels()
    if kind not in factories:
        raise ConfigurationError(
            f"no channel called {kind!r}; installed: {', '.join(sorted(factories))}"
        )
    return factories[kind](**options)
