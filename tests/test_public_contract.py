"""The names DESIGN.md promises: outside acceptance tests import exactly these."""

from __future__ import annotations

import inspect


def test_the_documented_imports_work() -> None:
    import outreach
    from outreach import (  # noqa: F401
        AsyncClient,
        Attempt,
        AttemptStatus,
        Client,
        Event,
        FollowUp,
        Notification,
        Option,
        Paging,
        Plan,
        QuietHours,
        Recipient,
        RetryPolicy,
        Status,
        Step,
    )
    from outreach.channels import (  # noqa: F401
        Channel,
        Console,
        Failover,
        SendGridEmail,
        TwilioSMS,
        TwilioVoice,
    )
    from outreach.exceptions import AlreadyTaken, OutreachError  # noqa: F401
    from outreach.testing import FakeClock, InMemoryChannel, ProviderSimulator  # noqa: F401
    from outreach.webhooks import create_app  # noqa: F401

    assert outreach.__version__


def test_outreach_testing_exports() -> None:
    """``outreach.testing`` re-exports the test doubles (its code lives in private modules);
    every name it lists resolves, including the lazily loaded simulator and sandbox."""
    import outreach.testing as testing
    from outreach._clock import FakeClock
    from outreach.channels import InMemoryChannel

    assert testing.__all__ == [
        "CallBehaviour",
        "EmailBehaviour",
        "FakeClock",
        "InMemoryChannel",
        "Persona",
        "ProviderSimulator",
        "Sandbox",
        "SmsBehaviour",
    ]
    for name in testing.__all__:
        assert getattr(testing, name) is not None, name
    assert testing.FakeClock is FakeClock
    assert testing.InMemoryChannel is InMemoryChannel


def test_outreach_channels_exports() -> None:
    import outreach.channels as channels

    assert channels.__all__ == sorted(channels.__all__)
    for name in channels.__all__:
        assert getattr(channels, name) is not None, name


def test_enums_are_upper_case_members_with_lower_case_values() -> None:
    from outreach import AttemptStatus, Status

    assert Status.ACKNOWLEDGED == "acknowledged"
    assert [s.value for s in Status] == [
        "pending",
        "active",
        "acknowledged",
        "exhausted",
        "cancelled",
        "expired",
        "failed",
        "delivered",
        "engaged",
    ]
    assert {s.value for s in AttemptStatus} == {
        "sending",
        "queued",
        "sent",
        "delivered",
        "engaged",
        "undelivered",
        "failed",
        "unknown",
        "skipped",
    }


def test_constructor_keywords() -> None:
    from outreach import AsyncClient
    from outreach.channels import SendGridEmail, TwilioSMS, TwilioVoice

    def keywords(callable_: object) -> set[str]:
        return set(inspect.signature(callable_).parameters)  # type: ignore[arg-type]

    assert {"store", "channels", "templates", "clock", "hooks", "settings"} <= keywords(AsyncClient)
    assert {
        "account_sid",
        "auth_token",
        "from_",
        "messaging_service_sid",
        "base_url",
        "rate",
        "max_in_flight",
    } <= keywords(TwilioSMS)
    assert {"account_sid", "auth_token", "from_", "base_url", "rate", "max_in_flight"} <= keywords(
        TwilioVoice
    )
    assert {"api_key", "from_email", "base_url", "rate", "max_in_flight"} <= keywords(SendGridEmail)


def test_the_error_tree() -> None:
    from outreach import exceptions as e

    assert issubclass(e.ConfigurationError, e.OutreachError)
    assert issubclass(e.TemplateError, e.OutreachError)
    assert issubclass(e.InvalidRecipient, e.OutreachError)
    assert issubclass(e.IdempotencyConflict, e.OutreachError)
    assert issubclass(e.RateLimited, e.TransientDeliveryError)
    assert issubclass(e.TransientDeliveryError, e.DeliveryError)
    assert issubclass(e.PermanentDeliveryError, e.DeliveryError)
    assert issubclass(e.DeliveryError, e.OutreachError)
    assert issubclass(e.ConcurrencyError, e.StoreError)
    assert issubclass(e.StoreError, e.OutreachError)
    assert issubclass(e.InvalidSignature, e.WebhookError)
    assert issubclass(e.WebhookError, e.OutreachError)


def test_the_error_tree_drawn_in_the_docstring_is_the_real_one() -> None:
    import re

    from outreach import exceptions as e

    drawn: dict[str, str | None] = {}  # class -> parent, read from the drawing
    parents: list[str] = []
    drawing = (e.__doc__ or "").split("::\n", 1)[1].strip("\n").split("\n\n")[0]
    for line in drawing.splitlines():
        match = re.match(r"\W*(\w+)", line)
        assert match is not None, line
        depth = (match.start(1) - 4) // 4
        del parents[depth:]
        drawn[match[1]] = parents[-1] if parents else None
        parents.append(match[1])

    real: dict[str, str | None] = {}
    for name, value in vars(e).items():
        if isinstance(value, type) and issubclass(value, e.OutreachError):
            ours = [b for b in value.__bases__ if issubclass(b, e.OutreachError)]
            real[name] = ours[0].__name__ if ours else None
    assert drawn == real


def test_outreach_campaigns_exports() -> None:
    """``outreach.campaigns``: the building blocks of ``outreach send`` and ``report``."""
    import outreach.campaigns as campaigns

    assert campaigns.__all__ == sorted(campaigns.__all__)
    for name in campaigns.__all__:
        assert getattr(campaigns, name) is not None, name
    assert {"read_recipients", "validate_campaign", "campaign_report"} <= set(campaigns.__all__)


def test_notices_that_need_no_answer() -> None:
    """``Plan(until=...)``, its two endings and their hooks (the notices issue)."""
    from outreach import Hooks, Plan, Status, Step

    plan = Plan(name="apology", steps=[Step(channel="email", template="t")], until="delivered")
    assert plan.until == "delivered"
    assert Plan(name="p", steps=[Step(channel="sms", template="t")]).until == "acknowledged"
    assert (Status.DELIVERED, Status.ENGAGED) == ("delivered", "engaged")
    assert {"on_delivered", "on_engaged"} <= set(inspect.signature(Hooks).parameters)
