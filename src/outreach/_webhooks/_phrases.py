"""What the webhooks say back by SMS and on the phone, in the recipient's language.

One table of phrases per language (SMS replies, the call's menu and its last words), and the
``<Say language=...>`` code Twilio speaks a locale in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, NamedTuple

from outreach.exceptions import AlreadyTaken


class Phrases(NamedTuple):
    """What is said in one language; ``press_option`` and ``any_key`` are the call's menu;
    ``applied_to`` names the notice a reply was applied to when the customer has several;
    ``taken_by`` answers a staff member whose page someone else took first, ``case_closed``
    one whose page's record was closed first (its customer answered after all, say)."""

    choice_recorded: str
    recorded: str
    already_choice: str
    already: str
    closed: str
    invalid_key: str
    goodbye: str
    press_option: str
    any_key: str
    not_understood: str
    option: str
    reply_word: str
    noted: str
    applied_to: str
    taken_by: str
    case_closed: str


_PHRASES: Final[dict[str, Phrases]] = {
    "en": Phrases(
        choice_recorded="Thank you. We have recorded your choice: {label}.",
        recorded="Thank you. We have recorded your confirmation.",
        already_choice="We already have your answer: {label}. Thank you.",
        already="We already have your answer. Thank you.",
        closed="Thank you. This message no longer needs an answer.",
        invalid_key="Sorry, that is not one of the options.",
        goodbye="Goodbye.",
        press_option="Press {key}: {label}.",
        any_key="Press any key to confirm.",
        not_understood="Sorry, we did not understand. Reply {menu}.",
        option="{key} for {label}",
        reply_word="Reply {word} to confirm you got our message.",
        noted="Thank you, we have received your message.",
        applied_to='(This answer is for: "{notice}")',
        taken_by="Thank you. {owner} already has this one.",
        case_closed="Thank you. This case is already closed.",
    ),
    "fr": Phrases(
        choice_recorded="Merci. Nous avons enregistré votre choix : {label}.",
        recorded="Merci. Nous avons bien enregistré votre confirmation.",
        already_choice="Nous avons déjà votre réponse : {label}. Merci.",
        already="Nous avons déjà votre réponse. Merci.",
        closed="Merci. Ce message n'attend plus de réponse.",
        invalid_key="Désolé, ce n'est pas l'une des options.",
        goodbye="Au revoir.",
        press_option="Appuyez sur {key} : {label}.",
        any_key="Appuyez sur une touche pour confirmer.",
        not_understood="Désolé, nous n'avons pas compris. Répondez {menu}.",
        option="{key} pour {label}",
        reply_word="Répondez {word} pour confirmer la réception de notre message.",
        noted="Merci, nous avons bien reçu votre message.",
        applied_to='(Cette réponse concerne : "{notice}")',
        taken_by="Merci. {owner} s'en occupe déjà.",
        case_closed="Merci. Ce dossier est déjà clos.",
    ),
    "es": Phrases(
        choice_recorded="Gracias. Hemos registrado su elección: {label}.",
        recorded="Gracias. Hemos registrado su confirmación.",
        already_choice="Ya tenemos su respuesta: {label}. Gracias.",
        already="Ya tenemos su respuesta. Gracias.",
        closed="Gracias. Este mensaje ya no necesita respuesta.",
        invalid_key="Lo sentimos, esa no es una de las opciones.",
        goodbye="Adiós.",
        press_option="Pulse {key}: {label}.",
        any_key="Pulse cualquier tecla para confirmar.",
        not_understood="Lo sentimos, no le hemos entendido. Responda {menu}.",
        option="{key} para {label}",
        reply_word="Responda {word} para confirmar que recibió nuestro mensaje.",
        noted="Gracias, hemos recibido su mensaje.",
        applied_to='(Esta respuesta es para: "{notice}")',
        taken_by="Gracias. {owner} ya se ocupa de esto.",
        case_closed="Gracias. Este caso ya está cerrado.",
    ),
    "de": Phrases(
        choice_recorded="Vielen Dank. Wir haben Ihre Wahl gespeichert: {label}.",
        recorded="Vielen Dank. Wir haben Ihre Bestätigung gespeichert.",
        already_choice="Wir haben Ihre Antwort bereits: {label}. Vielen Dank.",
        already="Wir haben Ihre Antwort bereits. Vielen Dank.",
        closed="Vielen Dank. Diese Nachricht braucht keine Antwort mehr.",
        invalid_key="Entschuldigung, das ist keine der Optionen.",
        goodbye="Auf Wiederhören.",
        press_option="Drücken Sie {key}: {label}.",
        any_key="Drücken Sie eine beliebige Taste zur Bestätigung.",
        not_understood="Entschuldigung, das haben wir nicht verstanden. Antworten Sie {menu}.",
        option="{key} für {label}",
        reply_word="Antworten Sie {word}, um den Erhalt unserer Nachricht zu bestätigen.",
        noted="Vielen Dank, wir haben Ihre Nachricht erhalten.",
        applied_to='(Diese Antwort gilt für: "{notice}")',
        taken_by="Danke. {owner} kümmert sich bereits darum.",
        case_closed="Danke. Dieser Fall ist bereits abgeschlossen.",
    ),
    "pt": Phrases(
        choice_recorded="Obrigado. Registramos a sua escolha: {label}.",
        recorded="Obrigado. Registramos a sua confirmação.",
        already_choice="Já temos a sua resposta: {label}. Obrigado.",
        already="Já temos a sua resposta. Obrigado.",
        closed="Obrigado. Esta mensagem não precisa mais de resposta.",
        invalid_key="Desculpe, essa não é uma das opções.",
        goodbye="Até logo.",
        press_option="Pressione {key}: {label}.",
        any_key="Pressione qualquer tecla para confirmar.",
        not_understood="Desculpe, não entendemos. Responda {menu}.",
        option="{key} para {label}",
        reply_word="Responda {word} para confirmar que recebeu a nossa mensagem.",
        noted="Obrigado, recebemos a sua mensagem.",
        applied_to='(Esta resposta é para: "{notice}")',
        taken_by="Obrigado. {owner} já está a tratar disto.",
        case_closed="Obrigado. Este caso já está encerrado.",
    ),
    "it": Phrases(
        choice_recorded="Grazie. Abbiamo registrato la sua scelta: {label}.",
        recorded="Grazie. Abbiamo registrato la sua conferma.",
        already_choice="Abbiamo già la sua risposta: {label}. Grazie.",
        already="Abbiamo già la sua risposta. Grazie.",
        closed="Grazie. Questo messaggio non richiede più una risposta.",
        invalid_key="Spiacenti, questa non è una delle opzioni.",
        goodbye="Arrivederci.",
        press_option="Premi {key}: {label}.",
        any_key="Premi un tasto qualsiasi per confermare.",
        not_understood="Spiacenti, non abbiamo capito. Risponda {menu}.",
        option="{key} per {label}",
        reply_word="Risponda {word} per confermare di aver ricevuto il nostro messaggio.",
        noted="Grazie, abbiamo ricevuto il suo messaggio.",
        applied_to='(Questa risposta riguarda: "{notice}")',
        taken_by="Grazie. Se ne sta già occupando {owner}.",
        case_closed="Grazie. Questo caso è già chiuso.",
    ),
}


def answer_to_late_taker(p: Phrases, taken: AlreadyTaken) -> str:
    """What a staff member answering a page is told when the record was taken or closed."""
    return p.case_closed if taken.closed else p.taken_by.format(owner=taken.owner)


UNMATCHED: Final = (
    "Sorry, we could not match your message to a recent notification from us. Reply HELP for help."
)
"""Reply to a sender we sent nothing to recently (their language is unknown)."""


_LANGUAGES: Final[Mapping[str, str]] = {
    "en": "en-US",
    "fr": "fr-FR",
    "es": "es-ES",
    "de": "de-DE",
    "pt": "pt-BR",
    "it": "it-IT",
}
_REGIONAL: Final = frozenset(
    {
        "en-US", "en-GB", "en-AU", "en-IN", "fr-FR", "fr-CA", "es-ES", "es-MX", "es-US",
        "de-DE", "pt-BR", "pt-PT", "it-IT",
    }
)  # fmt: skip


def twilio_language(locale: str) -> str:
    """The ``<Say language=...>`` code for a recipient locale: ``"fr"`` → ``"fr-FR"``,
    ``"fr_ca"`` → ``"fr-CA"``; anything unsupported → ``"en-US"``."""
    first, _, region = locale.strip().replace("_", "-").partition("-")
    language = first.lower()
    tag = f"{language}-{region.split('-')[0].upper()}"
    if tag in _REGIONAL:
        return tag
    return _LANGUAGES.get(language, "en-US")


def phrases(locale: str) -> Phrases:
    """The phrases for a recipient locale (English when the language is not covered)."""
    return _PHRASES.get(twilio_language(locale).partition("-")[0], _PHRASES["en"])
