"""Translations: English source strings, gettext catalogues for the other languages.

Every visible string goes through ``_()``. The language is a context variable, so each
Streamlit session (one script thread) and each notebook sees its own; library code
(plot titles, axis labels) translates at call time. Module-level constants are marked
with ``N_()`` for extraction and translated where they are shown.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import gettext
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "resnet_viz"
LANGUAGES = {"en": "English", "zh": "中文"}
DEFAULT_LANGUAGE = "en"

_current = contextvars.ContextVar("resnet_viz_language", default=DEFAULT_LANGUAGE)


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    if lang == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)


def set_language(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGUAGES)}")
    _current.set(lang)


def get_language() -> str:
    return _current.get()


@contextlib.contextmanager
def language(lang: str):
    """Translate into ``lang`` inside the block (``with language("zh"): fig = ...``)."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGUAGES)}")
    token = _current.set(lang)
    try:
        yield
    finally:
        _current.reset(token)


def _(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a string for translation without translating it (translate it with ``_()`` where it is shown)."""
    return message
