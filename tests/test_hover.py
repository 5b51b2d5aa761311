"""Hover images (issue #3): the self-contained HTML page of explorer.hover, and the Layers page's hover mode."""
from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer import hover
from explorer.encode import layer_pca
from explorer.figures import layer_scatter_grid
from explorer.hover import first_points, hover_html
from explorer.images import image_data_uris, to_uint8

APP = Path(__file__).resolve().parent.parent / "app.py"
SHAPE = (8, 8)
N = 40
URIS = re.compile(r"var uris = (\{.*?\});", re.S)


@pytest.fixture(scope="module")
def case():
    """Three layers of N random codes, labels 0..3, N random 8x8 images and their data URIs."""
    rng = np.random.default_rng(0)
    pcas = [layer_pca(rng.normal(size=(N, units)).astype(np.float32)) for units in (6, 4, 2)]
    labels = np.arange(N) % 4
    images = rng.random((N, SHAPE[0] * SHAPE[1])).astype(np.float32)
    fig = layer_scatter_grid(pcas, labels, highlight=5)
    uris = image_data_uris(images, SHAPE, scale=1)
    return fig, images, uris, hover_html(fig, uris, 400, div_id="test-plot")


def shipped_uris(html: str) -> list[str]:
    """The handler's images in customdata order (plotly.js has a data URI of its own, so the page's count is
    not it); the page keeps them by customdata (the Layers grids: test-set positions)."""
    (found,) = URIS.findall(html)
    by_id = json.loads(found)
    return [by_id[k] for k in sorted(by_id, key=int)]


def png_pixels(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def test_page_is_self_contained_with_plotly_inline_and_the_hover_handler(case):
    fig, _, _, html = case
    assert html.startswith("<!doctype html>") and "plotly.js v" in html  # the library itself, inline
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I), "a script is loaded from somewhere"
    assert not re.search(r"""<(img|link|iframe)[^>]*\b(src|href)\s*=\s*["']?https?:""", html, re.I)
    assert '<div id="test-plot"' in html and 'getElementById("test-plot")' in html
    assert 'gd.on("plotly_hover"' in html and 'id = "hover-image"' in html
    assert "image-rendering:pixelated" in html
    assert fig.layout.height != 400  # the caller's figure is left alone


def test_one_data_uri_per_point_and_the_ith_is_point_i(case):
    fig, images, uris, html = case
    shipped = shipped_uris(html)
    assert len(shipped) == N and shipped == uris
    expected = to_uint8(images, SHAPE)
    for i in (0, 7, N - 1):
        assert np.array_equal(png_pixels(shipped[i]), expected[i])
    # Every plotted point's customdata is an index into that array (what the handler looks up).
    for layer in ("z1", "z2", "z3"):
        idx = [int(c) for t in fig.data if t.meta == layer and t.name != "selected point" for c in t.customdata]
        assert sorted(idx) == list(range(N))


def test_script_text_is_escaped_and_only_data_images_are_accepted(case):
    fig = case[0]
    evil = "data:image/png;base64,</script><script>alert(1)</script>"
    html = hover_html(fig, [evil], 300)
    assert "alert(1)</script>" not in html and "\\u003c/script\\u003e" in html
    with pytest.raises(ValueError, match="data:image"):
        hover_html(fig, ["https://example.com/x.png"], 300)
    with pytest.raises(ValueError, match="div_id"):
        hover_html(fig, [], 300, div_id='x" onload="alert(1)')


def test_first_points_keeps_the_basis(case):
    pca = layer_pca(np.random.default_rng(1).normal(size=(50, 5)))
    (cut,) = first_points([pca], 20)
    assert cut.coords.shape == (20, pca.coords.shape[1]) and np.array_equal(cut.coords, pca.coords[:20])
    assert cut.components is pca.components and cut.explained is pca.explained


# ---- the Layers page ------------------------------------------------------------------------

def iframes(at: AppTest) -> list:
    """st.iframe has no AppTest element class: it is an UnknownElement whose proto is the IFrame message."""
    return list(at.get("iframe"))


def test_layers_page_hover_mode_renders_the_frame(app_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hover, "MAX_HOVER_POINTS", 100)  # the cap path, with a small page
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page("app_pages/layers.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not iframes(at)
    box = at.checkbox(key="layers_hover")
    assert box.label == "Show images on hover" and box.value is False
    box.check().run()
    assert not at.exception, [e.value for e in at.exception]
    (frame,) = iframes(at)
    html = frame.proto.srcdoc
    assert 'gd.on("plotly_hover"' in html and "plotly.js v" in html
    assert len(shipped_uris(html)) == 100
    assert any("first 100 of" in c.value for c in at.caption), [c.value for c in at.caption]
    # The regular chart is replaced, not doubled; the selected point panel stays.
    assert not [el for el in at.get("plotly_chart") if "every latent layer" in el.proto.spec]
    assert any("reconstruction" in c for img in at.image for c in img.captions)
