"""The server's shared work: slots that bound heavy computations, the note while waiting, a session's races."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

import resnet_viz as rv
from resnet_viz.i18n import _
from resnet_viz.slots import LeftTheLine


@st.cache_resource
def work_slots() -> rv.Slots:
    """Server-wide bound on heavy computations (explanations, gradients, landscapes) at once; the rest wait in line."""
    return rv.Slots(max(2, os.cpu_count() or 2))


@st.cache_resource(scope="session", on_release=threading.Event.set, show_spinner=False)
def _session_left() -> threading.Event:
    """Set when the visitor's session ends (tab closed): it gives up its place in line for a work slot."""
    return threading.Event()


@contextmanager
def work_slot(on_wait: Callable[[int], None] | None = None) -> Iterator[None]:
    """Hold one of the server's work slots for a block.

    A visitor who leaves while waiting gives up their place in line, and the script stops rather than compute
    for nobody: the next in line gets the slot.
    """
    left = _session_left() if get_script_run_ctx(suppress_warning=True) is not None else None
    try:
        with work_slots().hold(on_wait=on_wait, cancelled=left):
            yield
    except LeftTheLine:
        st.stop()


def wait_message(placeholder, what: str):
    """An ``on_wait`` callback that tells the visitor why they are waiting; ``what`` is an ``N_``-marked label."""

    def on_wait(ahead: int) -> None:
        placeholder.info(
            _("The server is busy: {ahead} {what} ahead of yours. It starts as soon as a slot is free.").format(
                ahead=ahead, what=_(what)
            ),
            icon=":material/hourglass_top:",
        )

    return on_wait
