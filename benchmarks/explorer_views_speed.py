"""Speed of the explorer's analysis views (issue 18) on the shipped MNIST pair, against the issue's targets.

    python benchmarks/explorer_views_speed.py [--browser] [--repeats 20]

- neighbours of one selected point in all 5 layers of 10,000 points (target < 20 ms): the shipped LVAE's
  codes of MNIST's 10,000 test images when ../shared/data/mnist exists, else its 1,000 shipped points
  repeated 10 times with a little noise (the output says which);
- linked selection of 1,000 points across 10 plots (both runs x 5 layers): the two grid figures recoloured
  from their cached selection-free versions and serialized as Streamlit sends them (the server's way,
  still used when the selection changes by anything but a drag); with --browser, in headless Chromium, a
  real box drag: mouse-up to both charts recoloured on screen by the page's linker (target < 0.3 s), and
  to the server's selection strip, with a count of the chart redraws the server's rerun caused (0 expected);
- the first UMAP of one layer of 5,000 points, in a fresh process (numba's compilation included), then
  the second (reported; no target);
- cached views (target < 0.2 s): a rerun of the Layers, Paths and Compare (information and neighbourhoods
  shown) pages with everything cached, through streamlit.testing's AppTest (script time, no browser).
Prints one table; asserts nothing (timings depend on the machine).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import plotly.io  # noqa: E402
import torch  # noqa: E402

from benchmarks.explorer_speed import timed  # noqa: E402
from explorer.encode import encode, layer_pca, test_points  # noqa: E402
from explorer.figures import layer_scatter_grid, with_selection  # noqa: E402
from explorer.neighbours import LayerIndex  # noqa: E402
from explorer.runs import load_model  # noqa: E402

PRETRAINED = ROOT / "pretrained"
PAIR = ("mnist-vae-bn-wu", "mnist-lvae-bn-wu")
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"


def median_ms(fn, repeats: int) -> tuple[float, float]:
    """(median, max) milliseconds of `repeats` calls after a warm-up call."""
    med, worst = timed(fn, repeats)
    return 1000 * med, 1000 * worst


def neighbours_row(repeats: int) -> tuple[str, float, float, str]:
    model = load_model(PRETRAINED / PAIR[1], "cpu")[0]
    if MNIST_DIR.exists():
        pts = test_points(model.cfg, PRETRAINED / PAIR[1], 10_000, data_dir=str(MNIST_DIR))
        codes, what = encode(model, pts.images).means, f"MNIST's {len(pts.labels)} test images"
    else:
        pts = test_points(model.cfg, PRETRAINED / PAIR[1], 1000)
        rng = np.random.default_rng(0)
        codes = [np.concatenate([z + 1e-3 * rng.standard_normal(z.shape).astype(np.float32) for _ in range(10)])
                 for z in encode(model, pts.images).means]
        what = "the 1,000 shipped points x 10 (MNIST files not found)"
    indexes = [LayerIndex(z) for z in codes]
    point = [1234]
    med, worst = median_ms(lambda: [ix.neighbours(point, 8) for ix in indexes], repeats)
    return "neighbours of one point, 5 layers", med, worst, f"{len(codes[0])} points: {what}; target < 20 ms"


def selection_row(repeats: int) -> tuple[str, float, float, str]:
    figs_in = []
    for name in PAIR:
        model = load_model(PRETRAINED / name, "cpu")[0]
        pts = test_points(model.cfg, PRETRAINED / name, 1000)
        enc = encode(model, pts.images)
        figs_in.append(([layer_pca(z) for z in enc.means], pts.labels))
    selected = np.arange(0, 1000, 3)
    # As the Layers page does: each run's grid without a selection is built once (cached), a selection
    # recolours a copy (with_selection); Streamlit then turns the figure into a dict and JSON.
    bases = [layer_scatter_grid(pcas, labels, highlight=0) for pcas, labels in figs_in]

    def select() -> None:
        for base in bases:
            fig = with_selection(base, selected)
            plotly.io.to_json(fig.to_dict(), validate=False)
    med, worst = median_ms(select, repeats)
    return "linked selection: 2 figures x 5 layers recoloured + serialized", med, worst, \
        f"1,000 points, {len(selected)} selected (server side; the grids without selection cached)"


def browser_selection_rows(repeats: int) -> list[tuple[str, float, float, str]]:
    """A real mouse drag on the shipped pair's Layers grid with a linked run: mouse-up to both charts
    recoloured on screen (measured in the page: the linker's next animation frame after it recoloured),
    and to the selection strip the server sends; also checks that the server's rerun redraws no chart."""
    from benchmarks.load_test import streamlit_server
    from playwright.sync_api import sync_playwright
    args = ["--no-sandbox", "--headless=new", "--disable-gpu", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"]
    strip_count = "() => (document.body.innerText.match(/Selection: (\\d+) of/) || [])[1] || ''"
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "none"
        empty.mkdir()
        with streamlit_server(empty, Path(tmp), env_changes={"LVAE_PRETRAINED_DIR": None}) as (url, _, _), \
                sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/layers", timeout=60_000)
            page.get_by_text("Link a second run").click()
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=60_000)
            page.wait_for_timeout(2000)
            page.evaluate("""() => { window.__replots = 0; [...document.querySelectorAll('.js-plotly-plot')]
                .forEach(p => p.on('plotly_afterplot', () => window.__replots++)); }""")
            painted, strip, replots = [], [], 0
            for i in range(repeats + 1):
                box = page.locator(".js-plotly-plot").first.locator(".nsewdrag").first.bounding_box()
                # two boxes that do not hold each other's start: a drag starting inside the last box would move it
                f0, f1 = (0.05, 0.45) if i % 2 else (0.55, 0.95)
                page.mouse.move(box["x"] + box["width"] * f0, box["y"] + box["height"] * f0)
                page.mouse.down()
                page.mouse.move(box["x"] + box["width"] * f1, box["y"] + box["height"] * f1, steps=5)
                before = page.evaluate(strip_count)
                page.evaluate("() => { window.__lvaeLinkedPaintedAt = 0; window.__replots = 0; "
                              "window.__up = performance.now(); }")
                t0 = time.perf_counter()
                page.mouse.up()
                page.wait_for_function("() => window.__lvaeLinkedPaintedAt > 0", timeout=30_000)
                page.wait_for_function(f"() => ({strip_count})() !== {before!r}", timeout=60_000)
                t_strip = time.perf_counter() - t0
                page.wait_for_timeout(1000)  # a late redraw of either chart would show here
                if i:
                    painted.append(page.evaluate("() => (window.__lvaeLinkedPaintedAt - window.__up) / 1000"))
                    strip.append(t_strip)
                    replots += page.evaluate("() => window.__replots")
            browser.close()
    note = "1,000 points, 2 runs x 5 layers; target < 300 ms"
    return [("linked selection in Chromium: mouse-up to both charts recoloured on screen",
             1000 * statistics.median(painted), 1000 * max(painted), note + "; in the page, no server round trip"),
            ("... mouse-up to the server's selection strip shown", 1000 * statistics.median(strip),
             1000 * max(strip), f"charts redrawn by the server's rerun: {replots} in {len(strip)} selections")]


UMAP_CODE = """
import sys, time, numpy as np
sys.path.insert(0, {root!r})
from explorer.projections import project
z = np.load({path!r})
t = time.perf_counter(); project(z, "UMAP"); first = time.perf_counter() - t
t = time.perf_counter(); project(z, "UMAP"); second = time.perf_counter() - t
print(first, second)
"""


def umap_rows() -> list[tuple[str, float, float, str]]:
    model = load_model(PRETRAINED / PAIR[1], "cpu")[0]
    if MNIST_DIR.exists():
        pts = test_points(model.cfg, PRETRAINED / PAIR[1], 5000, data_dir=str(MNIST_DIR))
        what = "z1 of 5,000 MNIST test images"
    else:
        pts = test_points(model.cfg, PRETRAINED / PAIR[1], 1000)
        what = "z1 of the 1,000 shipped points (MNIST files not found)"
    z = encode(model, pts.images).means[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "z.npy")
        np.save(path, z)
        out = subprocess.run([sys.executable, "-c", UMAP_CODE.format(root=str(ROOT), path=path)],
                             capture_output=True, text=True, check=True).stdout.split()
    first, second = float(out[-2]), float(out[-1])
    return [("first UMAP of one layer (fresh process)", 1000 * first, 1000 * first, what + "; numba's JIT included"),
            ("second UMAP, same process", 1000 * second, 1000 * second, what)]


def cached_rows(repeats: int) -> list[tuple[str, float, float, str]]:
    os.environ["LVAE_PRETRAINED_DIR"] = str(PRETRAINED)
    os.environ["LVAE_RUNS_DIR"] = str(Path(tempfile.mkdtemp()) / "none")
    os.chdir(tempfile.mkdtemp())
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()
    at.toggle(key="compare_info").set_value(True).run()
    at.toggle(key="compare_neighbours").set_value(True).run()
    rows = [("Compare page rerun, information + neighbourhoods shown", *median_ms(at.run, repeats), "AppTest, cached")]
    for page in ("layers", "paths"):
        at.switch_page(f"app_pages/{page}.py").run()
        rows.append((f"{page.capitalize()} page rerun", *median_ms(at.run, repeats), "AppTest, cached"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--browser", action="store_true", help="also time the linked selection in headless Chromium")
    args = ap.parse_args()
    torch.set_num_threads(1)  # as the app serves (explorer.encode.THREADS)
    rows = [neighbours_row(args.repeats), selection_row(args.repeats)]
    if args.browser:
        rows += browser_selection_rows(min(args.repeats, 10))
    rows += umap_rows()
    rows += cached_rows(min(args.repeats, 10))
    print(f"{'what':62} {'median':>9} {'max':>9}  notes")
    for what, med, worst, note in rows:
        print(f"{what:62} {med:7.1f}ms {worst:7.1f}ms  {note}")


if __name__ == "__main__":
    main()
