"""Follow the teacher: in presenter mode the sidebar shows the current view's link as a QR code, large enough to scan
from the back of a classroom. Made here with ``segno`` (no web service); app.py runs each page through
:func:`run_with_view_link`, so the link includes what the page put into the URL during its run."""

from __future__ import annotations

import base64
import html
import io
import urllib.parse

import segno
import streamlit as st

from resnet_viz.i18n import _
from ui.presenter import presenting

FALLBACK_BASE = "http://localhost:8501/"
DROPPED = ("present",)  # the class follows the view, not the projector's presenter mode


def view_link() -> str:
    """The current view's URL: the browser's address (scheme, host, page) and the page's query string now."""
    try:
        address = st.context.url or FALLBACK_BASE
    except Exception:  # noqa: BLE001 - no browser behind this run (tests, bare mode)
        address = FALLBACK_BASE
    parts = urllib.parse.urlsplit(address)
    query = {k: v for k, v in st.query_params.to_dict().items() if k not in DROPPED}
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, urllib.parse.urlencode(query), ""))


def qr_png(text: str, scale: int = 12) -> bytes:
    """``text`` as a QR code in PNG (medium error correction, a quiet zone of 4 modules)."""
    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def run_with_view_link(page) -> None:
    """Run ``page``; in presenter mode, then draw its view's link as a QR code at the foot of the sidebar."""
    slot = st.sidebar.container(key="sidebar-link") if presenting() else None
    page.run()
    if slot is not None:
        link = view_link()
        text = _("Scan to open this view: {link}").format(link=link)
        data = base64.b64encode(qr_png(link)).decode()
        with slot:  # an <img> of its own: the QR code fills the sidebar's width and carries the link as its alt text
            st.html(
                f'<img src="data:image/png;base64,{data}" alt="{html.escape(text)}" '
                'style="width: 100%; image-rendering: pixelated;">'
                # The link in the caption: the caption's own colour (Streamlit's link blue is 4.4:1 on the sidebar).
                "<style>.st-key-sidebar-link a { color: inherit; text-decoration: underline; }</style>"
            )
            st.caption(text)
