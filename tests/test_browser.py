"""End to end in a real headless Chromium: `streamlit run app.py`, open Traverse, move a slider, see the image change.

Uses Debian's chromium (apt-get install chromium chromium-driver) driven by
Playwright's Python client; no browser is ever downloaded. Skipped only when
chromium or playwright is not installed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.load_test import streamlit_server

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--use-gl=swiftshader",
                 "--enable-unsafe-swiftshader", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _browser_missing() -> str | None:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return "chromium is not installed (apt-get install chromium chromium-driver)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; never `playwright install`)"
    return None


@pytest.fixture
def server(runs_dir, tmp_path):
    """The app on a free localhost port, pointed at the fixture runs, from an empty working folder."""
    yield from _serve(runs_dir, tmp_path)


def _serve(runs: Path, tmp_path: Path, env_changes: dict | None = None):
    """A fixture's body: skip without a browser, else yield the URL of the app on `runs` until the test ends."""
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    with streamlit_server(runs, tmp_path, env_changes=env_changes) as (url, _, _):
        yield url


@contextmanager
def _browser_page(width: int = 1400, height: int = 1000):
    """A page of headless Debian Chromium at this viewport (Playwright drives it; it never downloads a browser)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                    args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


@pytest.fixture
def page(server):
    with _browser_page() as page:
        yield page


def test_traverse_slider_in_a_real_browser(server, page, tmp_path):
    shot = tmp_path / "traverse.png"
    page.goto(f"{server}/traverse", timeout=60_000)
    decoded = page.locator('[data-testid="stImage"]').filter(has_text="decoded").locator("img")
    decoded.wait_for(timeout=60_000)
    before = decoded.get_attribute("src")
    thumb = page.get_by_role("slider").first
    thumb.wait_for(timeout=30_000)
    assert float(thumb.input_value()) == 0.0  # a visually hidden <input type=range> per thumb
    thumb.focus()
    for _ in range(4):
        thumb.press("ArrowRight")  # 4 steps of 0.25 sd: PC1 = +1 sd
    deadline = time.time() + 30
    while decoded.get_attribute("src") == before and time.time() < deadline:
        time.sleep(0.2)
    after = decoded.get_attribute("src")
    assert after and after != before, "the decoded image did not change after moving the slider"
    assert float(thumb.input_value()) == pytest.approx(1.0)
    # The new picture is served and drawn (not a broken image).
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=decoded.element_handle(),
                           timeout=30_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000


def test_layers_hover_shows_the_image_in_a_real_browser(server, page, tmp_path):
    """Issue #3: tick "Show images on hover", put the mouse on a point inside the frame, see its image."""
    shot = tmp_path / "layers-hover.png"
    page.goto(f"{server}/layers", timeout=60_000)
    page.get_by_text("Show images on hover").click(timeout=60_000)
    iframe = page.locator('iframe[title^="PCA of every latent layer"]')
    iframe.wait_for(timeout=60_000)
    frame = iframe.element_handle().content_frame()
    frame.wait_for_selector("#lvae-hover-plot .main-svg", timeout=30_000)
    image = frame.locator("#hover-image")
    assert not image.get_attribute("src")
    # Where the first plotted point of z1 is, in the frame's pixels (plotly's own axis mapping).
    target = frame.evaluate("""() => {
        const gd = document.getElementById("lvae-hover-plot");
        const t = gd._fullData[0], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        return {x: xa._offset + xa.l2p(t.x[0]), y: ya._offset + ya.l2p(t.y[0])};
    }""")
    box = iframe.bounding_box()
    src = None
    for dx, dy in [(0, 0), (1, 0), (0, 1), (-1, 0), (0, -1), (2, 2)]:  # a real mouse, nudged if needed
        page.mouse.move(box["x"] + target["x"] - 30, box["y"] + target["y"] - 30)
        page.mouse.move(box["x"] + target["x"] + dx, box["y"] + target["y"] + dy, steps=5)
        deadline = time.time() + 3
        while not (src := image.get_attribute("src")) and time.time() < deadline:
            time.sleep(0.1)
        if src:
            break
    assert src and src.startswith("data:image/png;base64,"), "hovering a point showed no image"
    assert frame.locator("#hover-caption").inner_text().startswith("test image ")  # its test-set position
    frame.wait_for_function("() => document.getElementById('hover-image').naturalWidth > 0", timeout=10_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000


def test_compare_follows_a_run_training_from_the_train_page(server, page, tmp_path):
    """Start a run on "Train a model", open Compare on it while it trains: its numbers move on by themselves."""
    runs = tmp_path / "cwd" / "runs"  # the server's working folder: where the form trains
    page.goto(f"{server}/train", timeout=60_000)
    # Named like the demo's LVAE, so Compare picks it as run B by itself.
    page.get_by_role("textbox", name="Run name").fill("digits-lvae-bn-wu")
    page.get_by_role("spinbutton", name="Epochs", exact=True).fill("120")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Started digits-lvae-bn-wu").wait_for(timeout=60_000)
    deadline = time.time() + 60
    while not (runs / "digits-lvae-bn-wu" / "checkpoint.safetensors").is_file() and time.time() < deadline:
        time.sleep(0.2)
    page.goto(server, timeout=60_000)
    page.get_by_text("digits-lvae-bn-wu").first.wait_for(timeout=60_000)
    elbo = page.locator('[data-testid="stMetric"]').filter(has_text="Test ELBO").nth(1).locator(
        '[data-testid="stMetricValue"]')
    elbo.wait_for(timeout=30_000)
    first = elbo.inner_text()
    deadline = time.time() + 60
    while elbo.inner_text() == first and time.time() < deadline:  # no click, no key: the page refreshes itself
        time.sleep(0.3)
    assert elbo.inner_text() != first, "Compare stayed at the first checkpoint while the run trained"
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(tmp_path / "compare-follows.png"))


# ---- the shipped MNIST pair, every page ------------------------------------------------------------

SCREENSHOTS = Path(__file__).resolve().parent.parent / "results" / "tmp" / "screenshots"  # git-ignored


@pytest.fixture
def shipped_server(tmp_path):
    """The app as a fresh clone starts it: the pretrained/ pair only (no runs, no MNIST files at hand)."""
    empty = tmp_path / "no-runs"
    empty.mkdir()
    yield from _serve(empty, tmp_path, env_changes={"LVAE_PRETRAINED_DIR": None})


def _charts_drawn(page, at_least: int) -> None:
    page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {at_least}",
                           timeout=60_000)


def _images_drawn(page) -> None:
    page.wait_for_function("""() => { const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
        return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }""", timeout=60_000)


def _slide(thumb, steps: int, image, message: str) -> None:
    """Press ArrowRight `steps` times on a slider thumb and wait until the image's URL changes."""
    before = image.get_attribute("src")
    thumb.focus()
    for _ in range(steps):
        thumb.press("ArrowRight")
    deadline = time.time() + 30
    while image.get_attribute("src") == before and time.time() < deadline:
        time.sleep(0.2)
    assert image.get_attribute("src") != before, message


def _decoded_follows_the_slider(page, message: str) -> None:
    """On Traverse: four steps of the first slider change the decoded image; then every image is drawn."""
    decoded = page.locator('[data-testid="stImage"]').filter(has_text="decoded").locator("img")
    decoded.wait_for(timeout=60_000)
    _slide(page.get_by_role("slider").first, 4, decoded, message)
    _images_drawn(page)


# Per subplot of the first two charts, the rows (customdata) plotly draws selected, as one sorted string.
LINKED_ROWS = """() => [...document.querySelectorAll('.js-plotly-plot')].slice(0, 2).flatMap(gd => {
    const by = {};
    for (const t of gd._fullData || []) {
        if (!t.customdata || t.name === 'selected point') continue;
        const rows = by[t.xaxis] = by[t.xaxis] || [];
        for (const j of t.selectedpoints || []) { const c = t.customdata[j]; rows.push(typeof c === 'number' ? c : c[0]); }
    }
    return Object.values(by).map(r => r.sort((a, b) => a - b).join(','));
})"""


def _box_select(page, chart: int = 0, subplot: int = 0, corners=(0.2, 0.7), shift: bool = False) -> None:
    """Drag a box over a subplot (default: z1) of a chart: plotly's box selection; with Shift held if asked."""
    plot = page.locator(".js-plotly-plot").nth(chart)
    plot.scroll_into_view_if_needed()
    box = plot.locator(".nsewdrag").nth(subplot).bounding_box()
    if shift:
        page.keyboard.down("Shift")
    page.mouse.move(box["x"] + box["width"] * corners[0], box["y"] + box["height"] * corners[0])
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=8)
    page.mouse.move(box["x"] + box["width"] * corners[1], box["y"] + box["height"] * corners[1], steps=8)
    page.mouse.up()
    if shift:
        page.keyboard.up("Shift")


def _selection_everywhere(page, charts: int, count: int | None = None) -> int:
    """Wait until every subplot of the first `charts` grids colours the same points, and the server's strip
    says that many (none: no strip); returns the count."""
    page.wait_for_function(f"""() => {{ const r = ({LINKED_ROWS})().slice(0, {5 * charts});
        return r.length === {5 * charts} && r.every(x => x === r[0]) && ({count} === null || (r[0] ? r[0].split(',').length : 0) === {count}); }}""".replace("None", "null"), timeout=60_000)
    rows = page.evaluate(LINKED_ROWS)[0]
    n = len(rows.split(",")) if rows else 0
    strip = page.get_by_text("Selection:")
    if n:
        page.wait_for_function(f"() => [...document.querySelectorAll('p')].some(p => p.innerText.startsWith('Selection: {n} of'))",
                               timeout=60_000)
    else:
        page.wait_for_function("() => ![...document.querySelectorAll('p')].some(p => p.innerText.startsWith('Selection:'))",
                               timeout=60_000)
        assert strip.count() == 0
    return n


# A projector at 1280x720 and a laptop at 1440x900 (issue 27): every page is shot at both, and looked at.
SCREENS = ((1280, 720), (1440, 900))


def _shot(page, name: str, focus=None) -> Path:
    """Screenshots at both SCREENS; `focus` (a locator) is scrolled into view again at each size."""
    assert page.locator('[data-testid="stException"]').count() == 0, f"{name}: an exception is shown"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    first = page.viewport_size
    paths = []
    for width, height in SCREENS:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(800)  # plotly and Streamlit lay the page out again for the new width
        if focus is not None:
            focus.scroll_into_view_if_needed()
            page.wait_for_timeout(200)
        path = SCREENSHOTS / f"mnist-{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        assert path.stat().st_size > 10_000
        paths.append(path)
    page.set_viewport_size(first)
    return paths[0]


def test_every_page_on_the_shipped_mnist_pair_in_a_real_browser(shipped_server, tmp_path):
    with _browser_page(1400, 1000) as page:
        # Nothing the app shows may need the network (issue 27, item 5: the tab icon came from a font server).
        elsewhere: list[str] = []
        page.on("request", lambda r: None if r.url.startswith((shipped_server, "data:", "blob:"))
                else elsewhere.append(r.url))
        page.goto(shipped_server, timeout=60_000)
        # Streamlit's static page says "Streamlit"; st.set_page_config, the script's first command,
        # renames the tab before any import or chart (index.html itself is the installed package's).
        page.wait_for_function("() => document.title === 'LVAE explorer'", timeout=30_000)
        _charts_drawn(page, 2)
        body = page.locator("body").inner_text()
        assert "mnist-lvae-bn-wu" in body and "mnist-vae-bn-wu" in body and "-82.12" in body
        _shot(page, "compare")
        # Information per layer: rate beside distortion, MI, each unit's activity against its own KL.
        page.get_by_text("Information per layer: rate").click()
        page.locator(".gtitle").filter(has_text="Mutual information").wait_for(timeout=120_000)
        page.locator(".gtitle").filter(has_text="its own KL").wait_for(timeout=60_000)
        page.get_by_text("only through the layer above (KL").wait_for(timeout=60_000)
        _shot(page, "compare-information", page.locator(".gtitle").filter(has_text="Mutual information"))
        page.get_by_text("Neighbourhoods per layer").click()
        page.get_by_text("Where do neighbourhoods change most?").wait_for(timeout=120_000)
        _images_drawn(page)
        _shot(page, "compare-neighbourhoods", page.get_by_text("Where do neighbourhoods change most?"))

        page.goto(f"{shipped_server}/layers", timeout=60_000)
        _charts_drawn(page, 1)
        _images_drawn(page)
        _shot(page, "layers")
        # Downloads are made on click (deferred callables): the codes of the 1,000 points, every layer.
        with page.expect_download(timeout=60_000) as download:
            page.get_by_role("button", name="Codes (CSV)").click()
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[0] == "run,selection,point,class,layer,unit,mean,variance"
        assert len(lines) == 1 + 1000 * (64 + 32 + 16 + 8 + 4)
        page.get_by_text("Nearest neighbours of the point in every layer").click()
        page.get_by_text("z5: label agreement").wait_for(timeout=60_000)
        _images_drawn(page)
        _shot(page, "layers-neighbours", page.get_by_text("z1: label agreement").first)
        # A box drawn in z1 selects points in every layer, and in the linked second run.
        page.get_by_text("Link a second run").click()
        _charts_drawn(page, 3)
        _box_select(page)
        page.get_by_text("Selection:").wait_for(timeout=60_000)
        page.locator(".gtitle").filter(has_text="the same points").wait_for(timeout=60_000)
        # Linked in the browser: every subplot of both runs' grids colours the same test points.
        page.wait_for_function(f"() => {{ const r = ({LINKED_ROWS})(); return r.length === 10 && "
                               "r.every(x => x.length && x === r[0]); }", timeout=60_000)
        linked_rows = page.evaluate(LINKED_ROWS)[0].split(",")
        shown = page.get_by_text("Selection:").first.inner_text()
        assert f"Selection: {len(linked_rows)} of" in shown, (shown, len(linked_rows))
        _images_drawn(page)
        _shot(page, "layers-selection", page.locator(".gtitle").filter(has_text="the same points"))
        page.get_by_text("Link a second run").click()
        # UMAP of every layer: computed on first use (numba compiles), a progress bar meanwhile.
        page.get_by_text("UMAP", exact=True).click()
        page.locator(".gtitle").filter(has_text="(UMAP)").wait_for(timeout=240_000)
        _shot(page, "layers-umap")

        page.goto(f"{shipped_server}/traverse", timeout=60_000)
        _decoded_follows_the_slider(page, "the decoded image did not follow the slider")
        _shot(page, "traverse")

        page.goto(f"{shipped_server}/paths", timeout=60_000)
        page.get_by_text("all layers: A → B").wait_for(timeout=60_000)
        _images_drawn(page)
        with page.expect_download(timeout=60_000) as download:
            page.get_by_role("button", name="Path (GIF)").click()
        assert Path(download.value.path()).read_bytes()[:6] in (b"GIF87a", b"GIF89a")
        walked = page.locator('[data-testid="stImage"]').filter(has_text="decoded at t").locator("img")
        _slide(page.get_by_role("slider").last, 10, walked, "the direction's image did not follow the slider")
        _images_drawn(page)
        _shot(page, "paths")

        page.goto(f"{shipped_server}/curves", timeout=60_000)
        _charts_drawn(page, 6)
        page.locator(".gtitle").filter(has_text="Collapse timeline").wait_for(timeout=60_000)
        _shot(page, "curves", page.locator(".gtitle").filter(has_text="Collapse timeline"))

        page.goto(f"{shipped_server}/samples", timeout=60_000)
        page.locator('[data-testid="stImage"]').first.wait_for(timeout=60_000)
        _images_drawn(page)
        _shot(page, "samples")

        page.goto(f"{shipped_server}/train", timeout=60_000)
        page.get_by_text("Train the digits demo pair").wait_for(timeout=60_000)
        _shot(page, "train")
        assert not elsewhere, f"the app asked the network for {sorted(set(elsewhere))}"


def _settled(page) -> None:
    """Wait until the script's rerun is over: no stale (greyed) element and no running indicator."""
    page.wait_for_function("""() => !document.querySelector('[data-stale="true"]')
        && !document.querySelector('[data-testid="stStatusWidget"]')""", timeout=180_000)


def _choose_run(page, name: str, box: int = 0) -> None:
    """Pick the run `name` in the page's box-th selectbox (Streamlit's combobox shows the choice as the input's value)."""
    select = page.locator('[data-testid="stSelectbox"]').nth(box)
    select.click()
    page.get_by_role("option").filter(has_text=name).first.click()
    page.wait_for_function("([i, name]) => (document.querySelectorAll('[data-testid=\"stSelectbox\"] input')[i] || {})"
                           ".value?.startsWith(name)", arg=[box, name], timeout=30_000)
    page.wait_for_timeout(300)  # the rerun starts
    _settled(page)


# The shipped conv families: each run's Layers page names its first layer's summary units and says how it pools.
SHIPPED_CONV = {"mnist-nvae": ("z1 (196 units)", "784 variates each, shown as the 196 means of their 2x2 cells"),
                "mnist-vdvae": ("z1 (128 units)", "2,048 variates each, shown as the 128 means of their 4x4 cells"),
                "mnist-vqvae": ("z1 (16 units)", "16x7x7 = 784 variates, shown as the 16 means of their 7x7 cells")}


@pytest.mark.parametrize("name", list(SHIPPED_CONV))
def test_every_page_on_a_shipped_conv_family_in_a_real_browser(shipped_server, name):
    """Issues 29, 30 and 31: the shipped NVAE, VDVAE and VQ-VAE (spatial layers, no MNIST files) on every page,
    picked in the browser (the VQ-VAE's Codes page too); each page is shot at both screen sizes."""
    short = name.removeprefix("mnist-")
    units, pooled = SHIPPED_CONV[name]
    with _browser_page(1400, 1000) as page:
        page.goto(shipped_server, timeout=60_000)
        _charts_drawn(page, 2)
        _choose_run(page, name, box=1)  # Compare: the run as run B, beside the VAE
        _settled(page)
        # run B's stored evaluation: its IW-K metric beside the VAE's IW-5000 (a VQ-VAE's bound is its number)
        ev = json.loads((ROOT / "pretrained" / name / "eval.json").read_text())
        shown = f"{ev['test_elbo']:.2f}" if name == "mnist-vqvae" else f"log p(x), IW-{ev['iw_samples']}\n"
        page.wait_for_function("(t) => document.body.innerText.includes(t)", arg=shown, timeout=60_000)
        _shot(page, f"{short}-compare")

        page.goto(f"{shipped_server}/layers", timeout=60_000)
        _charts_drawn(page, 1)
        _choose_run(page, name)
        # z1's variates plotted as the means of their cells, and the page says so
        page.wait_for_function("(u) => document.body.innerText.includes(u)", arg=units, timeout=60_000)
        assert pooled in page.locator("body").inner_text()
        _images_drawn(page)
        _shot(page, f"{short}-layers")

        page.goto(f"{shipped_server}/traverse", timeout=60_000)
        page.locator('[data-testid="stImage"]').first.wait_for(timeout=60_000)
        _choose_run(page, name)
        _decoded_follows_the_slider(page, f"{name}'s decoded image did not follow the slider")
        _shot(page, f"{short}-traverse")

        page.goto(f"{shipped_server}/paths", timeout=60_000)
        page.get_by_text("all layers: A → B").wait_for(timeout=60_000)
        _choose_run(page, name)
        page.get_by_text("all layers: A → B").wait_for(timeout=60_000)
        _images_drawn(page)
        _shot(page, f"{short}-paths")

        page.goto(f"{shipped_server}/curves", timeout=60_000)
        _charts_drawn(page, 2)
        page.locator('[data-testid="stMultiSelect"] input').first.click()  # the run joins the pair's curves
        page.get_by_role("option").filter(has_text=name).first.click()
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)
        _settled(page)
        page.wait_for_function("(n) => [...document.querySelectorAll('.js-plotly-plot .legendtext')]"
                               ".some(t => t.textContent.includes(n))", arg=name, timeout=60_000)
        _shot(page, f"{short}-curves")

        page.goto(f"{shipped_server}/samples", timeout=60_000)
        page.locator('[data-testid="stImage"]').first.wait_for(timeout=60_000)
        _choose_run(page, name)
        _images_drawn(page)
        _shot(page, f"{short}-samples")

        page.goto(f"{shipped_server}/depth", timeout=60_000)
        _charts_drawn(page, 2)
        _choose_run(page, name)
        masked = page.locator('[data-testid="stImage"]').filter(has_text="decoded keeping").locator("img")
        masked.wait_for(timeout=60_000)
        _slide(page.get_by_role("slider").first, 2, masked, "the masked reconstruction did not follow the slider")
        _images_drawn(page)
        _shot(page, f"{short}-depth")

        if name == "mnist-vqvae":  # issue 31: the discrete Traverse on the shipped codes
            page.goto(f"{shipped_server}/codes", timeout=60_000)
            _charts_drawn(page, 2)
            _choose_run(page, name)
            _charts_drawn(page, 2)
            _swap_a_code(page, "z1: 7x7 codes of 128", (3, 3))
            _shot(page, f"{short}-codes")


POINT_ON_SCREEN = """(k) => { const gd = document.querySelector('.js-plotly-plot');
    const t = gd._fullData.find(t => t.customdata && t.xaxis === 'x' && t.name !== 'selected point');
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
    const c = t.customdata[k];
    return [r.x + xa._offset + xa.c2p(t.x[k]), r.y + ya._offset + ya.c2p(t.y[k]), typeof c === 'number' ? c : c[0],
            t.x[k]]; }"""
# The followed point's marker in z1 of the first grid sits at this x (the chart was redrawn around it).
MARKED_AT = """(x) => { const gd = document.querySelector('.js-plotly-plot');
    return (gd._fullData || []).some(t => t.name === 'selected point' && t.xaxis === 'x' && t.x[0] === x); }"""


HOVERED = """() => { const gd = document.querySelector('.js-plotly-plot');
    const h = (gd._hoverdata || []).find(p => p.customdata !== undefined && p.data.name !== 'selected point');
    if (!h) return null;
    const c = h.customdata;
    return [typeof c === 'number' ? c : c[0], h.x]; }"""


def _click_point(page, k: int) -> int:
    """Hover the k-th point of z1's first class trace, then click the point plotly shows as hovered (where
    points overlap, a neighbour may be the closest); returns its customdata (its test-set position) once the
    page follows it and the grids are drawn around it."""
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    x, y, _, _ = page.evaluate(POINT_ON_SCREEN, k)
    page.mouse.move(x - 20, y - 20)
    page.mouse.move(x, y, steps=4)
    page.wait_for_function(HOVERED, timeout=10_000)
    name, at = page.evaluate(HOVERED)
    page.mouse.click(x, y)
    page.wait_for_function(f"() => document.body.innerText.includes('Test image {name}')", timeout=60_000)
    page.wait_for_function(MARKED_AT, arg=at, timeout=60_000)
    return name


def test_layers_selection_replaces_adds_clears_and_clicks_in_a_real_browser(shipped_server):
    """Issue 27, item 1: a new box replaces the selection (Shift adds), every subplot of both runs colours
    exactly the server's selection, Clear and a double-click clear it everywhere, a click picks a point in
    box-select mode."""
    with _browser_page(1280, 720) as page:
        page.goto(f"{shipped_server}/layers", timeout=60_000)
        _charts_drawn(page, 1)
        page.get_by_text("Link a second run").click()
        _charts_drawn(page, 3)
        _box_select(page, subplot=0)
        first = _selection_everywhere(page, 2)
        assert first > 0
        _box_select(page, subplot=1, corners=(0.3, 0.8))  # z2, no Shift: a new selection
        second = _selection_everywhere(page, 2)
        assert second != first
        _box_select(page, chart=1, subplot=0, corners=(0.05, 0.35), shift=True)  # the linked run's z1, Shift: added
        third = _selection_everywhere(page, 2)
        assert third > second, (first, second, third)
        page.get_by_role("button", name="Clear the selection").click()
        _selection_everywhere(page, 2, 0)
        assert page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].slice(0, 2)"
                             ".every(gd => !(gd.layout.selections || []).length)"), "a box outline is left"
        # A click in the default box-select mode picks the point, without selecting anything.
        _click_point(page, 7)
        _box_select(page, subplot=2)
        assert _selection_everywhere(page, 2) > 0
        _click_point(page, 11)
        assert _selection_everywhere(page, 2) > 0, "a click after a box became a one-point selection"
        # A double-click on the linked run's grid clears the selection everywhere, the server's too.
        plot = page.locator(".js-plotly-plot").nth(1)
        plot.scroll_into_view_if_needed()
        box = plot.locator(".nsewdrag").nth(1).bounding_box()
        page.mouse.dblclick(box["x"] + 5, box["y"] + 5)
        _selection_everywhere(page, 2, 0)
        _shot(page, "layers-selection-cleared")


def test_a_server_restart_loses_no_run_and_the_open_tab_reconnects(runs_dir, tmp_path):
    """A class's tab stays open while the server restarts (same address): the frontend reconnects by itself,
    reruns its page, and the runs are all there again (they live on disk, not in the server)."""
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    from benchmarks.load_test import free_port
    port = free_port()
    header = "Traverse a latent layer"
    with _browser_page(1400, 1000) as page:
        with streamlit_server(runs_dir, tmp_path, port=port) as (url, _, _):
            page.goto(f"{url}/traverse", timeout=60_000)
            page.get_by_text(header).wait_for(timeout=60_000)
            counted = page.get_by_test_id("stSidebar").get_by_text(re.compile(r"^\d+ runs?")).first
            counted.wait_for(timeout=60_000)
            runs_seen = counted.inner_text()  # "N runs (k broken) in ..."
            # a page drawn to the end, as the class's are: a restart while its element code still loads
            # leaves those elements as "Failed to fetch dynamically imported module" until a reload
            _images_drawn(page)
        # the server is gone: the tab's frontend keeps retrying its websocket
        page.evaluate("() => { window.__beforeRestart = true; }")  # a reload would clear this
        with streamlit_server(runs_dir, tmp_path, port=port):
            page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stImage"]')]
                .some(e => e.innerText.includes('decoded') && e.querySelector('img').complete)""", timeout=90_000)
            assert page.evaluate("() => window.__beforeRestart === true"), "the tab was reloaded, not reconnected"
            page.get_by_text(header).wait_for(timeout=30_000)
            counted.wait_for(timeout=30_000)
            assert counted.inner_text() == runs_seen
            assert page.locator('[data-testid="stException"]').count() == 0


@pytest.fixture
def vq_server(tmp_path):
    """The app on a runs folder with one tiny two-level VQ-VAE on digits (a few seconds of training)."""
    if _browser_missing():
        pytest.skip(_browser_missing())
    from conftest import train_on_one_thread
    from training.config import RunConfig
    runs = tmp_path / "vq-runs"
    cfg = RunConfig.make(model="vqvae", dataset="digits", epochs=3, batch_size=64, device="cpu", channels=8, code_dim=4,
                         codes=[16, 8], prior_channels=8, prior_layers=2, seed=0)
    train_on_one_thread(cfg, runs / "digits-vqvae")
    yield from _serve(runs, tmp_path)


# The screen position of a cell (row, column) of the first chart: the Codes page's grid.
CELL_ON_SCREEN = """([row, col]) => { const gd = document.querySelectorAll('.js-plotly-plot')[0], L = gd._fullLayout;
    const r = gd.getBoundingClientRect();
    return [r.left + L._size.l + L.xaxis.l2p(col), r.top + L._size.t + L.yaxis.l2p(row)]; }"""


def _swap_a_code(page, codes: str, cell: tuple[int, int]) -> None:
    """On an open Codes page: choose z1 (its control reads `codes`, e.g. "z1: 2x2 codes of 16"), click `cell` of its
    grid, pick another code for it and see the decoded image change."""
    page.get_by_text(codes).click()
    size = codes.split(": ")[1].split(" ")[0]
    page.wait_for_function("(t) => document.body.innerText.includes(t)", arg=f"z1: the image's codes ({size})",
                           timeout=60_000)
    _settled(page)
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    x, y = page.evaluate(CELL_ON_SCREEN, list(cell))
    page.mouse.click(x, y)
    page.wait_for_function("(t) => document.body.innerText.includes(t)", arg=f"now row {cell[0]}, column {cell[1]}",
                           timeout=60_000)
    _settled(page)
    swapped = page.locator('[data-testid="stImage"]').filter(has_text="choose another code").locator("img")
    before = swapped.get_attribute("src")
    page.locator('[data-testid="stSelectbox"]').nth(1).click()  # box 0 is the run
    page.get_by_role("option").nth(1).click()
    at = f"at ({cell[0]}, {cell[1]})"
    page.wait_for_function("(t) => document.body.innerText.includes(t)", arg=at, timeout=60_000)
    _settled(page)
    after = page.locator('[data-testid="stImage"]').filter(has_text=at).locator("img").get_attribute("src")
    assert after != before, "the decoded image did not follow the code swap"
    _images_drawn(page)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_the_codes_page_in_a_real_browser(vq_server):
    """Issue 31's discrete Traverse: click a cell of the code grid, pick another code for it, see the decoded
    image change; the resampled row and the codebook are drawn."""
    with _browser_page(1400, 1000) as page:
        page.goto(f"{vq_server}/codes", timeout=60_000)
        _charts_drawn(page, 2)
        _images_drawn(page)
        _swap_a_code(page, "z1: 2x2 codes of 16", (0, 1))  # digits: z1 2x2 codes under z2's 1x1
        _shot(page, "digits-vqvae-codes")
