"""Messages: one attempt rendered with its signed links, and the trial render at ``start()``.

Both renders build the template context the same way (:func:`template_context`), so what
``start()`` checks is what a send sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from outreach._clock import Clock
from outreach._models import Attempt, Medium, Notification, Option, Recipient, localised
from outreach._templates import Rendered, Templates
from outreach._tokens import TokenClaims, TokenSigner
from outreach._urls import PublicUrls
from outreach.channels import Message
from outreach.exceptions import TemplateError

UNSUBSCRIBE_LIFETIME = timedelta(days=365)
"""An unsubscribe link must keep working long after the notice (RFC 8058)."""


def template_context(
    context: Mapping[str, Any],
    recipient: Recipient,
    options: Sequence[Option],
    *,
    ack_url: str,
    option_urls: Mapping[str, str],
) -> dict[str, Any]:
    """What a template sees: the caller's context plus ``recipient``, ``options`` (labelled in
    the recipient's language), ``ack_url`` and ``option_urls`` (a link per option key)."""
    return {
        **context,
        "recipient": recipient,
        "options": localised(tuple(options), recipient.locale),
        "ack_url": ack_url,
        "option_urls": option_urls,
    }


def token_expiry(notification: Notification, now: datetime) -> datetime:
    """Links work until the deadline (or the plan's natural end) plus the grace period."""
    plan = notification.plan
    end = notification.deadline_at
    if end is None:
        end = now + sum((step.wait for step in plan.steps), timedelta()) * (plan.repeat + 1)
    return end + plan.grace


class Messages:
    """Renders notifications' templates into channel messages with signed links."""

    def __init__(
        self, templates: Templates | None, urls: PublicUrls, signer: TokenSigner, clock: Clock
    ) -> None:
        self.templates = templates
        self.urls = urls
        self.signer = signer
        self.clock = clock

    def _folder(self) -> Templates:
        if self.templates is None:
            raise TemplateError(
                "no templates folder is configured (templates=... or OUTREACH_TEMPLATES)"
            )
        return self.templates

    def render(self, notification: Notification, attempt: Attempt) -> Message:
        """The message for one attempt, with a signed acknowledgement link (and, for email,
        a link per option and a one-click unsubscribe link)."""
        templates = self._folder()
        assert attempt.medium is not None
        assert attempt.address is not None
        now = self.clock.now()
        expires_at = token_expiry(notification, now)

        def token(purpose: str, choice: str | None = None) -> str:
            expiry = expires_at if purpose == "ack" else now + UNSUBSCRIBE_LIFETIME
            claims = TokenClaims(purpose, notification.id, attempt.id, choice, expiry)
            return self.signer.sign(claims)

        plan = notification.plan
        ack_url = self.urls.ack(token("ack"))
        option_urls = {}
        unsubscribe_url = None
        if attempt.medium is Medium.EMAIL:
            option_urls = {o.key: self.urls.ack(token("ack", o.key)) for o in plan.options}
            unsubscribe_url = self.urls.unsubscribe(token("unsubscribe"))
        rendered = templates.render(
            plan.steps[attempt.step].template,
            attempt.medium,
            template_context(
                notification.context,
                notification.recipient,
                plan.options,
                ack_url=ack_url,
                option_urls=option_urls,
            ),
            locale=notification.recipient.locale,
        )
        return Message(
            notification_id=notification.id,
            attempt_id=attempt.id,
            medium=attempt.medium,
            to=attempt.address,
            body=rendered.body,
            subject=rendered.subject,
            html=rendered.html,
            locale=notification.recipient.locale,
            options=localised(plan.options, notification.recipient.locale),
            ack_url=ack_url,
            option_urls=option_urls,
            unsubscribe_url=unsubscribe_url,
            segments=rendered.segments,
        )

    def optional(
        self, notification: Notification, attempt: Attempt, stem: str, **extra: Any
    ) -> str | None:
        """The attempt's notice rendered through its optional ``<stem>.txt`` (``page`` or
        ``confirm``), with the message's context plus ``extra``; None without such a file."""
        templates = self._folder()
        plan = notification.plan
        recipient = notification.recipient
        preview = self.urls.ack("preview")  # these texts carry no links of their own
        context = template_context(
            notification.context,
            recipient,
            plan.options,
            ack_url=preview,
            option_urls={option.key: preview for option in plan.options},
        )
        return templates.render_optional(
            plan.steps[attempt.step].template, stem, {**context, **extra}, locale=recipient.locale
        )

    def trial_render(self, notification: Notification, media: Mapping[str, Medium]) -> list[Trial]:
        """Render every step's and follow-up's template once, with placeholder links, so a
        missing variable raises ``TemplateError`` before anything is stored.

        Returns one :class:`Trial` per step, then per step of each follow-up (nested ones
        included, depth first), each rendered with its own plan's options (a template used
        twice for one medium with the same options is rendered once).
        ``notification.context`` must already be in its stored (JSON) form, as ``start()``
        builds it: a send renders what the store gives back, and so must this."""
        templates = self._folder()
        preview = self.urls.ack("preview")
        done: dict[tuple[str, Medium, tuple[Option, ...]], Rendered] = {}
        trials = []
        for depth, plan in enumerate(notification.plan.plans()):
            context = template_context(
                notification.context,
                notification.recipient,
                plan.options,
                ack_url=preview,
                option_urls={option.key: preview for option in plan.options},
            )
            for step in plan.steps:
                medium = media[step.channel]
                rendered = done.get((step.template, medium, plan.options))
                if rendered is None:
                    rendered = templates.render(
                        step.template, medium, context, locale=notification.recipient.locale
                    )
                    done[step.template, medium, plan.options] = rendered
                    _trial_optional(templates, step.template, medium, context, notification)
                trials.append(Trial(step.channel, step.template, medium, rendered, depth > 0))
        return trials


_OPTIONAL: Mapping[Medium, str] = {Medium.EMAIL: "page", Medium.SMS: "confirm"}
"""The optional text each medium's notice may have: the ack page's summary, the reply's
confirmation."""


def _trial_optional(
    templates: Templates,
    template: str,
    medium: Medium,
    context: Mapping[str, Any],
    notification: Notification,
) -> None:
    """Render the notice's optional ``page.txt`` / ``confirm.txt`` too (a confirmation as it
    would be for the first option), so their missing variables fail ``start()`` as well."""
    stem = _OPTIONAL.get(medium)
    if stem is None:
        return
    extra: dict[str, Any] = {}
    if stem == "confirm":
        first = context["options"][0] if context["options"] else None
        extra = {"choice": first.key if first else None, "label": first.label if first else None}
    locale = notification.recipient.locale
    templates.render_optional(template, stem, {**context, **extra}, locale=locale)


@dataclass(frozen=True, slots=True)
class Trial:
    """One message a notification would send, rendered with placeholder links."""

    channel: str
    template: str
    medium: Medium
    rendered: Rendered
    follow_up: bool
    """True for a follow-up's message, sent only if the customer makes its choice."""
