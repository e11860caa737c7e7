"""Languages of the page: English, Filipino (Tagalog) and Waray-Waray, through gettext catalogs.

The catalogs are ``translations/{fil,war}/LC_MESSAGES/messages.mo``, compiled
and committed, so the kiosk needs no pybabel at run time (see
``translations/README.md``). English is the msgid itself.

Waray has no CLDR locale data, so Flask-Babel's locale object cannot name it.
The page's language is therefore our own code (``g.kiosk_language``) and
:class:`KioskDomain` loads the catalog for that code; Flask-Babel's locale
is only ever a CLDR-known one (Waray borrows Filipino's for number and date
formats, which the kiosk does not use anyway).

Reason messages from :mod:`kiosk.reasons` are translated here, at the edge,
with their English template as the msgid:

>>> from flask import Flask
>>> app = Flask(__name__); app.secret_key = "doctest"
>>> domain = init_i18n(app, default_language="en")
>>> with app.test_request_context("/?lang=fil"):
...     choose_language()
...     reason_message("too_dark") != message("too_dark")
'fil'
True
"""

from __future__ import annotations

from pathlib import Path
from string import Formatter
from typing import Any

from babel.support import NullTranslations, Translations
from flask import Flask, g, request, session
from flask_babel import Babel, Domain

from ..reasons import N_, REASONS, message

__all__ = [
    "LANGUAGES",
    "TRANSLATIONS_DIR",
    "KioskDomain",
    "choose_language",
    "current_language",
    "init_i18n",
    "reason_message",
    "translate",
]

#: code -> the language's name in itself (a language list is read by people who speak it).
LANGUAGES: dict[str, str] = {"en": "English", "fil": "Filipino", "war": "Winaray"}
TRANSLATIONS_DIR = Path(__file__).with_name("translations")
_CLDR_LOCALE = {"en": "en", "fil": "fil", "war": "fil"}  # what Flask-Babel may parse
SESSION_KEY = "lang"

#: Messages of the web layer itself (kiosk.reasons holds the pipeline's).
WEB_REASONS: dict[str, str] = {
    "csrf_failed": N_("This page has expired. Go back, reload the page and try again."),
    "upload_too_large": N_("The file is too large (the limit is {limit_mb} MB)."),
    "no_image": N_("No image was sent."),
    "bad_request": N_("The request was not understood."),
    "invalid_patient": N_("The patient details are not valid."),
    "not_found": N_("Not found. The screening or page does not exist."),
    "method_not_allowed": N_("This action is not allowed here."),
    "pin_required": N_("Enter the PIN first."),
    "pin_not_configured": N_("A PIN must be configured first (setting web.pin) before the history can be opened."),
    "unsupported_upload": N_('Send the photo as a file in the form field "image" (JPEG or PNG).'),
    "invalid_json": N_("The request is not a valid JSON object."),
    "unknown_field": N_("The request has a field the kiosk does not know: {field}."),
    "host_not_allowed": N_("This address is not the kiosk's. Open the kiosk by its own address."),
    "invalid_outcome": N_("That is not an outcome the kiosk knows. Go back and tap one of the buttons."),
    "invalid_outcome_date": N_("The day it was seen must be from {first} to {last}. Go back and choose it again."),
    "outcome_not_saved": N_("The outcome was not saved (the records cannot be written). Try again later."),
}


class KioskDomain(Domain):  # type: ignore[misc]  # flask-babel ships no types
    """A Flask-Babel domain whose catalog follows ``g.kiosk_language`` (any code, CLDR or not)."""

    def __init__(self, directory: Path = TRANSLATIONS_DIR) -> None:
        super().__init__(translation_directories=[str(directory)], domain="messages")
        self._directory = directory
        self._catalogs: dict[str, NullTranslations] = {}

    def catalog(self, language: str) -> NullTranslations:
        cached = self._catalogs.get(language)
        if cached is None:
            # Translations.load falls back to NullTranslations (English) when no .mo exists.
            cached = self._catalogs[language] = Translations.load(str(self._directory), [language], "messages")
        return cached

    def get_translations(self) -> NullTranslations:  # noqa: D102 - Flask-Babel's hook
        return self.catalog(current_language())


def init_i18n(app: Flask, *, default_language: str) -> KioskDomain:
    """Install gettext in ``app`` (Jinja's ``_``/``gettext`` included) for the kiosk's three languages."""
    if default_language not in LANGUAGES:
        raise ValueError(f"unknown language {default_language!r}; expected one of {', '.join(LANGUAGES)}")
    app.config["KIOSK_DEFAULT_LANGUAGE"] = default_language
    babel = Babel(app, locale_selector=lambda: _CLDR_LOCALE[current_language()])
    domain = KioskDomain()
    babel.domain_instance = domain  # a cached_property, meant to be overridable
    for code in LANGUAGES:
        domain.catalog(code)  # load at start: a missing catalog shows up in the log now, not mid-screening
    app.before_request(_choose_language_hook)
    return domain


def _choose_language_hook() -> None:
    choose_language()  # a before_request hook that returned the code would become the response


def choose_language() -> str:
    """Pick the request's language: ``?lang=xx`` (remembered in the session), the session, then the setting."""
    wanted = request.args.get("lang", "").strip().lower()
    if wanted in LANGUAGES:
        session[SESSION_KEY] = wanted
        language = wanted
    else:
        remembered = session.get(SESSION_KEY)
        language = remembered if remembered in LANGUAGES else _default_language()
    g.kiosk_language = language
    return language


def current_language() -> str:
    """The language chosen for this request (the default outside one)."""
    language = g.get("kiosk_language") if g else None
    return language if language in LANGUAGES else _default_language()


def _default_language() -> str:
    from flask import current_app

    return current_app.config.get("KIOSK_DEFAULT_LANGUAGE", "en") if current_app else "en"


def translate(msgid: str, **variables: Any) -> str:
    """gettext in the request's language; ``%(name)s`` variables are filled in when given."""
    text = _domain().catalog(current_language()).gettext(msgid)
    return text % variables if variables else text


def _domain() -> KioskDomain:
    from flask import current_app

    domain: KioskDomain = current_app.extensions["babel"].instance.domain_instance
    return domain


class _Blank(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "?"  # a parameter the caller does not have: never show "{width}" to a health worker


def reason_message(code: str, **params: Any) -> str:
    """The message for a reason code (kiosk.reasons or the web's own) in the request's language.

    The English template is the msgid; ``{name}`` parameters are filled in
    after translation, so translators move them freely within the sentence.
    """
    template = REASONS.get(code) or WEB_REASONS.get(code)
    if template is None:
        return code
    translated = translate(template)
    try:
        return Formatter().vformat(translated, (), _Blank(params))
    except (IndexError, ValueError, TypeError):  # a broken translation: fall back to English
        return message(code, **params) if code in REASONS else template
