"""The Filipino and Waray catalogs: complete, placeholders intact, compiled, and up to date with the code."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from kiosk.reasons import REASONS
from kiosk.web.i18n import LANGUAGES, TRANSLATIONS_DIR, WEB_REASONS
from tests.conftest import REPO_ROOT

TRANSLATED = [code for code in LANGUAGES if code != "en"]
PLACEHOLDER = re.compile(r"\{[a-z_]+(?::[^}]*)?\}|%\([a-z_]+\)[sd]")


def po(lang: str):
    with open(TRANSLATIONS_DIR / lang / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh)


def extracted() -> set[str]:
    """Every msgid in the sources now, extracted as babel.cfg says (what `pybabel extract` would find)."""
    with open(REPO_ROOT / "kiosk" / "web" / "babel.cfg") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    return {msg[2] for msg in extract_from_dir(str(REPO_ROOT), method_map, options_map) if isinstance(msg[2], str)}


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_msgid_has_a_translation(lang):
    catalog = po(lang)
    messages = [m for m in catalog if m.id]
    assert len(messages) > 100
    for m in messages:
        assert isinstance(m.string, str) and m.string.strip(), f"{lang}: no translation for {m.id!r}"
        assert not m.fuzzy, f"{lang}: fuzzy translation for {m.id!r}"


@pytest.mark.parametrize("lang", TRANSLATED)
def test_placeholders_survive_translation(lang):
    for m in po(lang):
        if m.id:
            assert sorted(PLACEHOLDER.findall(m.string)) == sorted(PLACEHOLDER.findall(m.id)), (lang, m.id)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_catalogs_cover_the_code_and_every_reason(lang):
    ids = {m.id for m in po(lang) if m.id}
    assert set(REASONS.values()) <= ids
    assert set(WEB_REASONS.values()) <= ids
    missing = extracted() - ids
    assert not missing, f"run pybabel extract/update (translations/README.md); missing in {lang}: {sorted(missing)}"


@pytest.mark.parametrize("lang", TRANSLATED)
def test_compiled_mo_matches_the_po(lang):
    folder = TRANSLATIONS_DIR / lang / "LC_MESSAGES"
    with open(folder / "messages.mo", "rb") as fh:
        compiled = gettext.GNUTranslations(fh)
    for m in po(lang):
        if m.id:
            assert compiled.gettext(m.id) == m.string, f"recompile {lang}: {m.id!r}"


def test_reason_messages_are_translated_at_the_edge():
    from flask import Flask

    from kiosk.web.i18n import choose_language, init_i18n, reason_message

    app = Flask(__name__)
    app.secret_key = "test"
    init_i18n(app, default_language="war")
    with app.test_request_context("/"):
        choose_language()
        assert reason_message("too_small", width=90, height=90, minimum=128).startswith("Gutiay")
        assert "{" not in reason_message("too_small")  # missing parameters never show as {width}
        assert reason_message("no_such_code") == "no_such_code"
    with app.test_request_context("/?lang=en"):
        choose_language()
        assert reason_message("too_dark") == REASONS["too_dark"]


def test_translation_readme_documents_the_workflow():
    text = (TRANSLATIONS_DIR / "README.md").read_text()
    for needle in ("pybabel extract", "pybabel update", "pybabel compile", "draft", "babel.cfg"):
        assert needle in text
    assert Path(TRANSLATIONS_DIR / "messages.pot").is_file()
