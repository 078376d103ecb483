"""The pages a customer opens from a link: acknowledge (``/ack/{token}``) and unsubscribe.

``GET`` never changes anything, because mail scanners and link previews follow every link in
an email; only the page's buttons (``POST``) do. Templates are Jinja files shipped in
``outreach/templates_web`` and always autoescaped.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from outreach._models import Medium, Notification, Status
from outreach._redact import mask
from outreach._tokens import TokenClaims
from outreach._webhooks._common import FORM_LIMIT, Ctx, Form, parse_form, read_body
from outreach.exceptions import ExpiredToken, InvalidChoice, InvalidToken, NotFound, TemplateError

log = logging.getLogger("outreach.webhooks")

_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
}


class Pages:
    """Renders the link pages; one per app."""

    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("outreach", "templates_web"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """A page, with headers that keep it out of frames, caches, indexes and referrers."""
        html = self._env.get_template(template).render(lang="en", **context)
        return HTMLResponse(html, status_code=status_code, headers=_HEADERS)

    def notice(
        self,
        heading: str,
        *paragraphs: str,
        status_code: int = 200,
        button: str | None = None,
    ) -> HTMLResponse:
        """A short page: a heading, a few sentences, maybe one button."""
        return self.render(
            "notice.html",
            status_code,
            title=heading,
            heading=heading,
            paragraphs=paragraphs,
            button=button,
        )

    def not_found(self) -> HTMLResponse:
        return self.notice(
            "Link not recognised",
            "This link is not valid. Please check that you copied all of it.",
            status_code=404,
        )

    def expired(self) -> HTMLResponse:
        return self.notice(
            "This link has expired",
            "The message this link came with no longer needs an answer here.",
            "If you still need help, please contact us.",
            status_code=410,
        )

    def already(self, notification: Notification) -> HTMLResponse:
        option = notification.plan.option(notification.choice) if notification.choice else None
        answer = f"Your answer: {option.label}." if option else "We have your confirmation."
        return self.notice("You have already answered", answer, "Thank you.")

    def closed(self) -> HTMLResponse:
        return self.notice("Thank you", "This message no longer needs an answer.")

    def claims(self, ctx: Ctx, token: str, purpose: str) -> TokenClaims | HTMLResponse:
        """The token's claims, or the page to show instead (404 forged, 410 expired)."""
        try:
            return ctx.inbound.read_token(token, purpose)
        except ExpiredToken:
            return self.expired()
        except InvalidToken:
            return self.not_found()

    async def _load(
        self, ctx: Ctx, token: str, purpose: str
    ) -> tuple[TokenClaims, Notification] | HTMLResponse:
        claims = self.claims(ctx, token, purpose)
        if isinstance(claims, HTMLResponse):
            return claims
        try:
            notification = await ctx.client.get(claims.notification_id)
        except NotFound:
            return self.not_found()
        return claims, notification

    async def ack_page(self, ctx: Ctx, request: Request) -> Response:
        """``GET /ack/{token}``: the message and its options as buttons. Changes nothing."""
        loaded = await self._load(ctx, request.path_params["token"], "ack")
        if isinstance(loaded, HTMLResponse):
            return loaded
        claims, notification = loaded
        if notification.status is Status.ACKNOWLEDGED:
            return self.already(notification)
        if notification.status is Status.CANCELLED:
            return self.closed()
        subject, body = None, None
        if claims.attempt_id is not None:
            try:
                _, message = await ctx.inbound.render_attempt(claims.attempt_id)
                subject, body = message.subject, message.body
            except (NotFound, TemplateError) as error:
                log.warning("ack page without the message of %s: %s", claims.attempt_id, error)
        options = notification.plan.options
        selected = notification.plan.option(claims.choice) if claims.choice else None
        heading = subject or "Please answer our message"
        return self.render(
            "ack.html",
            title=heading,
            heading=heading,
            body=body,
            options=options,
            selected=selected.key if selected else None,
            selected_label=selected.label if selected else None,
        )

    async def ack(self, ctx: Ctx, request: Request) -> Response:
        """``POST /ack/{token}``: acknowledge, with the form's choice (else the link's)."""
        loaded = await self._load(ctx, request.path_params["token"], "ack")
        if isinstance(loaded, HTMLResponse):
            return loaded
        claims, notification = loaded
        body = await read_body(request, FORM_LIMIT)
        form = parse_form(body, request.headers.get("content-type")) if body else Form(())
        choice = form.get("choice").strip() or claims.choice or None
        if not notification.plan.options:
            choice = None
        before = notification.status
        try:
            after = await ctx.client.acknowledge(
                notification.id, via="email", choice=choice, attempt_id=claims.attempt_id
            )
        except InvalidChoice:
            return self.notice(
                "Please choose one of the options",
                "That answer is not one of the options offered.",
                status_code=400,
            )
        if after.status is not Status.ACKNOWLEDGED:
            return self.closed()
        if before is Status.ACKNOWLEDGED or after.choice != choice:
            return self.already(after)
        option = after.plan.option(choice) if choice else None
        return self.notice(
            "Thank you",
            f"We have recorded your choice: {option.label}." if option else "We have your answer.",
            "You can close this page.",
        )

    async def unsubscribe_page(self, ctx: Ctx, request: Request) -> Response:
        """``GET /unsubscribe/{token}``: a confirmation button. Changes nothing."""
        loaded = await self._load(ctx, request.path_params["token"], "unsubscribe")
        if isinstance(loaded, HTMLResponse):
            return loaded
        return self.notice(
            "Unsubscribe from these emails?",
            "Press the button to stop receiving these emails at this address.",
            button="Unsubscribe",
        )

    async def unsubscribe(self, ctx: Ctx, request: Request) -> Response:
        """``POST /unsubscribe/{token}``: RFC 8058 one-click unsubscribe of the email address."""
        loaded = await self._load(ctx, request.path_params["token"], "unsubscribe")
        if isinstance(loaded, HTMLResponse):
            return loaded
        _, notification = loaded
        await read_body(request, FORM_LIMIT)  # "List-Unsubscribe=One-Click"; size-limited
        email = notification.recipient.email
        if email:
            await ctx.client.opt_out(
                Medium.EMAIL, email, reason="one-click unsubscribe", notification_id=notification.id
            )
            log.info("one-click unsubscribe of %s", mask(email))
        return self.notice("You are unsubscribed", "You will not get these emails any more.")
