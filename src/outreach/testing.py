"""Test doubles shipped with the library: a clock you move by hand, a channel with an outbox,
the provider simulator and the sandbox. Re-exports only; the code lives in private modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from outreach._clock import FakeClock
from outreach.channels.memory import InMemoryChannel

__all__ = [
    "CallBehaviour",
    "EmailBehaviour",
    "FakeClock",
    "InMemoryChannel",
    "Persona",
    "ProviderSimulator",
    "Sandbox",
    "SmsBehaviour",
]

_SIMULATOR = {"CallBehaviour", "EmailBehaviour", "Persona", "ProviderSimulator", "SmsBehaviour"}


def __getattr__(name: str) -> Any:
    # The simulator brings uvicorn, starlette and cryptography: load it only when asked for.
    if name in _SIMULATOR:
        from outreach import _simulator

        return getattr(_simulator, name)
    if name == "Sandbox":
        from outreach._sandbox import Sandbox

        return Sandbox
    raise AttributeError(f"module 'outreach.testing' has no attribute {name!r}")


if TYPE_CHECKING:
    from outreach._sandbox import Sandbox
    from outreach._simulator import (
        CallBehaviour,
        EmailBehaviour,
        Persona,
        ProviderSimulator,
        SmsBehaviour,
    )
