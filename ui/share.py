"""Follow the teacher: in presenter mode the sidebar shows the current view's link as a QR code, and a button shows
it large (most of the projector's height, with the link in large print) for the back of a classroom. Made here with
``segno`` (no web service); app.py runs each page through :func:`run_with_view_link`, so the link includes what the
page put into the URL during its run."""

from __future__ import annotations

import base64
import html
import io
import ipaddress
import socket
import urllib.parse

import segno
import streamlit as st

from resnet_viz.i18n import _
from ui.presenter import presenting

FALLBACK_BASE = "http://localhost:8501/"
DROPPED = ("present",)  # the class follows the view, not the projector's presenter mode
LARGE = "view_link_large"  # session state: the large QR code is open
# Most of the screen's height: on a projected image 2.5 m wide, a code of about a metre (tests/test_qr_distance.py
# reads it from a simulated phone camera at the back of a classroom).
LARGE_SIDE = "min(70vh, 100%)"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


VIRTUAL = ("docker", "br-", "veth", "virbr", "lo")  # interfaces a student's phone cannot reach


def network_ip() -> str | None:
    """This machine's IPv4 address on its local network, read from its interfaces (Linux; nothing is sent), or
    None (offline, or another system: the sidebar then asks the teacher to open the network address)."""
    try:
        import fcntl
        import struct

        names = [name for _index, name in socket.if_nameindex() if not name.startswith(VIRTUAL)]
        found = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for name in names:
                try:
                    packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))  # SIOCGIFADDR
                except OSError:
                    continue  # no IPv4 address on it
                found.append(ipaddress.ip_address(socket.inet_ntoa(packed[20:24])))
    except (ImportError, OSError, AttributeError):
        return None
    usable = [ip for ip in found if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)]
    usable.sort(key=lambda ip: not ip.is_private)  # a school's network first
    return str(usable[0]) if usable else None


def view_link(page_path: str = "") -> tuple[str, bool]:
    """The current view's URL for the class: the browser's address (scheme, host, page) and the page's query string
    now; a loopback host (the teacher browsing on the server as localhost) becomes the machine's network address
    when the server listens there. Second: whether the link still names this computer only. Without a browser
    behind the run (tests, bare mode), the address is :data:`FALLBACK_BASE` and ``page_path``."""
    try:
        address = st.context.url
    except Exception:  # noqa: BLE001 - no browser behind this run
        address = None
    address = address or FALLBACK_BASE + page_path
    parts = urllib.parse.urlsplit(address)
    netloc = parts.netloc
    local = _is_loopback(parts.hostname or "")
    listens = st.get_option("server.address") in (None, "", "0.0.0.0", "::")
    if local and listens and (ip := network_ip()):
        netloc, local = ip + (f":{parts.port}" if parts.port else ""), False
    query = {k: v for k, v in st.query_params.to_dict().items() if k not in DROPPED}
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, urllib.parse.urlencode(query), "")), local


def qr_png(text: str, scale: int = 12, *, error: str = "m", border: int = 4) -> bytes:
    """``text`` as a QR code in PNG (``error``: its error correction level; ``border``: the quiet zone, in modules)."""
    buffer = io.BytesIO()
    segno.make(text, error=error, micro=False).save(buffer, kind="png", scale=scale, border=border)
    return buffer.getvalue()


def _qr_img(link: str, text: str, style: str, **qr) -> str:
    data = base64.b64encode(qr_png(link, **qr)).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(text)}" style="{style}">'


def _show_large() -> None:
    st.session_state[LARGE] = True


def _hide_large() -> None:
    st.session_state[LARGE] = False


def _large(link: str, text: str) -> None:
    # The code as tall as the dialog allows, square and sharp; the link under it for those who type it. Error
    # correction L and a quiet zone of 2 modules (on white): fewer, larger modules read from farther away, and a
    # projected code is not scratched or folded.
    st.html(
        '<div style="display: flex; flex-direction: column; align-items: center; gap: 0.5rem;">'
        + _qr_img(link, text, f"width: {LARGE_SIDE}; height: auto; image-rendering: pixelated;", error="l", border=2)
        + f'<p style="font-size: 1.6rem; text-align: center; word-break: break-all; margin: 0;">{html.escape(link)}</p>'
        "</div>"
    )


def run_with_view_link(page) -> None:
    """Run ``page``; in presenter mode, then draw its view's link as a QR code at the foot of the sidebar, with a
    button that shows it large."""
    slot = st.sidebar.container(key="sidebar-link") if presenting() else None
    page.run()
    if slot is None:
        return
    link, local = view_link(getattr(page, "url_path", ""))
    text = _("Scan to open this view: {link}").format(link=link)
    with slot:  # an <img> of its own: the QR code fills the sidebar's width and carries the link as its alt text
        st.html(
            _qr_img(link, text, "width: 100%; image-rendering: pixelated;")
            # The link in the caption: the caption's own colour (Streamlit's link blue is 4.4:1 on the sidebar).
            + "<style>.st-key-sidebar-link a { color: inherit; text-decoration: underline; }</style>"
        )
        st.caption(text)
        if local:
            st.warning(
                _(
                    "Students' devices cannot open this link: it names this computer. Open the app at its “Network "
                    "URL” (printed when Streamlit starts) and present from there."
                ),
                icon=":material/wifi_off:",
            )
        st.button(
            _("Show the QR code large"),
            icon=":material/qr_code_2:",
            key="view-link-large-button",
            on_click=_show_large,
            width="stretch",
        )
    if st.session_state.get(LARGE):
        st.dialog(_("Scan to open this view"), width="large", on_dismiss=_hide_large)(_large)(link, text)
