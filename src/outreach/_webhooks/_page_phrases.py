"""What the acknowledgement and unsubscribe pages say, in the recipient's language.

One table per language; a locale falls back to its language, then to English. ``{label}`` is an
option's label, ``{contact}`` the brand's contact line.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from outreach._models import locale_tags


class PagePhrases(NamedTuple):
    """Every sentence the link pages show in one language."""

    answer_heading: str
    choose: str
    acknowledge: str
    nothing_yet: str
    suggested: str
    thanks: str
    choice_recorded: str
    recorded: str
    close: str
    already_heading: str
    already_choice: str
    already: str
    closed: str
    expired_heading: str
    expired: str
    contact: str
    contact_us: str
    not_found_heading: str
    not_found: str
    invalid_heading: str
    invalid: str
    unsubscribe_heading: str
    unsubscribe: str
    unsubscribe_button: str
    unsubscribed_heading: str
    unsubscribed: str


_PHRASES: Final[dict[str, PagePhrases]] = {
    "en": PagePhrases(
        answer_heading="Please answer our message",
        choose="Please choose one option:",
        acknowledge="I got this message",
        nothing_yet="Nothing is recorded until you press a button.",
        suggested="You followed the link for “{label}”. Press it to confirm, or choose another.",
        thanks="Thank you",
        choice_recorded="We have recorded your choice: {label}.",
        recorded="We have your answer.",
        close="You can close this page.",
        already_heading="You have already answered",
        already_choice="Your answer: {label}.",
        already="We have your confirmation.",
        closed="This message no longer needs an answer.",
        expired_heading="This link has expired",
        expired="The message this link came with no longer needs an answer here.",
        contact="To change your answer or for help, contact {contact}.",
        contact_us="If you still need help, please contact us.",
        not_found_heading="Link not recognised",
        not_found="This link is not valid. Please check that you copied all of it.",
        invalid_heading="Please choose one of the options",
        invalid="That answer is not one of the options offered.",
        unsubscribe_heading="Unsubscribe from these emails?",
        unsubscribe="Press the button to stop receiving these emails at this address.",
        unsubscribe_button="Unsubscribe",
        unsubscribed_heading="You are unsubscribed",
        unsubscribed="You will not get these emails any more.",
    ),
    "fr": PagePhrases(
        answer_heading="Merci de répondre à notre message",
        choose="Choisissez une option :",
        acknowledge="J'ai bien reçu ce message",
        nothing_yet="Rien n'est enregistré tant que vous n'appuyez pas sur un bouton.",
        suggested="Vous avez suivi le lien « {label} ». Appuyez dessus pour confirmer, "
        "ou choisissez-en un autre.",
        thanks="Merci",
        choice_recorded="Nous avons enregistré votre choix : {label}.",
        recorded="Nous avons bien votre réponse.",
        close="Vous pouvez fermer cette page.",
        already_heading="Vous avez déjà répondu",
        already_choice="Votre réponse : {label}.",
        already="Nous avons bien votre confirmation.",
        closed="Ce message n'attend plus de réponse.",
        expired_heading="Ce lien a expiré",
        expired="Le message de ce lien n'attend plus de réponse ici.",
        contact="Pour changer votre réponse ou obtenir de l'aide, contactez {contact}.",
        contact_us="Si vous avez encore besoin d'aide, contactez-nous.",
        not_found_heading="Lien non reconnu",
        not_found="Ce lien n'est pas valide. Vérifiez que vous l'avez copié en entier.",
        invalid_heading="Choisissez l'une des options",
        invalid="Cette réponse ne fait pas partie des options proposées.",
        unsubscribe_heading="Se désabonner de ces e-mails ?",
        unsubscribe="Appuyez sur le bouton pour ne plus recevoir ces e-mails à cette adresse.",
        unsubscribe_button="Se désabonner",
        unsubscribed_heading="Vous êtes désabonné",
        unsubscribed="Vous ne recevrez plus ces e-mails.",
    ),
    "es": PagePhrases(
        answer_heading="Por favor, responda a nuestro mensaje",
        choose="Elija una opción:",
        acknowledge="He recibido este mensaje",
        nothing_yet="No se registra nada hasta que pulse un botón.",
        suggested="Ha seguido el enlace de «{label}». Púlselo para confirmar o elija otro.",
        thanks="Gracias",
        choice_recorded="Hemos registrado su elección: {label}.",
        recorded="Tenemos su respuesta.",
        close="Puede cerrar esta página.",
        already_heading="Ya ha respondido",
        already_choice="Su respuesta: {label}.",
        already="Tenemos su confirmación.",
        closed="Este mensaje ya no necesita respuesta.",
        expired_heading="Este enlace ha caducado",
        expired="El mensaje de este enlace ya no necesita respuesta aquí.",
        contact="Para cambiar su respuesta o pedir ayuda, contacte con {contact}.",
        contact_us="Si todavía necesita ayuda, contáctenos.",
        not_found_heading="Enlace no reconocido",
        not_found="Este enlace no es válido. Compruebe que lo ha copiado entero.",
        invalid_heading="Elija una de las opciones",
        invalid="Esa respuesta no es una de las opciones ofrecidas.",
        unsubscribe_heading="¿Darse de baja de estos correos?",
        unsubscribe="Pulse el botón para dejar de recibir estos correos en esta dirección.",
        unsubscribe_button="Darse de baja",
        unsubscribed_heading="Se ha dado de baja",
        unsubscribed="Ya no recibirá estos correos.",
    ),
    "de": PagePhrases(
        answer_heading="Bitte beantworten Sie unsere Nachricht",
        choose="Bitte wählen Sie eine Option:",
        acknowledge="Ich habe diese Nachricht erhalten",
        nothing_yet="Erst wenn Sie eine Schaltfläche drücken, wird etwas gespeichert.",
        suggested="Sie sind dem Link für „{label}“ gefolgt. Drücken Sie ihn zur Bestätigung "
        "oder wählen Sie eine andere Option.",
        thanks="Vielen Dank",
        choice_recorded="Wir haben Ihre Wahl gespeichert: {label}.",
        recorded="Wir haben Ihre Antwort.",
        close="Sie können diese Seite schließen.",
        already_heading="Sie haben bereits geantwortet",
        already_choice="Ihre Antwort: {label}.",
        already="Wir haben Ihre Bestätigung.",
        closed="Diese Nachricht braucht keine Antwort mehr.",
        expired_heading="Dieser Link ist abgelaufen",
        expired="Die Nachricht zu diesem Link braucht hier keine Antwort mehr.",
        contact="Um Ihre Antwort zu ändern oder für Hilfe wenden Sie sich an {contact}.",
        contact_us="Wenn Sie noch Hilfe brauchen, kontaktieren Sie uns bitte.",
        not_found_heading="Link nicht erkannt",
        not_found="Dieser Link ist ungültig. Bitte prüfen Sie, ob Sie ihn ganz kopiert haben.",
        invalid_heading="Bitte wählen Sie eine der Optionen",
        invalid="Diese Antwort gehört nicht zu den angebotenen Optionen.",
        unsubscribe_heading="Diese E-Mails abbestellen?",
        unsubscribe="Drücken Sie die Schaltfläche, um diese E-Mails nicht mehr zu erhalten.",
        unsubscribe_button="Abbestellen",
        unsubscribed_heading="Sie haben abbestellt",
        unsubscribed="Sie erhalten diese E-Mails nicht mehr.",
    ),
    "pt": PagePhrases(
        answer_heading="Por favor, responda à nossa mensagem",
        choose="Escolha uma opção:",
        acknowledge="Recebi esta mensagem",
        nothing_yet="Nada é registrado até você pressionar um botão.",
        suggested="Você seguiu o link de “{label}”. Pressione-o para confirmar ou escolha outro.",
        thanks="Obrigado",
        choice_recorded="Registramos a sua escolha: {label}.",
        recorded="Temos a sua resposta.",
        close="Você pode fechar esta página.",
        already_heading="Você já respondeu",
        already_choice="A sua resposta: {label}.",
        already="Temos a sua confirmação.",
        closed="Esta mensagem não precisa mais de resposta.",
        expired_heading="Este link expirou",
        expired="A mensagem deste link não precisa mais de resposta aqui.",
        contact="Para mudar a sua resposta ou obter ajuda, contacte {contact}.",
        contact_us="Se ainda precisar de ajuda, fale conosco.",
        not_found_heading="Link não reconhecido",
        not_found="Este link não é válido. Verifique se o copiou inteiro.",
        invalid_heading="Escolha uma das opções",
        invalid="Essa resposta não é uma das opções oferecidas.",
        unsubscribe_heading="Cancelar a inscrição destes e-mails?",
        unsubscribe="Pressione o botão para deixar de receber estes e-mails neste endereço.",
        unsubscribe_button="Cancelar inscrição",
        unsubscribed_heading="Inscrição cancelada",
        unsubscribed="Você não receberá mais estes e-mails.",
    ),
    "it": PagePhrases(
        answer_heading="Per favore, risponda al nostro messaggio",
        choose="Scelga un'opzione:",
        acknowledge="Ho ricevuto questo messaggio",
        nothing_yet="Non viene registrato nulla finché non preme un pulsante.",
        suggested="Ha seguito il link per «{label}». Lo prema per confermare o ne scelga un altro.",
        thanks="Grazie",
        choice_recorded="Abbiamo registrato la sua scelta: {label}.",
        recorded="Abbiamo la sua risposta.",
        close="Può chiudere questa pagina.",
        already_heading="Ha già risposto",
        already_choice="La sua risposta: {label}.",
        already="Abbiamo la sua conferma.",
        closed="Questo messaggio non richiede più una risposta.",
        expired_heading="Questo link è scaduto",
        expired="Il messaggio di questo link non richiede più una risposta qui.",
        contact="Per cambiare la risposta o ricevere aiuto, contatti {contact}.",
        contact_us="Se ha ancora bisogno di aiuto, ci contatti.",
        not_found_heading="Link non riconosciuto",
        not_found="Questo link non è valido. Controlli di averlo copiato per intero.",
        invalid_heading="Scelga una delle opzioni",
        invalid="Questa risposta non è tra le opzioni offerte.",
        unsubscribe_heading="Annullare l'iscrizione a queste email?",
        unsubscribe="Prema il pulsante per non ricevere più queste email a questo indirizzo.",
        unsubscribe_button="Annulla iscrizione",
        unsubscribed_heading="Iscrizione annullata",
        unsubscribed="Non riceverà più queste email.",
    ),
}


def page_phrases(locale: str) -> tuple[str, PagePhrases]:
    """The page language (``lang``, the recipient's tag when its language has a table) and
    its phrases; English for a language without one."""
    tags = locale_tags(locale) if locale.strip() else ()
    language = tags[-1] if tags else "en"
    if not tags or language not in _PHRASES:
        return "en", _PHRASES["en"]
    lang = tags[0] if _TAG.fullmatch(tags[0]) else language
    return lang, _PHRASES[language]


_TAG = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,3}")


def languages() -> frozenset[str]:
    """The languages the pages speak."""
    return frozenset(_PHRASES)
