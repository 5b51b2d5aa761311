"""The load test's simulated users: one websocket session each, every action timed and checked.

Session moves Traverse sliders and switches pages (load_test.py's default load); classroom.ClassSession
adds a class's mix of actions. An action's latency = from sending its BackMsg to receiving
script_finished; with its /media images downloaded as a browser does = its "render" time.
"""
from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field

from st_client import FINISHED, RunReply, StreamlitClient

HOME = "Traverse"                  # the page sessions return to
DECODED = "decoded"                # the Traverse image's caption starts with this
SLIDER_MOVES = (2, 5)              # slider moves per Traverse visit
LAYER_CHANCE = 0.3                 # chance a Traverse visit starts by picking another layer
FRAGMENT_ACTIONS = ("slider", "temperature", "poll")  # inside an st.fragment: only it reruns
Think = tuple[float, float]        # a pause after each action: uniform between these seconds


@dataclass
class Action:
    session: int
    kind: str            # open | page | layer | slider
    seconds: float       # BackMsg sent -> script_finished
    render_seconds: float  # ... + the run's images downloaded
    errors: list[str] = field(default_factory=list)
    new_image: bool | None = None  # slider moves: did the decoded image change
    started: float = 0.0           # time.monotonic() when it was sent (when the slow ones happened)
    detail: str = ""               # slider moves: "default layer" (the page's first, as the browser tabs) or not
    server_session: str = ""       # the server's id of the session that sent it (server_trace.py's traces)


@dataclass
class SessionLog:
    index: int
    actions: list[Action] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)   # errors outside actions (connect, dropped socket)
    rendered: int = 0                                 # actions whose reply showed what it must


def _decoded_url(reply: RunReply) -> str | None:
    return next((url for url, caption in reply.images if caption.startswith(DECODED)), None)


def check_reply(kind: str, reply: RunReply, client: StreamlitClient, expect_page: str | None) -> list[str]:
    """What the reply must contain for the action to count as rendered; the problems, if any."""
    problems = list(reply.errors)
    if reply.status is None:
        return problems or ["no script_finished"]
    if kind in FRAGMENT_ACTIONS:
        if reply.status != FINISHED.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
            problems.append(f"{kind} finished with status {reply.status}, not as a fragment run")
        if kind == "slider" and _decoded_url(reply) is None:
            problems.append("slider move without a decoded image")
        return problems
    if reply.status != FINISHED.FINISHED_SUCCESSFULLY:
        problems.append(f"run finished with status {reply.status}")
    if expect_page is not None and client.pages.get(expect_page) != reply.page_hash:
        problems.append(f"expected page {expect_page}, got page hash {reply.page_hash!r}")
    if not reply.of_kind("heading"):
        problems.append("no page header in the reply")
    if expect_page == HOME or kind == "layer":
        if not reply.of_kind("slider"):
            problems.append("Traverse without sliders")
        if _decoded_url(reply) is None:
            problems.append("Traverse without the decoded image")
    return problems


async def fetch_images(client: StreamlitClient, reply: RunReply) -> list[str]:
    problems = []
    for url, _ in reply.images:
        status, body = await client.fetch(url)
        if status != 200 or not body:
            problems.append(f"image {url}: HTTP {status}, {len(body)} bytes")
    return problems


class SessionOver(Exception):
    """A reply never finished: the session's view of the page is unknown, so it stops (the error is recorded)."""


class Session:
    """One simulated user; every action is recorded in `log`."""

    def __init__(self, index: int, url: str, rng: random.Random, timeout: float, assets: list[str] | None = None):
        self.client = StreamlitClient(url, timeout=timeout)
        self.log = SessionLog(index)
        self.rng = rng
        self.last_decoded: str | None = None
        self.assets = assets or []  # what a browser downloads before it opens the websocket (page_assets)

    async def open_app(self) -> RunReply:
        """A first visit: the page's static files (6 at a time, as a browser), then the default page's run."""
        fetched = await self.client.fetch_all(self.assets) if self.assets else []
        reply = await self.client.open()
        reply.errors += [f"static file {path}: HTTP {status}" for path, status, _ in fetched if status != 200]
        return reply

    async def timed(self, kind: str, make, expect_page: str | None = None, detail: str = "") -> RunReply:
        """Run one action (`make()` sends it and reads the reply), check what it showed, download its images."""
        start, at = time.perf_counter(), time.monotonic()
        reply = await make()
        problems = check_reply(kind, reply, self.client, expect_page)
        problems += await fetch_images(self.client, reply)
        action = Action(self.log.index, kind, reply.seconds, time.perf_counter() - start, problems, started=at,
                        detail=detail, server_session=self.client.session_id)
        url = _decoded_url(reply)
        if kind == "slider":
            action.new_image = url is not None and url != self.last_decoded
        self.last_decoded = url or self.last_decoded
        self.log.actions.append(action)
        if not problems:
            self.log.rendered += 1
        if reply.status is None:
            raise SessionOver
        return reply

    async def traverse_visit(self, reply: RunReply, deadline: float, think: Think) -> None:
        """On Traverse: sometimes pick another layer, then move a few sliders."""
        if self.rng.random() < LAYER_CHANCE:
            group = next((e for e in reply.elements if e.kind == "button_group"), None)
            if group is not None:
                options = [o.content for o in group.proto.options]
                held = self.client.widget_values.get(group.proto.id)
                current = (list(held.string_array_value.data) if held is not None
                           else [options[i] for i in group.proto.default])
                choices = [o for o in options if o not in current] or options
                option = self.rng.choice(choices)
                reply = await self.timed("layer", lambda: self.client.set_button_group(group, option))
                await self.pause(deadline, think)
        sliders = reply.of_kind("slider")
        group = next((e for e in reply.elements if e.kind == "button_group"), None)
        # Decoding from the top layer costs most: the browser tabs stay there, so their figure is compared
        # with these moves only.
        where = "default layer" if group is None or group.proto.id not in self.client.widget_values else "other layer"
        for _ in range(self.rng.randint(*SLIDER_MOVES)):
            if not sliders or time.monotonic() >= deadline:
                return
            slider = self.rng.choice(sliders)
            p = slider.proto
            grid = [round(p.min + i * p.step, 6) for i in range(int(round((p.max - p.min) / p.step)) + 1)]
            held = self.client.widget_values.get(p.id)
            current = held.double_array_value.data[0] if held is not None else (p.default[0] if p.default else 0.0)
            value = self.rng.choice([v for v in grid if v != current] or grid)
            await self.timed("slider", lambda s=slider, v=value: self.client.set_slider(s, v), detail=where)
            await self.pause(deadline, think)

    async def pause(self, deadline: float, think: Think) -> None:
        if think[1] > 0:
            await asyncio.sleep(max(0.0, min(self.rng.uniform(*think), deadline - time.monotonic())))

    async def run(self, start_at: float, deadline: float, think: Think, budget: float) -> None:
        """Open the app at `start_at`, act until `deadline`; everything, the last action included, within `budget`."""
        try:
            await asyncio.wait_for(self._run(start_at, deadline, think), budget)
        except TimeoutError:
            self.log.errors.append(f"session {self.log.index}: still busy {budget:.0f} s after it started")

    async def _run(self, start_at: float, deadline: float, think: Think) -> None:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        try:
            await self.client.connect()
            await self.timed("open", self.open_app)
            await self.pause(deadline, think)
            while time.monotonic() < deadline:
                await self.step(deadline, think)
        except SessionOver:
            pass
        except Exception as e:  # noqa: BLE001  a dropped socket or a bad answer ends this session, not the test
            self.log.errors.append(f"session {self.log.index}: {type(e).__name__}: {e}")

    async def step(self, deadline: float, think: Think) -> None:
        """One round of the default load: Traverse (sliders), then a random other page."""
        reply = await self.timed("page", lambda: self.client.switch_page(HOME), HOME)
        await self.pause(deadline, think)
        await self.traverse_visit(reply, deadline, think)
        if time.monotonic() >= deadline:
            return
        page = self.rng.choice([p for p in self.client.pages if p != HOME])
        await self.timed("page", lambda: self.client.switch_page(page), page)
        await self.pause(deadline, think)

    async def tour(self) -> None:
        """The warm-up: open the app and visit every page once (Traverse: a layer change and a slider move)."""
        try:
            await self.client.connect()
            await self.timed("open", self.client.open)
            for page in list(self.client.pages):
                reply = await self.timed("page", lambda p=page: self.client.switch_page(p), page)
                if page == HOME:
                    await self.traverse_visit_forced(reply)
        except SessionOver:
            pass
        except Exception as e:  # noqa: BLE001
            self.log.errors.append(f"warm-up: {type(e).__name__}: {e}")

    async def traverse_visit_forced(self, reply: RunReply) -> None:
        group = next((e for e in reply.elements if e.kind == "button_group"), None)
        if group is not None and len(group.proto.options) > 1:
            reply = await self.timed("layer", lambda: self.client.set_button_group(group, group.proto.options[0].content))
        sliders = reply.of_kind("slider")
        if sliders:
            await self.timed("slider", lambda: self.client.set_slider(sliders[0], 1.0))


async def page_assets(url: str, browser=None, timeout: float = 60.0) -> list[str]:
    """The static files a browser downloads on a first visit: those a real tab of `browser` requested loading
    Traverse, or (no browser) those index.html names, a lower bound (the chunks it imports later are missing)."""
    if browser is not None:
        page = await browser.new_page()
        seen: list[str] = []
        page.on("requestfinished", lambda r: seen.append(r.url))
        try:
            await page.goto(f"{url}/traverse", timeout=timeout * 1000)
            await page.wait_for_load_state("networkidle", timeout=timeout * 1000)
        finally:
            await page.close()
        paths = ["/" + u[len(url):].lstrip("/") for u in seen if u.startswith(url)]
        return ["/"] + [p for p in dict.fromkeys(paths) if p.startswith("/static/")]
    client = StreamlitClient(url, timeout=timeout)
    status, body = await client.fetch("/")
    if status != 200:
        raise RuntimeError(f"index.html: HTTP {status}")
    refs = re.findall(r'(?:src|href)="\.?(/static/[^"]+)"', body.decode("utf-8", "replace"))
    return ["/"] + list(dict.fromkeys(refs))

