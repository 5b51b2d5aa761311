"""Many users at once, short: a class of 5 websocket sessions for 10 s against `streamlit run app.py` on the
fixture runs.

The full benchmark (40 students x 120 s on the shipped MNIST pair, with real browser tabs) is
`python benchmarks/load_test.py --class`; this runs the same code briefly with the class's mix of actions
(Traverse sliders and layers, a Layers box selection, neighbours or a picked point, Samples' temperature,
other pages) and asserts only what must hold on any machine: no errors, every session got rendered replies,
and no checkpoint was read again while the sessions ran (the model is loaded once per server process).
"""
from __future__ import annotations

import pytest

from benchmarks import load_test as lt


@pytest.mark.slow
def test_a_short_class_gets_rendered_replies_without_errors(runs_dir, tmp_path):
    report = lt.run_load(runs_dir, sessions=5, seconds=10, think=(0.1, 0.5), seed=1, timeout=30, workdir=tmp_path,
                         mix="class")
    print(lt.format_report(report))

    assert report["errors"] == 0, report["error_samples"]
    assert report["sessions_rendered"] == 5
    assert min(report["rendered_per_session"]) >= 2  # at least: open the app, then Traverse
    lat = report["latency"]
    assert lat["open"]["count"] == 5 and lat["page"]["count"] >= 5 and lat["slider"]["count"] > 0
    assert lat["all"]["count"] == report["actions"] == sum(report["rendered_per_session"])

    mem = report["memory"]
    assert mem["peak_vmhwm_mib"] >= mem["rss_after_1_session_mib"] > 50  # a torch + streamlit process
    models = report["models"]
    assert set(models["weights_mib"]) == {"tiny-lvae", "tiny-vae"}  # the broken fixture run has no checkpoint
    if models["inotify"]:
        assert sum(models["checkpoint_opens_warmup"].values()) >= 1      # the watch does see the server's reads
        assert not any(models["checkpoint_opens_under_load"].values())   # ... and none per session
    assert lt.failures(report) == []
