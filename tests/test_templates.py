"""Templates: lookup, locale fallback, escaping, errors, SMS segments, and the shipped examples."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import outreach
from outreach._models import Medium
from outreach._templates import _GSM_BASIC, _GSM_EXTENSION, Rendered, Templates, sms_segments
from outreach.exceptions import TemplateError

REPO = Path(__file__).resolve().parent.parent


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write(
        tmp_path / "templates",
        {
            "notice/sms.txt": "Flight {{ flight }} is cancelled.\n",
            "notice/voice.txt": "  Hello. Flight {{ flight }} is cancelled.  \n\n",
            "notice/email.subject": "\n  Flight {{ flight }}\n  is cancelled \n",
            "notice/email.txt": "\nPlain: {{ flight }}\n\nBye\n",
            "notice/email.html": "<p>{{ flight }}</p>\n",
        },
    )


CTX = {"flight": "9K 1042"}


# -- rendering each medium -------------------------------------------------------------------------


def test_sms(root: Path) -> None:
    rendered = Templates(root).render("notice", Medium.SMS, CTX)
    assert rendered == Rendered(None, "Flight 9K 1042 is cancelled.", None, "GSM-7", 1)


def test_voice_is_stripped(root: Path) -> None:
    rendered = Templates(root).render("notice", Medium.VOICE, CTX)
    assert rendered == Rendered(None, "Hello. Flight 9K 1042 is cancelled.", None, None, None)


def test_email_subject_is_one_line_and_parts_are_stripped(root: Path) -> None:
    rendered = Templates(root).render("notice", Medium.EMAIL, CTX)
    assert rendered.subject == "Flight 9K 1042 is cancelled"
    assert rendered.body == "Plain: 9K 1042\n\nBye"
    assert rendered.html == "<p>9K 1042</p>"
    assert (rendered.encoding, rendered.segments) == (None, None)


def test_email_html_is_optional(tmp_path: Path) -> None:
    write(tmp_path, {"n/email.subject": "S", "n/email.txt": "T"})
    assert Templates(tmp_path).render("n", Medium.EMAIL, {}) == Rendered("S", "T", None, None, None)


def test_medium_given_as_plain_string(root: Path) -> None:
    assert Templates(root).render("notice", "sms", CTX).segments == 1  # type: ignore[arg-type]


def test_context_is_any_mapping_with_objects(tmp_path: Path) -> None:
    @dataclass
    class Option:
        key: str
        label: str

    @dataclass
    class Recipient:
        id: str
        attributes: dict[str, Any] = field(default_factory=dict)

    write(
        tmp_path,
        {
            "n/sms.txt": "{{ recipient.id }}: reply "
            "{% for o in options %}{{ o.key }} {{ o.label }}{% if not loop.last %}, {% endif %}"
            "{% endfor %}"
        },
    )
    context = {"recipient": Recipient("pax-17"), "options": [Option("1", "A"), Option("2", "B")]}
    assert Templates(tmp_path).render("n", Medium.SMS, context).body == "pax-17: reply 1 A, 2 B"


def test_rendering_repeatedly_uses_the_cache(root: Path) -> None:
    templates = Templates(root)
    first = templates.render("notice", Medium.SMS, CTX)
    (root / "notice" / "sms.txt").write_text("changed")
    assert templates.render("notice", Medium.SMS, {"flight": "9K 1042"}) == first
    assert Templates(root).render("notice", Medium.SMS, CTX).body == "changed"


# -- locales and roots ---------------------------------------------------------------------------


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    return write(
        tmp_path,
        {
            "n/sms.txt": "default",
            "n/sms.fr.txt": "fr",
            "n/sms.fr-CA.txt": "fr-CA",
            "n/voice.txt": "default voice",
            "n/voice.fr.txt": "fr voice",
        },
    )


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("fr-CA", "fr-CA"),
        ("fr_CA", "fr-CA"),
        ("fr_ca", "fr-CA"),
        ("fr-BE", "fr"),
        ("fr", "fr"),
        ("en", "default"),
        ("de-AT", "default"),
        ("", "default"),
    ],
)
def test_locale_fallback(locales: Path, locale: str, expected: str) -> None:
    assert Templates(locales).render("n", Medium.SMS, {}, locale=locale).body == expected


def test_locale_fallback_is_per_medium(locales: Path) -> None:
    assert Templates(locales).render("n", Medium.VOICE, {}, locale="fr-CA").body == "fr voice"


def test_email_locale_and_html_never_less_specific_than_text(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "n/email.subject": "Subject",
            "n/email.fr.subject": "Sujet",
            "n/email.txt": "Text",
            "n/email.fr.txt": "Texte",
            "n/email.html": "<p>HTML</p>",
            "n/email.de.subject": "Betreff",
            "n/email.de.txt": "Text DE",
            "n/email.de.html": "<p>DE</p>",
        },
    )
    templates = Templates(tmp_path)
    en = templates.render("n", Medium.EMAIL, {})
    assert (en.subject, en.body, en.html) == ("Subject", "Text", "<p>HTML</p>")
    de = templates.render("n", Medium.EMAIL, {}, locale="de-CH")
    assert (de.subject, de.body, de.html) == ("Betreff", "Text DE", "<p>DE</p>")
    # French text exists, French HTML does not: send the French text alone, not English HTML.
    fr = templates.render("n", Medium.EMAIL, {}, locale="fr-CA")
    assert (fr.subject, fr.body, fr.html) == ("Sujet", "Texte", None)


@pytest.mark.parametrize("locale", ["fr/../x", "../etc", "fr CA", "fr-", "-fr", "fr.txt"])
def test_bad_locale(locales: Path, locale: str) -> None:
    with pytest.raises(TemplateError, match="invalid locale"):
        Templates(locales).render("n", Medium.SMS, {}, locale=locale)


def test_first_root_with_the_folder_wins_whole(tmp_path: Path) -> None:
    first = write(tmp_path / "a", {"n/sms.txt": "from a", "only_a/sms.txt": "a"})
    second = write(
        tmp_path / "b", {"n/sms.txt": "from b", "n/sms.fr.txt": "b fr", "m/sms.txt": "m"}
    )
    templates = Templates(first, str(second))
    assert templates.render("n", Medium.SMS, {}).body == "from a"
    # Folders are not merged: b's French file does not leak into a's notice.
    assert templates.render("n", Medium.SMS, {}, locale="fr").body == "from a"
    assert templates.render("m", Medium.SMS, {}).body == "m"
    assert templates.names() == ["m", "n", "only_a"]


def test_names_skips_files_and_hidden_or_private_folders(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"b/sms.txt": "", "a/sms.txt": "", ".git/x": "", "_partials/x": "", "README.md": ""},
    )
    assert Templates(tmp_path).names() == ["a", "b"]


def test_include_from_a_shared_folder(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"_shared/sign.txt": "-- {{ who }}", "n/sms.txt": "Hi {% include '_shared/sign.txt' %}"},
    )
    assert Templates(tmp_path).render("n", Medium.SMS, {"who": "Cape Air"}).body == "Hi -- Cape Air"


def test_macros_imports_and_jinja_globals_render_every_time(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "_shared/macros.txt": (
                "{% macro seats(n) %}{{ n }} seat{{ 's' if n > 1 }}{% endmacro %}"
            ),
            "n/sms.txt": (
                "{% import '_shared/macros.txt' as m %}"
                "{% from '_shared/macros.txt' import seats %}"
                "{% set ns = namespace(total=0) %}"
                "{% for i in range(count) %}{% set ns.total = ns.total + i %}{% endfor %}"
                "{{ m.seats(count) }}, {{ seats(1) }}, {{ ns.total }}"
            ),
        },
    )
    templates = Templates(tmp_path)
    for _ in range(2):  # the second render runs on the cached, compiled templates
        assert templates.render("n", Medium.SMS, {"count": 3}).body == "3 seats, 1 seat, 3"


def test_roots_must_exist(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="not a directory"):
        Templates(tmp_path / "missing")
    with pytest.raises(TemplateError, match="at least one"):
        Templates()


# -- errors ---------------------------------------------------------------------------------------


def test_unknown_template(root: Path) -> None:
    with pytest.raises(
        TemplateError, match=r"unknown template 'nope': no folder nope/ in .*templates/"
    ):
        Templates(root).render("nope", Medium.SMS, CTX)


def test_missing_file_for_medium(tmp_path: Path) -> None:
    write(tmp_path / "templates", {"n/voice.txt": "hi", "n/email.subject": "s"})
    templates = Templates(tmp_path / "templates")
    with pytest.raises(TemplateError) as info:
        templates.render("n", Medium.SMS, {}, locale="fr")
    assert str(info.value) == (
        f"template 'n' has no SMS text: looked for n/sms.fr.txt, n/sms.txt in {tmp_path}/templates/"
    )
    with pytest.raises(TemplateError, match=r"'n' has no email text: looked for n/email.txt in"):
        templates.render("n", Medium.EMAIL, {}, locale="")
    write(tmp_path / "templates", {"m/email.txt": "t"})
    with pytest.raises(TemplateError, match="'m' has no email subject"):
        templates.render("m", Medium.EMAIL, {})


def test_undefined_variable_names_file_and_variable(root: Path) -> None:
    with pytest.raises(TemplateError) as info:
        Templates(root).render("notice", Medium.SMS, {})
    assert str(info.value).startswith("notice/sms.txt: variable 'flight' is undefined")
    assert "line 1" in str(info.value)


def test_undefined_attribute_and_line_number(tmp_path: Path) -> None:
    write(
        tmp_path, {"n/email.subject": "S", "n/email.txt": "a\nb\n{{ recipient.attributes.name }}"}
    )
    with pytest.raises(TemplateError, match=r"n/email.txt: .*'name'.*\(line 3\)"):
        Templates(tmp_path).render("n", Medium.EMAIL, {"recipient": {"attributes": {}}})


def test_undefined_in_subject_and_html(root: Path) -> None:
    write(root, {"n/email.subject": "{{ a }}", "n/email.txt": "x", "m/email.subject": "s"})
    write(root, {"m/email.txt": "x", "m/email.html": "{{ b }}"})
    templates = Templates(root)
    with pytest.raises(TemplateError, match=r"n/email.subject: variable 'a' is undefined"):
        templates.render("n", Medium.EMAIL, {})
    with pytest.raises(TemplateError, match=r"m/email.html: variable 'b' is undefined"):
        templates.render("m", Medium.EMAIL, {})


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, {"n/voice.txt": "Hello\n{% if x %}\nno end"})
    with pytest.raises(TemplateError, match=r"^n/voice.txt line \d+: syntax error: "):
        Templates(tmp_path).render("n", Medium.VOICE, {"x": 1})


def test_runtime_error_is_wrapped(tmp_path: Path) -> None:
    write(tmp_path, {"n/sms.txt": "{{ 1 // n }}", "m/sms.txt": "{% include 'gone/x.txt' %}"})
    templates = Templates(tmp_path)
    with pytest.raises(TemplateError, match=r"n/sms.txt: ZeroDivisionError: .*\(line 1\)"):
        templates.render("n", Medium.SMS, {"n": 0})
    with pytest.raises(TemplateError, match=r"gone/x.txt"):
        templates.render("m", Medium.SMS, {})


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "sms.txt").write_bytes(b"caf\xe9")
    with pytest.raises(TemplateError, match=r"n/sms.txt: not UTF-8"):
        Templates(tmp_path).render("n", Medium.SMS, {})


@pytest.mark.parametrize("name", ["", "../notice", "a/b", "a\\b", ".hidden", "..", "a..b", "n\0"])
def test_unsafe_names_rejected(root: Path, name: str) -> None:
    with pytest.raises(TemplateError, match="invalid template name"):
        Templates(root).render(name, Medium.SMS, CTX)


def test_unknown_medium(root: Path) -> None:
    with pytest.raises(TemplateError, match="unknown medium"):
        Templates(root).render("notice", "fax", CTX)  # type: ignore[arg-type]


def test_errors_are_not_cached(tmp_path: Path) -> None:
    write(tmp_path, {"n/sms.txt": "{{ x }}"})
    templates = Templates(tmp_path)
    with pytest.raises(TemplateError):
        templates.render("n", Medium.SMS, {})
    assert templates.render("n", Medium.SMS, {"x": "ok"}).body == "ok"


# -- escaping -------------------------------------------------------------------------------------


def test_autoescape_in_html_only(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "n/sms.txt": "{{ v }}",
            "n/voice.txt": "{{ v }}",
            "n/email.subject": "{{ v }}",
            "n/email.txt": "{{ v }}",
            "n/email.html": '<a href="{{ url }}">{{ v }}</a>',
        },
    )
    templates = Templates(tmp_path)
    context = {"v": "<b>Tom & Jerry</b>", "url": "https://x.example/?a=1&b=2"}
    assert templates.render("n", Medium.SMS, context).body == "<b>Tom & Jerry</b>"
    assert templates.render("n", Medium.VOICE, context).body == "<b>Tom & Jerry</b>"
    email = templates.render("n", Medium.EMAIL, context)
    assert email.subject == email.body == "<b>Tom & Jerry</b>"
    assert (
        email.html
        == '<a href="https://x.example/?a=1&amp;b=2">&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</a>'
    )


# -- SMS segments ---------------------------------------------------------------------------------


def test_gsm_tables() -> None:
    assert len(_GSM_BASIC) == len(set(_GSM_BASIC)) == 127  # 128 codes less ESC
    assert set(_GSM_EXTENSION) == set("\f^{}\\[~]|€")
    assert not set(_GSM_BASIC) & set(_GSM_EXTENSION)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("GSM-7", 1)),
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 306, ("GSM-7", 2)),
        ("a" * 307, ("GSM-7", 3)),
        ("é" * 160, ("GSM-7", 1)),  # é, ü, £, Δ ... are in the basic set
        ("£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà@\n\r", ("GSM-7", 1)),
        ("€" * 80, ("GSM-7", 1)),  # extension characters cost two septets
        ("€" * 81, ("GSM-7", 2)),
        ("a" * 158 + "[", ("GSM-7", 1)),
        ("a" * 159 + "]", ("GSM-7", 2)),
        ("^{}\\[~]|\f" * 10, ("GSM-7", 2)),  # 180 septets
        # An escape pair is never split: 152 + (2) + 152 septets = 306, yet 3 segments.
        ("a" * 152 + "€" + "a" * 152, ("GSM-7", 3)),
        ("ł" * 70, ("UCS-2", 1)),
        ("ł" * 71, ("UCS-2", 2)),
        ("ł" * 134, ("UCS-2", 2)),
        ("ł" * 135, ("UCS-2", 3)),
        ("a" * 69 + "ł", ("UCS-2", 1)),
        ("`", ("UCS-2", 1)),  # the backtick is ASCII but not GSM-7
        ("ç" * 70, ("UCS-2", 1)),  # only the capital Ç is in the basic set
        ("😀" * 35, ("UCS-2", 1)),  # an emoji is two UTF-16 code units
        ("😀" * 36, ("UCS-2", 2)),
        ("a" * 69 + "😀", ("UCS-2", 2)),
    ],
)
def test_sms_segments(text: str, expected: tuple[str, int]) -> None:
    assert sms_segments(text) == expected


def test_rendered_sms_carries_segments(tmp_path: Path) -> None:
    write(tmp_path, {"n/sms.txt": "{{ text }}"})
    rendered = Templates(tmp_path).render("n", Medium.SMS, {"text": "ł" * 71})
    assert (rendered.encoding, rendered.segments) == ("UCS-2", 2)


# -- the shipped examples -------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleOption:
    key: str
    label: str


@dataclass(frozen=True)
class SampleRecipient:
    id: str
    attributes: dict[str, Any]


def sample_context(attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "recipient": SampleRecipient("pax-17", attributes),
        "flight": "9K 1042",
        "options": [
            SampleOption("1", "Rebook me"),
            SampleOption("2", "Refund"),
            SampleOption("3", "Taxi to my destination"),
        ],
        "ack_url": "https://air.example/ack/tok?a=1&b=2",
        "option_urls": {key: f"https://air.example/ack/tok{key}" for key in "123"},
    }


EXAMPLE_ROOTS = [REPO / "templates", Path(outreach.__file__).parent / "demo" / "templates"]
DEMO_ONLY = {"page"}
"""What the demo's duty agent is sent when paged: it needs a paging context (docs/paging.md)."""


@pytest.mark.parametrize("example_root", EXAMPLE_ROOTS, ids=["templates", "demo"])
@pytest.mark.parametrize("locale", ["en", "fr-CA"])
@pytest.mark.parametrize("attributes", [{}, {"first_name": "Ana"}], ids=["anonymous", "named"])
def test_examples_render_every_medium(
    example_root: Path, locale: str, attributes: dict[str, Any]
) -> None:
    templates = Templates(example_root)
    assert [n for n in templates.names() if n not in DEMO_ONLY] == [
        "apology",
        "flight_cancelled",
        "refund_check",
    ]
    context = sample_context(attributes)
    for name in ["apology", "flight_cancelled", "refund_check"]:
        sms = templates.render(name, Medium.SMS, context, locale=locale)
        assert "9K 1042" in sms.body
        assert (sms.encoding, sms.segments) == ("GSM-7", 1)
        voice = templates.render(name, Medium.VOICE, context, locale=locale)
        assert "9K 1042" in voice.body
        email = templates.render(name, Medium.EMAIL, context, locale=locale)
        assert email.subject
        assert "\n" not in email.subject
        if name != "apology":  # a notice that needs no answer has no link to answer by
            assert "https://air.example/ack/tok?a=1&b=2" in email.body
        if email.html is not None:
            assert 'href="https://air.example/ack/tok?a=1&amp;b=2"' in email.html
            assert '<html lang="en">' in email.html
    sms = templates.render("flight_cancelled", Medium.SMS, context, locale=locale).body
    assert "1 Rebook me, 2 Refund, 3 Taxi to my destination." in sms
    assert ("annulé" in sms) == (locale == "fr-CA")


def test_demo_templates_match_examples() -> None:
    """The demo's notices are the examples' (the demo adds the duty agent's ``page``)."""
    examples, demo = EXAMPLE_ROOTS
    files = sorted(p.relative_to(examples) for p in examples.rglob("*") if p.is_file())
    shared = [p.relative_to(demo) for p in demo.rglob("*") if p.is_file()]
    assert files == sorted(p for p in shared if p.parts[0] not in DEMO_ONLY)
    for relative in files:
        assert (examples / relative).read_text() == (demo / relative).read_text(), relative
