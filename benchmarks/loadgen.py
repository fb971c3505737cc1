"""A lightweight Streamlit client: one browser session's cost to the server, nothing to render.

It speaks Streamlit's own WebSocket protocol (``/_stcore/stream``, the ``BackMsg``/``ForwardMsg`` protobufs that
ship in ``streamlit.proto``) the way the browser does:

- ``open(path)`` connects, sends a ``rerun_script`` with the page name and query string, and collects the delta
  stream until the script finishes;
- ``click(label)``, ``choose(label, option)`` and ``upload(label, name, data)`` find a widget by its label in the
  elements the last run drew and rerun the script with that widget's new state, as the browser would (an upload
  first asks for an upload URL, then PUTs the file to ``/_stcore/upload_file``);
- each run records when its first chart (plotly figure or image) arrived and whether an exception or an error box
  was drawn.

The client remembers the hashes of cacheable messages and reports them, as the browser does, so the server may
answer with references instead of resending a figure. ``python benchmarks/check_loadgen.py`` checks it against
Chromium on one session (the same figures arrive).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Common_pb2 import FileURLsRequest, UploadedFileInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

FIGURE_TYPES = ("plotly_chart", "imgs", "graphviz_chart", "vega_lite_chart")
WIDGET_TYPES = (
    "button",
    "radio",
    "file_uploader",
    "selectbox",
    "checkbox",
    "toggle",
    "multiselect",
    "button_group",
    "slider",
    "segmented_control",
)


@dataclass
class Run:
    """What one script run sent: when it started, when its first figure and its end arrived, what it drew."""

    started: float
    first_figure: float | None = None
    finished: float | None = None
    status: str = ""
    figures: list[str] = field(default_factory=list)  # element type + a short fingerprint, in order
    errors: list[str] = field(default_factory=list)
    widgets: dict[str, tuple[str, object]] = field(default_factory=dict)  # label -> (type, proto)
    texts: list[str] = field(default_factory=list)

    @property
    def to_figure(self) -> float | None:
        return None if self.first_figure is None else self.first_figure - self.started

    @property
    def to_end(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


def _fingerprint(kind: str, element) -> str:
    """``plotly:<number of traces>:<title>`` for a chart, ``image:<count>`` for images, else the element type."""
    if kind == "plotly_chart":
        spec = json.loads(element.plotly_chart.spec or "{}")
        title = spec.get("layout", {}).get("title") or {}
        title = title.get("text", "") if isinstance(title, dict) else str(title)
        return f"plotly:{len(spec.get('data', []))}:{title}"
    if kind == "imgs":
        return f"image:{len(element.imgs.imgs)}"
    return kind


class Session:
    """One visitor's tab: a WebSocket to the server plus the widget states the visitor has set."""

    def __init__(self, base_url: str, *, locale: str = "en-US", timeout: float = 300):
        self.base = base_url.rstrip("/")
        self.locale, self.timeout = locale, timeout
        self.ws = None
        self.session_id = ""
        self.page_hash, self.page_name, self.query = "", "", ""
        self.widget_states: dict[str, WidgetState] = {}
        self.cached_hashes: set[str] = set()
        self.run: Run | None = None
        self.xsrf = ""
        self.errors: list[str] = []

    async def __aenter__(self):
        # The XSRF cookie the browser gets with the page; an upload must send it back as a header.
        self.xsrf = await asyncio.to_thread(self._xsrf_cookie)
        ws_url = self.base.replace("http", "ws", 1) + "/_stcore/stream"
        origin = self.base
        self.ws = await websockets.connect(
            ws_url,
            subprotocols=["streamlit", self.xsrf or "xsrf"],
            origin=origin,
            max_size=None,
            ping_interval=None,  # a browser sends no pings; a busy server answering them late is not an error
            additional_headers={"Cookie": f"_streamlit_xsrf={self.xsrf}"} if self.xsrf else None,
            open_timeout=self.timeout,
        )
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    def _xsrf_cookie(self) -> str:
        with urllib.request.urlopen(self.base + "/_stcore/health", timeout=self.timeout) as response:
            for header in response.headers.get_all("Set-Cookie") or []:
                name, _sep, value = header.partition("=")
                if name.strip() == "_streamlit_xsrf":
                    return value.split(";", 1)[0]
        return ""

    # -- script runs -----------------------------------------------------------------------------------------
    async def open(self, path: str) -> Run:
        """Open a page (``/lesson?step=3``) as a browser does on load or on following a link."""
        parsed = urllib.parse.urlsplit(path)
        self.page_name, self.query, self.page_hash = parsed.path.strip("/"), parsed.query, ""
        self.widget_states = {}
        return await self._rerun()

    async def again(self) -> Run:
        """Rerun the page with the widgets as they are (what a browser's fragment polling shows, in one run)."""
        return await self._rerun()

    async def click(self, label: str) -> Run:
        widget = self._widget(label, ("button",))
        return await self._rerun({widget.id: WidgetState(id=widget.id, trigger_value=True)}, keep=False)

    async def choose(self, label: str, option: str) -> Run:
        """Pick an option of a radio, select box, pills or segmented control by its shown text."""
        kind, widget = self._find(label)
        options = list(widget.options)
        texts = [o.content if hasattr(o, "content") else o for o in options]
        if option not in texts:
            raise LookupError(f"{label!r} has no option {option!r}: {texts}")
        if kind == "button_group":  # pills and segmented controls send the chosen options' texts
            state = WidgetState(id=widget.id)
            state.string_array_value.data.append(option)
        else:
            state = WidgetState(id=widget.id, string_value=option)
        return await self._rerun({widget.id: state})

    async def upload(self, label: str, name: str, data: bytes, mime: str = "image/jpeg") -> Run:
        """Upload one file to a file uploader, as the browser does: upload URL, PUT, then a rerun."""
        widget = self._widget(label, ("file_uploader",))
        request_id = uuid.uuid4().hex
        msg = BackMsg(
            file_urls_request=FileURLsRequest(request_id=request_id, file_names=[name], session_id=self.session_id)
        )
        await self.ws.send(msg.SerializeToString())
        urls = None
        while urls is None:
            fwd = await self._receive()
            if fwd.WhichOneof("type") == "file_urls_response" and fwd.file_urls_response.response_id == request_id:
                urls = fwd.file_urls_response.file_urls[0]
        upload_url = urls.upload_url if urls.upload_url.startswith("http") else self.base + urls.upload_url
        await asyncio.to_thread(self._put, upload_url, name, data, mime)
        state = WidgetState(id=widget.id)
        info = UploadedFileInfo(file_id=urls.file_id, name=name, size=len(data), file_urls=urls)
        state.file_uploader_state_value.uploaded_file_info.append(info)
        return await self._rerun({widget.id: state})

    def _put(self, url: str, name: str, data: bytes, mime: str) -> None:
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                f"Content-Type: {mime}\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            url,
            data=body,
            method="PUT",
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "X-Xsrftoken": self.xsrf,
                "Cookie": f"_streamlit_xsrf={self.xsrf}",
            },
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()

    def _find(self, label: str):
        if self.run is None or label not in self.run.widgets:
            known = sorted(self.run.widgets) if self.run else []
            raise LookupError(f"no widget labelled {label!r} in the last run; seen: {known}")
        return self.run.widgets[label]

    def _widget(self, label: str, kinds: tuple[str, ...]):
        kind, widget = self._find(label)
        if kind not in kinds:
            raise LookupError(f"{label!r} is a {kind}, not one of {kinds}")
        return widget

    async def _rerun(self, states: dict[str, WidgetState] | None = None, keep: bool = True) -> Run:
        sent = dict(self.widget_states)
        sent.update(states or {})
        if keep:  # a value stays set; a click (a trigger) is sent once
            self.widget_states = sent
        msg = BackMsg()
        client = msg.rerun_script
        client.query_string = self.query
        client.page_script_hash = self.page_hash
        client.page_name = self.page_name
        client.widget_states.widgets.extend(sent.values())
        client.cached_message_hashes.extend(sorted(self.cached_hashes))
        client.context_info.locale = self.locale
        client.context_info.timezone = "UTC"
        client.context_info.timezone_offset = 0
        client.context_info.url = f"{self.base}/{self.page_name}"
        self.run = Run(started=time.perf_counter())
        await self.ws.send(msg.SerializeToString())
        await self._until_finished()
        return self.run

    async def _receive(self) -> ForwardMsg:
        data = await asyncio.wait_for(self.ws.recv(), self.timeout)
        fwd = ForwardMsg()
        fwd.ParseFromString(data)
        if fwd.metadata.cacheable and fwd.hash:
            self.cached_hashes.add(fwd.hash)
        return fwd

    async def _until_finished(self) -> None:
        run = self.run
        started = False  # a script_finished before this run's new_session ends an earlier run
        while True:
            fwd = await self._receive()
            kind = fwd.WhichOneof("type")
            if kind == "new_session":
                started = True
                self.session_id = fwd.new_session.initialize.session_id or self.session_id
            elif kind == "navigation":  # the page st.navigation chose: later reruns name it by its hash
                self.page_hash = fwd.navigation.page_script_hash
            elif kind == "page_info_changed":
                self.query = fwd.page_info_changed.query_string
            elif kind == "delta":
                self._delta(fwd.delta, run)
            elif kind == "ref_hash":
                run.figures.append("cached message")
                if run.first_figure is None:
                    run.first_figure = time.perf_counter()
            elif kind == "script_finished" and started:
                status = ForwardMsg.ScriptFinishedStatus.Name(fwd.script_finished)
                if status == "FINISHED_FRAGMENT_RUN_SUCCESSFULLY":
                    continue  # a fragment (a live view) ran by itself; the script run goes on
                if status == "FINISHED_EARLY_FOR_RERUN":
                    continue  # the script asked for a rerun (st.rerun, e.g. a race that just ended): it follows
                run.status, run.finished = status, time.perf_counter()
                if status != "FINISHED_SUCCESSFULLY":
                    run.errors.append(status)
                return

    def _delta(self, delta, run: Run) -> None:
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        kind = element.WhichOneof("type")
        if kind in FIGURE_TYPES:
            run.figures.append(_fingerprint(kind, element))
            if run.first_figure is None:
                run.first_figure = time.perf_counter()
        elif kind == "exception":
            run.errors.append("exception: " + element.exception.message)
        elif kind == "alert" and element.alert.format == element.alert.ERROR:
            run.errors.append("error: " + element.alert.body)
        elif kind in ("markdown", "heading"):
            run.texts.append(getattr(element, kind).body)
        if kind == "alert":  # info, warning and error boxes: their text too
            run.texts.append(element.alert.body)
        elif kind == "progress":
            run.texts.append(element.progress.text)
        if kind in WIDGET_TYPES:
            widget = getattr(element, kind)
            run.widgets[widget.label] = (kind, widget)


async def visit(base_url: str, path: str, *actions) -> list[Run]:
    """Open ``path`` in a fresh session, then perform each ``(method, *args)`` action; the runs in order."""
    async with Session(base_url) as session:
        runs = [await session.open(path)]
        for name, *args in actions:
            runs.append(await getattr(session, name)(*args))
        return runs
