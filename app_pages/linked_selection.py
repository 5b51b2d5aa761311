"""Linked selection drawn in the browser: the Layers page's charts recolour each other locally.

The server-side way (explorer.figures.with_selection on a rerun) costs a round trip and a plotly.js
redraw of every chart (~0.5 s for 2 runs x 5 layers in software WebGL); frontend/linked_selection.js
restyles the other charts as soon as plotly reports the box or lasso, and the page keeps sending the
charts as they were drawn (`drawn_selection`), so that rerun redraws nothing.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import streamlit as st

from explorer.figures.latent import UNSELECTED

_JS = (Path(__file__).parent / "frontend" / "linked_selection.js").read_text(encoding="utf-8")
_link = st.components.v2.component("lvae_linked_selection", js=_JS)

LOCAL = "linked_selection_local"  # session_state: the last selection came from a chart (the browser drew it)


def link_charts(chart_keys: Sequence[str], key: str, on_point: Callable[[int], None],
                on_clear: Callable[[], None], on_union: Callable[[list[int]], None]) -> None:
    """Mount the linker for the plotly charts with these element keys (all on the current page). Before the
    rerun: a click on a point of any of them calls on_point(its customdata), a double-click on_clear(), a
    Shift drag on_union(the customdata of the points now selected in every chart)."""
    def point_clicked() -> None:
        row = (st.session_state.get(key) or {}).get("point")
        if row is not None:
            on_point(int(row))

    def union() -> None:
        rows = (st.session_state.get(key) or {}).get("union")
        if rows is not None:
            on_union([int(r) for r in rows])
            selection_from_chart()

    _link(data={"keys": list(chart_keys), "grey": UNSELECTED}, key=key, on_point_change=point_clicked,
          on_cleared_change=on_clear, on_union_change=union)


def union_sent(key: str) -> bool:
    """Whether this rerun carries the linker's own report of a Shift drag (the whole selection): the chart's
    report of the same drag holds only that chart's boxes and is then ignored."""
    state = st.session_state.get(key)
    return state is not None and state.get("union") is not None


def selection_from_chart() -> None:
    """Called by a chart's on_select: the browser has already recoloured the linked charts."""
    st.session_state[LOCAL] = True


def drawn_selection(current, key: str) -> tuple[object, int]:
    """(selection, revision) to draw the charts with.

    After a chart's own selection, the one they were last sent with: the browser already shows the new one,
    and charts sent unchanged are not drawn again. Otherwise the current one, with a new revision (plotly's
    layout.datarevision) whenever the browser shows another selection ("Clear" after a drag, a toggle):
    Streamlit names a chart by its figure and restores the last state a chart of that name had in this tab,
    the user's old boxes included, so a selection set by the server must come in a figure never sent before.
    """
    state = st.session_state.setdefault(key, {"drawn": None, "shown": None, "revision": 0})
    if st.session_state.pop(LOCAL, False):
        state["shown"] = current
    else:
        if state["shown"] != current:
            state["revision"] += 1
        state["drawn"] = state["shown"] = current
    return state["drawn"], state["revision"]
