"""Many users at once: N concurrent sessions move Traverse sliders and switch pages of the running app.

    python benchmarks/load_test.py [--sessions 20] [--seconds 60] [--runs-dir DIR] [--think 0.5] [--json OUT]
                                   [--timeout 60] [--seed 0] [--app PATH]

Starts `streamlit run app.py --server.headless true --server.port <free port>
--server.address 127.0.0.1 --browser.gatherUsageStats false` from an empty
working folder with LVAE_RUNS_DIR pointing at the runs (by default the demo
pair, trained first with `python -m training demo` into a temporary folder;
or --runs-dir). Localhost only. Then:

1. warm-up: one session opens the app and visits every page (the caches fill:
   models, test points, encodings, PCA); the server's memory is read;
2. load: N sessions open the app (staggered over a second or two, like a
   class following a link) and, until the time is up, each loops: go to
   Traverse, sometimes pick another layer, move 2-5 sliders to random
   positions, switch to a random other page, back to Traverse... with a
   random pause of 0 to 2x --think seconds after each action (--think 0 is a
   saturation test);
3. the server is stopped (always, also on Ctrl-C or an error).

Prints one table: sessions, actions, errors, p50/p95/max action-to-render
latency per kind of action, the server's peak memory (VmHWM of the streamlit
process and its children), its resident memory after the 1-session warm-up
and with all N sessions connected, and how often the server opened each run's
checkpoint.safetensors during the warm-up and under load (watched from
outside with inotify): the model is loaded once per process when that count
is 0 under load, however many sessions there are. Exits 1 on any error.
The client shares the machine's CPUs with the server; the table says how much
CPU it used and how busy the machine was before the test.

Latency of an action = from sending its BackMsg to receiving script_finished
(the server has sent every delta of that run, for a slider move the one with
the new decoded image); the "with images" column adds downloading the run's
/media images over HTTP, as a browser does before it can paint them.
An error = a Python exception or st.error box in a reply, a run that does not
finish within --timeout, a reply without what the action must show (the page's
header; on Traverse the sliders and the decoded image; the image after a slider
move), an image that does not download, a dropped websocket, or a traceback in
the server's log.

Why websocket clients and not 20 headless Chromium pages: on two CPU cores 20
Chromium renderers (each with SwiftShader WebGL for the plotly charts) would
take most of the CPU and memory themselves, so the measured latency would be
the browsers' rather than the server's, and they start slowly and flakily.
benchmarks/st_client.py speaks the frontend's own protocol (the BackMsg /
ForwardMsg protobufs on /_stcore/stream, the same rerun requests the frontend
sends: page hash, widget values, fragment id), so the server does exactly the
work it does for browsers; tests/test_browser.py covers the real-browser path.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import json
import os
import random
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from st_client import FINISHED, RunReply, StreamlitClient  # noqa: E402

APP = ROOT / "app.py"
CHECKPOINT = "checkpoint.safetensors"
HOME = "Traverse"                  # the page sessions return to
DECODED = "decoded"                # the Traverse image's caption starts with this
START_TIMEOUT_S = 120
STAGGER_S = 0.1                    # session i opens the app at i * STAGGER_S
SLIDER_MOVES = (2, 5)              # slider moves per Traverse visit
LAYER_CHANCE = 0.3                 # chance a Traverse visit starts by picking another layer


# ---- the server ----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"streamlit did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@contextmanager
def streamlit_server(runs_dir: Path, workdir: Path, app: Path = APP,
                     env_changes: dict[str, str | None] | None = None) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """`streamlit run app.py` on a free 127.0.0.1 port; stopped (terminate, then kill) on the way out.

    env_changes: variables to set for the server, or (value None) to remove from its environment.
    """
    port = free_port()
    log = workdir / "streamlit.log"
    env = {**os.environ, "LVAE_RUNS_DIR": str(runs_dir), "LVAE_OFFLINE": "1"}
    for name, value in (env_changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    cwd = workdir / "cwd"  # empty: no ./runs folder joins the runs under test
    cwd.mkdir(exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url, proc, log
    finally:
        stop_tree(proc)


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]  # field 22: start time since boot
    except (OSError, IndexError):
        return None


def stop_tree(proc: subprocess.Popen) -> None:
    """Stop the server, then any process it started (e.g. a training job), each by its own pid."""
    kids = [(p, _start_time(p)) for p in process_tree(proc.pid)[1:]]
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid, started in kids:
        if started is not None and _start_time(pid) == started:  # the same process, not a reused pid
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass


def server_tracebacks(log: Path) -> list[str]:
    """Lines that start a Python traceback or a logged error in the server's output."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line for line in text.splitlines() if line.startswith("Traceback") or " ERROR " in line]


# ---- memory of the server's process tree (Linux /proc) ------------------------------

def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(_children(p))
    return tree


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory_mib(pid: int, key: str) -> tuple[float, int]:
    """(sum of `key` (VmRSS or VmHWM) over the process and its descendants in MiB, number of descendants)."""
    pids = process_tree(pid)
    return sum(_status_kib(p, key) for p in pids) / 1024, len(pids) - 1


# ---- checkpoint opens, seen from outside (inotify) ------------------------------------

class OpenCounter:
    """Counts open(2) calls on each run's checkpoint.safetensors by any process (inotify IN_OPEN on the folders)."""

    IN_OPEN = 0x20
    IN_NONBLOCK = os.O_NONBLOCK

    def __init__(self, run_dirs: list[Path]):
        self.counts = {d.name: 0 for d in run_dirs}
        self._wd: dict[int, str] = {}
        self.fd = -1
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            self.fd = libc.inotify_init1(self.IN_NONBLOCK | os.O_CLOEXEC)
            for d in run_dirs:
                wd = libc.inotify_add_watch(self.fd, str(d).encode(), self.IN_OPEN)
                if wd >= 0:
                    self._wd[wd] = d.name
        except (OSError, AttributeError):
            self.fd = -1
        self.available = self.fd >= 0 and len(self._wd) == len(run_dirs)

    def drain(self) -> dict[str, int]:
        """Events since the last call: opens of checkpoint.safetensors per run folder name."""
        new = {name: 0 for name in self.counts}
        if not self.available or self.fd < 0:
            return new
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            i = 0
            while i + 16 <= len(buf):
                wd, mask, _cookie, size = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16:i + 16 + size].split(b"\0", 1)[0].decode(errors="replace")
                i += 16 + size
                if mask & self.IN_OPEN and name == CHECKPOINT and wd in self._wd:
                    new[self._wd[wd]] += 1
        for k, v in new.items():
            self.counts[k] += v
        return new

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def weights_mib(run_dir: Path) -> float:
    """Size of the model's weights and BN buffers (the checkpoint's model.* tensors), from the safetensors header."""
    with open(run_dir / CHECKPOINT, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return sum(v["data_offsets"][1] - v["data_offsets"][0]
               for k, v in header.items() if k.startswith("model.")) / 2**20


# ---- the sessions ---------------------------------------------------------------------

@dataclass
class Action:
    session: int
    kind: str            # open | page | layer | slider
    seconds: float       # BackMsg sent -> script_finished
    render_seconds: float  # ... + the run's images downloaded
    errors: list[str] = field(default_factory=list)
    new_image: bool | None = None  # slider moves: did the decoded image change


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
    if kind == "slider":
        if reply.status != FINISHED.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
            problems.append(f"slider move finished with status {reply.status}, not as a fragment run")
        if _decoded_url(reply) is None:
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

    def __init__(self, index: int, url: str, rng: random.Random, timeout: float):
        self.client = StreamlitClient(url, timeout=timeout)
        self.log = SessionLog(index)
        self.rng = rng
        self.last_decoded: str | None = None

    async def timed(self, kind: str, make, expect_page: str | None = None) -> RunReply:
        """Run one action (`make()` sends it and reads the reply), check what it showed, download its images."""
        start = time.perf_counter()
        reply = await make()
        problems = check_reply(kind, reply, self.client, expect_page)
        problems += await fetch_images(self.client, reply)
        action = Action(self.log.index, kind, reply.seconds, time.perf_counter() - start, problems)
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

    async def traverse_visit(self, reply: RunReply, deadline: float, think: float) -> None:
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
        for _ in range(self.rng.randint(*SLIDER_MOVES)):
            if not sliders or time.monotonic() >= deadline:
                return
            slider = self.rng.choice(sliders)
            p = slider.proto
            grid = [round(p.min + i * p.step, 6) for i in range(int(round((p.max - p.min) / p.step)) + 1)]
            held = self.client.widget_values.get(p.id)
            current = held.double_array_value.data[0] if held is not None else (p.default[0] if p.default else 0.0)
            value = self.rng.choice([v for v in grid if v != current] or grid)
            await self.timed("slider", lambda s=slider, v=value: self.client.set_slider(s, v))
            await self.pause(deadline, think)

    async def pause(self, deadline: float, think: float) -> None:
        if think > 0:
            await asyncio.sleep(max(0.0, min(self.rng.uniform(0, 2 * think), deadline - time.monotonic())))

    async def run(self, start_at: float, deadline: float, think: float, budget: float) -> None:
        """Open the app at `start_at`, act until `deadline`; everything, the last action included, within `budget`."""
        try:
            await asyncio.wait_for(self._run(start_at, deadline, think), budget)
        except TimeoutError:
            self.log.errors.append(f"session {self.log.index}: still busy {budget:.0f} s after it started")

    async def _run(self, start_at: float, deadline: float, think: float) -> None:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        try:
            await self.client.connect()
            await self.timed("open", self.client.open)
            await self.pause(deadline, think)
            while time.monotonic() < deadline:
                reply = await self.timed("page", lambda: self.client.switch_page(HOME), HOME)
                await self.pause(deadline, think)
                await self.traverse_visit(reply, deadline, think)
                if time.monotonic() >= deadline:
                    break
                others = [p for p in self.client.pages if p != HOME]
                page = self.rng.choice(others)
                await self.timed("page", lambda p=page: self.client.switch_page(p), page)
                await self.pause(deadline, think)
        except SessionOver:
            pass
        except Exception as e:  # noqa: BLE001  a dropped socket or a bad answer ends this session, not the test
            self.log.errors.append(f"session {self.log.index}: {type(e).__name__}: {e}")

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


async def _load_phase(url: str, pid: int, sessions: int, seconds: float, think: float, seed: int,
                      timeout: float) -> tuple[list[Session], float, list[float]]:
    """N sessions until the deadline; returns them (still connected), the RSS with all connected, RSS samples."""
    t0 = time.monotonic()
    deadline = t0 + seconds
    users = [Session(i, url, random.Random(seed * 1000 + i), timeout) for i in range(sessions)]
    samples: list[float] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(tree_memory_mib(pid, "VmRSS")[0])
            try:
                await asyncio.wait_for(done.wait(), 0.5)
            except TimeoutError:
                pass

    sampler = asyncio.create_task(sample())
    # Each action waits at most `timeout` for its reply; a session gets the phase plus two such waits.
    budget = seconds + sessions * STAGGER_S + 2 * timeout + 10
    await asyncio.gather(*(u.run(t0 + i * STAGGER_S, deadline, think, budget) for i, u in enumerate(users)))
    rss_all = tree_memory_mib(pid, "VmRSS")[0]
    done.set()
    await sampler
    return users, rss_all, samples


async def _close(users: list[Session]) -> None:
    await asyncio.gather(*(u.client.close() for u in users), return_exceptions=True)


# ---- the whole test -------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarize(actions: list[Action]) -> dict:
    rows = {}
    for kind in ("open", "page", "layer", "slider", "all"):
        acts = [a for a in actions if kind == "all" or a.kind == kind]
        lat = [a.seconds * 1000 for a in acts]
        ren = [a.render_seconds * 1000 for a in acts]
        rows[kind] = {"count": len(acts), "errors": sum(bool(a.errors) for a in acts),
                      "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95), "max_ms": max(lat, default=float("nan")),
                      "p50_render_ms": percentile(ren, 50), "p95_render_ms": percentile(ren, 95)}
    return rows


def run_load(runs_dir: Path, sessions: int = 20, seconds: float = 60.0, think: float = 0.5, seed: int = 0,
             timeout: float = 60.0, workdir: Path | None = None, app: Path = APP) -> dict:
    """Start the app on the runs, warm it up with one session, drive `sessions` for `seconds`; the report."""
    import streamlit

    load_before = os.getloadavg()[0]  # other work on the machine skews every latency: say how much there was
    runs_dir = Path(runs_dir).resolve()
    run_dirs = sorted(d for d in runs_dir.iterdir() if (d / CHECKPOINT).is_file())
    model_mib = {d.name: weights_mib(d) for d in run_dirs}  # read before the watch starts: not counted
    counter = OpenCounter(run_dirs)
    with tempfile.TemporaryDirectory(prefix="lvae-load-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        try:
            with streamlit_server(runs_dir, work, Path(app).resolve()) as (url, proc, log):
                started = counter.drain()
                memory: dict[str, float] = {}
                opens_warm: dict[str, int] = {}

                async def drive() -> tuple[Session, list[Session], list[float], float, float]:
                    """Warm-up with one session, its memory and opens, then the N sessions (one event loop)."""
                    t0 = time.perf_counter()
                    warm = Session(-1, url, random.Random(seed), timeout)
                    await warm.tour()
                    warm_seconds = time.perf_counter() - t0
                    memory["rss_one"] = tree_memory_mib(proc.pid, "VmRSS")[0]
                    opens_warm.update({k: started[k] + v for k, v in counter.drain().items()})
                    await warm.client.close()
                    t1, cpu1 = time.perf_counter(), time.process_time()
                    users, memory["rss_all"], samples = await _load_phase(url, proc.pid, sessions, seconds, think,
                                                                          seed, timeout)
                    load_seconds = time.perf_counter() - t1
                    memory["client_cpu_s"] = time.process_time() - cpu1
                    await _close(users)
                    return warm, users, samples, warm_seconds, load_seconds

                warm, users, samples, warm_seconds, load_seconds = asyncio.run(drive())
                rss_one, rss_all = memory["rss_one"], memory["rss_all"]
                opens_load = counter.drain()
                peak, children = tree_memory_mib(proc.pid, "VmHWM")
                tracebacks = server_tracebacks(log)
                log_tail = log.read_text(errors="replace")[-3000:] if tracebacks else ""
        finally:
            counter.close()

    actions = [a for u in users for a in u.log.actions]
    action_errors = [f"session {a.session} {a.kind}: {e}" for a in actions for e in a.errors]
    session_errors = [e for u in users for e in u.log.errors]
    warm_errors = [f"warm-up {a.kind}: {e}" for a in warm.log.actions for e in a.errors] + warm.log.errors
    errors = warm_errors + action_errors + session_errors + [f"server log: {t}" for t in tracebacks]
    sliders = [a for a in actions if a.kind == "slider"]
    return {
        "streamlit": streamlit.__version__, "app": str(app), "runs_dir": str(runs_dir), "sessions": sessions, "seconds": seconds,
        "think_s": think, "seed": seed, "cpus": os.cpu_count(), "loadavg_1min_before": load_before,
        "warmup": {"seconds": warm_seconds, "actions": len(warm.log.actions), "errors": len(warm_errors)},
        "load_seconds": load_seconds, "client_cpu_s": memory["client_cpu_s"],
        "sessions_connected": sum(bool(u.log.actions) for u in users),
        "sessions_rendered": sum(u.log.rendered > 0 for u in users),
        "rendered_per_session": [u.log.rendered for u in users],
        "actions": len(actions), "errors": len(errors), "error_samples": errors[:20],
        "slider_moves_with_new_image": sum(bool(a.new_image) for a in sliders),
        "latency": summarize(actions),
        "memory": {"peak_vmhwm_mib": peak, "children": children, "rss_after_1_session_mib": rss_one,
                   "rss_with_all_sessions_mib": rss_all, "rss_max_sampled_mib": max(samples, default=float("nan")),
                   "per_added_session_mib": (rss_all - rss_one) / max(sessions - 1, 1)},
        "models": {"weights_mib": model_mib, "inotify": counter.available,
                   "checkpoint_opens_warmup": opens_warm, "checkpoint_opens_under_load": opens_load},
        "server_log_tail": log_tail,
    }


def failures(report: dict) -> list[str]:
    """Why the run failed (empty: it passed)."""
    out = []
    if report["errors"]:
        out.append(f"{report['errors']} error(s)")
    if report["sessions_rendered"] < report["sessions"]:
        out.append(f"only {report['sessions_rendered']} of {report['sessions']} sessions got rendered replies")
    reopened = {k: v for k, v in report["models"]["checkpoint_opens_under_load"].items() if v}
    if reopened:
        out.append(f"checkpoints opened again under load (a model loaded per session?): {reopened}")
    return out


def format_report(r: dict) -> str:
    m, lat = r["memory"], r["latency"]
    lines = [f"load test: {r['sessions']} sessions x {r['seconds']:g} s, think time 0-{2 * r['think_s']:g} s per action, "
             f"streamlit {r['streamlit']}, runs {r['runs_dir']}",
             f"machine: {r['cpus']} CPUs, 1-min load average {r['loadavg_1min_before']:.1f} before the test "
             "(the client runs on the same CPUs)",
             f"warm-up (1 session, every page): {r['warmup']['actions']} actions in {r['warmup']['seconds']:.1f} s", "",
             f"{'action':<8}{'count':>7}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
             f"{'p50 +img ms':>13}{'p95 +img ms':>13}"]
    for kind, row in lat.items():
        lines.append(f"{kind:<8}{row['count']:>7}{row['errors']:>8}{row['p50_ms']:>9.0f}{row['p95_ms']:>9.0f}"
                     f"{row['max_ms']:>9.0f}{row['p50_render_ms']:>13.0f}{row['p95_render_ms']:>13.0f}")
    sliders = lat["slider"]["count"]
    lines += ["",
              f"sessions: {r['sessions_connected']} connected, {r['sessions_rendered']} with rendered replies "
              f"(min {min(r['rendered_per_session'], default=0)} per session); actions: {r['actions']} "
              f"({r['actions'] / max(r['load_seconds'], 1e-9):.1f}/s); errors: {r['errors']}; "
              f"the load-test client itself used {r['client_cpu_s']:.0f} CPU-s in {r['load_seconds']:.0f} s",
              f"slider moves that changed the decoded image: {r['slider_moves_with_new_image']} of {sliders}",
              f"server memory (streamlit + {m['children']} children): peak VmHWM {m['peak_vmhwm_mib']:.0f} MiB; "
              f"RSS after 1 session {m['rss_after_1_session_mib']:.0f} MiB, with {r['sessions']} sessions "
              f"{m['rss_with_all_sessions_mib']:.0f} MiB ({m['per_added_session_mib']:+.2f} MiB per added session)"]
    mods = r["models"]
    if mods["inotify"]:
        for name, mib in mods["weights_mib"].items():
            lines.append(f"model {name}: {mib:.2f} MiB of weights; checkpoint opened by the server "
                         f"{mods['checkpoint_opens_warmup'][name]}x during the warm-up, "
                         f"{mods['checkpoint_opens_under_load'][name]}x under load")
    else:
        lines.append("checkpoint opens: not measured (no inotify on this system)")
    for e in r["error_samples"]:
        lines.append(f"ERROR {e}")
    fails = failures(r)
    lines.append("FAIL: " + "; ".join(fails) if fails else "PASS")
    return "\n".join(lines)


def train_demo(out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LVAE_OFFLINE": "1"}
    print(f"training the demo pair into {out} ...", flush=True)
    subprocess.run([sys.executable, "-m", "training", "demo", "--out", str(out), "--no-progress"],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends the test like Ctrl-C, so the `finally` blocks stop the server."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--runs-dir", type=Path, help="runs to serve (default: train the demo pair into a temp folder)")
    ap.add_argument("--think", type=float, default=0.5, help="mean pause after each action, s (0: saturation)")
    ap.add_argument("--timeout", type=float, default=60.0, help="longest wait for one action's reply, s")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the full report here")
    ap.add_argument("--app", type=Path, default=APP, help="the app to serve (default: this repo's app.py; "
                                                          "another copy to compare a change)")
    args = ap.parse_args(argv)
    if not 1 <= args.sessions <= 200 or not 0 < args.seconds <= 3600:
        ap.error("--sessions must be 1..200 and --seconds 0..3600")
    if args.think < 0 or args.timeout <= 0:
        ap.error("--think must be >= 0 and --timeout > 0")
    if not args.app.is_file():
        ap.error(f"--app {args.app} is not a file")

    signal.signal(signal.SIGTERM, _interrupt)
    with tempfile.TemporaryDirectory(prefix="lvae-load-runs-") as tmp:
        runs = args.runs_dir
        if runs is None:
            runs = Path(tmp) / "runs"
            train_demo(runs)
        elif not runs.is_dir():
            ap.error(f"--runs-dir {runs} is not a folder")
        report = run_load(runs, args.sessions, args.seconds, args.think, args.seed, args.timeout, app=args.app)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 1 if failures(report) else 0


if __name__ == "__main__":
    sys.exit(main())
