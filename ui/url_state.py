"""A page's view in its URL: one table of properties, read from the query string, checked, put into the widgets.

A page declares its table once, say ::

    URL = UrlState("gf", [Choice("arch", ARCH_LABELS, "cifar"), IntRange("seed", 0, 2**31 - 1, 0)])

calls ``URL.read()`` before its widgets (a note appears there for each value that was not valid) and
``URL.write()`` once the widgets hold the view (right after ``read()`` on a page that may stop before drawing them
all: ``read()`` has put the view into their state already). A URL is read when it is new to the session (opened,
pasted, or followed from a link in the app); otherwise the session's view stays, so the widgets win over an old
link. Every run puts the view back into the widgets' session state, so a widget that was not drawn in the last run
(the page stopped early, or the visitor was on another page) still shows the value the page computes with. Keys
that are not in the table (``lang``, ``present``) belong to app.py and are never touched.

The checking itself, :func:`parse_view`, needs no Streamlit session.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import streamlit as st

from resnet_viz.i18n import N_, _

MISSING = object()
MAX_SHOWN_RAW = 40  # characters of a bad value quoted back in the note
NOT_A_CHOICE = N_("`{key}={raw}` is not valid (choose from {allowed}); using `{value}`.")
NOT_IN_RANGE = N_("`{key}={raw}` is not valid (a whole number from {low} to {high}); using `{value}`.")
IGNORED = N_("Ignored a setting in the URL: {problem}")

Options = Sequence | Mapping | Callable[[dict], "Sequence | Mapping | None"]


class Invalid(ValueError):
    """A raw URL value that is not allowed; ``usable`` is the part of it that is (a list's valid items)."""

    def __init__(self, usable: Any = MISSING) -> None:
        super().__init__()
        self.usable = usable


@dataclass(frozen=True)
class Problem:
    """A URL value that was not used, and what was used instead; :meth:`text` words it in the current language."""

    key: str
    raw: str
    allowed: tuple
    value: Any
    is_range: bool = False

    def text(self) -> str:
        raw = self.raw[:MAX_SHOWN_RAW]
        value = ", ".join(map(str, self.value)) if isinstance(self.value, (list, tuple)) else self.value
        if self.is_range:
            low, high = self.allowed
            return _(NOT_IN_RANGE).format(key=self.key, raw=raw, low=low, high=high, value=value)
        return _(NOT_A_CHOICE).format(key=self.key, raw=raw, allowed=", ".join(map(str, self.allowed)), value=value)

    def __str__(self) -> str:
        return self.text()


def _matches(raw: str, option) -> bool:
    if isinstance(option, int):
        return raw.isascii() and raw.isdigit() and int(raw) == option
    return raw == option


@dataclass(frozen=True)
class Choice:
    """One value out of a set of strings or whole numbers.

    ``options`` is a sequence, a label table (its keys are the values: ``Labels`` gives the widget's
    ``format_func``) or a callable of the view so far, for a set that depends on a property above it; the
    callable returns None while the set is not known yet (the URL's value then waits until it is).
    ``default`` is a value, or a callable of the options; None means the first option. ``private`` values may
    be chosen in the widget but never travel in a URL (a visitor's upload). ``aliases`` maps other raw values
    to options, so older links keep working (a lesson step's number for its key); the URL then shows the option.
    """

    name: str
    options: Options
    default: Any = None
    key: str | None = None
    private: frozenset = field(default_factory=frozenset)
    aliases: Mapping[str, Any] = field(default_factory=dict)

    def allowed(self, view: dict) -> list | None:
        options = self.options(view) if callable(self.options) else self.options
        return None if options is None else list(options)

    def shareable(self, allowed: list) -> list:
        return [o for o in allowed if o not in self.private]

    def parse(self, raw: str, allowed: list):
        for option in self.shareable(allowed):
            if _matches(raw, option):
                return option
        if self.aliases.get(raw) in self.shareable(allowed):
            return self.aliases[raw]
        raise Invalid()

    def accepts(self, value, allowed: list) -> bool:
        return value in allowed

    def fallback(self, allowed: list):
        if callable(self.default):
            return self.default(allowed)
        if self.default in allowed:
            return self.default
        shareable = self.shareable(allowed)
        return shareable[0] if shareable else None

    def to_url(self, value) -> str | None:
        return None if value in self.private else str(value)

    def problem(self, raw: str, value, allowed: list) -> Problem:
        return Problem(self.name, raw, tuple(self.shareable(allowed)), value)


@dataclass(frozen=True)
class Preset(Choice):
    """A choice that fills other properties: ``presets`` maps a value to the settings it stands for.

    Settings given in the same URL win; a view that then differs from its preset is ``custom``.
    """

    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    custom: str = "custom"

    def fill(self, view: dict, given: set[str]) -> None:
        settings = self.presets.get(view[self.name])
        if settings is None:
            return
        for name, value in settings.items():
            if name not in given:
                view[name] = value
        if any(view[name] != value for name, value in settings.items()):
            view[self.name] = self.custom


@dataclass(frozen=True)
class IntRange:
    """A whole number from ``low`` to ``high``."""

    name: str
    low: int
    high: int
    default: int
    key: str | None = None

    def allowed(self, view: dict) -> tuple[int, int]:
        return (self.low, self.high)

    def parse(self, raw: str, allowed) -> int:
        if raw.isascii() and raw.isdigit() and self.low <= int(raw) <= self.high:
            return int(raw)
        raise Invalid()

    def accepts(self, value, allowed) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high

    def fallback(self, allowed) -> int:
        return self.default

    def to_url(self, value) -> str:
        return str(value)

    def problem(self, raw: str, value, allowed) -> Problem:
        return Problem(self.name, raw, (self.low, self.high), value, is_range=True)


@dataclass(frozen=True)
class ChoiceList(Choice):
    """Several values out of a set, separated by commas in the URL (``methods=Occlusion,Saliency``).

    With ``keep_valid`` a URL's valid items are used when others are not (with a note); without it one bad item
    means the default. ``allow_empty`` lets the view hold no value at all.
    """

    keep_valid: bool = True
    allow_empty: bool = False

    def parse(self, raw: str, allowed: list) -> list:
        items = list(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
        if not items and not (self.allow_empty and not raw.strip()):
            raise Invalid()
        found = list(
            dict.fromkeys(option for item in items for option in self.shareable(allowed) if _matches(item, option))
        )
        if len(found) == len(items):
            return found
        raise Invalid(found if self.keep_valid and found else MISSING)

    def accepts(self, value, allowed: list) -> bool:
        return (
            isinstance(value, (list, tuple)) and (self.allow_empty or bool(value)) and all(v in allowed for v in value)
        )

    def fallback(self, allowed: list) -> list:
        return [v for v in (self.default or []) if v in allowed]

    def to_url(self, value) -> str | None:
        if any(v in self.private for v in value):
            return None
        return ",".join(map(str, value))


Property = Choice | IntRange


def parse_view(
    properties: Sequence[Property], params: Mapping[str, str], kept: Mapping[str, Any] | None = None
) -> tuple[dict, list[Problem], dict[str, str]]:
    """The view that ``params`` (raw strings, from a URL) ask for, on top of the values a session ``kept``.

    Properties are read in table order, so a property's options may depend on those above it. A property absent
    from ``params`` keeps its kept value when that is still allowed, else gets its default; a bad value gets the
    same and a :class:`Problem` (written after presets are applied, so it names the value really used). Returns
    the view, the problems, and the raw values that cannot be checked yet (their options are not known).
    """
    kept = kept or {}
    view: dict = {}
    given: set[str] = set()
    bad: list[tuple[Property, str, Any]] = []
    waiting: dict[str, str] = {}
    for prop in properties:
        allowed = prop.allowed(view)
        if prop.name in params:
            raw = params[prop.name]
            if allowed is None:
                waiting[prop.name] = raw
            else:
                try:
                    view[prop.name] = prop.parse(raw, allowed)
                    given.add(prop.name)
                    continue
                except Invalid as exc:
                    bad.append((prop, raw, allowed))
                    if exc.usable is not MISSING:
                        view[prop.name] = exc.usable
                        given.add(prop.name)
                        continue
        value = kept.get(prop.name, MISSING)
        if allowed is None:  # not checkable yet: keep what the session has
            if value is not MISSING:
                view[prop.name] = value
        elif value is not MISSING and prop.accepts(value, allowed):
            view[prop.name] = value
        else:
            view[prop.name] = prop.fallback(allowed)
    for prop in properties:
        if isinstance(prop, Preset) and prop.name in given:
            prop.fill(view, given)
    problems = [prop.problem(raw, view.get(prop.name), allowed) for prop, raw, allowed in bad]
    return view, problems, waiting


class UrlState:
    """The URL properties of one page, and the session state that keeps them (see the module's docstring).

    ``page`` prefixes the session keys; a property without a ``key`` gets the widget key ``{page}_{name}``.
    """

    def __init__(self, page: str, properties: Sequence[Property]) -> None:
        self.page = page
        self.properties = tuple(p if p.key else replace(p, key=f"{page}_{p.name}") for p in properties)
        self._by_name = {p.name: p for p in self.properties}
        self._memory_key = f"{page}_url_state"

    def key(self, name: str) -> str:
        """The session-state key of the widget that shows property ``name``."""
        return self._by_name[name].key

    def _memory(self) -> dict:
        return st.session_state.setdefault(self._memory_key, {"seen": None, "view": {}, "waiting": {}})

    def read(self) -> list[Problem]:
        """Put the view into the widgets' session state: a new URL's, else the session's; warn about bad values."""
        state, memory = st.session_state, self._memory()
        params = {p.name: st.query_params[p.name] for p in self.properties if p.name in st.query_params}
        if params and params != memory["seen"]:  # a new URL: opened, pasted, edited or followed from a link
            memory["seen"] = params
            view, problems, waiting = parse_view(self.properties, params)
        else:  # the session's view; a value the URL gave that could not be checked yet is checked now
            kept = {**memory["view"], **{p.name: state[p.key] for p in self.properties if p.key in state}}
            view, problems, waiting = parse_view(self.properties, memory["waiting"], kept)
        memory["waiting"] = waiting
        for prop in self.properties:
            if view.get(prop.name) is not None:
                state[prop.key] = view[prop.name]  # also re-sends the value to a widget the browser redrew
        for problem in problems:
            warn_url(problem)
        return problems

    def view(self) -> dict:
        """The values the widgets hold now."""
        return {p.name: st.session_state.get(p.key) for p in self.properties}

    def write(self, view: Mapping[str, Any] | None = None) -> None:
        """Keep ``view`` (by default the widgets' values) in the URL; other keys of the URL stay as they are."""
        view = dict(self.view() if view is None else view)
        written = {}
        for prop in self.properties:
            if view.get(prop.name) is None:  # not known yet (its options are not)
                continue
            text = prop.to_url(view[prop.name])
            if text is not None:
                written[prop.name] = text
            elif prop.name in st.query_params:
                del st.query_params[prop.name]  # a private value: the URL must not bring back the last shared one
        if {k: st.query_params.get(k) for k in written} != written:
            st.query_params.update(written)
        memory = self._memory()
        memory["seen"] = {p.name: st.query_params[p.name] for p in self.properties if p.name in st.query_params}
        memory["view"] = view

    def _presets(self) -> list[Preset]:
        return [p for p in self.properties if isinstance(p, Preset)]

    def fill_from_preset(self) -> None:
        """``on_change`` of a preset's widget: put the chosen preset's settings into their widgets."""
        for preset in self._presets():
            for name, value in preset.presets.get(st.session_state[preset.key], {}).items():
                st.session_state[self.key(name)] = value

    def leave_preset_if_changed(self) -> None:
        """``on_change`` of a setting that presets fill: the view becomes custom when it leaves its preset."""
        state = st.session_state
        for preset in self._presets():
            settings = preset.presets.get(state[preset.key])
            if settings and any(state[self.key(name)] != value for name, value in settings.items()):
                state[preset.key] = preset.custom


def warn_url(problem: Problem | str) -> None:
    """Show why a URL setting was ignored, in the visitor's language."""
    st.warning(_(IGNORED).format(problem=problem), icon=":material/link_off:")
