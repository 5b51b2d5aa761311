"""Many users at once, short: a class of 5 websocket sessions for 10 s against `streamlit run app.py` on the
fixture runs.

The full benchmark (40 students x 120 s on the shipped MNIST pair, with real browser tabs) is
`python benchmarks/load_test.py --class`; this runs the same code briefly with the class's mix of actions
(Traverse sliders and layers, a Layers box selection, neighbours or a picked point, Samples' temperature,
other pages; two students submit a training job first: one trains, the other waits) and asserts only what must
hold on any machine: no errors, every session got rendered replies, never more than one training job at a time,
and no checkpoint was read again while the sessions ran (the model is loaded once per server process).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import load_test as lt


@pytest.mark.slow
def test_a_short_class_gets_rendered_replies_without_errors(runs_dir, tmp_path):
    report = lt.run_load(runs_dir, sessions=5, seconds=10, think=(0.1, 0.5), seed=1, timeout=30, workdir=tmp_path,
                         mix="class", train_jobs=2)
    print(lt.format_report(report))

    assert report["errors"] == 0, report["error_samples"]
    assert report["sessions_rendered"] == 5
    assert min(report["rendered_per_session"]) >= 2  # at least: open the app, then Traverse
    lat = report["latency"]
    assert lat["open"]["count"] == 5 and lat["page"]["count"] >= 5 and lat["slider"]["count"] > 0
    assert lat["all"]["count"] == report["actions"] == sum(report["rendered_per_session"])
    # server_trace.py saw every slider move, and the server's share is part of what the client measured
    server = report["at_the_server"]["slider"]
    assert server["traced"] == lat["slider"]["count"] and 0 < server["p50_ms"] <= lat["slider"]["p95_ms"]

    mem = report["memory"]
    assert mem["peak_vmhwm_mib"] >= mem["rss_after_1_session_mib"] > 50  # a torch + streamlit process
    models = report["models"]
    assert set(models["weights_mib"]) == {"tiny-lvae", "tiny-vae"}  # the broken fixture run has no checkpoint
    if models["inotify"]:
        assert sum(models["checkpoint_opens_warmup"].values()) >= 1      # the watch does see the server's reads
        assert not any(models["checkpoint_opens_under_load"].values())   # ... and none per session
    train = report["training"]
    replies = list(train["replies"].values())
    assert train["submitted"] == 2 and replies[0].startswith("Started **class-0**"), replies
    assert replies[1].startswith("Queued **class-1**") and "next in line" in replies[1], replies
    # One training process the whole time (at idle priority it may not finish an epoch on a busy machine);
    # the queued one never started.
    assert train["max_running"] == 1 and train["seconds_training"] > 0 and train["epochs_done"][1] == 0
    assert lt.failures(report) == []


NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.path.exists(p)), None)


@pytest.mark.slow
@pytest.mark.skipif(NGINX is None, reason="no nginx (Debian: apt-get install nginx-light; .ci/run installs it)")
def test_a_short_class_through_nginx_gets_its_static_files_from_nginx(runs_dir, tmp_path):
    """deploy/nginx.py's front: the students' static files (HTTP 200 each, or the open fails) and websocket
    runs go through it."""
    report = lt.run_load(runs_dir, sessions=3, seconds=6, think=(0.1, 0.5), seed=2, timeout=30, workdir=tmp_path,
                         mix="class", nginx=True)
    print(lt.format_report(report))
    assert report["nginx"] and report["errors"] == 0, report["error_samples"]
    assert report["open_assets"]["files"] > 10 and report["latency"]["open"]["count"] == 3
    assert report["sessions_rendered"] == 3 and lt.failures(report) == []


def test_the_nginx_config_serves_streamlits_files_and_passes_the_rest(tmp_path):
    sys.path.insert(0, str(Path(lt.ROOT) / "deploy"))
    import nginx
    conf = nginx.standalone_conf("127.0.0.1:8080", "127.0.0.1:8501", tmp_path)
    assert f"alias {nginx.STATIC}/;" in conf and (nginx.STATIC / "js").is_dir()
    assert "proxy_pass http://127.0.0.1:8501;" in conf and "Upgrade $http_upgrade" in conf
    assert "listen 0.0.0.0:80;" in nginx.server_block("0.0.0.0:80", "127.0.0.1:8501")
    if NGINX is not None:
        (tmp_path / "nginx.conf").write_text(conf)
        r = subprocess.run([NGINX, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_the_server_trace_pairs_requests_with_their_finish_and_finds_each_tabs_moves(tmp_path):
    from benchmarks import server_trace as tr
    (tmp_path / "t.log").write_text("\n".join([
        "1.0 connect c client", "1.0 connect b1 browser", "1.0 connect b2 browser",
        "2.00 request c -", "2.50 finished c 0",                         # a page run
        "3.00 request c f1", "3.10 request c f1", "3.12 finished c 2",   # cut short by the next request...
        "3.30 finished c 3",                                             # ... which this answers
        "4.00 request c f1", "4.01 request c f1", "4.20 finished c 3",   # merged into one run: the latest
        "5.00 request b1 f9", "5.04 request b2 f9", "5.05 finished b1 3", "5.10 finished b2 3",
        "6.00 request b2 f9", "6.03 finished b2 3", "6.10 request b1 f9", "6.13 finished b1 3",
        "7.50 request b2 f9", "7.52 finished b2 3",
        "8.00 request b1 f9",                                            # never answered: the server stopped
    ]) + "\n")
    sessions = tr.read(tmp_path / "t.log")
    c = sessions["c"]
    assert not c.browser and sessions["b1"].browser
    assert [(r.requested, r.fragment, r.status) for r in c.reruns] == [(2.0, "", 0), (3.1, "f1", 3), (4.01, "f1", 3)]
    assert round(c.reruns[1].seconds, 3) == 0.2
    assert tr.rerun_of(c, 3.05, 0.3).requested == 3.1 and tr.rerun_of(c, 4.5, 1.0) is None
    assert tr.rerun_of(None, 0.0, 1.0) is None
    # Tab 0 is b1, tab 1 is b2 (most of its moves say so): at t=5 both moved at once and each move is found as its
    # own tab's; a move the server never answered is not found.
    moves = [(0, 0.08, 4.99), (1, 0.08, 5.0), (1, 0.05, 5.99), (0, 0.05, 6.09), (1, 0.03, 7.49), (0, 0.1, 7.99)]
    found = tr.browser_moves(sessions, moves)
    assert [(r.requested, round(r.seconds, 2)) if r else None for r in found] == \
        [(5.0, 0.05), (5.04, 0.06), (6.0, 0.03), (6.1, 0.03), (7.5, 0.02), None]


@pytest.mark.skipif(not (shutil.which("chromium") or os.path.exists("/usr/bin/chromium")) or not shutil.which("chrt"),
                    reason="no chromium or chrt")
def test_the_load_tests_chromium_runs_at_idle_priority():
    """Its tabs take only the CPU the server leaves (a class's browsers run on the students' machines)."""
    import asyncio

    from benchmarks import classroom

    async def policies() -> dict[int, int]:
        async with classroom.chromium() as browser:
            page = await browser.new_page()  # a renderer too
            await page.set_content("<p>hi</p>")
            found = {}
            for pid in classroom._chromium_cpu():
                try:
                    found[pid] = os.sched_getscheduler(pid)
                except ProcessLookupError:  # a helper process that has exited since
                    pass
            await page.close()
            return found

    found = asyncio.run(policies())
    assert len(found) >= 2 and set(found.values()) == {os.SCHED_IDLE}, found
