"""Every language, every channel: ``Option(labels=...)`` in the SMS, its reply, the email's
buttons, the call's menu and the acknowledgement page, with the ``fr-CA`` -> ``fr`` -> ``label``
fallback; and the ``localtime`` filter."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from outreach import AsyncClient, Option, Plan, Recipient, Step
from outreach.exceptions import ConfigurationError, TemplateError
from outreach.testing import FakeClock, InMemoryChannel

from ._helpers import CONTEXT, call_status, inbound, path_of, sid, to_step, twilio_post

FRENCH = Recipient(
    id="pax-fr",
    phone="+16175550123",
    email="lea@example.com",
    timezone="America/Toronto",
    locale="fr-CA",
)
OPTIONS = [
    Option(key="1", label="Rebook me", labels={"fr": "Nouveau vol"}, keywords=["rebook"]),
    Option(key="2", label="Refund", labels={"fr": "Remboursement", "fr-CA": "Remboursement CA"}),
    Option(key="3", label="Taxi to my destination"),  # no French: the label itself
]


@pytest.fixture
def plan() -> Plan:
    return Plan(
        name="flight-cancelled",
        steps=[
            Step(channel="sms", template="flight_cancelled", wait="15m"),
            Step(channel="email", template="flight_cancelled", wait="30m"),
            Step(channel="voice", template="flight_cancelled", wait="1h"),
        ],
        options=OPTIONS,
    )


def test_a_label_falls_back_from_region_to_language_to_the_label() -> None:
    refund = OPTIONS[1]
    assert refund.label_for("fr-CA") == "Remboursement CA"
    assert refund.label_for("fr_ca") == "Remboursement CA"
    assert refund.label_for("fr-BE") == "Remboursement"
    assert refund.label_for("FR") == "Remboursement"
    assert refund.label_for("en") == "Refund"
    assert refund.label_for("") == "Refund"


@pytest.mark.parametrize(
    ("labels", "problem"),
    [({"": "x"}, "'' is not a locale tag"), ({"fr": " "}, "the label for 'fr' is empty")],
)
def test_bad_labels_are_refused_naming_them(labels: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        Option(key="1", label="x", labels=labels)


def test_labels_given_in_any_order_or_spelling_make_one_plan() -> None:
    a = Option(key="1", label="x", labels={"fr": "a", "de_de": "b"})
    b = Option(key="1", label="x", labels={"de-DE": "b", "fr": "a"})
    assert a == b
    assert a.model_dump_json() == b.model_dump_json()
    assert hash(a) == hash(b)


async def test_sms_email_and_their_replies_speak_the_recipients_language(
    client: AsyncClient,
    http: httpx.AsyncClient,
    plan: Plan,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
) -> None:
    n = await client.start(FRENCH, plan, context=CONTEXT)
    await client.run_due()
    sms = channels["sms"].outbox[-1]
    assert "le vol 9K 1042 est annulé" in sms.body  # sms.fr.txt
    assert "1 Nouveau vol, 2 Remboursement CA, 3 Taxi to my destination" in sms.body
    assert [o.label for o in sms.options] == [
        "Nouveau vol",
        "Remboursement CA",
        "Taxi to my destination",
    ]

    email = await to_step(client, clock, await client.get(n.id), 1)
    message = channels["email"].outbox[-1]
    assert email.id == message.attempt_id
    assert message.html is not None
    assert ">Remboursement CA</a>" in message.html
    assert "2. Remboursement CA" in message.body

    not_understood = await twilio_post(http, "/twilio/sms", inbound("quoi?"))
    assert "2 pour Remboursement CA" in not_understood.text
    reply = await twilio_post(http, "/twilio/sms", inbound("2"))
    assert "votre choix : Remboursement CA." in reply.text


@pytest.mark.parametrize(
    ("reply", "choice"),
    [("Remboursement CA", "2"), ("  nouveau VOL ! ", "1"), ("Refund", "2"), ("Taxi", None)],
)
async def test_a_reply_that_is_an_options_label_chooses_it(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan, reply: str, choice: str | None
) -> None:
    """The label the customer was shown (or the plan's own) is an answer when it is the whole
    message; a part of a label is not."""
    n = await client.start(FRENCH, plan, context=CONTEXT)
    await client.run_due()
    await twilio_post(http, "/twilio/sms", inbound(reply))
    assert (await client.get(n.id)).choice == choice


async def test_the_call_menu_speaks_the_recipients_language(
    client: AsyncClient, http: httpx.AsyncClient, plan: Plan, clock: FakeClock
) -> None:
    n = await client.start(FRENCH, plan, context=CONTEXT)
    await client.run_due()
    call = await to_step(client, clock, await client.get(n.id), 2)
    params = call_status("in-progress", sid("CA"), 2, AnsweredBy="human")
    menu = await twilio_post(http, f"/twilio/voice/{call.id}", params)
    assert "Appuyez sur 1 : Nouveau vol." in menu.text
    assert "Appuyez sur 2 : Remboursement CA." in menu.text
    assert "Appuyez sur 3 : Taxi to my destination." in menu.text
    wrong = await twilio_post(http, f"/twilio/voice/{call.id}/gather", {**params, "Digits": "9"})
    assert "Appuyez sur 2 : Remboursement CA." in wrong.text


async def test_the_ack_page_shows_the_labels_in_the_recipients_language(
    client: AsyncClient,
    http: httpx.AsyncClient,
    plan: Plan,
    clock: FakeClock,
    channels: dict[str, InMemoryChannel],
) -> None:
    n = await client.start(FRENCH, plan, context=CONTEXT)
    await client.run_due()
    await to_step(client, clock, await client.get(n.id), 1)
    page = await http.get(path_of(channels["email"].outbox[-1].ack_url))
    assert '<html lang="fr-CA">' in page.text
    for label in ("Nouveau vol", "Remboursement CA", "Taxi to my destination"):
        assert label in page.text
    done = await http.post(path_of(channels["email"].outbox[-1].ack_url), data={"choice": "2"})
    assert "Remboursement CA" in done.text


# --- localtime ----------------------------------------------------------------------------------

DEPARTURE = datetime(2026, 11, 23, 23, 5, tzinfo=UTC)


def render(tmp_path: Path, source: str, recipient: Recipient, **context: object) -> str:
    from outreach._templates import Templates

    (tmp_path / "n").mkdir(exist_ok=True)
    (tmp_path / "n" / "sms.txt").write_text(source, encoding="utf-8")
    return Templates(tmp_path).render("n", "sms", {"recipient": recipient, **context}).body


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        (Recipient(id="r", timezone="America/New_York"), "Nov 23, 2026, 6:05 PM"),
        (Recipient(id="r", timezone="Europe/Paris", locale="fr"), "24 nov. 2026, 00:05"),
        (Recipient(id="r", timezone="Europe/Berlin", locale="de-DE"), "24.11.2026, 00:05"),
        (Recipient(id="r", phone="+16175550123"), "Nov 23, 2026, 6:05 PM"),  # Boston's number
        (Recipient(id="r", phone="+61412345678"), "Nov 23, 2026, 11:05 PM UTC"),  # many zones
        (Recipient(id="r", locale="xx-unknown"), "Nov 23, 2026, 11:05 PM UTC"),
    ],
)
def test_localtime_shows_a_time_in_the_recipients_zone_and_language(
    tmp_path: Path, recipient: Recipient, expected: str
) -> None:
    assert render(tmp_path, "{{ t | localtime }}", recipient, t=DEPARTURE) == expected
    stored = DEPARTURE.isoformat()  # what a stored context gives back
    assert render(tmp_path, "{{ t | localtime }}", recipient, t=stored) == expected


def test_localtime_formats_and_zone_override(tmp_path: Path) -> None:
    lea = Recipient(id="r", timezone="America/Toronto", locale="fr-CA")
    source = (
        '{{ t | localtime("EEE d MMM HH:mm") }} | {{ t | localtime("short", zone="Asia/Tokyo") }}'
    )
    shown = render(tmp_path, source, lea, t=DEPARTURE)
    assert shown == "lun. 23 nov. 18:05 | 2026-11-24 08 h 05"
    assert shown.isascii() or "\u202f" not in shown  # plain spaces keep an SMS in GSM-7


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2026-11-23T23:05:00", "has no UTC offset"),
        ("tomorrow", "is not an ISO 8601 time"),
        (42, "expected a datetime or an ISO 8601 string"),
    ],
)
def test_localtime_refuses_what_names_no_instant_naming_the_template(
    tmp_path: Path, value: object, problem: str
) -> None:
    with pytest.raises(TemplateError, match=f"n/sms.txt: .*{problem}"):
        render(tmp_path, "{{ t | localtime }}", Recipient(id="r"), t=value)


def test_localtime_refuses_an_unknown_zone(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="zone 'Mars/Olympus' is not an IANA time zone"):
        render(tmp_path, '{{ t | localtime(zone="Mars/Olympus") }}', Recipient(id="r"), t=DEPARTURE)
