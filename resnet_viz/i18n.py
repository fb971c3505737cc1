"""Translations: English source strings, gettext catalogues for the other languages.

Every visible string goes through ``_()``. The language is a context variable, so each
Streamlit session (one script thread) and each notebook sees its own; library code
(plot titles, axis labels) translates at call time. Module-level constants are marked
with ``N_()`` for extraction and translated where they are shown.

Catalogues are gettext ``.po`` files in ``locale/<lang>/`` (one per part of the app, so
they can be edited independently); Babel compiles them into one catalogue in memory when
a language is first used, so no compiled ``.mo`` file can go stale. Extract the messages
with ``pybabel extract -F babel.cfg -o messages.pot .``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gettext
import io
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "resnet_viz"
LANGUAGES = {"en": "English", "zh": "中文"}
DEFAULT_LANGUAGE = "en"

_current = contextvars.ContextVar("resnet_viz_language", default=DEFAULT_LANGUAGE)


def catalogue_files(lang: str) -> list[Path]:
    return sorted((LOCALE_DIR / lang).glob("*.po"))


def load_catalogue(lang: str):
    """All of ``lang``'s ``.po`` files merged into one Babel catalogue."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po

    merged = Catalog(locale=lang, domain=DOMAIN)
    for path in catalogue_files(lang):
        with open(path, "rb") as f:
            for message in read_po(f, locale=lang):
                if message.id and message.string and not message.fuzzy:
                    merged.add(message.id, message.string, context=message.context)
    return merged


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    if lang == DEFAULT_LANGUAGE or not catalogue_files(lang):
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo

    buffer = io.BytesIO()
    write_mo(buffer, load_catalogue(lang))
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


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


def browser_language(locale: str | None) -> str:
    """The app's language for a browser locale such as ``zh-CN`` or ``en-GB`` (English when unknown)."""
    code = (locale or "").strip().lower().replace("_", "-").split("-")[0]
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


class Labels(dict):
    """A mapping of ``N_``-marked labels that translates on every lookup.

    Use it for module-level label tables (``{"resnet": "ResNet", "plain": N_("Plain twin")}``): code that reads
    ``LABELS[key]`` or passes ``LABELS.get`` as a ``format_func`` gets the current language's text.
    """

    def __getitem__(self, key):
        return _(dict.__getitem__(self, key))

    def get(self, key, default=None):
        return self[key] if key in self else default

    def values(self):
        return [self[k] for k in self]

    def items(self):
        return [(k, self[k]) for k in self]
