"""Linked selection drawn in the browser: the Layers page's charts recolour each other locally.

The server-side way (explorer.figures.with_selection on a rerun) costs a round trip and a plotly.js
redraw of every chart (~0.5 s for 2 runs x 5 layers in software WebGL); frontend/linked_selection.js
restyles the other charts as soon as plotly reports the box or lasso, and the page keeps sending the
charts as they were drawn (`drawn_selection`), so that rerun redraws nothing.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from explorer.figures.latent import UNSELECTED

_JS = (Path(__file__).parent / "frontend" / "linked_selection.js").read_text(encoding="utf-8")
_link = st.components.v2.component("lvae_linked_selection", js=_JS)

LOCAL = "linked_selection_local"  # session_state: the last selection came from a chart (the browser drew it)


def link_charts(chart_keys: Sequence[str], key: str) -> None:
    """Mount the linker for the plotly charts with these element keys (all on the current page)."""
    _link(data={"keys": list(chart_keys), "grey": UNSELECTED}, key=key)


def selection_from_chart() -> None:
    """Called by a chart's on_select: the browser has already recoloured the linked charts."""
    st.session_state[LOCAL] = True


def drawn_selection(current, key: str) -> tuple[object, int]:
    """(selection, revision) to draw the charts with.

    After a chart's own selection, the one they were last sent with: the browser already shows the new one,
    and charts sent unchanged are not drawn again. Otherwise the current one; the revision (plotly's
    layout.datarevision) goes up when the charts would be sent unchanged although the browser shows
    another selection (e.g. "Clear" after a drag), so the frontend replaces what the linker drew.
    """
    state = st.session_state.setdefault(key, {"drawn": None, "shown": None, "revision": 0})
    if st.session_state.pop(LOCAL, False):
        state["shown"] = current
    else:
        if current == state["drawn"] and state["shown"] != current:
            state["revision"] += 1
        state["drawn"] = state["shown"] = current
    return state["drawn"], state["revision"]
