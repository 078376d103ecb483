"""The acknowledgement page in a real browser: Debian's Chromium driven by Playwright.

On a phone (390x844) every option button is on the first screen; a click with JavaScript off
acknowledges; every page screenshots cleanly. The webhooks app is served over loopback by
uvicorn; the browser makes no other request (the logo is a ``data:`` URL).

Without a browser these tests are skipped loudly (a warning and the reason in the summary),
and fail under ``CI=true``: ``.ci/run`` installs ``chromium``.
"""

from __future__ import annotations

import base64
import os
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from outreach import AsyncClient, Option, Plan, Recipient, Status, Step
from outreach._settings import Settings
from outreach._simulator._server import LoopbackServer
from outreach._webhooks._contrast import contrast
from outreach.testing import FakeClock, InMemoryChannel
from outreach.webhooks import Brand, create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5d3b1a5"
        "0000000049454e44ae426082"
    )
).decode()
BRAND = Brand(
    name="Cape Air",
    contact="Cape Air on +1 800 555 0199",
    logo_url=f"data:image/png;base64,{PIXEL}",
)
PAX = Recipient(id="pax-17", email="ann@example.com", timezone="America/New_York")

pytestmark = pytest.mark.filterwarnings("always::UserWarning")


class BrowserUnavailable(UserWarning):
    """No headless Chromium could be launched: the browser tests did not run."""


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Chromium under Playwright; skipped loudly (failed in CI) when it cannot be launched."""
    try:
        from playwright.async_api import async_playwright
    except ImportError as error:
        missing(f"Playwright for Python is not installed ({error}): pip install -e '.[dev]'")
    async with async_playwright() as playwright:
        try:
            launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        except Exception as error:
            missing(f"cannot launch {CHROMIUM} ({type(error).__name__}: {error})".strip())
        try:
            yield launched
        finally:
            await launched.close()


def missing(reason: str) -> None:
    message = f"browser tests NOT run: {reason}; install it with `apt-get install -y chromium`"
    if os.environ.get("CI"):
        pytest.fail(message)
    warnings.warn(message, BrowserUnavailable, stacklevel=2)
    pytest.skip(message)


@pytest.fixture
def plan() -> Plan:
    return Plan(
        name="flight-cancelled",
        steps=[Step(channel="email", template="flight_cancelled", wait="30m")],
        options=[
            Option(key="1", label="Rebook me on the next flight", labels={"fr": "Nouveau vol"}),
            Option(key="2", label="Refund", labels={"fr": "Remboursement"}),
            Option(key="3", label="Taxi to my destination", labels={"fr": "Taxi"}),
        ],
        deadline="24h",
    )


@pytest.fixture
async def served(client: AsyncClient) -> AsyncIterator[LoopbackServer]:
    settings = Settings(public_url="https://hooks.example.com", secret_key="test-secret")
    app = create_app(client, settings=settings, twilio=False, sendgrid=False, brand=BRAND)
    server = LoopbackServer(app)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


async def page_url(
    client: AsyncClient,
    channels: dict[str, InMemoryChannel],
    server: LoopbackServer,
    plan: Plan,
    recipient: Recipient = PAX,
) -> str:
    await client.start(recipient, plan, context={"flight": "9K 1042"})
    await client.run_due()
    link = channels["email"].outbox[-1].ack_url
    assert link is not None
    return server.url + httpx.URL(link).raw_path.decode()


def png(data: bytes, path: Path) -> None:
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    assert len(data) > 2000, f"a near-empty screenshot ({len(data)} bytes)"
    path.write_bytes(data)


@pytest.mark.parametrize("locale", ["en", "fr-CA"])
async def test_on_a_phone_every_option_button_is_on_the_first_screen(
    browser: Any,
    client: AsyncClient,
    channels: dict[str, InMemoryChannel],
    served: LoopbackServer,
    plan: Plan,
    locale: str,
    tmp_path: Path,
) -> None:
    recipient = PAX.model_copy(update={"locale": locale})
    url = await page_url(client, channels, served, plan, recipient)
    context = await browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = await context.new_page()
    response = await page.goto(url)
    assert response is not None
    assert response.status == 200
    assert await page.get_attribute("html", "lang") == locale
    buttons = page.locator("button[name=choice]")
    assert await buttons.count() == 3
    for index in range(3):
        box = await buttons.nth(index).bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["y"] >= 0
        assert box["x"] + box["width"] <= PHONE["width"], (index, box)
        assert box["y"] + box["height"] <= PHONE["height"], (index, box)
    scroll_width = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= PHONE["width"]  # nothing wider than the phone
    png(await page.screenshot(), tmp_path / f"ack-{locale}.png")
    await context.close()


async def test_a_click_with_javascript_off_acknowledges(
    browser: Any,
    client: AsyncClient,
    channels: dict[str, InMemoryChannel],
    served: LoopbackServer,
    plan: Plan,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    url = await page_url(client, channels, served, plan)
    context = await browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = await context.new_page()
    await page.goto(url)
    await page.get_by_role("button", name="Refund").click()
    await page.wait_for_load_state()
    assert "We have recorded your choice: Refund." in await page.inner_text("main")
    png(await page.screenshot(full_page=True), tmp_path / "thanks.png")
    [n] = await client.list()
    assert (n.status, n.choice, n.acknowledged_via) == (Status.ACKNOWLEDGED, "2", "email")

    await page.goto(url)  # the same link again: already answered, and whom to contact
    text = await page.inner_text("main")
    assert "You have already answered" in text
    assert "Cape Air on +1 800 555 0199" in text
    png(await page.screenshot(full_page=True), tmp_path / "already.png")

    clock.advance("40d")
    response = await page.goto(url)
    assert response is not None
    assert response.status == 410
    assert "Cape Air on +1 800 555 0199" in await page.inner_text("main")
    png(await page.screenshot(full_page=True), tmp_path / "expired.png")
    await context.close()


def test_a_missing_browser_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="browser tests NOT run: no chromium"):
        missing("no chromium")


def test_a_missing_browser_is_skipped_loudly_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with (
        pytest.warns(BrowserUnavailable, match="browser tests NOT run: no chromium"),
        pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"),
    ):
        missing("no chromium")


PAIRS_JS = """() => {
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = getComputedStyle(el).backgroundColor;
      if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c;
    }
    return 'rgb(255, 255, 255)';
  };
  return [...document.querySelectorAll('h1, legend, button, .hint, .brand span')].map(
    (el) => [el.tagName + '.' + el.className, getComputedStyle(el).color, background(el)]);
}"""


def hex_of(rgb: str) -> str:
    red, green, blue = (int(part) for part in rgb.removeprefix("rgb(").rstrip(")").split(","))
    return f"#{red:02x}{green:02x}{blue:02x}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_what_the_browser_paints_meets_wcag_aa_contrast(
    browser: Any,
    client: AsyncClient,
    channels: dict[str, InMemoryChannel],
    served: LoopbackServer,
    plan: Plan,
    scheme: str,
    tmp_path: Path,
) -> None:
    """The colours as computed by the browser (the link for option 2 preselects it, so a
    filled button is painted too), in the light and the dark scheme."""
    url = await page_url(client, channels, served, plan)
    [message] = channels["email"].outbox
    chosen = served.url + httpx.URL(message.option_urls["2"]).raw_path.decode()
    assert chosen != url
    context = await browser.new_context(
        viewport=PHONE, java_script_enabled=False, color_scheme=scheme
    )
    page = await context.new_page()
    await page.goto(chosen)
    pairs = await page.evaluate(PAIRS_JS)
    assert len(pairs) >= 7  # heading, legend, three buttons, the hints, the brand
    for what, fore, back in pairs:
        ratio = contrast(hex_of(fore), hex_of(back))
        assert ratio >= 4.5, f"{scheme}: {what} {fore} on {back} is {ratio:.2f}:1"
    filled = [p for p in pairs if "primary" in p[0]]
    assert len(filled) == 1
    png(await page.screenshot(), tmp_path / f"ack-{scheme}.png")
    await context.close()
