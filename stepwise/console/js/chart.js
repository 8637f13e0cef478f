// Drift history as an inline SVG line chart (drift share, and performance when measured, per check
// over time). Built with DOM calls: every label is a text node.
const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

export function driftChart(checks) {
  const points = checks
    .map((c) => ({ t: new Date(c.created_at).getTime(), share: Number(c.drift_share), perf: c.performance_value, verdict: c.verdict }))
    .filter((p) => Number.isFinite(p.t))
    .sort((a, b) => a.t - b.t);
  const W = 640, H = 220, L = 44, R = 12, T = 12, B = 36;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart", "aria-labelledby": "drift-chart-title" });
  svg.append(s("title", { id: "drift-chart-title" }, `Drift share per check over time (${points.length} checks)`));
  if (!points.length) return svg;
  const t0 = points[0].t, t1 = points[points.length - 1].t || t0 + 1;
  const x = (t) => L + (t1 === t0 ? (W - L - R) / 2 : ((t - t0) / (t1 - t0)) * (W - L - R));
  const y = (v) => T + (1 - Math.max(0, Math.min(1, v))) * (H - T - B);
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(s("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, v.toFixed(2)));
  }
  svg.append(s("text", { x: L, y: H - 8, class: "axis" }, new Date(t0).toISOString().slice(0, 16).replace("T", " ")));
  svg.append(s("text", { x: W - R, y: H - 8, "text-anchor": "end", class: "axis" }, new Date(t1).toISOString().slice(0, 16).replace("T", " ")));
  // performance shares the 0..1 axis; a metric above 1 (an error such as RMSE) is scaled to its largest value
  const perfMax = Math.max(1, ...points.map((p) => (typeof p.perf === "number" && Number.isFinite(p.perf) ? p.perf : 0)));
  for (const p of points) if (typeof p.perf === "number") p.perfScaled = p.perf / perfMax;
  const line = (key, cls) => {
    const pts = points.filter((p) => typeof p[key] === "number" && Number.isFinite(p[key]));
    if (!pts.length) return;
    const at = (p) => y(key === "perf" ? p.perfScaled : p[key]);
    svg.append(s("polyline", { points: pts.map((p) => `${x(p.t)},${at(p)}`).join(" "), class: cls }));
    for (const p of pts) {
      const dot = s("circle", { cx: x(p.t), cy: at(p), r: 4, class: `${cls} dot-${p.verdict}` });
      dot.append(s("title", {}, `${key === "share" ? "drift share" : "performance"} ${p[key].toFixed(3)} · ${p.verdict}`));
      svg.append(dot);
    }
  };
  line("share", "series-share");
  line("perf", "series-perf");
  return svg;
}
