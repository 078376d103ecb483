"""outreach: reach customers when something went wrong, and keep trying until they answer."""

from importlib.metadata import version

from outreach._alerts import AlertThresholds, ChannelAlert
from outreach._client import AsyncClient
from outreach._factory import channels_from_settings
from outreach._hooks import Hooks
from outreach._models import (
    Attempt,
    AttemptStatus,
    Attention,
    AttentionReason,
    Event,
    EventKind,
    FollowUp,
    Medium,
    Notification,
    Option,
    Plan,
    QuietHours,
    Recipient,
    RetryPolicy,
    StartRequest,
    Status,
    Step,
)
from outreach._paging import Paging
from outreach._ratelimit import RecipientCap
from outreach._settings import Settings
from outreach._sync import Client
from outreach._telemetry import Telemetry

__version__ = version("outreach")

__all__ = [
    "AlertThresholds",
    "AsyncClient",
    "Attempt",
    "AttemptStatus",
    "Attention",
    "AttentionReason",
    "ChannelAlert",
    "Client",
    "Event",
    "EventKind",
    "FollowUp",
    "Hooks",
    "Medium",
    "Notification",
    "Option",
    "Paging",
    "Plan",
    "QuietHours",
    "Recipient",
    "RecipientCap",
    "RetryPolicy",
    "Settings",
    "StartRequest",
    "Status",
    "Step",
    "Telemetry",
    "__version__",
    "channels_from_settings",
]
