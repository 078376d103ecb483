"""The pages a customer opens from a link: acknowledge (``/ack/{token}``) and unsubscribe.

``GET`` never changes anything, because mail scanners and link previews follow every link in
an email; only the page's buttons (plain form ``POST``s: no JavaScript anywhere) do. The ack
page leads with a short summary (the notice's ``page.txt``, else the email's subject) and the
options, in the recipient's language (``lang``, labels, page phrases). Templates are Jinja files
shipped in ``outreach/templates_web`` (or the host's own, ``Brand(templates=...)``), always
autoescaped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from outreach._models import Medium, Notification, Status, localised
from outreach._redact import mask
from outreach._tokens import TokenClaims
from outreach._webhooks._brand import Brand, palettes
from outreach._webhooks._common import FORM_LIMIT, Ctx, Form, parse_form, read_body
from outreach._webhooks._page_phrases import page_phrases
from outreach._webhooks._phrases import answer_to_late_taker, phrases
from outreach.exceptions import (
    AlreadyTaken,
    ExpiredToken,
    InvalidChoice,
    InvalidToken,
    NotFound,
    TemplateError,
)

log = logging.getLogger("outreach.webhooks")


def _headers(brand: Brand) -> Mapping[str, str]:
    """Keep the pages out of frames, caches, indexes and referrers; allow the logo alone."""
    images = f" img-src {brand.image_source};" if brand.image_source else ""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'unsafe-inline';{images} form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "Referrer-Policy": "no-referrer",  # the token is in the URL
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "X-Robots-Tag": "noindex, nofollow",
        "Cache-Control": "no-store",
    }


def _browser_locale(request: Request) -> str:
    """The first language of ``Accept-Language``: for pages that know no recipient."""
    first = request.headers.get("accept-language", "").split(",")[0]
    return first.split(";")[0].strip()


class Pages:
    """Renders the link pages; one per app."""

    def __init__(self, brand: Brand | None = None) -> None:
        self.brand = brand or Brand()
        loader: Any = PackageLoader("outreach", "templates_web")
        if self.brand.templates is not None:
            loader = ChoiceLoader([FileSystemLoader(self.brand.templates), loader])
        self._env = Environment(
            loader=loader,
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._headers = _headers(self.brand)
        self._palettes = palettes(self.brand.accent, self.brand.accent_dark)

    def render(
        self, template: str, locale: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        """A page in ``locale``'s language, branded."""
        lang, phrases = page_phrases(locale)
        html = self._env.get_template(template).render(
            lang=lang, p=phrases, brand=self.brand, colours=self._palettes, **context
        )
        return HTMLResponse(html, status_code=status_code, headers=self._headers)

    def notice(
        self,
        locale: str,
        heading: str,
        *paragraphs: str,
        status_code: int = 200,
        button: str | None = None,
        contact: bool = False,
    ) -> HTMLResponse:
        """A short page: a heading, a few sentences, maybe one button; ``contact=True`` adds
        whom to contact."""
        return self.render(
            "notice.html",
            locale,
            status_code,
            title=heading,
            heading=heading,
            paragraphs=paragraphs,
            button=button,
            contact=contact,
        )

    def not_found(self, locale: str) -> HTMLResponse:
        p = page_phrases(locale)[1]
        return self.notice(locale, p.not_found_heading, p.not_found, status_code=404)

    def expired(self, locale: str) -> HTMLResponse:
        p = page_phrases(locale)[1]
        return self.notice(locale, p.expired_heading, p.expired, status_code=410, contact=True)

    def already(self, notification: Notification) -> HTMLResponse:
        locale = notification.recipient.locale
        p = page_phrases(locale)[1]
        return self.notice(
            locale,
            p.already_heading,
            _answer(notification, p.already_choice, p.already),
            contact=True,
        )

    def closed(self, locale: str) -> HTMLResponse:
        p = page_phrases(locale)[1]
        return self.notice(locale, p.thanks, p.closed, contact=True)

    def claims(self, ctx: Ctx, request: Request, purpose: str) -> TokenClaims | HTMLResponse:
        """The token's claims, or the page to show instead (404 forged, 410 expired)."""
        try:
            return ctx.inbound.read_token(request.path_params["token"], purpose)
        except ExpiredToken:
            return self.expired(_browser_locale(request))
        except InvalidToken:
            return self.not_found(_browser_locale(request))

    async def _load(
        self, ctx: Ctx, request: Request, purpose: str
    ) -> tuple[TokenClaims, Notification] | HTMLResponse:
        claims = self.claims(ctx, request, purpose)
        if isinstance(claims, HTMLResponse):
            return claims
        try:
            notification = await ctx.client.get(claims.notification_id)
        except NotFound:
            return self.not_found(_browser_locale(request))
        return claims, notification

    async def ack_page(self, ctx: Ctx, request: Request) -> Response:
        """``GET /ack/{token}``: a short summary and the options as buttons. Changes nothing."""
        loaded = await self._load(ctx, request, "ack")
        if isinstance(loaded, HTMLResponse):
            return loaded
        claims, notification = loaded
        locale = notification.recipient.locale
        if notification.status is Status.ACKNOWLEDGED:
            return self.already(notification)
        if notification.status is Status.CANCELLED:
            owner = await ctx.inbound.page_owner(notification)
            if owner is None:
                return self.closed(locale)
            taken = phrases(locale).taken_by.format(owner=owner)  # a page someone else took
            return self.notice(locale, page_phrases(locale)[1].thanks, taken)
        p = page_phrases(locale)[1]
        summary = await _summary(ctx, notification, claims)
        options = localised(notification.plan.options, locale)
        selected = next((o for o in options if o.key == claims.choice), None)
        heading = summary or p.answer_heading
        return self.render(
            "ack.html",
            locale,
            title=heading,
            heading=heading,
            options=options,
            selected=selected.key if selected else None,
            suggested=p.suggested.format(label=selected.label) if selected else None,
        )

    async def ack(self, ctx: Ctx, request: Request) -> Response:
        """``POST /ack/{token}``: acknowledge, with the form's choice (else the link's)."""
        loaded = await self._load(ctx, request, "ack")
        if isinstance(loaded, HTMLResponse):
            return loaded
        claims, notification = loaded
        locale = notification.recipient.locale
        p = page_phrases(locale)[1]
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
            return self.notice(locale, p.invalid_heading, p.invalid, status_code=400)
        except AlreadyTaken as taken:  # a page someone else answered first
            return self.notice(locale, p.thanks, answer_to_late_taker(phrases(locale), taken))
        if after.status is not Status.ACKNOWLEDGED:
            return self.closed(locale)
        if before is Status.ACKNOWLEDGED or after.choice != choice:
            return self.already(after)
        answer = _answer(after, p.choice_recorded, p.recorded)
        return self.notice(locale, p.thanks, answer, p.close)

    async def unsubscribe_page(self, ctx: Ctx, request: Request) -> Response:
        """``GET /unsubscribe/{token}``: a confirmation button. Changes nothing."""
        loaded = await self._load(ctx, request, "unsubscribe")
        if isinstance(loaded, HTMLResponse):
            return loaded
        locale = loaded[1].recipient.locale
        p = page_phrases(locale)[1]
        return self.notice(
            locale, p.unsubscribe_heading, p.unsubscribe, button=p.unsubscribe_button
        )

    async def unsubscribe(self, ctx: Ctx, request: Request) -> Response:
        """``POST /unsubscribe/{token}``: RFC 8058 one-click unsubscribe of the email address."""
        loaded = await self._load(ctx, request, "unsubscribe")
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
        locale = notification.recipient.locale
        p = page_phrases(locale)[1]
        return self.notice(locale, p.unsubscribed_heading, p.unsubscribed)


def _answer(notification: Notification, with_label: str, without: str) -> str:
    """The recorded answer: ``with_label`` naming the option in the recipient's language,
    ``without`` for an acknowledgement without a choice."""
    option = notification.plan.option(notification.choice) if notification.choice else None
    if option is None:
        return without
    return with_label.format(label=option.label_for(notification.recipient.locale))


async def _summary(ctx: Ctx, notification: Notification, claims: TokenClaims) -> str | None:
    """The notice's ``page.txt``, else the email's subject: never the whole email (its links
    and tokens would push the options below the fold)."""
    if claims.attempt_id is None:
        return None
    try:
        page = await ctx.inbound.page_summary(claims.attempt_id)
        if page:
            return page
        _, message = await ctx.inbound.render_attempt(claims.attempt_id)
    except (NotFound, TemplateError) as error:
        log.warning("ack page without the summary of %s: %s", claims.attempt_id, error)
        return None
    return message.subject
