"""A class of students for the load test (`python benchmarks/load_test.py --class`): what each one does.

ClassSession is load_test.Session with a realistic mix instead of Traverse only. After opening the app,
each loop picks one of:
- Traverse (35%): the page, sometimes another layer, then 2-5 slider moves (each a fragment rerun);
- Layers (25%): the page, a box selection of 30-300 of the shown points on the grid (the plotly chart
  widget's selection event, as the frontend sends it), then either the nearest-neighbours toggle or
  another test image picked by its number;
- Samples (15%): the page, then 1-3 moves of the temperature slider;
- another page (25%): Compare, Paths, Curves or Train a model;
- now and then (2% of loops) the tab closes while its request runs and the student opens the app again.
Every action waits 1-5 s (uniform) before the next, as a student reads what came back; while a page with a
timed fragment shows (the Train page's job list while jobs run), the student's tab reruns it on its timer
("poll"), as the browser does. A few students (`trains`) first submit a training job on the Train page
("train": a 5-layer digits model for 5000 epochs, so it trains all through the load); the server runs one
at a time and queues the rest, and their replies must say which.

browser_tabs() are real headless Chromium tabs on Traverse inside the same load: they move a slider with the
keyboard and measure, in the page, key press to the new decoded image loaded (the check on the simulated
clients' slider figure). The load test finds each move's rerun in the server's trace (server_trace.py), which
splits that time into the server's share and the browser's own.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import time

import numpy as np
from sessions import HOME, RunReply, Session
from st_client import StreamlitClient
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

LAYERS, SAMPLES = "Layers", "Samples"
OTHER_PAGES = ("Compare", "Paths", "Curves", "Train a model")
SELECT_POINTS = (30, 300)
DROP_CHANCE = 0.02  # per loop: the tab closes mid-action and the student comes back in a new session
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--use-gl=swiftshader",
                 "--enable-unsafe-swiftshader"]


def _array(value) -> list:
    """A plotly JSON array: a list, or plotly.py's {"dtype", "bdata"(, "shape")} typed array."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).tolist()
    return list(np.ravel(value)) if value is not None else []


def grid_rows(spec: str) -> list[tuple[int, list[int]]]:
    """(trace number, customdata: the points' test-set positions) of the z1 subplot's point traces in a Layers
    grid's plotly spec."""
    fig = json.loads(spec)
    out = []
    for i, t in enumerate(fig.get("data", [])):
        if t.get("xaxis", "x") == "x" and t.get("customdata") is not None and t.get("name") != "selected point":
            out.append((i, [int(r) for r in _array(t["customdata"])]))
    return out


def box_selection(traces: list[tuple[int, list[int]]], rng: random.Random) -> tuple[str, int]:
    """A plotly box-selection event as the frontend sends it (JSON), over a random share of z1's points;
    and the number of points it selects."""
    everything = [(c, j, r) for c, rows in traces for j, r in enumerate(rows)]
    picked = rng.sample(everything, min(len(everything), rng.randint(*SELECT_POINTS)))
    points = [{"curve_number": c, "point_number": j, "point_index": j, "customdata": [r]} for c, j, r in picked]
    event = {"selection": {"points": points, "point_indices": [p["point_index"] for p in points],
                           "box": [{"xref": "x", "yref": "y", "x": [0, 1], "y": [0, 1]}], "lasso": []}}
    return json.dumps(event), len({r for _, _, r in picked})


def _markdown(reply: RunReply) -> list[str]:
    return [e.proto.body for e in reply.of_kind("markdown")]


TRAIN_PAGE = "Train a model"
TRAIN_EPOCHS = 5000  # the form's most: longer than any load test, so the job trains all through it


def _alerts(reply: RunReply) -> list[str]:
    return [e.proto.body for e in reply.of_kind("alert")]


class ClassSession(Session):
    """One student (see the module's docstring)."""

    trains = False                  # submits a training job first
    train_reply: str | None = None  # what the Train page answered

    async def step(self, deadline: float, think: tuple[float, float]) -> None:
        """One round: now and then a closed tab, else a page from the mix and what a student does there."""
        if self.trains and self.train_reply is None:
            await self.train_visit(deadline, think)
            return
        if self.rng.random() < DROP_CHANCE:
            await self.drop_and_return()
            await self.pause(deadline, think)
            return
        r = self.rng.random()
        page = HOME if r < 0.35 else LAYERS if r < 0.60 else SAMPLES if r < 0.75 else \
            self.rng.choice([p for p in OTHER_PAGES if p in self.client.pages] or [HOME])
        reply = await self.timed("page", lambda: self.client.switch_page(page), page)
        await self.watch(reply, deadline, think)
        if time.monotonic() >= deadline:
            return
        if page == HOME:
            await self.traverse_visit(reply, deadline, think)
        elif page == LAYERS:
            await self.layers_visit(reply, deadline, think)
        elif page == SAMPLES:
            await self.samples_visit(reply, deadline, think)

    async def watch(self, reply: RunReply, deadline: float, think: tuple[float, float]) -> None:
        """The think time after a page; the page's timed fragments rerun on their timers meanwhile."""
        if not reply.auto_reruns:
            await self.pause(deadline, think)
            return
        until = min(deadline, time.monotonic() + self.rng.uniform(*think))
        fragment, interval = min(reply.auto_reruns.items(), key=lambda kv: kv[1])
        while time.monotonic() + interval < until:
            await asyncio.sleep(interval)
            await self.timed("poll", lambda: self.client.rerun(self.client.page_hash, fragment))
        await asyncio.sleep(max(0.0, until - time.monotonic()))

    async def train_visit(self, deadline: float, think: tuple[float, float]) -> None:
        """The Train page's form, filled in and submitted: the reply says started or queued (with the place)."""
        reply = await self.timed("page", lambda: self.client.switch_page(TRAIN_PAGE), TRAIN_PAGE)
        self.train_reply = "no form"
        form = {e.proto.label: e for e in reply.elements if getattr(e.proto, "form_id", "")}
        submit = next((e for e in reply.of_kind("button") if e.proto.is_form_submitter), None)
        if "Run name" not in form or "Epochs" not in form or submit is None:
            self.fail_last("Train page without its form (run name, epochs, submit)")
            return
        name = f"class-{self.log.index}"
        self.client.widget_values[form["Run name"].proto.id] = WidgetState(id=form["Run name"].proto.id,
                                                                           string_value=name)
        self.client.widget_values[form["Epochs"].proto.id] = WidgetState(id=form["Epochs"].proto.id,
                                                                         int_value=TRAIN_EPOCHS)
        press = WidgetState(id=submit.proto.id, trigger_value=True)
        reply = await self.timed("train", lambda: self.client.set_widget(press))
        self.client.widget_values.pop(submit.proto.id, None)  # a trigger is true for one run only
        said = [t for t in _alerts(reply) if f"**{name}**" in t]
        self.train_reply = said[0] if said else "no answer"
        if reply.status is not None and not any(t.startswith(("Started", "Queued")) for t in said):
            self.fail_last(f"train: the reply says neither started nor queued for {name}: {_alerts(reply)}")
        await self.watch(reply, deadline, think)

    async def drop_and_return(self) -> None:
        """A student whose tab closes mid-action: ask for a page and close the socket without waiting for the
        reply, then come back in a new session ("reconnect": the new session's first page). The server must
        finish or drop the orphaned run without disturbing anyone else."""
        page = self.rng.choice(list(self.client.pages) or [HOME])
        msg = BackMsg()
        msg.rerun_script.page_script_hash = self.client.pages.get(page, "")
        await self.client.ws.send(msg.SerializeToString())
        await self.client.close()
        self.client = StreamlitClient(self.client.base_url, timeout=self.client.timeout)
        await self.client.connect()
        await self.timed("reconnect", self.client.open)

    async def checked(self, kind: str, make, must: str) -> RunReply:
        """An action whose reply must hold a markdown or image caption containing `must`."""
        reply = await self.timed(kind, make)
        texts = _markdown(reply) + [caption for _, caption in reply.images]
        if reply.status is not None and not any(must in t for t in texts):
            self.fail_last(f"{kind}: the reply shows no {must!r}")
        return reply

    def fail_last(self, problem: str) -> None:
        action = self.log.actions[-1]
        if not action.errors:
            self.log.rendered -= 1
        action.errors.append(problem)

    async def layers_visit(self, reply: RunReply, deadline: float, think: tuple[float, float]) -> None:
        chart = next((e for e in reply.of_kind("plotly_chart") if e.proto.id.endswith("layers_grid")), None)
        if chart is None:
            self.fail_last("Layers without its grid chart")
            return
        value, count = box_selection(grid_rows(chart.proto.spec), self.rng)
        state = WidgetState(id=chart.proto.id, string_value=value)
        reply = await self.checked("select", lambda: self.client.set_widget(state), f"Selection: {count} of")
        await self.pause(deadline, think)
        if time.monotonic() >= deadline:
            return
        if self.rng.random() < 0.5:
            toggle = next((e for e in reply.of_kind("checkbox") if e.proto.label.startswith("Nearest neighbours")), None)
            if toggle is not None:
                held = self.client.widget_values.get(toggle.proto.id)
                on = WidgetState(id=toggle.proto.id, bool_value=not (held is not None and held.bool_value))
                await self.checked("neighbours", lambda: self.client.set_widget(on),
                                   "label agreement" if on.bool_value else "Selection:")
        else:
            number = next((e for e in reply.of_kind("number_input") if e.proto.label == "Test image"), None)
            shown = [r for _, rows in grid_rows(chart.proto.spec) for r in rows]  # customdata: test-set positions
            if number is not None and shown:
                value = self.rng.choice(shown)  # a test image the grid shows
                pick = WidgetState(id=number.proto.id, int_value=value)
                await self.checked("point", lambda: self.client.set_widget(pick), f"**Test image {value}**")
        await self.pause(deadline, think)

    async def samples_visit(self, reply: RunReply, deadline: float, think: tuple[float, float]) -> None:
        slider = next((e for e in reply.of_kind("slider") if e.proto.label == "Temperature"), None)
        if slider is None:
            self.fail_last("Samples without its temperature slider")
            return
        for _ in range(self.rng.randint(1, 3)):
            if time.monotonic() >= deadline:
                return
            t = round(self.rng.choice([v / 10 for v in range(0, 21)]), 1)
            state = WidgetState(id=slider.proto.id)
            state.double_array_value.data.append(t)
            await self.checked("temperature", lambda s=state: self.client.set_widget(s, slider.fragment_id),
                               f"temperature {t:.1f}")
            await self.pause(deadline, think)


# ---- real browser tabs ----------------------------------------------------------------

DECODED_IMG = """() => { const e = [...document.querySelectorAll('[data-testid="stImage"]')]
    .find(x => x.innerText.includes('decoded')); return e ? e.querySelector('img') : null; }"""


async def _tab(browser, url: str, deadline: float, think: tuple[float, float], rng: random.Random,
               times: list[tuple[int, float, float]], errors: list[str], tab: int = 0) -> None:
    """One tab on Traverse moving the first slider with the keyboard; per move: (the tab's number; key press to
    the new image loaded, measured in the page, in seconds; time.monotonic() at the key press, to find the move's
    rerun in the server's trace)."""
    page = await browser.new_page(viewport={"width": 1300, "height": 900})
    try:
        await page.goto(f"{url}/traverse", timeout=60_000)
        await page.wait_for_function(f"() => {{ const i = ({DECODED_IMG})(); return i && i.complete && i.naturalWidth; }}",
                                     timeout=60_000)
        slider = page.get_by_role("slider").first
        await slider.focus()
        position = 0  # steps from the start (0 sd); the slider runs -12..12 steps of 0.25 sd
        await page.evaluate("() => document.addEventListener('keydown', () => { window.__keyAt = performance.now(); }, true)")
        while time.monotonic() < deadline:
            key = "ArrowRight" if position < 12 and (position <= -12 or rng.random() < 0.5) else "ArrowLeft"
            position += 1 if key == "ArrowRight" else -1
            before = await page.evaluate(f"() => ({DECODED_IMG})().src")
            pressed = time.monotonic()
            await slider.press(key)
            try:
                await page.wait_for_function(
                    f"""prev => {{ const i = ({DECODED_IMG})();
                        if (i && i.src !== prev && i.complete && i.naturalWidth) {{
                            window.__doneAt = performance.now(); return true; }} return false; }}""",
                    arg=before, timeout=60_000)
            except Exception as e:  # noqa: BLE001
                errors.append(f"browser tab: no new decoded image after a slider key: {type(e).__name__}")
                return
            seen = await page.evaluate("() => (window.__doneAt - window.__keyAt) / 1000")
            times.append((tab, seen, pressed))
            await asyncio.sleep(max(0.0, min(rng.uniform(*think), deadline - time.monotonic())))
    except Exception as e:  # noqa: BLE001
        errors.append(f"browser tab: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    finally:
        await page.close()


@contextlib.asynccontextmanager
async def chromium():
    """A headless Chromium, or None when this machine has none. Launched before the load starts: its start-up
    burst (a few CPU-seconds on these two cores) is the load generator's own work, which a class's browsers do
    on the students' machines, not the server's. For the same reason every Chromium thread runs under Linux's
    SCHED_IDLE policy (`chrt --idle`, inherited by its renderers and GPU process) where chrt exists, so it takes
    only CPU the server leaves. Niceness would not do: running as root, Chromium sets its own nice values."""
    import os
    import shutil
    import tempfile

    from playwright.async_api import async_playwright
    executable = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if executable is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="lvae-chromium-") as tmp:
        chrt = shutil.which("chrt")
        if chrt is not None:  # playwright runs one executable: a wrapper that sets the policy first
            wrapper = os.path.join(tmp, "chromium")
            with open(wrapper, "w") as f:
                f.write(f'#!/bin/sh\nexec "{chrt}" --idle 0 "{executable}" "$@"\n')
            os.chmod(wrapper, 0o755)
            executable = wrapper
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                await browser.close()


async def browser_tabs(browser, url: str, tabs: int, deadline: float, think: tuple[float, float], seed: int) -> dict:
    """`tabs` tabs of `browser` (see chromium()) on Traverse until the deadline; per slider move (see _tab): the
    tab, key press to the new image loaded in the page in seconds, and when the key was pressed; and the CPU
    the browser used meanwhile."""
    times: list[tuple[int, float, float]] = []
    errors: list[str] = []
    if browser is None:
        return {"tabs": tabs, "times": times, "errors": ["no chromium to run the browser tabs"], "cpu_s": 0.0}
    cpu: dict[int, float] = {}  # Chromium pid -> CPU seconds used so far (the tabs share the server's cores)
    watch = asyncio.create_task(_watch_cpu(cpu))
    try:
        await asyncio.gather(*(_tab(browser, url, deadline, think, random.Random(seed * 7919 + i), times, errors, i)
                               for i in range(tabs)))
    finally:
        watch.cancel()
    return {"tabs": tabs, "times": times, "errors": errors, "cpu_s": sum(cpu.values())}


async def _watch_cpu(cpu: dict[int, float]) -> None:
    """Every second, the CPU time of each Chromium process under this one (Linux /proc; read in a thread, off
    the event loop the sessions share)."""
    while True:
        cpu.update(await asyncio.to_thread(_chromium_cpu))
        await asyncio.sleep(1.0)


def _chromium_cpu() -> dict[int, float]:
    """Chromium pid -> CPU seconds used so far, for the Chromium processes under this one."""
    import os

    from proctree import process_tree
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in process_tree(os.getpid())[1:]:
        try:
            with open(f"/proc/{pid}/stat") as f:
                name, _, rest = f.read().partition(" (")[2].rpartition(")")
                fields = rest.split()
        except OSError:
            continue
        if "chrom" in name:  # the command name, not /proc/PID/cmdline: that waits on the process's memory lock
            out[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out
