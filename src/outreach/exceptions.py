"""The error tree: every failure the library raises is an ``OutreachError``.

Our exception hierarchy::

    OutreachError
    ├── ConfigurationError
    │   └── InvalidContext
    ├── TemplateError
    ├── InvalidRecipient
    ├── IdempotencyConflict
    ├── NotFound                      (also a LookupError)
    ├── InvalidChoice
    ├── AlreadyTaken                  (owner)
    ├── DeliveryError
    │   ├── TransientDeliveryError    (retry_after, retry_at)
    │   │   └── RateLimited
    │   └── PermanentDeliveryError    (opt_out)
    ├── StoreError
    │   └── ConcurrencyError
    └── WebhookError
        ├── InvalidSignature
        └── InvalidToken
            └── ExpiredToken

Channels map provider errors onto ``DeliveryError`` and ``ConfigurationError`` at their edge.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class OutreachError(Exception):
    """Root of every error raised by outreach."""


class ConfigurationError(OutreachError):
    """Something the developer configured is wrong: a plan, a channel, a setting, credentials."""


class InvalidContext(ConfigurationError):
    """A value of ``start()``'s context cannot be stored (it is not JSON data); names the key.

    A ``ConfigurationError``: like a bad plan, it is a mistake in the calling code, found before
    anything is stored, fixed by changing the code, never worth retrying; and it is what this
    case raised before it had a class of its own, so ``except ConfigurationError`` still catches
    it. Not a ``TemplateError``: no template is involved (a template that misuses a value the
    store turns into a string still raises ``TemplateError`` from the trial render).
    """


class TemplateError(OutreachError):
    """A template is missing or cannot be rendered with the given context."""


class InvalidRecipient(OutreachError):
    """A recipient's phone, email, time zone or other field is invalid."""


class IdempotencyConflict(OutreachError):
    """The key is already used by a notification with a different recipient or plan."""


class NotFound(OutreachError, LookupError):
    """No notification (or attempt) has the given id or key."""


class InvalidChoice(OutreachError):
    """An acknowledgement names a choice that is not one of the plan's options."""


class AlreadyTaken(OutreachError):
    """Someone else took (or closed) this attention record first; ``owner`` says who, and
    ``closed`` whether it was closed rather than taken."""

    def __init__(self, message: str, *, owner: str, closed: bool = False) -> None:
        super().__init__(message)
        self.owner = owner
        self.closed = closed


class DeliveryError(OutreachError):
    """A channel could not hand a message to its provider."""


class TransientDeliveryError(DeliveryError):
    """Worth retrying later: timeouts, 5xx, connection errors.

    The provider's hint, when it gave one, is ``retry_after`` (a delay, from ``Retry-After``)
    or ``retry_at`` (an instant, from SendGrid's ``X-RateLimit-Reset``).
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: timedelta | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.retry_at = retry_at


class RateLimited(TransientDeliveryError):
    """The provider (or our pacing) asked us to slow down; the send is deferred, never dropped."""


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: invalid or unreachable address, rejected content.

    ``opt_out`` is true when the provider says the recipient opted out (Twilio 21610).
    """

    def __init__(self, message: str, *, opt_out: bool = False) -> None:
        super().__init__(message)
        self.opt_out = opt_out


class StoreError(OutreachError):
    """The store failed or holds data it cannot read."""


class ConcurrencyError(StoreError):
    """A version-checked update lost the race against another writer."""


class WebhookError(OutreachError):
    """A webhook request could not be accepted."""


class InvalidSignature(WebhookError):
    """A webhook request's signature is missing, forged or too old."""


class InvalidToken(WebhookError):
    """An acknowledgement or unsubscribe token is unknown, malformed or forged."""


class ExpiredToken(InvalidToken):
    """A token was genuine but its expiry has passed."""
