// Linked selection in the browser: a box or lasso in one of the named plotly charts recolours the same
// points (equal customdata) in every subplot of every named chart at once, without waiting for the
// server. Streamlit still receives the selection (the chart widget reports it) and draws the strip and
// the rest; the Layers page then sends the charts unchanged, so the browser does not draw them again.
//
// What a user expects, and plotly does not do by itself across subplots (issue 27):
// - a new box or lasso without Shift replaces the selection. Plotly keeps every other subplot's box in
//   layout.selections and reports the union of them all, so they are dropped when a drag starts;
//   with Shift they are kept and the union is reported, as plotly does within one subplot. Across the two
//   runs' charts plotly knows nothing of the other chart's boxes: the page adds the selection drawn before
//   the drag and sends the server the whole (the "union" trigger; the page prefers it to the chart's own
//   report of the same drag). A state sent at the press would rerun the page mid-drag.
// - every subplot colours exactly the reported selection, the dragged one included.
// - a double-click on any subplot clears the selection, in the page and on the server (the "cleared" trigger).
// - a click on a point picks it in every drag mode: Streamlit turns plotly's click selection off in box
//   and lasso mode, so a press and release within a few pixels over a hovered point is reported to the
//   server here (the "point" trigger).
//
// Speed: Plotly.restyle({selectedpoints}) replots a 55-trace WebGL grid (~80-100 ms each in software
// WebGL); plotly's own box selection instead sets each trace's selected/unselected batches and redraws
// the regl scenes (~10-20 ms a grid). recolourRegl does what plotly.js's scattergl selectPoints and
// updateSelectedState do (plotly.js as bundled by the pinned Streamlit, which sets window.Plotly); a chart
// without those internals gets the public, slower Plotly.restyle.
export default function (component) {
  const { data, setTriggerValue } = component;
  const keys = data.keys;
  const unselected = { marker: { color: data.grey, opacity: 0.35 } };
  const charts = () => keys.map((k) => document.querySelector(`.st-key-${k} .js-plotly-plot`)).filter(Boolean);
  const rowOf = (c) => (typeof c === "number" ? c : c && c.length ? c[0] : null);
  const linked = (t) => t.customdata && t.name !== "selected point" && t.type === "scattergl";

  function pick(trace, chosen) {
    const picked = [];
    for (let j = 0; j < trace._length; j++) if (chosen.has(rowOf(trace.customdata[j]))) picked.push(j);
    return picked;
  }

  function recolourRegl(gd, traces, chosen) {
    const targets = [];  // [regl scene, the trace's index in it, the trace]
    for (const t of traces) {
      const stash = gd.calcdata && gd.calcdata[t.index] && gd.calcdata[t.index][0].t;
      const scene = stash && stash._scene;
      if (!scene || !scene.scatter2d || !scene.selectBatch || !scene.markerUnselectedOptions) return false;
      targets.push([scene, stash.index, t]);
    }
    for (const [scene, i, t] of targets) {
      const els = chosen === null ? [] : pick(t, chosen);
      const opts = new Array(scene.count);
      if (chosen === null) {
        opts[i] = scene.markerOptions[i]; // back to the trace's own colours
        scene.scatter2d.update.apply(scene.scatter2d, opts);
        scene.selectBatch[i] = [];
        scene.unselectBatch[i] = [];
        delete t._input.selectedpoints;
        delete t.selectedpoints;
      } else {
        if (!scene.selectBatch[i].length && !scene.unselectBatch[i].length) {
          opts[i] = scene.markerUnselectedOptions[i];
          scene.scatter2d.update.apply(scene.scatter2d, opts);
        }
        const inside = new Set(els);
        scene.selectBatch[i] = els;
        scene.unselectBatch[i] = [...Array(t._length).keys()].filter((j) => !inside.has(j));
        t._input.selectedpoints = t.selectedpoints = els;
      }
    }
    // every subplot of a figure draws into one shared canvas: clear it, draw all its scenes again
    gd._fullLayout._glcanvas.each(function (d) { if (d.regl) d.regl.clear({ color: true, depth: true }); });
    const plots = gd._fullLayout._plots || {};
    for (const id of Object.keys(plots)) if (plots[id]._scene) plots[id]._scene.draw();
    return true;
  }

  function recolour(chosen) {
    const Plotly = window.Plotly;
    for (const gd of charts()) {
      const traces = (gd._fullData || []).filter(linked);
      if (!traces.length) continue;
      let done = false;
      try { done = recolourRegl(gd, traces, chosen); } catch (e) { done = false; }
      if (!done && Plotly) {
        Plotly.restyle(gd, { selectedpoints: traces.map((t) => (chosen === null ? null : pick(t, chosen))), unselected },
                       traces.map((t) => t.index));
      }
    }
    // benchmarks/explorer_views_speed.py --browser reads when the recoloured charts reached the screen
    requestAnimationFrame(() => { window.__lvaeLinkedPaintedAt = performance.now(); });
  }

  // A drag without Shift starts a new selection: forget the boxes and lassos of the other subplots (plotly
  // drops only the dragged subplot's own), so that the selection it reports is the new one alone.
  function dropOtherSelections(gd, ev) {
    const mode = gd._fullLayout && gd._fullLayout.dragmode;
    if (ev.shiftKey || (mode !== "select" && mode !== "lasso")) return;
    const box = ev.target.closest && ev.target.closest(".nsewdrag");
    const subplot = box && box.getAttribute("data-subplot");
    const sels = (gd.layout && gd.layout.selections) || [];
    if (!subplot || !sels.length) return;
    const x = subplot.slice(0, subplot.indexOf("y")), y = subplot.slice(subplot.indexOf("y"));
    const kept = sels.filter((s) => s.xref === x && s.yref === y);
    if (kept.length === sels.length) return;
    gd.layout.selections = kept;
    if (gd._fullLayout.selections) {
      gd._fullLayout.selections = gd._fullLayout.selections.filter((s) => s.xref === x && s.yref === y);
    }
    gd._fullLayout._previousSelections = kept;
    // their outlines: plotly draws every kept selection again when the new one is added
    gd.querySelectorAll(".selectionlayer path, .select-outline").forEach((el) => {
      const owner = el.closest("[data-subplot]");
      if (!owner || owner.getAttribute("data-subplot") !== subplot) el.remove();
    });
  }

  // What every chart shows as selected now (all subplots agree): the rows of one subplot's selected points.
  function drawnSelection() {
    const gd = charts()[0];
    const traces = ((gd && gd._fullData) || []).filter((t) => linked(t) && t.xaxis === "x");
    if (!traces.some((t) => t.selectedpoints && t.selectedpoints.length)) return null;
    const rows = new Set();
    for (const t of traces) for (const j of t.selectedpoints || []) rows.add(rowOf(t.customdata[j]));
    return rows;
  }

  // A click (press and release within a few pixels) on a point picks it, whatever the drag mode.
  let pressed = null;  // [chart, x, y] of the last left-button press on a chart
  let adding = false;  // the drag under way adds to `before` (Shift held at its start)
  let before = null;   // the selection shown when it started
  function onPress(gd, ev) {
    pressed = ev.button === 0 ? [gd, ev.clientX, ev.clientY] : null;
    const mode = gd._fullLayout && gd._fullLayout.dragmode;
    if (!pressed || (mode !== "select" && mode !== "lasso")) return;
    before = drawnSelection();
    adding = ev.shiftKey;
    dropOtherSelections(gd, ev);
  }
  function onRelease(ev) {
    if (!pressed) return;
    const [gd, x, y] = pressed;
    pressed = null;
    if (Math.hypot(ev.clientX - x, ev.clientY - y) > 4) return;
    const hovered = (gd._hoverdata || []).find((p) => p.customdata !== undefined && p.fullData && linked(p.fullData));
    if (hovered) setTriggerValue("point", rowOf(hovered.customdata));
  }
  window.addEventListener("mouseup", onRelease, true);

  function attach(gd) {
    if (gd.__lvaeLinked || !gd.on) return;
    gd.__lvaeLinked = true;
    gd.on("plotly_selected", (ev) => {
      if (!ev || !ev.points || !ev.points.length) return;
      const chosen = new Set(ev.points.map((p) => rowOf(p.customdata)));
      if (adding && before) {
        for (const r of before) chosen.add(r);
        setTriggerValue("union", [...chosen]);
      }
      recolour(chosen);
    });
    // a double-click clears the selection everywhere; the server is told here, as the chart's own widget
    // reports nothing when its last selection came from the other chart
    gd.on("plotly_deselect", () => { recolour(null); setTriggerValue("cleared", Date.now()); });
    gd.addEventListener("mousedown", (ev) => onPress(gd, ev), true);
  }

  const timer = setInterval(() => charts().forEach(attach), 250); // charts mount and remount on their own
  charts().forEach(attach);
  return () => { clearInterval(timer); window.removeEventListener("mouseup", onRelease, true); };
}
