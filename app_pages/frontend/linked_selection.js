// Linked selection in the browser: a box or lasso in one of the named plotly charts recolours the same
// points (equal customdata) in every other subplot of every named chart at once, without waiting for the
// server. Streamlit still receives the selection (the chart widget reports it) and draws the strip and
// the rest; the Layers page then sends the charts unchanged, so the browser does not draw them again.
//
// Speed: Plotly.restyle({selectedpoints}) replots a 55-trace WebGL grid (~80-100 ms each in software
// WebGL); plotly's own box selection instead sets each trace's selected/unselected batches and redraws
// the regl scenes (~10-20 ms a grid). recolourRegl does what plotly.js's scattergl selectPoints and
// updateSelectedState do (plotly.js as bundled by the pinned Streamlit, which sets window.Plotly); a chart
// without those internals gets the public, slower Plotly.restyle.
export default function (component) {
  const { data } = component;
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

  function recolour(chosen, source, sourceAxes) {
    const Plotly = window.Plotly;
    for (const gd of charts()) {
      // plotly itself recoloured the dragged subplot of the source chart
      const traces = (gd._fullData || []).filter((t) => linked(t) && !(gd === source && sourceAxes.has(t.xaxis)));
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

  function attach(gd) {
    if (gd.__lvaeLinked || !gd.on) return;
    gd.__lvaeLinked = true;
    gd.on("plotly_selected", (ev) => {
      if (!ev || !ev.points || !ev.points.length) return;
      const chosen = new Set(ev.points.map((p) => rowOf(p.customdata)));
      recolour(chosen, gd, new Set(ev.points.map((p) => p.fullData.xaxis)));
    });
    gd.on("plotly_deselect", () => recolour(null, gd, new Set()));
  }

  const timer = setInterval(() => charts().forEach(attach), 250); // charts mount and remount on their own
  charts().forEach(attach);
  return () => clearInterval(timer);
}
