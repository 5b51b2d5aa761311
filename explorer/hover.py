"""A scatter figure as one self-contained HTML page that shows each point's image on hover (issue #3).

Plotly hover labels render text only, and st.plotly_chart forwards no hover
events to Python, so the picture cannot come from either. Instead the figure is
written out with plotly.js inline (works offline) plus a small script: on
`plotly_hover` it reads the hovered point's index from customdata (the figures
in explorer.figures put the point index there) and shows that point's PNG data
URI, scaled up with crisp pixels, in a box beside the plot. The page embeds the
result in an iframe. No streamlit here; nothing in the page is fetched from a URL.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

MAX_HOVER_POINTS = 2000     # every point's PNG travels inside the page: keep it a few hundred kB
BOX_WIDTH = 150             # px: the image box right of the plot
IMAGE_SIZE = 128            # px: the hovered image is drawn this wide (8x8 digits x16, 28x28 MNIST ~x4.6)
DEFAULT_DIV_ID = "lvae-hover-plot"
_DIV_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_DATA_IMAGE = "data:image/"


def first_points(pcas: Sequence[Any], m: int) -> list[Any]:
    """Each layer's PCA (explorer.encode.LayerPCA) restricted to the first m points; the basis is unchanged,
    so a point sits where it sits in the full plot."""
    return [dataclasses.replace(p, coords=p.coords[:m]) for p in pcas]


def _script_json(value: Any) -> str:
    """JSON that is safe inside an inline <script>: no '</script>' or '<!--' can end or alter it."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _hover_script(div_id: str, images: dict[str, str]) -> str:
    """Runs once the plot exists (to_html's post_script): builds the image box and the hover handler."""
    return """
(function () {
  var uris = %(uris)s;
  var gd = document.getElementById(%(div)s);
  var box = document.createElement("div");
  box.id = "hover-box";
  box.style.cssText = "position:fixed;top:40px;right:6px;width:%(box)dpx;text-align:center;"
    + "font:12px sans-serif;color:#444;";
  var img = document.createElement("img");
  img.id = "hover-image";
  img.alt = "";
  img.style.cssText = "width:%(size)dpx;image-rendering:pixelated;visibility:hidden;"
    + "border:1px solid #888;background:#000;";
  var caption = document.createElement("div");
  caption.id = "hover-caption";
  caption.textContent = "hover a point to see its image";
  box.appendChild(img);
  box.appendChild(caption);
  document.body.appendChild(box);
  gd.on("plotly_hover", function (ev) {
    var pt = ev && ev.points && ev.points[0];
    if (!pt) { return; }
    var cd = Array.isArray(pt.customdata) ? pt.customdata[0] : pt.customdata;
    var i = Number(cd);
    if (!Number.isInteger(i) || !Object.prototype.hasOwnProperty.call(uris, String(i))) { return; }
    img.src = uris[String(i)];
    img.alt = "test image " + i;
    img.style.visibility = "visible";
    caption.textContent = "test image " + i + (pt.data && pt.data.meta ? " \\u00b7 " + pt.data.meta : "");
  });
  // No plotly_unhover handler on purpose: the last image stays, so moving between neighbouring
  // points does not flicker.
})();
""" % {"uris": _script_json(images), "div": _script_json(div_id), "box": BOX_WIDTH, "size": IMAGE_SIZE}  # noqa: UP031  JS braces


def hover_html(fig: go.Figure, images: list[str] | dict[int, str], height: int, *, div_id: str = DEFAULT_DIV_ID,
               config: dict | None = None) -> str:
    """A complete HTML document: `fig` (plotly.js inline) with an image box that shows images[i] when a
    point whose customdata is i is hovered. `images` are 'data:image/...' URIs (explorer.images
    .image_data_uris): a list, one per row (customdata = row), or a dict by customdata (the Layers grids:
    test-set positions); `height` is the plot's height in px (size the iframe to it).
    The caller's figure is not modified."""
    if not _DIV_ID.fullmatch(div_id):
        raise ValueError(f"div_id must be a plain HTML id (letters, digits, - or _), got {div_id!r}")
    by_id = {str(k): u for k, u in (images.items() if isinstance(images, dict) else enumerate(images))}
    bad = next((k for k, u in by_id.items() if not (isinstance(u, str) and u.startswith(_DATA_IMAGE))), None)
    if bad is not None:
        raise ValueError(f"images[{bad}] is not a data:image/ URI; the page must not fetch anything")
    fig = go.Figure(fig)  # a copy: the layout changes below stay here
    fig.update_layout(height=height, autosize=True, margin=dict(r=BOX_WIDTH + 10))
    config = {"displaylogo": False, "responsive": True, **(config or {})}
    html = fig.to_html(full_html=True, include_plotlyjs=True, div_id=div_id, config=config,
                       post_script=_hover_script(div_id, by_id), default_height=f"{height}px",
                       default_width="100%")
    # The iframe is exactly `height` tall: no body margin, no scrollbars.
    return html.replace("<style>html, body {height: 100%;}</style>",
                        "<style>html, body {height: 100%; margin: 0; overflow: hidden;}</style>", 1)
