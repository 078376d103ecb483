"""The provider simulator behind ``outreach.testing.ProviderSimulator`` (private modules)."""

from outreach._simulator._personas import CallBehaviour, EmailBehaviour, Persona, SmsBehaviour
from outreach._simulator._simulator import ProviderSimulator

__all__ = ["CallBehaviour", "EmailBehaviour", "Persona", "ProviderSimulator", "SmsBehaviour"]
