"""The email acknowledgement page, done right: a short summary and the options first, the
recipient's language, WCAG AA colours, no JavaScript, a brand, and whom to contact.

What only a browser can tell (the viewport, a click with JavaScript off, screenshots) is in
``tests/test_ack_page_browser.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from outreach import AsyncClient, Plan, Recipient
from outreach._settings import Settings
from outreach._webhooks._brand import contrast_checks, palettes
from outreach._webhooks._contrast import contrast, luminance
from outreach._webhooks._page_phrases import languages, page_phrases
from outreach.exceptions import ConfigurationError
from outreach.testing import FakeClock, InMemoryChannel
from outreach.webhooks import Brand, create_app

from ._helpers import CONTEXT, PAX, connect, path_of, to_step

BRAND = Brand(
    name="Cape Air",
    contact="Cape Air on +1 800 555 0199",
    logo_url="https://cdn.example.com/logo.png",
)


async def ack_url(
    client: AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
    recipient: Recipient = PAX,
) -> str:
    n = await client.start(recipient, plan, context=CONTEXT)
    await client.run_due()
    await to_step(client, clock, await client.get(n.id), 1)
    return path_of(channels["email"].outbox[-1].ack_url)


def visible_text(html: str) -> str:
    body = html.split("<body>", 1)[1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()


async def test_the_page_leads_with_the_subject_and_the_options_not_the_whole_email(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    page = await http.get(await ack_url(client, clock, plan, channels))
    text = visible_text(page.text)
    assert text.startswith("Flight 9K 1042 is cancelled: choose what happens next")
    assert "We are sorry" not in text  # the email's body stays in the email
    assert "/ack/" not in text  # and so does its long link with the token
    assert text.index("Rebook me") < text.index("Nothing is recorded")
    assert "<script" not in page.text  # nothing to run: forms and buttons only
    assert page.text.count('<form method="post">') == 1


async def test_the_notices_page_template_is_the_summary_in_the_recipients_language(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
    templates_dir: Path,
) -> None:
    folder = templates_dir / "flight_cancelled"
    (folder / "page.txt").write_text("Flight {{ flight }} is cancelled.\n", encoding="utf-8")
    (folder / "page.fr.txt").write_text("Le vol {{ flight }} est annulé.\n", encoding="utf-8")
    page = await http.get(await ack_url(client, clock, plan, channels))
    assert "<h1>Flight 9K 1042 is cancelled.</h1>" in page.text
    french = PAX.model_copy(update={"id": "pax-fr", "locale": "fr-CA"})
    page = await http.get(await ack_url(client, clock, plan, channels, french))
    assert "<h1>Le vol 9K 1042 est annulé.</h1>" in page.text
    assert '<html lang="fr-CA">' in page.text
    assert "Choisissez une option :" in page.text
    assert "Rien n&#39;est enregistré" in page.text


@pytest.mark.parametrize(
    ("locale", "lang", "choose"),
    [
        ("en", "en", "Please choose one option:"),
        ("fr_ca", "fr-CA", "Choisissez une option :"),
        ("es-MX", "es-MX", "Elija una opción:"),
        ("de", "de", "Bitte wählen Sie eine Option:"),
        ("pt-BR", "pt-BR", "Escolha uma opção:"),
        ("it", "it", "Scelga un'opzione:"),
        ("ja", "en", "Please choose one option:"),  # no table: English, and says so
        ("", "en", "Please choose one option:"),
        ('fr-"><script>', "fr", "Choisissez une option :"),  # a hostile tag names no lang
    ],
)
def test_page_language_and_phrases_follow_the_locale(locale: str, lang: str, choose: str) -> None:
    assert page_phrases(locale)[0] == lang
    assert page_phrases(locale)[1].choose == choose


def test_every_language_has_every_phrase_with_its_placeholders() -> None:
    english = page_phrases("en")[1]
    for language in languages():
        phrases = page_phrases(language)[1]
        for field, text in zip(phrases._fields, phrases, strict=True):
            assert text.strip(), (language, field)
            placeholders = set(re.findall(r"{(\w+)}", getattr(english, field)))
            assert set(re.findall(r"{(\w+)}", text)) == placeholders, (language, field)


# --- contrast ---------------------------------------------------------------------------------


def test_contrast_ratios_match_wcag_reference_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the AA grey
    assert luminance("#ffffff") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="#rrggbb"):
        luminance("blue")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_colour_pair_of_the_default_pages_meets_wcag_aa(scheme: str) -> None:
    palette = palettes(Brand().accent, Brand().accent_dark)[scheme]
    for what, fore, back, minimum in contrast_checks(palette):
        assert contrast(fore, back) >= minimum, (scheme, what, fore, back)


async def test_the_page_uses_exactly_the_checked_colours(
    client: AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    page = await http.get(await ack_url(client, clock, plan, channels))
    style = page.text.split("<style>", 1)[1].split("</style>", 1)[0]
    used = {colour.lower() for colour in re.findall(r"#[0-9a-fA-F]{3,8}\b", style)}
    checked = {c.lower() for palette in palettes("#0b57d0", "#a8c7fa").values() for c in palette}
    assert used == checked
    assert "GrayText" not in style  # a system colour cannot be checked (it was 3.95:1)


@pytest.mark.parametrize(
    ("brand", "problem"),
    [
        ({"accent": "#ffd54f"}, r"light scheme: a button's edge .* below WCAG AA 3.0:1"),
        ({"accent_dark": "#202020"}, r"dark scheme: a button's edge .* below WCAG AA 3.0:1"),
        ({"accent": "#7f7f7f"}, r"light scheme: a chosen button's label .* below WCAG AA 4.5:1"),
        ({"accent": "red"}, r"'red' is not a colour of the form #rrggbb"),
        ({"logo_url": "http://cdn.example.com/logo.png"}, "must be an https:// or data:image/"),
        ({"logo_url": "javascript:alert(1)"}, "must be an https:// or data:image/"),
        ({"templates": "/no/such/folder"}, "is not a directory"),
    ],
)
def test_a_brand_that_would_be_unreadable_or_unsafe_is_refused(
    brand: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        Brand(**brand)


# --- branding and whom to contact ---------------------------------------------------------------


@pytest.fixture
async def branded(client: AsyncClient, settings: Settings) -> httpx.AsyncClient:
    return connect(create_app(client, settings=settings, brand=BRAND))


async def test_a_branded_page_names_the_sender_and_allows_its_logo_alone(
    client: AsyncClient,
    branded: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    async with branded:
        page = await branded.get(await ack_url(client, clock, plan, channels))
    assert '<img src="https://cdn.example.com/logo.png" alt="Cape Air">' in page.text
    assert "· Cape Air</title>" in page.text
    policy = page.headers["content-security-policy"]
    assert "img-src https://cdn.example.com;" in policy
    assert "default-src 'none'" in policy
    assert "script-src" not in policy


async def test_expired_and_already_answered_pages_say_whom_to_contact(
    client: AsyncClient,
    branded: httpx.AsyncClient,
    http: httpx.AsyncClient,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    url = await ack_url(client, clock, plan, channels)
    async with branded:
        await branded.post(url, data={"choice": "2"})
        already = await branded.get(url)
        assert "You have already answered" in already.text
        assert "Your answer: Refund." in already.text
        assert "contact Cape Air on +1 800 555 0199." in already.text
        clock.advance("40d")
        expired = await branded.get(url, headers={"Accept-Language": "fr-CA,fr;q=0.9"})
        assert expired.status_code == 410
        assert "Ce lien a expiré" in expired.text
        assert "contactez Cape Air on +1 800 555 0199." in expired.text
    plain = await http.get(url)
    assert "If you still need help, please contact us." in plain.text  # no brand: still said


async def test_the_hosts_own_page_templates_win(
    client: AsyncClient,
    settings: Settings,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
    tmp_path: Path,
) -> None:
    own = tmp_path / "pages"
    own.mkdir()
    (own / "ack.html").write_text(
        '{% extends "base.html" %}{% block content %}<h1 class="ours">{{ heading }}</h1>'
        "{% for o in options %}<button name=choice value={{ o.key }}>{{ o.label }}</button>"
        "{% endfor %}{% endblock %}",
        encoding="utf-8",
    )
    async with connect(create_app(client, settings=settings, brand=Brand(templates=own))) as h:
        page = await h.get(await ack_url(client, clock, plan, channels))
    assert (
        '<h1 class="ours">Flight 9K 1042 is cancelled: choose what happens next</h1>' in page.text
    )
    assert "Taxi to my destination" in page.text


async def test_the_brand_can_come_from_the_settings(
    client: AsyncClient,
    settings: Settings,
    clock: FakeClock,
    plan: Plan,
    channels: dict[str, InMemoryChannel],
) -> None:
    branded = settings.model_copy(
        update={"brand_name": "Cape Air", "brand_contact": "Cape Air on +1 800 555 0199"}
    )
    url = await ack_url(client, clock, plan, channels)
    async with connect(create_app(client, settings=branded)) as h:
        await h.post(url, data={"choice": "1"})
        page = await h.get(url)
    assert "<span>Cape Air</span>" in page.text
    assert "contact Cape Air on +1 800 555 0199." in page.text


def test_a_bad_logo_in_the_settings_stops_the_app_naming_it(
    client: AsyncClient, settings: Settings
) -> None:
    bad = settings.model_copy(update={"brand_logo_url": "http://cdn.example.com/logo.png"})
    with pytest.raises(ConfigurationError, match=r"logo_url 'http://cdn\.example\.com/logo\.png'"):
        create_app(client, settings=bad)
