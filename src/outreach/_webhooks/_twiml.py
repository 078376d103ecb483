"""The TwiML of a call: the message read out, then a one-key menu, in the recipient's language."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from twilio.twiml.voice_response import (  # type: ignore[import-untyped, unused-ignore]
    VoiceResponse,
)

from outreach._models import Option
from outreach._webhooks._phrases import phrases, twilio_language
from outreach.channels.twilio import SAY_VOICES


def call_twiml(
    text: str,
    options: Sequence[Option],
    *,
    gather_url: str,
    locale: str = "en",
    voicemail: bool = False,
    voices: Mapping[str, str] = SAY_VOICES,
) -> str:
    """TwiML for one call: the message, then a one-key menu of ``options`` (labelled in
    ``locale``) asked twice.

    A key press is posted to ``gather_url``; with no key, the menu is repeated once, then the
    call says goodbye and hangs up. Without options the menu asks for any key (an
    acknowledgement without a choice). ``voicemail=True`` (a machine answered) says the text
    only and hangs up: no menu for a recording. Every ``<Say>`` names the voice ``voices``
    (the call's ``TwilioVoice.voices``) gives the language.
    """
    language = twilio_language(locale)
    voice = voices[language]
    p = phrases(locale)
    response = VoiceResponse()
    response.say(text, voice=voice, language=language)
    if not voicemail:
        menu = " ".join(
            p.press_option.format(key=o.key, label=o.label_for(locale)) for o in options
        )
        for _ in range(2):
            gather = response.gather(num_digits=1, action=gather_url, method="POST")
            gather.say(menu or p.any_key, voice=voice, language=language)
        response.say(p.goodbye, voice=voice, language=language)
    response.hangup()
    return str(response.to_xml())
