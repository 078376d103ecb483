"""Message templates: one folder per notice, one Jinja2 file per medium, plus SMS segment counting.

A root directory holds notice folders::

    templates/
      flight_cancelled/
        sms.txt  sms.fr.txt  voice.txt  email.subject  email.txt  email.html

``sms.txt`` and ``voice.txt`` are the SMS text and what a call reads before its menu;
``email.subject`` and ``email.txt`` are required for email, ``email.html`` is optional; so are
``page.txt`` (the acknowledgement page's short summary) and ``confirm.txt`` (what an SMS reply is
answered with, naming the notice: it sees ``choice`` and ``label``). A locale
variant puts the locale before the extension (``sms.fr.txt``, ``email.fr-CA.subject``); for locale
``fr-CA`` (or ``fr_CA``) the lookup is ``sms.fr-CA.txt``, ``sms.fr.txt``, ``sms.txt``. Among several
roots the first that has the notice folder wins, whole: folders are never merged across roots.

Templates use Jinja2 with ``StrictUndefined`` (a missing variable is an error, never an empty
string) and autoescaping for ``.html`` files only. The ``localtime`` filter shows a time in the
recipient's zone and language (:mod:`outreach._localtime`); ``options`` carry their labels in
the recipient's language (``Option.labels``). Files are read once per :class:`Templates`
object; make a new one to pick up edits.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.loaders import split_template_path

from outreach._localtime import localtime
from outreach._models import Medium, locale_tags
from outreach.exceptions import TemplateError

__all__ = ["Rendered", "Templates", "not_gsm7", "sms_segments"]

# GSM 03.38 default alphabet (without ESC, 0x1B) and its extension table; an extension character
# is sent as ESC + code, so it costs two septets.
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = "\f^{}\\[~]|€"
_SEPTETS: dict[str, int] = dict.fromkeys(_GSM_BASIC, 1) | dict.fromkeys(_GSM_EXTENSION, 2)

_LOCALE = re.compile(r"[A-Za-z0-9]{1,8}(?:[-_][A-Za-z0-9]{1,8})*")
_FAST_CACHE_MAX = 4096


@dataclass(frozen=True, slots=True)
class Rendered:
    """One rendered message, ready for a channel."""

    subject: str | None
    """Email only: one line."""
    body: str
    """SMS or voice text, or the email's plain-text part."""
    html: str | None
    """Email only, when the notice has ``email.html``."""
    encoding: str | None
    """SMS only: ``"GSM-7"`` or ``"UCS-2"``."""
    segments: int | None
    """SMS only: how many segments the carrier will bill."""


def sms_segments(text: str) -> tuple[str, int]:
    """Return the SMS encoding (``"GSM-7"`` or ``"UCS-2"``) and segment count for ``text``.

    GSM-7 fits 160 septets in one message and 153 per segment when split; UCS-2 fits 70 UTF-16
    code units, 67 when split. An escape pair or a surrogate pair is never split across segments.
    """
    try:
        septets = [_SEPTETS[c] for c in text]
    except KeyError:
        units = [2 if ord(c) > 0xFFFF else 1 for c in text]
        return "UCS-2", _pack(units, 70, 67)
    return "GSM-7", _pack(septets, 160, 153)


def not_gsm7(text: str) -> str:
    """The characters of ``text`` outside the GSM-7 alphabet (each once, in order): why an SMS
    goes out as UCS-2, at 70 characters a segment instead of 160."""
    return "".join(dict.fromkeys(c for c in text if c not in _SEPTETS))


def _pack(costs: list[int], single: int, multi: int) -> int:
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments += 1
            used = 0
        used += cost
    return segments


@lru_cache(maxsize=512)
def _locale_chain(locale: str) -> tuple[str, ...]:
    """``"fr_ca"`` -> ``("fr-CA", "fr")``: the locale tags to try, most specific first."""
    if not locale:
        return ()
    if not _LOCALE.fullmatch(locale):
        raise TemplateError(f"invalid locale {locale!r}: expected a tag such as 'fr' or 'fr-CA'")
    return locale_tags(locale)


def _check_name(template: str) -> None:
    if (
        not template
        or "/" in template
        or "\\" in template
        or ".." in template
        or "\0" in template
        or template.startswith(".")
    ):
        raise TemplateError(
            f"invalid template name {template!r}: a notice folder name without '/', '\\' or '..', "
            "not starting with '.'"
        )


class _Loader(jinja2.BaseLoader):
    """Loads ``"<notice>/<file>"`` from the first root holding the notice folder."""

    def __init__(self, find: Callable[[str], tuple[Path, frozenset[str]] | None]) -> None:
        self._find = find

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        pieces = split_template_path(template)
        found = self._find(pieces[0]) if len(pieces) > 1 else None
        if found is None:
            raise jinja2.TemplateNotFound(template)
        path = found[0].joinpath(*pieces)
        try:
            source = path.read_text(encoding="utf-8-sig")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise jinja2.TemplateNotFound(template) from None
        except UnicodeDecodeError as exc:
            raise TemplateError(f"{template}: not UTF-8 (byte {exc.start}: {exc.reason})") from exc
        except OSError as exc:
            raise TemplateError(f"{template}: cannot read: {exc.strerror or exc}") from exc
        return source, str(path), lambda: True


@dataclass(frozen=True, slots=True)
class _Compiled:
    subject: jinja2.Template | None
    body: jinja2.Template
    html: jinja2.Template | None


class Templates:
    """Notice templates found in one or more root directories, searched in order."""

    def __init__(self, *roots: str | os.PathLike[str]) -> None:
        if not roots:
            raise TemplateError("Templates needs at least one root directory")
        self._roots = tuple(Path(root) for root in roots)
        for root in self._roots:
            if not root.is_dir():
                raise TemplateError(f"template root {str(root)!r} is not a directory")
        self._folders: dict[str, tuple[Path, frozenset[str]]] = {}
        self._compiled: dict[tuple[str, str, str], _Compiled] = {}
        self._env = jinja2.Environment(
            loader=_Loader(self._folder),
            undefined=jinja2.StrictUndefined,
            autoescape=lambda name: name is not None and name.endswith(".html"),
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self._env.filters["localtime"] = localtime

    def __repr__(self) -> str:
        return f"Templates({', '.join(repr(str(root)) for root in self._roots)})"

    def names(self) -> list[str]:
        """Sorted notice folder names in all roots (skipping those starting with ``.`` or ``_``)."""
        found: set[str] = set()
        for root in self._roots:
            with os.scandir(root) as entries:
                found.update(
                    e.name for e in entries if e.is_dir() and not e.name.startswith((".", "_"))
                )
        return sorted(found)

    def render(
        self, template: str, medium: Medium, context: Mapping[str, Any], *, locale: str = "en"
    ) -> Rendered:
        """Render notice ``template`` for ``medium`` in ``locale`` (falling back to less specific
        locales, then to the default file) with ``context``.

        Raises :class:`TemplateError` naming the template, file and, where it applies, the
        undefined variable or the line of a syntax error.
        """
        key = (template, medium, locale)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compile(template, medium, locale)
            if len(self._compiled) >= _FAST_CACHE_MAX:  # locales come from user data
                self._compiled.clear()
            self._compiled[key] = compiled
        body = self._run(compiled.body, context).strip()
        if medium == Medium.SMS:
            encoding, segments = sms_segments(body)
            return Rendered(None, body, None, encoding, segments)
        if compiled.subject is None:
            return Rendered(None, body, None, None, None)
        lines = self._run(compiled.subject, context).splitlines()
        subject = " ".join(stripped for line in lines if (stripped := line.strip()))
        html = None if compiled.html is None else self._run(compiled.html, context).strip()
        return Rendered(subject, body, html, None, None)

    def render_optional(
        self, template: str, stem: str, context: Mapping[str, Any], *, locale: str = "en"
    ) -> str | None:
        """Render the notice's optional ``<stem>.txt`` (``page.txt``: the acknowledgement
        page's summary; ``confirm.txt``: an SMS reply's confirmation), in ``locale`` with the
        same fallback as the media; None when the notice has no such file."""
        _check_name(template)
        found = self._folder(template)
        if found is None:
            return None
        chain = _locale_chain(locale)
        level = self._level(found, chain, stem, ".txt")
        if level is None:
            return None
        compiled = self._load(self._filename(template, chain, level, stem, ".txt"))
        return self._run(compiled, context).strip()

    # -- loading --------------------------------------------------------------------------------

    def _folder(self, name: str) -> tuple[Path, frozenset[str]] | None:
        """The first root holding notice folder ``name``, and the files in it (cached)."""
        found = self._folders.get(name)
        if found is not None:
            return found
        for root in self._roots:
            folder = root / name
            if folder.is_dir():
                with os.scandir(folder) as entries:
                    files = frozenset(e.name for e in entries if e.is_file())
                found = self._folders[name] = (root, files)
                return found
        return None

    def _compile(self, template: str, medium: Medium, locale: str) -> _Compiled:
        _check_name(template)
        try:
            medium = Medium(medium)
        except ValueError:
            raise TemplateError(f"unknown medium {medium!r}") from None
        chain = _locale_chain(locale)
        found = self._folder(template)
        if found is None:
            roots = ", ".join(f"{root}/" for root in self._roots)
            raise TemplateError(f"unknown template {template!r}: no folder {template}/ in {roots}")
        if medium == Medium.SMS:
            return _Compiled(
                None, self._pick(template, found, chain, "sms", ".txt", "SMS text"), None
            )
        if medium == Medium.VOICE:
            text = self._pick(template, found, chain, "voice", ".txt", "voice text")
            return _Compiled(None, text, None)
        subject = self._pick(template, found, chain, "email", ".subject", "email subject")
        text = self._pick(template, found, chain, "email", ".txt", "email text")
        # An HTML part less specific than the text part would show readers the wrong language:
        # with email.fr.txt but only email.html, French readers get the French text alone.
        text_level = self._level(found, chain, "email", ".txt")
        html_level = self._level(found, chain, "email", ".html")
        html = None
        if html_level is not None and text_level is not None and html_level <= text_level:
            html = self._load(self._filename(template, chain, html_level, "email", ".html"))
        return _Compiled(subject, text, html)

    @staticmethod
    def _candidates(chain: tuple[str, ...], stem: str, ext: str) -> list[str]:
        return [f"{stem}.{tag}{ext}" for tag in chain] + [f"{stem}{ext}"]

    def _level(
        self, found: tuple[Path, frozenset[str]], chain: tuple[str, ...], stem: str, ext: str
    ) -> int | None:
        """Index in the candidate list of the first file present (0 = most specific)."""
        for level, candidate in enumerate(self._candidates(chain, stem, ext)):
            if candidate in found[1]:
                return level
        return None

    def _filename(
        self, template: str, chain: tuple[str, ...], level: int, stem: str, ext: str
    ) -> str:
        return f"{template}/{self._candidates(chain, stem, ext)[level]}"

    def _pick(
        self,
        template: str,
        found: tuple[Path, frozenset[str]],
        chain: tuple[str, ...],
        stem: str,
        ext: str,
        what: str,
    ) -> jinja2.Template:
        level = self._level(found, chain, stem, ext)
        if level is None:
            looked = ", ".join(f"{template}/{c}" for c in self._candidates(chain, stem, ext))
            raise TemplateError(
                f"template {template!r} has no {what}: looked for {looked} in {found[0]}/"
            )
        return self._load(self._filename(template, chain, level, stem, ext))

    def _load(self, name: str) -> jinja2.Template:
        try:
            template = self._env.get_template(name)
        except TemplateError:
            raise
        except Exception as exc:
            raise self._error(exc, name) from exc
        # A plain dict instead of jinja's ChainMap over the environment's globals (all set by
        # now): each render walks the globals' keys, and a ChainMap is slow to walk.
        template.globals = dict(template.globals)
        return template

    # -- rendering ------------------------------------------------------------------------------

    def _run(self, template: jinja2.Template, context: Mapping[str, Any]) -> str:
        # What Template.render does, with the context shared rather than copied once more.
        variables = {**template.globals, **context}
        try:
            try:
                return template.environment.concat(
                    template.root_render_func(template.new_context(variables, shared=True))
                )
            except Exception:
                template.environment.handle_exception()  # points the traceback at the template
        except TemplateError:
            raise
        except Exception as exc:
            raise self._error(exc, template.name or "<template>") from exc
        raise AssertionError("handle_exception always raises")  # pragma: no cover

    def _display(self, filename: str | None) -> str | None:
        """``/srv/templates/x/sms.txt`` -> ``x/sms.txt`` for files under a root."""
        if filename is None:
            return None
        path = Path(filename)
        for root in self._roots:
            if path.is_relative_to(root):
                return path.relative_to(root).as_posix()
        return None

    def _error(self, exc: Exception, name: str) -> TemplateError:
        """A :class:`TemplateError` for a Jinja2 (or Python) error raised loading or rendering."""
        if isinstance(exc, jinja2.TemplateSyntaxError):
            where = self._display(exc.filename) or exc.name or name
            return TemplateError(f"{where} line {exc.lineno}: syntax error: {exc.message}")
        if isinstance(exc, jinja2.TemplateNotFound):
            return TemplateError(f"{name}: template {exc.name!r} not found")
        # A runtime error: Jinja rewrites the traceback so template frames carry template lines.
        where, line = name, None
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            shown = self._display(frame.f_code.co_filename)
            if shown is not None:
                where, line = shown, lineno
        suffix = "" if line is None else f" (line {line})"
        message = str(exc)
        if isinstance(exc, jinja2.UndefinedError):
            match = re.fullmatch(r"'(.+)' is undefined", message)
            if match:
                message = f"variable {match[1]!r} is undefined"
        elif not isinstance(exc, jinja2.TemplateError):
            message = f"{type(exc).__name__}: {message}"
        return TemplateError(f"{where}: {message}{suffix}")
