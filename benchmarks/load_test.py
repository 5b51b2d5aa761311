"""Many users at once: N concurrent sessions of the running app, each action timed and checked.

    python benchmarks/load_test.py --class     # a class: 40 students x 120 s on the shipped MNIST pair
    python benchmarks/load_test.py --stress    # the same mix, 20 sessions x 60 s acting every 0-1 s
    python benchmarks/load_test.py [--sessions 20] [--seconds 60] [--runs-dir DIR] [--think 0.5] [--tabs N]
                                   [--train-jobs N] [--nginx] [--json OUT] [--timeout 60] [--seed 0] [--app PATH]

Starts `streamlit run app.py --server.headless true --server.port <free port>
--server.address 127.0.0.1 --browser.gatherUsageStats false` from an empty
working folder holding a copy of the repository's .streamlit/config.toml, with
LVAE_RUNS_DIR pointing at the runs (--class/--stress: pretrained/; otherwise
the demo pair, trained first with `python -m training demo` into a temporary
folder; or --runs-dir). Localhost only. Then:

1. warm-up: one session opens the app and visits every page (the caches fill:
   models, test points, encodings, PCA); the server's memory is read;
2. load: N sessions open the app (staggered over a second or two, like a
   class following a link) and act until the time is up. Without --class or
   --stress each loops: go to Traverse, sometimes pick another layer, move
   2-5 sliders, switch to a random other page, back to Traverse..., with a
   random pause of 0 to 2x --think seconds after each action (--think 0 is a
   saturation test). --class and --stress use a class's mix of every page's
   actions (benchmarks/classroom.py: Traverse sliders and layers, a box
   selection on Layers, neighbours, a point picked, Samples' temperature, other
   pages), 1-5 s apart (--stress: 0-1 s); --class also runs 3 headless
   Chromium tabs (at idle priority: a class's browsers are not on the server)
   moving Traverse sliders inside the load and timing them in the page, has 3 students submit a training job from the Train page first
   (one trains all through the load, niced, the others wait in the queue;
   --train-jobs N), and watches the server's memory for 60 s after everyone
   left;
3. the server is stopped (always, also on Ctrl-C or an error).

A session's "open" is a first visit: the page's static files (those a real Chromium tab downloads, recorded
once before the load when there are tabs; else those index.html names), 6 at a time over kept-alive
connections as a browser does, then the default page's run. --nginx puts deploy/nginx.py's front between
the students and the app: nginx serves those files and passes the rest (websocket, /media, /_stcore).

Prints one table: sessions, actions, errors, p50/p95/max action-to-render
latency per kind of action, the server's peak memory (VmHWM of the streamlit
process and its children), its resident memory after the 1-session warm-up
and with all N sessions connected (training jobs' processes not counted: their
memory is reported on its own line, with how many ran at once), and how often the server opened each run's
checkpoint.safetensors during the warm-up and under load (watched from
outside with inotify): the model is loaded once per process when that count
is 0 under load, however many sessions there are. Exits 1 on any error.
The client shares the machine's CPUs with the server; the table says how much
CPU it used and how busy the machine was before the test.

Latency of an action = from sending its BackMsg to receiving script_finished
(the server has sent every delta of that run, for a slider move the one with
the new decoded image); the "with images" column adds downloading the run's
/media images over HTTP, as a browser does before it can paint them.
The server runs through benchmarks/server_trace.py, which logs when each rerun request reached it and when
the run's script_finished left it: the report gives the slider moves' share at the server, and splits the
browser tabs' time in the page into the server's share and the browser's own (measured also with one tab
alone on the server just before the load).
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
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import server_trace  # noqa: E402
from proctree import children_by_parent, process_tree  # noqa: E402
from sessions import Action, Session, Think, page_assets  # noqa: E402

APP = ROOT / "app.py"
CHECKPOINT = "checkpoint.safetensors"
START_TIMEOUT_S = 120
STAGGER_S = 0.1                    # session i opens the app at i * STAGGER_S


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


def _server_config(cwd: Path) -> None:
    """The server runs with the repository's own .streamlit/config.toml (the settings `streamlit run app.py`
    gets from the repository root), from its empty working folder."""
    config = ROOT / ".streamlit" / "config.toml"
    if config.is_file():
        (cwd / ".streamlit").mkdir(parents=True, exist_ok=True)
        (cwd / ".streamlit" / "config.toml").write_text(config.read_text())


@contextmanager
def streamlit_server(runs_dir: Path, workdir: Path, app: Path = APP,
                     env_changes: dict[str, str | None] | None = None,
                     port: int | None = None, trace: Path | None = None) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """`streamlit run app.py` on 127.0.0.1 (a free port unless given), with the repository's own
    .streamlit/config.toml; stopped (terminate, then kill) on the way out.

    env_changes: variables to set for the server, or (value None) to remove from its environment;
    trace: run it through server_trace.py, which writes every session's reruns to this file.
    """
    port = port or free_port()
    log = workdir / f"streamlit-{port}.log"
    env = {**os.environ, "LVAE_RUNS_DIR": str(runs_dir), "LVAE_OFFLINE": "1"}
    for name, value in (env_changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    launch = [sys.executable, "-m", "streamlit"] if trace is None else \
        [sys.executable, str(Path(server_trace.__file__).resolve()), str(trace)]
    cmd = [*launch, "run", str(app), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    cwd = workdir / "cwd"  # empty: no ./runs folder joins the runs under test
    cwd.mkdir(exist_ok=True)
    _server_config(cwd)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url, proc, log
    finally:
        stop_tree(proc)


@contextmanager
def nginx_front(upstream: str, workdir: Path) -> Iterator[str]:
    """nginx on a free port in front of the app (deploy/nginx.py's config: it serves Streamlit's frontend
    files itself); its URL. Stopped on the way out."""
    import shutil
    sys.path.insert(0, str(ROOT / "deploy"))
    from nginx import standalone_conf
    exe = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None)
    if exe is None:
        raise RuntimeError("--nginx: no nginx on this machine (Debian: apt-get install nginx-light)")
    port, home = free_port(), workdir / "nginx"
    home.mkdir(parents=True, exist_ok=True)
    conf = home / "nginx.conf"
    conf.write_text(standalone_conf(f"127.0.0.1:{port}", upstream.split("://", 1)[-1], home))
    log = home / "stderr.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, "-c", str(conf), "-p", str(home)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
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

def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmdline(pid: int) -> list[bytes]:
    """The process's arguments ([] when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def training_command(pid: int) -> bytes | None:
    """The `python -m training <command>` a process runs (train, demo), or None for any other process."""
    args = cmdline(pid)
    return next((c for a, b, c in zip(args, args[1:], args[2:]) if a == b"-m" and b == b"training"), None)


def split_tree(pid: int) -> tuple[list[int], list[int]]:
    """(the server and its helpers, the training processes and theirs) among the process and its descendants."""
    kids = children_by_parent()
    server, training, todo = [], [], [(pid, False)]
    while todo:
        p, inside = todo.pop()
        inside = inside or training_command(p) is not None
        (training if inside else server).append(p)
        todo.extend((c, inside) for c in kids.get(p, []))
    return server, training


def tree_memory_mib(pid: int, key: str, tree: tuple[list[int], list[int]] | None = None) -> tuple[float, int]:
    """(sum of `key` (VmRSS or VmHWM) over the process and its descendants but training jobs, in MiB; number of
    those descendants). Training jobs are their own processes with their own memory (`training_memory_mib`)."""
    pids, _ = tree or split_tree(pid)
    return sum(_status_kib(p, key) for p in pids) / 1024, len(pids) - 1


def training_now(pid: int, tree: tuple[list[int], list[int]] | None = None) -> tuple[int, float]:
    """(training jobs running under the server: `python -m training train` processes, their RSS in MiB)."""
    _, pids = tree or split_tree(pid)
    jobs = sum(training_command(p) == b"train" for p in pids)
    return jobs, sum(_status_kib(p, "VmRSS") for p in pids) / 1024


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


# --class: 3 of the students submit a training job first (one trains, two wait in the queue)
CLASS = {"sessions": 40, "seconds": 120.0, "think": (1.0, 5.0), "tabs": 3, "linger": 60.0, "train_jobs": 3}
STRESS = {"sessions": 20, "seconds": 60.0, "think": (0.0, 1.0), "tabs": 0, "linger": 0.0, "train_jobs": 0}
TARGETS_P95_MS = {"slider": 300, "page": 1000, "open": 2000}  # the class's targets (issue 19)
MEMORY_LIMIT_MIB = 2048          # server RSS with the class connected
RELEASED_WITHIN = 0.10           # RSS after the class left, relative to the one-session figure
KINDS = ("open", "reconnect", "page", "layer", "slider", "select", "neighbours", "point", "temperature", "train", "poll")
SAMPLE_S = 0.5                   # how often memory and training jobs are sampled
ALONE_S, ALONE_THINK = 6.0, (0.2, 0.4)  # one tab alone on the server before the load: its moves, 0.2-0.4 s apart
TRAINING_SLOTS = 1               # the app's default: at most one training job at a time


async def _load_phase(url: str, pid: int, sessions: int, seconds: float, think: Think, seed: int,
                      timeout: float, mix: str, tabs: int, linger: float, train_jobs: int = 0) -> dict:
    """N sessions (and browser tabs) until the deadline, then closed; RSS sampled all along and for
    `linger` seconds after they left. Returns the sessions, the tabs' report (and one tab's, alone on the server
    before the load), RSS figures and samples.
    train_jobs (class mix): that many students submit a training job first."""
    session_cls = Session
    if mix == "class":
        from classroom import ClassSession
        session_cls = ClassSession
    browser_cm = None
    if tabs:
        from classroom import browser_tabs, chromium
        browser_cm = chromium()
        browser = await browser_cm.__aenter__()  # before the clock starts (see chromium())
    # Each student's first open downloads the page's static files too (~110 files, 3 MB for a real tab).
    assets = await page_assets(url, browser if tabs else None, timeout)
    alone = {"tabs": 0, "times": [], "errors": []}
    if tabs:  # what a tab measures with the server to itself: the browser's own share when nothing competes
        alone = await browser_tabs(browser, url, 1, time.monotonic() + ALONE_S, ALONE_THINK, seed)
    t0 = time.monotonic()
    deadline = t0 + seconds
    users = [session_cls(i, url, random.Random(seed * 1000 + i), timeout, assets) for i in range(sessions)]
    for u in users[:train_jobs if mix == "class" else 0]:
        u.trains = True
    samples: list[tuple[float, float]] = []  # (seconds since the load started, RSS MiB)
    training: list[tuple[int, float]] = []   # (training jobs running, their RSS MiB) at each sample
    done = asyncio.Event()

    def look() -> tuple[float, tuple[int, float]]:
        """The server's RSS and the training jobs now, from one pass over /proc."""
        tree = split_tree(pid)
        return tree_memory_mib(pid, "VmRSS", tree)[0], training_now(pid, tree)

    async def sample() -> None:
        while not done.is_set():
            # In a thread: reading /proc must not hold up the sessions' replies on this event loop.
            rss, jobs = await asyncio.to_thread(look)
            samples.append((time.monotonic() - t0, rss))
            training.append(jobs)
            try:
                await asyncio.wait_for(done.wait(), SAMPLE_S)
            except TimeoutError:
                pass

    sampler = asyncio.create_task(sample())
    # Each action waits at most `timeout` for its reply; a session gets the phase plus two such waits.
    budget = seconds + sessions * STAGGER_S + 2 * timeout + 10
    work = [u.run(t0 + i * STAGGER_S, deadline, think, budget) for i, u in enumerate(users)]
    tab_report = {"tabs": 0, "times": [], "errors": []}
    if tabs:
        work.append(browser_tabs(browser, url, tabs, deadline, think, seed))
    try:
        results = await asyncio.gather(*work)
    finally:
        if browser_cm is not None:
            await browser_cm.__aexit__(None, None, None)
    if tabs:
        tab_report = results[-1]
    rss_all = tree_memory_mib(pid, "VmRSS")[0]
    await _close(users)
    closed_at = time.monotonic() - t0
    rss_after = None
    if linger > 0:
        await asyncio.sleep(linger)
        rss_after = tree_memory_mib(pid, "VmRSS")[0]
    done.set()
    await sampler
    return {"users": users, "tabs": tab_report, "tab_alone": alone, "rss_all": rss_all, "rss_after_close": rss_after,
            "closed_at_s": closed_at, "samples": samples, "training": training, "t0": t0,
            "assets": {"files": len(assets), "from": "a Chromium tab" if tabs and browser is not None else "index.html"}}


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
    kinds = [k for k in KINDS if any(a.kind == k for a in actions)]
    for kind in kinds + ["all"]:
        acts = [a for a in actions if kind == "all" or a.kind == kind]
        lat = [a.seconds * 1000 for a in acts]
        ren = [a.render_seconds * 1000 for a in acts]
        rows[kind] = {"count": len(acts), "errors": sum(bool(a.errors) for a in acts),
                      "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95), "max_ms": max(lat, default=float("nan")),
                      "p50_render_ms": percentile(ren, 50), "p95_render_ms": percentile(ren, 95)}
    return rows


def at_the_server(actions: list[Action], traced: dict[str, server_trace.SessionTrace]) -> dict:
    """The simulated clients' actions as the server saw them (server_trace.py: request in -> script_finished out):
    how many were found in its trace, p50 and p95 in ms."""
    reruns = [server_trace.rerun_of(traced.get(a.server_session), a.started, a.render_seconds) for a in actions]
    ms = [1000 * r.seconds for r in reruns if r is not None]
    return {"count": len(actions), "traced": len(ms), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95)}


def tab_figures(tabs: dict, traced: dict[str, server_trace.SessionTrace]) -> dict:
    """A browser_tabs() report's slider moves in the page and, found in the server's trace, the server's share of
    each (request in -> script_finished out) and the browser's own (the rest: key to request, the reply's way to
    the page, drawing it, the image's download and decoding); p50 and p95 in ms."""
    reruns = server_trace.browser_moves(traced, tabs["times"])
    seen = [1000 * s for _, s, _ in tabs["times"]]
    server = [1000 * r.seconds for r in reruns if r is not None]
    own = [1000 * s - 1000 * r.seconds for (_, s, _), r in zip(tabs["times"], reruns, strict=True) if r is not None]
    return {"tabs": tabs["tabs"], "slider_moves": len(seen), "traced": len(server), "errors": len(tabs["errors"]),
            "cpu_s": tabs.get("cpu_s", 0.0), "p50_ms": percentile(seen, 50), "p95_ms": percentile(seen, 95),
            "server_p50_ms": percentile(server, 50), "server_p95_ms": percentile(server, 95),
            "own_p50_ms": percentile(own, 50), "own_p95_ms": percentile(own, 95)}


def rss_timeline(samples: list[tuple[float, float]], step: float = 10.0) -> list[tuple[float, float]]:
    """The highest sampled RSS in each `step`-second window: (window start s, MiB)."""
    out: dict[int, float] = {}
    for t, mib in samples:
        k = int(t // step)
        out[k] = max(out.get(k, 0.0), mib)
    return [(k * step, v) for k, v in sorted(out.items())]


def run_load(runs_dir: Path, sessions: int = 20, seconds: float = 60.0, think: float | Think = 0.5, seed: int = 0,
             timeout: float = 60.0, workdir: Path | None = None, app: Path = APP, mix: str = "traverse",
             tabs: int = 0, linger: float = 0.0, train_jobs: int = 0, nginx: bool = False) -> dict:
    """Start the app on the runs, warm it up with one session, drive `sessions` (and `tabs` Chromium tabs)
    for `seconds`, then watch the memory for `linger` seconds after they left; the report.

    think: a mean pause (uniform 0 to twice it) or a (low, high) range in seconds; mix: "traverse"
    (sliders and pages) or "class" (benchmarks/classroom.py's mix of every page's actions); train_jobs (class
    mix): students who submit a training job first (they train into the server's ./runs in the work folder);
    nginx: the students reach the app through nginx_front (it serves the frontend's files)."""
    import streamlit

    think = (0.0, 2.0 * think) if isinstance(think, (int, float)) else (float(think[0]), float(think[1]))
    load_before = os.getloadavg()[0]  # other work on the machine skews every latency: say how much there was
    runs_dir = Path(runs_dir).resolve()
    run_dirs = sorted(d for d in runs_dir.iterdir() if (d / CHECKPOINT).is_file())
    model_mib = {d.name: weights_mib(d) for d in run_dirs}  # read before the watch starts: not counted
    counter = OpenCounter(run_dirs)
    with tempfile.TemporaryDirectory(prefix="lvae-load-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        try:
            trace = work / "server-trace.log"
            with streamlit_server(runs_dir, work, Path(app).resolve(), trace=trace) as (url, proc, log), \
                    (nginx_front(url, work) if nginx else nullcontext(url)) as url:
                started = counter.drain()
                memory: dict[str, float] = {}
                opens_warm: dict[str, int] = {}

                async def drive() -> tuple[Session, dict, float, float]:
                    """Warm-up with one session, its memory and opens, then the N sessions (one event loop)."""
                    t0 = time.perf_counter()
                    warm = Session(-1, url, random.Random(seed), timeout)
                    await warm.tour()
                    warm_seconds = time.perf_counter() - t0
                    memory["rss_one"] = tree_memory_mib(proc.pid, "VmRSS")[0]
                    opens_warm.update({k: started[k] + v for k, v in counter.drain().items()})
                    await warm.client.close()
                    t1, cpu1 = time.perf_counter(), time.process_time()
                    phase = await _load_phase(url, proc.pid, sessions, seconds, think, seed, timeout, mix, tabs, linger,
                                              train_jobs)
                    load_seconds = time.perf_counter() - t1
                    memory["client_cpu_s"] = time.process_time() - cpu1
                    return warm, phase, warm_seconds, load_seconds

                warm, phase, warm_seconds, load_seconds = asyncio.run(drive())
                users = phase["users"]
                rss_one = memory["rss_one"]
                opens_load = counter.drain()
                peak, children = tree_memory_mib(proc.pid, "VmHWM")
                trained = {u.log.index: epochs_done(work / "cwd" / "runs" / f"class-{u.log.index}")
                           for u in users if getattr(u, "trains", False)}
                tracebacks = server_tracebacks(log)
                log_tail = log.read_text(errors="replace")[-3000:] if tracebacks else ""
            traced = server_trace.read(trace)  # complete: the server has stopped
        finally:
            counter.close()

    actions = [a for u in users for a in u.log.actions]
    action_errors = [f"session {a.session} {a.kind}: {e}" for a in actions for e in a.errors]
    session_errors = [e for u in users for e in u.log.errors]
    warm_errors = [f"warm-up {a.kind}: {e}" for a in warm.log.actions for e in a.errors] + warm.log.errors
    tab_errors = phase["tabs"]["errors"] + phase["tab_alone"]["errors"]
    errors = warm_errors + action_errors + session_errors + tab_errors + [f"server log: {t}" for t in tracebacks]
    sliders = [a for a in actions if a.kind == "slider"]
    rss_all, rss_after = phase["rss_all"], phase["rss_after_close"]
    samples = phase["samples"]
    default_layer = [a for a in sliders if a.detail == "default layer"]
    return {
        "streamlit": streamlit.__version__, "app": str(app), "runs_dir": str(runs_dir), "mix": mix, "nginx": nginx,
        "sessions": sessions, "seconds": seconds, "think_s": list(think), "seed": seed, "cpus": os.cpu_count(),
        "loadavg_1min_before": load_before,
        "warmup": {"seconds": warm_seconds, "actions": len(warm.log.actions), "errors": len(warm_errors)},
        "load_seconds": load_seconds, "client_cpu_s": memory["client_cpu_s"],
        "sessions_connected": sum(bool(u.log.actions) for u in users),
        "sessions_rendered": sum(u.log.rendered > 0 for u in users),
        "rendered_per_session": [u.log.rendered for u in users],
        "actions": len(actions), "errors": len(errors), "error_samples": errors[:20],
        "slider_moves_with_new_image": sum(bool(a.new_image) for a in sliders),
        "slider_default_layer": summarize(default_layer).get("slider", {}),
        "at_the_server": {"slider": at_the_server(sliders, traced),
                          "slider_default_layer": at_the_server(default_layer, traced)},
        "latency": summarize(actions),
        "open_assets": phase["assets"],
        "slowest": [{"kind": a.kind, "session": a.session, "ms": round(a.render_seconds * 1000),
                     "at_s": round(a.started - phase["t0"], 1)}
                    for a in sorted(actions, key=lambda a: -a.render_seconds)[:30]],
        "browser_tabs": {**tab_figures(phase["tabs"], traced), "alone": tab_figures(phase["tab_alone"], traced)},
        "memory": {"peak_vmhwm_mib": peak, "children": children, "rss_after_1_session_mib": rss_one,
                   "rss_with_all_sessions_mib": rss_all,
                   "rss_max_sampled_mib": max((m for _, m in samples), default=float("nan")),
                   "per_added_session_mib": (rss_all - rss_one) / max(sessions - 1, 1),
                   "linger_s": linger, "rss_after_close_mib": rss_after, "closed_at_s": phase["closed_at_s"],
                   "timeline": rss_timeline(samples)},
        "models": {"weights_mib": model_mib, "inotify": counter.available,
                   "checkpoint_opens_warmup": opens_warm, "checkpoint_opens_under_load": opens_load},
        "training": {"slots": TRAINING_SLOTS, "submitted": len(trained),
                     "replies": {i: u.train_reply for u in users if getattr(u, "trains", False)
                                 for i in [u.log.index]},
                     "epochs_done": trained,
                     "max_running": max((n for n, _ in phase["training"]), default=0),
                     "seconds_training": sum(n > 0 for n, _ in phase["training"]) * SAMPLE_S,
                     "max_rss_mib": max((m for _, m in phase["training"]), default=0.0)},
        "server_log_tail": log_tail,
    }


def epochs_done(run: Path) -> int:
    """Epochs a job run has logged in its history.jsonl (0 when it never started)."""
    try:
        return sum(1 for line in (run / "history.jsonl").read_text().splitlines() if line.strip())
    except OSError:
        return 0


def failures(report: dict) -> list[str]:
    """Why the run failed (empty: it passed): errors, sessions without rendered replies, models loaded
    again under load. The class's speed and memory targets are reported (`targets`), not failures:
    they depend on the machine."""
    out = []
    if report["errors"]:
        out.append(f"{report['errors']} error(s)")
    if report["sessions_rendered"] < report["sessions"]:
        out.append(f"only {report['sessions_rendered']} of {report['sessions']} sessions got rendered replies")
    train = report["training"]
    if train["max_running"] > train["slots"]:
        out.append(f"{train['max_running']} training jobs ran at once (at most {train['slots']})")
    reopened = {k: v for k, v in report["models"]["checkpoint_opens_under_load"].items() if v}
    if reopened:
        out.append(f"checkpoints opened again under load (a model loaded per session?): {reopened}")
    return out


def targets(report: dict) -> list[tuple[str, str, bool]]:
    """The class's targets (issue 19): (what, measured, met)."""
    lat, m = report["latency"], report["memory"]
    out = []
    for kind, limit in TARGETS_P95_MS.items():
        if kind in lat:
            p95 = lat[kind]["p95_render_ms"]
            out.append((f"{kind} p95 (with images) <= {limit} ms", f"{p95:.0f} ms", p95 <= limit))
    out.append((f"server RSS with all sessions <= {MEMORY_LIMIT_MIB} MiB", f"{m['rss_max_sampled_mib']:.0f} MiB",
                m["rss_max_sampled_mib"] <= MEMORY_LIMIT_MIB))
    if m["rss_after_close_mib"] is not None:
        ratio = m["rss_after_close_mib"] / m["rss_after_1_session_mib"] - 1
        out.append((f"RSS {m['linger_s']:.0f} s after all left within {RELEASED_WITHIN:.0%} of one session's",
                    f"{m['rss_after_close_mib']:.0f} MiB ({ratio:+.0%})", ratio <= RELEASED_WITHIN))
    tabs, sim = report["browser_tabs"], report["at_the_server"]["slider_default_layer"]
    if tabs["traced"] and sim["traced"]:
        # Like with like: the same stretch of the same moves (request in -> reply out, on the tabs' layer) timed
        # at the server. What a tab's page adds on top is the browser's own work (format_report's browser line).
        ratio = max(tabs["server_p50_ms"], sim["p50_ms"]) / max(min(tabs["server_p50_ms"], sim["p50_ms"]), 1e-9)
        out.append(("browser tabs' slider moves at the server p50 within 2x of the simulated clients' (same layer)",
                    f"{tabs['server_p50_ms']:.0f} ms vs {sim['p50_ms']:.0f} ms ({ratio:.1f}x)", ratio <= 2))
    train = report["training"]
    if train["submitted"]:
        out.append((f"at most {train['slots']} training job at a time, the rest queued",
                    f"{train['max_running']} at most; {train['submitted']} submitted",
                    train["max_running"] <= train["slots"]))
    out.append(("0 errors", str(report["errors"]), report["errors"] == 0))
    return out


def format_report(r: dict) -> str:
    m, lat = r["memory"], r["latency"]
    lo, hi = r["think_s"]
    lines = [f"load test ({r['mix']} mix): {r['sessions']} sessions x {r['seconds']:g} s, think time {lo:g}-{hi:g} s "
             f"per action, streamlit {r['streamlit']}" + (" behind nginx (deploy/nginx.py)" if r.get("nginx") else "")
             + f", runs {r['runs_dir']}",
             f"machine: {r['cpus']} CPUs, 1-min load average {r['loadavg_1min_before']:.1f} before the test "
             "(the client runs on the same CPUs)",
             f"warm-up (1 session, every page): {r['warmup']['actions']} actions in {r['warmup']['seconds']:.1f} s", "",
             f"{'action':<12}{'count':>7}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
             f"{'p50 +img ms':>13}{'p95 +img ms':>13}"]
    for kind, row in lat.items():
        lines.append(f"{kind:<12}{row['count']:>7}{row['errors']:>8}{row['p50_ms']:>9.0f}{row['p95_ms']:>9.0f}"
                     f"{row['max_ms']:>9.0f}{row['p50_render_ms']:>13.0f}{row['p95_render_ms']:>13.0f}")
    sliders = lat.get("slider", {}).get("count", 0)
    assets = r["open_assets"]
    lines += ["", f"open = the page's {assets['files']} static files (as {assets['from']} loads them, 6 at a time) "
                  "then the default page's run; reconnect = a reload in the same browser (files cached)",
              f"sessions: {r['sessions_connected']} connected, {r['sessions_rendered']} with rendered replies "
              f"(min {min(r['rendered_per_session'], default=0)} per session); actions: {r['actions']} "
              f"({r['actions'] / max(r['load_seconds'], 1e-9):.1f}/s); errors: {r['errors']}; "
              f"the load-test client itself used {r['client_cpu_s']:.0f} CPU-s in {r['load_seconds']:.0f} s",
              f"slider moves that changed the decoded image: {r['slider_moves_with_new_image']} of {sliders}",
              f"server memory (streamlit + {m['children']} children): peak VmHWM {m['peak_vmhwm_mib']:.0f} MiB; "
              f"RSS after 1 session {m['rss_after_1_session_mib']:.0f} MiB, with {r['sessions']} sessions "
              f"{m['rss_with_all_sessions_mib']:.0f} MiB ({m['per_added_session_mib']:+.2f} MiB per added session)"
              + (f"; {m['linger_s']:.0f} s after all left {m['rss_after_close_mib']:.0f} MiB"
                 if m["rss_after_close_mib"] is not None else ""),
              "RSS over time (max per 10 s; sessions closed at "
              f"{m['closed_at_s']:.0f} s): " + ", ".join(f"{t:.0f}s {v:.0f}" for t, v in m["timeline"])]
    tabs, at_server = r["browser_tabs"], r["at_the_server"]
    if tabs["tabs"]:
        alone, same = tabs["alone"], r["slider_default_layer"]
        lines += [f"browser tabs: {tabs['tabs']} headless Chromium tabs on Traverse (its default layer), "
                  f"{tabs['slider_moves']} slider moves, key press to the new image loaded in the page: p50 "
                  f"{tabs['p50_ms']:.0f} ms, p95 {tabs['p95_ms']:.0f} ms (simulated clients' moves on that layer, "
                  f"request to image downloaded: p50 {same.get('p50_render_ms', float('nan')):.0f} ms of "
                  f"{same.get('count', 0)}); errors {tabs['errors']}; Chromium used {tabs['cpu_s']:.0f} CPU-s of "
                  f"the {r['cpus']} CPUs' {r['cpus'] * r['load_seconds']:.0f}",
                  f"  at the server (request in -> reply out; {tabs['traced']} of the moves found in its trace): "
                  f"p50 {tabs['server_p50_ms']:.0f} ms, p95 {tabs['server_p95_ms']:.0f} ms; the simulated clients' "
                  f"moves on that layer p50 {at_server['slider_default_layer']['p50_ms']:.0f} ms, p95 "
                  f"{at_server['slider_default_layer']['p95_ms']:.0f} ms (on any layer p50 "
                  f"{at_server['slider']['p50_ms']:.0f} ms; {at_server['slider']['traced']} of "
                  f"{at_server['slider']['count']} found)",
                  f"  the browser's own share (in the page minus at the server, per move): p50 "
                  f"{tabs['own_p50_ms']:.0f} ms, p95 {tabs['own_p95_ms']:.0f} ms; one tab alone on the server before "
                  f"the load ({alone['slider_moves']} moves): in the page p50 {alone['p50_ms']:.0f} ms, at the server "
                  f"{alone['server_p50_ms']:.0f} ms, its own {alone['own_p50_ms']:.0f} ms"]
    train = r["training"]
    if train["submitted"]:
        said = "; ".join(f"student {i}: " + ("started" if text.startswith("Started") else
                                              f"queued, {text.split(': ', 1)[-1].split(';')[0]}"
                                              if text.startswith("Queued") else text)
                         for i, text in train["replies"].items())
        lines.append(f"training from the browser: {train['submitted']} jobs submitted ({said}); at most "
                     f"{train['max_running']} ran at once ({train['slots']} slot); a job trained for "
                     f"{train['seconds_training']:.0f} s of the load, epochs done: "
                     + ", ".join(f"class-{i} {n}" for i, n in train["epochs_done"].items())
                     + f"; training RSS at most {train['max_rss_mib']:.0f} MiB (not in the server's figures)")
    mods = r["models"]
    if mods["inotify"]:
        for name, mib in mods["weights_mib"].items():
            lines.append(f"model {name}: {mib:.2f} MiB of weights; checkpoint opened by the server "
                         f"{mods['checkpoint_opens_warmup'][name]}x during the warm-up, "
                         f"{mods['checkpoint_opens_under_load'][name]}x under load")
    else:
        lines.append("checkpoint opens: not measured (no inotify on this system)")
    if r["mix"] == "class":
        lines += ["", "targets:"] + [f"  [{'met' if ok else 'NOT MET'}] {what}: {got}" for what, got, ok in targets(r)]
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
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--class", dest="klass", action="store_true",
                      help="a class: 40 sessions x 120 s with every page's actions, 1-5 s apart, 3 Chromium tabs, "
                           "memory watched 60 s after they leave; the targets reported")
    mode.add_argument("--stress", action="store_true", help="the class's mix, 20 sessions x 60 s, 0-1 s apart")
    ap.add_argument("--sessions", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--runs-dir", type=Path, help="runs to serve (default: train the demo pair into a temp folder)")
    ap.add_argument("--think", type=float, help="mean pause after each action, s (0: saturation); default 0.5")
    ap.add_argument("--tabs", type=int, help="headless Chromium tabs moving Traverse sliders inside the load")
    ap.add_argument("--nginx", action="store_true", help="students reach the app through nginx serving the "
                                                         "frontend's files (deploy/nginx.py; needs nginx)")
    ap.add_argument("--train-jobs", type=int, help="students who first submit a training job (class mix; "
                                                  "--class: 3)")
    ap.add_argument("--timeout", type=float, default=60.0, help="longest wait for one action's reply, s")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the full report here")
    ap.add_argument("--app", type=Path, default=APP, help="the app to serve (default: this repo's app.py; "
                                                          "another copy to compare a change)")
    args = ap.parse_args(argv)
    preset = CLASS if args.klass else STRESS if args.stress else \
        {"sessions": 20, "seconds": 60.0, "think": (0.0, 1.0), "tabs": 0, "linger": 0.0, "train_jobs": 0}
    sessions = args.sessions if args.sessions is not None else preset["sessions"]
    seconds = args.seconds if args.seconds is not None else preset["seconds"]
    think = (0.0, 2 * args.think) if args.think is not None else preset["think"]
    tabs = args.tabs if args.tabs is not None else preset["tabs"]
    train_jobs = args.train_jobs if args.train_jobs is not None else preset["train_jobs"]
    if not 1 <= sessions <= 200 or not 0 < seconds <= 3600:
        ap.error("--sessions must be 1..200 and --seconds 0..3600")
    if think[1] < 0 or args.timeout <= 0 or not 0 <= tabs <= 10 or not 0 <= train_jobs <= sessions:
        ap.error("--think must be >= 0, --timeout > 0, --tabs 0..10 and --train-jobs 0..sessions")
    if not args.app.is_file():
        ap.error(f"--app {args.app} is not a file")

    signal.signal(signal.SIGTERM, _interrupt)
    with tempfile.TemporaryDirectory(prefix="lvae-load-runs-") as tmp:
        runs = args.runs_dir
        if runs is None and (args.klass or args.stress):
            runs = ROOT / "pretrained"  # the shipped MNIST pair, as a class would open it
        elif runs is None:
            runs = Path(tmp) / "runs"
            train_demo(runs)
        elif not runs.is_dir():
            ap.error(f"--runs-dir {runs} is not a folder")
        report = run_load(runs, sessions, seconds, think, args.seed, args.timeout, app=args.app,
                          mix="class" if args.klass or args.stress else "traverse", tabs=tabs,
                          linger=preset["linger"], train_jobs=train_jobs, nginx=args.nginx)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 1 if failures(report) else 0


if __name__ == "__main__":
    sys.exit(main())
