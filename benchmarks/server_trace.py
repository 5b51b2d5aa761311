"""`streamlit run` with a trace of every rerun, for the load test: when each rerun request reached the server and
when its script_finished left it, per session.

    python benchmarks/server_trace.py TRACE_FILE run app.py [streamlit's options]

One line per event, fields separated by spaces, the time first (time.monotonic(), the clock the load test's
processes share on Linux):
    T connect SESSION browser|client     a websocket session began (browser: a User-Agent naming Mozilla)
    T request SESSION FRAGMENT|-         a rerun_script BackMsg arrived (FRAGMENT: the fragment it reruns)
    T finished SESSION STATUS            the run's script_finished frame was written to the socket

The server-side time of a rerun (request -> finished) is what a simulated client and a real browser tab cost
the server alike: the load test compares the two with it (a browser's own time, drawing the reply, is the rest
of what its page measures). The hooks wrap Streamlit 1.67's Runtime.connect_session and handle_backmsg and the
session's websocket; the tests run the load test through this file, so a Streamlit that moves them fails there.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SMALL_FRAME = 512  # bytes: script_finished frames are a few dozen; bigger ones (deltas) are not parsed
EARLY_FOR_RERUN = 2  # ForwardMsg.FINISHED_EARLY_FOR_RERUN: a run cut short by the next request


@dataclass
class Rerun:
    requested: float     # time.monotonic() when the BackMsg arrived
    fragment: str        # "" for a whole-page run
    finished: float      # ... when its script_finished frame was written
    status: int          # ForwardMsg.ScriptFinishedStatus

    @property
    def seconds(self) -> float:
        return self.finished - self.requested


@dataclass
class SessionTrace:
    browser: bool
    reruns: list[Rerun] = field(default_factory=list)


def read(trace: Path) -> dict[str, SessionTrace]:
    """The trace's sessions by id, each with its answered reruns in order. A run cut short by a newer request
    is not one: the newer request's own finish answers it. Requests the server merged into one run (sent before
    the first started) count once, as the latest."""
    sessions: dict[str, SessionTrace] = {}
    waiting: dict[str, list[tuple[float, str]]] = {}
    for line in Path(trace).read_text().splitlines():
        t, event, session, detail = (line.split(" ") + ["", "", ""])[:4]
        if event == "connect":
            sessions[session] = SessionTrace(browser=detail == "browser")
        elif event == "request":
            waiting.setdefault(session, []).append((float(t), "" if detail == "-" else detail))
        elif event == "finished" and int(detail) != EARLY_FOR_RERUN and waiting.get(session):
            requested, fragment = waiting.pop(session)[-1]
            sessions.setdefault(session, SessionTrace(browser=False)).reruns.append(
                Rerun(requested, fragment, float(t), int(detail)))
    return sessions


def rerun_of(session: SessionTrace | None, sent: float, within: float) -> Rerun | None:
    """The session's first rerun requested between `sent` (a client's time.monotonic() when it sent the request)
    and `within` seconds later (when its reply had come)."""
    if session is None:
        return None
    return next((r for r in session.reruns if sent <= r.requested <= sent + within), None)


MATCH_SLACK_S = 0.25  # a key press reaches the page a little after playwright's call returns


def browser_moves(sessions: dict[str, SessionTrace], moves: list[tuple[int, float, float]]) -> list[Rerun | None]:
    """The fragment rerun of each browser tab's slider move (tab, seconds in the page, time.monotonic() of the key
    press): a browser session's requested after the press and before the new image showed. A tab is one
    session, not another tab's: the one most of its moves' first candidates belong to, so tabs moving at the
    same time are told apart."""
    reruns = {sid: [r for r in s.reruns if r.fragment] for sid, s in sessions.items() if s.browser}

    def candidates(seen: float, pressed: float, only: str | None = None) -> list[tuple[float, str, Rerun]]:
        return sorted(((r.requested, sid, r) for sid, rs in reruns.items() if only in (None, sid) for r in rs
                       if pressed <= r.requested <= pressed + seen + MATCH_SLACK_S), key=lambda c: c[0])

    firsts: dict[int, list[str]] = {}
    for tab, seen, pressed in moves:
        found = candidates(seen, pressed)
        if found:
            firsts.setdefault(tab, []).append(found[0][1])
    votes = Counter((tab, sid) for tab, sids in firsts.items() for sid in sids)
    home: dict[int, str] = {}
    for (tab, sid), _ in votes.most_common():  # each tab its own session, the best agreed first
        if tab not in home and sid not in home.values():
            home[tab] = sid
    out = []
    for tab, seen, pressed in moves:
        found = candidates(seen, pressed, home[tab]) if tab in home else []
        out.append(found[0][2] if found else None)
    return out


def install(trace: Path) -> None:
    """Wrap the Streamlit runtime so that every session's reruns are written to `trace` (appended)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.runtime.runtime import Runtime

    out = open(trace, "a", buffering=1)  # noqa: SIM115  open for the server's lifetime, line-buffered
    lock = threading.Lock()  # sessions' script threads and the event loop both write

    def log(*fields: object) -> None:
        line = " ".join([f"{time.monotonic():.6f}", *map(str, fields)]) + "\n"
        with lock:
            out.write(line)

    connect_session, handle_backmsg = Runtime.connect_session, Runtime.handle_backmsg

    def traced_connect(self, client, *args, **kwargs):
        session = connect_session(self, client, *args, **kwargs)
        ws = getattr(client, "_websocket", None)  # starlette_websocket.StarletteSessionClient's socket
        agent = ws.headers.get("user-agent", "") if ws is not None else ""
        log("connect", session, "browser" if "Mozilla" in agent else "client")
        if ws is not None:
            send_bytes = ws.send_bytes

            async def traced_send(payload: bytes) -> None:
                await send_bytes(payload)
                if len(payload) <= SMALL_FRAME:
                    try:
                        msg = ForwardMsg.FromString(payload)
                    except Exception:  # noqa: BLE001  not a ForwardMsg: nothing to trace
                        return
                    if msg.WhichOneof("type") == "script_finished":
                        log("finished", session, msg.script_finished)
            ws.send_bytes = traced_send
        return session

    def traced_backmsg(self, session_id, msg, *args, **kwargs):
        if msg.WhichOneof("type") == "rerun_script":
            log("request", session_id, msg.rerun_script.fragment_id or "-")
        return handle_backmsg(self, session_id, msg, *args, **kwargs)

    Runtime.connect_session, Runtime.handle_backmsg = traced_connect, traced_backmsg


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: server_trace.py TRACE_FILE run APP [streamlit options]")
    install(Path(sys.argv[1]))
    sys.path[0] = os.getcwd()  # as `python -m streamlit` has it: the working folder, not benchmarks/
    from streamlit.web.cli import main as streamlit_main
    sys.argv = ["streamlit", *sys.argv[2:]]
    streamlit_main()


if __name__ == "__main__":
    main()
