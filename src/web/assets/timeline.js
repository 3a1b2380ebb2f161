// The timeline: meetings held and talks scheduled on one date axis, in SVG. A fact known to
// the day is a tick; a month, an interval or an unknown date between bounds is a band as wide
// as its span (open on a side with no bound); inferred dates are dashed and say so; talks are
// coloured by fate, with earlier planned dates drawn faintly when they were moved. Never draws
// a coarse date as a single day.

import { span, label, DAY } from "./dates.js";
import { el, svg, clear } from "./dom.js";

const ROW = 24;
const TOP = 28;
const LEFT = 12;
const RIGHT = 12;

/** Is any pointer in `inferred` about the fact's date? */
function dateInferred(inferred) {
  return (inferred || []).some((p) => p.startsWith("/occurred") || p.startsWith("/data/planned"));
}

/**
 * Draws `items` ({kind, title, when, fate?, moves?, inferred?, fact}) into `container`;
 * `onPick(item)` runs on click, Enter or Space. Items with no date at all are listed in
 * `undatedList` instead.
 */
export function render(container, undatedList, items, today, onPick) {
  clear(container);
  clear(undatedList);
  const placed = [];
  for (const it of items) {
    const s = span(it.when);
    if (s) placed.push({ ...it, span: s });
    else undatedList.append(el("li", {}, factButton(it, onPick, `${it.title} (date unknown)`)));
  }
  if (!placed.length) {
    container.append(el("p", { class: "muted" }, "No meetings or talks recorded for this process at this cut."));
    return;
  }
  let min = Infinity;
  let max = -Infinity;
  for (const it of placed) {
    for (const v of [it.span.from, it.span.to]) {
      if (v !== null) { min = Math.min(min, v); max = Math.max(max, v); }
    }
    for (const m of it.moves || []) {
      const ms = span(m);
      if (ms && ms.from !== null) min = Math.min(min, ms.from);
      if (ms && ms.to !== null) max = Math.max(max, ms.to);
    }
  }
  const pad = Math.max((max - min) * 0.04, 3 * DAY);
  min -= pad;
  max += pad;
  const width = Math.max(container.clientWidth || 900, 480);
  const inner = width - LEFT - RIGHT;
  const dayPx = (inner * DAY) / (max - min);
  const x = (t) => LEFT + ((t - min) / (max - min)) * inner;
  placed.sort((a, b) => (a.span.from ?? a.span.to) - (b.span.from ?? b.span.to));
  const height = TOP + placed.length * ROW + 8;
  const root = svg("svg", {
    id: "timeline-svg", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "group", "aria-label": "Timeline of meetings and talks", "data-day-px": dayPx.toFixed(4),
  });
  root.append(axis(min, max, x, height));
  if (today !== null && today >= min && today <= max) {
    root.append(svg("line", { class: "today", x1: x(today), x2: x(today), y1: TOP - 6, y2: height }),
      svg("text", { x: x(today) + 3, y: height - 2 }, "today"));
  }
  placed.forEach((it, row) => {
    const y = TOP + row * ROW;
    const s = it.span;
    const inferred = dateInferred(it.inferred);
    const cls = ["fact", it.kind, it.fate ? `fate-${it.fate}` : "", inferred ? "inferred" : ""].filter(Boolean).join(" ");
    const moved = (it.moves || []).length ? `, moved from ${it.moves.map(label).join(", then ")}` : "";
    const words = `${it.title}: ${label(it.when)}${it.fate ? `, ${it.fate}` : ""}${moved}${inferred ? ", date partly inferred" : ""}`;
    const g = svg("g", {
      class: cls, tabindex: 0, role: "button", "aria-label": words,
      "data-event-id": it.fact.event_id, "data-title": it.title,
      "data-shape": s.day ? "tick" : "band",
      onclick: () => onPick(it),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onPick(it); } },
    }, svg("title", {}, words));
    for (const m of it.moves || []) {
      const ms = span(m);
      if (!ms || ms.from === null) continue;
      g.append(svg("rect", { class: "ghost", x: x(ms.from), y: y + 4, width: Math.max(x(ms.to ?? ms.from + DAY) - x(ms.from), 2), height: 10, fill: "none", stroke: "#999", "stroke-dasharray": "2 2" }));
      g.append(svg("line", { class: "move", x1: x(ms.from), x2: x(s.from ?? ms.from), y1: y + 9, y2: y + 9 }));
    }
    let endX;
    if (s.day) {
      const cx = x(s.from);
      g.append(svg("rect", { class: "tick mark", x: cx - 1.5, y: y + 1, width: 3, height: 16 }));
      endX = cx + 4;
    } else {
      const x0 = s.from === null ? LEFT : x(s.from);
      const x1 = s.to === null ? width - RIGHT : x(s.to);
      g.append(svg("rect", {
        class: `band mark${s.open ? " open" : ""}`, x: x0, y: y + 3, width: Math.max(x1 - x0, 1), height: 12, rx: 2,
      }));
      endX = x1 + 4;
    }
    const text = `${it.title} · ${label(it.when)}${it.fate ? ` · ${it.fate}` : ""}${inferred ? " · inferred" : ""}`;
    const anchorEnd = endX > width * 0.6;
    g.append(svg("text", {
      x: anchorEnd ? (s.day ? x(s.from) - 4 : (s.from === null ? LEFT : x(s.from)) - 4) : endX,
      y: y + 13, "text-anchor": anchorEnd ? "end" : "start",
    }, text));
    root.append(g);
  });
  container.append(root);
}

function axis(min, max, x, height) {
  const g = svg("g", { class: "axis", "aria-hidden": "true" });
  const d = new Date(min);
  let t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  const months = (max - min) / (30 * DAY);
  const step = months > 36 ? 12 : months > 18 ? 3 : 1;
  while (t < max) {
    const m = new Date(t);
    if (m.getUTCMonth() % step === 0) {
      g.append(svg("line", { x1: x(t), x2: x(t), y1: 14, y2: height }),
        svg("text", { x: x(t) + 2, y: 12 }, m.toISOString().slice(0, 7)));
    }
    t = Date.UTC(m.getUTCFullYear(), m.getUTCMonth() + 1, 1);
  }
  return g;
}

/** A keyboard-reachable button that opens a fact's evidence. */
export function factButton(item, onPick, text) {
  return el("button", { type: "button", class: "fact", "data-event-id": item.fact.event_id, onclick: () => onPick(item) }, text);
}
