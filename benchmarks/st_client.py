"""A small Streamlit client that speaks the browser's websocket protocol, for the load test.

The browser frontend talks to `streamlit run` over one websocket,
`ws://HOST/_stcore/stream` with the subprotocol `streamlit` (the header's
second and third entries carry an XSRF token and a reconnecting session's id;
a fresh session sends neither). Client -> server frames are `BackMsg`
protobufs; a user's action is a `rerun_script` carrying a `ClientState`: the
page (page_script_hash), every widget value the client holds (widget_states)
and, for a widget inside an `st.fragment`, the fragment's id. Server -> client
frames are `ForwardMsg`s: new_session, navigation (the pages), delta (one
element or block at a delta path), ..., script_finished. Images arrive as
`/media/...` URLs that the browser then downloads over HTTP.

This client does what the frontend does for those actions and nothing else:
no forward-message cache (it sends no cached_message_hashes, so the server
always sends whole messages), no context info, no heartbeats. Only for
localhost load tests.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Common_pb2 import DoubleArray, StringArray
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import ClientConnection, connect

FINISHED = ForwardMsg.ScriptFinishedStatus
ALERT_ERROR = 1  # Alert.Format.ERROR: st.error
ALERT_WARNING = 2


class ProtocolError(RuntimeError):
    """The server closed the connection or answered something this client cannot read."""


@dataclass
class Element:
    """One element the last run sent: its kind (`slider`, `imgs`, ...), delta path, fragment and proto."""
    kind: str
    path: tuple[int, ...]
    fragment_id: str
    proto: object


@dataclass
class RunReply:
    """What the server sent for one rerun request, up to and including script_finished."""
    status: int | None = None                 # ForwardMsg.ScriptFinishedStatus, None if it never finished
    seconds: float = 0.0                      # BackMsg sent -> script_finished received
    page_hash: str = ""                       # the page the run showed (from the navigation message)
    elements: list[Element] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)   # (url, caption)
    errors: list[str] = field(default_factory=list)               # exceptions, st.error boxes, page_not_found
    warnings: list[str] = field(default_factory=list)             # st.warning boxes
    auto_reruns: dict[str, float] = field(default_factory=dict)   # fragment id -> seconds (st.fragment(run_every))
    messages: int = 0
    bytes: int = 0

    def of_kind(self, kind: str) -> list[Element]:
        return [e for e in self.elements if e.kind == kind]


def _first_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


class StreamlitClient:
    """One browser session: connect, rerun pages and fragments with widget values, fetch media."""

    def __init__(self, base_url: str, timeout: float = 60.0):
        parts = urlsplit(base_url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"load tests only talk to localhost, not {parts.hostname}")
        self.base_url = base_url.rstrip("/")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self.ws: ClientConnection | None = None
        self.pages: dict[str, str] = {}       # page name -> page_script_hash (from the navigation message)
        self.page_hash = ""                   # the page shown now
        self.session_id = ""                  # the server's id for this session (new_session's initialize)
        self.widget_values: dict[str, WidgetState] = {}  # what the frontend's WidgetStateManager holds

    async def connect(self) -> None:
        self.ws = await connect(f"ws://{self.host}:{self.port}/_stcore/stream", subprotocols=["streamlit"],
                                origin=self.base_url, max_size=None, open_timeout=self.timeout)
        if self.ws.subprotocol != "streamlit":
            raise ProtocolError(f"server chose subprotocol {self.ws.subprotocol!r}")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    # ---- actions ---------------------------------------------------------------------

    async def open(self) -> RunReply:
        """What a browser does on loading the app's URL: a rerun of the default page."""
        return await self.rerun("")

    async def switch_page(self, name: str) -> RunReply:
        """A click in the sidebar navigation: a full rerun of that page; widget values of the old page are dropped."""
        self.widget_values.clear()
        return await self.rerun(self.pages[name])

    async def set_slider(self, slider: Element, value: float) -> RunReply:
        state = WidgetState(id=slider.proto.id, double_array_value=DoubleArray(data=[value]))
        return await self.set_widget(state, slider.fragment_id)

    async def set_button_group(self, group: Element, option: str) -> RunReply:
        """st.segmented_control / st.pills: the value is the chosen option's formatted label."""
        state = WidgetState(id=group.proto.id, string_array_value=StringArray(data=[option]))
        return await self.set_widget(state, group.fragment_id)

    async def set_widget(self, state: WidgetState, fragment_id: str = "") -> RunReply:
        self.widget_values[state.id] = state
        return await self.rerun(self.page_hash, fragment_id)

    async def rerun(self, page_hash: str, fragment_id: str = "") -> RunReply:
        """Send one rerun request and read the server's answer up to script_finished."""
        if self.ws is None:
            raise ProtocolError("not connected")
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = ""
        state.page_script_hash = page_hash
        state.fragment_id = fragment_id
        state.widget_states.widgets.extend(self.widget_values.values())
        reply = RunReply(page_hash=page_hash)
        start = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        try:
            await asyncio.wait_for(self._read_run(reply), self.timeout)
        except TimeoutError:
            reply.errors.append(f"no script_finished within {self.timeout:g} s")
        reply.seconds = time.perf_counter() - start
        if reply.page_hash:
            self.page_hash = reply.page_hash
        return reply

    async def _read_run(self, reply: RunReply) -> None:
        assert self.ws is not None
        while True:
            try:
                data = await self.ws.recv()
            except Exception as e:  # noqa: BLE001  ConnectionClosed and friends: the session is gone
                raise ProtocolError(f"websocket closed: {e}") from e
            if isinstance(data, str):
                raise ProtocolError("text frame from the server")
            fwd = ForwardMsg()
            fwd.ParseFromString(data)
            reply.messages += 1
            reply.bytes += len(data)
            kind = fwd.WhichOneof("type")
            if kind == "new_session" and fwd.new_session.initialize.session_id:
                self.session_id = fwd.new_session.initialize.session_id
            elif kind == "navigation":
                self.pages = {p.page_name: p.page_script_hash for p in fwd.navigation.app_pages}
                reply.page_hash = fwd.navigation.page_script_hash
            elif kind == "delta":
                self._read_delta(fwd, reply)
            elif kind == "auto_rerun":  # the browser then reruns that fragment on a timer while the page shows
                reply.auto_reruns[fwd.auto_rerun.fragment_id] = fwd.auto_rerun.interval
            elif kind == "page_not_found":
                reply.errors.append(f"page not found: {fwd.page_not_found.page_name!r}")
            elif kind == "session_event" and fwd.session_event.WhichOneof("type") == "script_compilation_exception":
                reply.errors.append("script compilation error: "
                                    + _first_line(fwd.session_event.script_compilation_exception.message))
            elif kind == "script_finished":
                if fwd.script_finished == FINISHED.FINISHED_EARLY_FOR_RERUN:
                    continue  # an older run was cut short for ours: keep reading
                reply.status = fwd.script_finished
                if reply.status == FINISHED.FINISHED_WITH_COMPILE_ERROR:
                    reply.errors.append("script finished with a compile error")
                return

    @staticmethod
    def _read_delta(fwd: ForwardMsg, reply: RunReply) -> None:
        delta = fwd.delta
        if delta.WhichOneof("type") != "new_element":
            return
        el = delta.new_element
        kind = el.WhichOneof("type")
        if kind is None:
            return
        proto = getattr(el, kind)
        reply.elements.append(Element(kind, tuple(fwd.metadata.delta_path), delta.fragment_id, proto))
        if kind == "imgs":
            reply.images.extend((img.url, img.caption) for img in proto.imgs)
        elif kind == "exception":
            reply.errors.append(f"exception {proto.type}: {_first_line(proto.message)}")
        elif kind == "alert" and proto.format == ALERT_ERROR:
            reply.errors.append(f"error box: {_first_line(proto.body)}")
        elif kind == "alert" and proto.format == ALERT_WARNING:
            reply.warnings.append(_first_line(proto.body))

    # ---- media -----------------------------------------------------------------------

    async def fetch(self, path: str) -> tuple[int, bytes]:
        """HTTP GET of a same-origin path (a /media/... image), as the browser does after a delta names it."""
        if not path.startswith("/"):
            raise ValueError(f"only same-origin paths are fetched, not {path!r}")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), self.timeout)  # Connection: close -> read to EOF
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise ProtocolError(f"unreadable HTTP answer for {path}") from None
        return status, body

    async def fetch_all(self, paths: list[str], parallel: int = 6) -> list[tuple[str, int, int]]:
        """GET every same-origin path over `parallel` keep-alive HTTP/1.1 connections, as a browser loads a
        page's scripts and styles; (path, status, bytes) each."""
        queue = list(paths)
        out: list[tuple[str, int, int]] = []

        async def worker() -> None:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
            try:
                while queue:
                    path = queue.pop(0)
                    if not path.startswith("/"):
                        raise ValueError(f"only same-origin paths are fetched, not {path!r}")
                    writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
                    await writer.drain()
                    status, body = await asyncio.wait_for(_read_response(reader), self.timeout)
                    out.append((path, status, len(body)))
            finally:
                writer.close()

        await asyncio.gather(*(worker() for _ in range(min(parallel, len(queue)))))
        return out


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response on a kept-alive connection: its status and body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise ProtocolError(f"unreadable HTTP answer: {lines[0][:80]!r}") from None
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                return status, body
            body += chunk[:-2]
    return status, await reader.readexactly(int(headers.get("content-length", "0")))

