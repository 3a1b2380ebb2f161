// Plans and agreements with their versions and what changed: each plan's versions (the view's
// `versions`, oldest first) with, for each, what differs from the version before (fields set,
// changed or cleared; issues added or removed; the changes the version itself states), and an
// agreement beside the one it supersedes, with its provisions added, removed or changed. Only
// compares what the view returns; never judges which version or agreement stands.

import { el, name } from "./dom.js";
import { label } from "./dates.js";

/** A provision's key: the issue it settles, else its text (a plain-string provision). */
function provisionKey(p) {
  if (typeof p === "string") return `text:${p}`;
  return p && p.issue ? `issue:${p.issue}` : `text:${(p && p.summary) || JSON.stringify(p)}`;
}

function provisionText(p) {
  if (typeof p === "string") return p;
  const terms = p.terms ? ` (${Object.entries(p.terms).map(([k, v]) => `${k} = ${v}`).join(", ")})` : "";
  return `${p.issue ? `${name(p.issue)}: ` : ""}${p.summary || ""}${terms}`;
}

function shown(v) {
  if (v === null || v === undefined) return "none";
  return typeof v === "string" && v.includes(":") && !v.includes(" ") ? name(v) : String(v);
}

/**
 * What changed from `before` to `after` (two plan versions), as a list of
 * `{ kind: "added" | "removed" | "changed", text }`.
 */
export function planChanges(before, after) {
  const out = [];
  for (const [field, what] of [["title", "title"], ["points", "points"], ["proposer", "proposer"], ["summary", "summary"]]) {
    const a = before[field];
    const b = after[field];
    if (JSON.stringify(a ?? null) === JSON.stringify(b ?? null)) continue;
    if (a === undefined || a === null) out.push({ kind: "added", text: `${what}: ${shown(b)}` });
    else if (b === undefined || b === null) out.push({ kind: "removed", text: `${what}: ${shown(a)}` });
    else out.push({ kind: "changed", text: `${what}: ${shown(a)} → ${shown(b)}` });
  }
  for (const [field, what] of [["issues", "addresses"], ["open_issues", "leaves open"]]) {
    const a = new Set(before[field] || []);
    const b = new Set(after[field] || []);
    for (const i of b) if (!a.has(i)) out.push({ kind: "added", text: `${what} ${name(i)}` });
    for (const i of a) if (!b.has(i)) out.push({ kind: "removed", text: `${what} ${name(i)}` });
  }
  for (const c of after.changes || []) {
    const text = typeof c === "string" ? c : [c.kind || c.op, c.point ? `point ${c.point}` : "", c.summary || c.text || ""].filter(Boolean).join(": ");
    out.push({ kind: "stated", text });
  }
  return out;
}

/** What changed in an agreement's provisions from `before` (the one it supersedes) to `after`. */
export function provisionChanges(before, after) {
  const a = new Map((before.provisions || []).map((p) => [provisionKey(p), p]));
  const b = new Map((after.provisions || []).map((p) => [provisionKey(p), p]));
  const out = [];
  for (const [k, p] of b) {
    if (!a.has(k)) out.push({ kind: "added", text: provisionText(p) });
    else if (JSON.stringify(a.get(k)) !== JSON.stringify(p)) {
      out.push({ kind: "changed", text: `${provisionText(a.get(k))} → ${provisionText(p)}` });
    }
  }
  for (const [k, p] of a) if (!b.has(k)) out.push({ kind: "removed", text: provisionText(p) });
  return out;
}

function changeList(changes, empty) {
  if (!changes.length) return el("p", { class: "muted" }, empty);
  return el("ul", { class: "changes" }, changes.map((c) =>
    el("li", { class: `change ${c.kind}` }, el("span", { class: "chip" }, c.kind), c.text)));
}

/**
 * A plan's versions, oldest first, each a fact button (`pick(fact, title, content)`) with what
 * changed from the version before it.
 */
export function versions(plan, pick) {
  const list = plan.versions || [];
  if (list.length < 2) return "";
  return el("details", { class: "versions", "data-plan": plan.plan_id, open: true },
    el("summary", {}, `${list.length} versions and what changed`),
    el("ol", { class: "facts" }, list.map((v, i) => el("li", { "data-version": v.version },
      pick(v, `${v.title || name(plan.plan_id)} v${v.version}`,
        [`Version ${v.version}`, v.points ? `, ${v.points} points` : "", " ", el("span", { class: "muted" }, label(v.when))]),
      i === 0
        ? el("p", { class: "muted" }, "First version.")
        : changeList(planChanges(list[i - 1], v), "Nothing recorded changed from the version before.")))));
}

/** An agreement's changes from the one it supersedes, when the view lists that one too. */
export function superseded(agreement, all) {
  if (!agreement.supersedes) return "";
  const before = all.find((a) => a.agreement_id === agreement.supersedes);
  if (!before) return el("div", { class: "muted" }, `Supersedes ${name(agreement.supersedes)}.`);
  return el("div", { class: "supersedes", "data-supersedes": agreement.supersedes },
    el("div", {}, `Supersedes ${before.title || name(before.agreement_id)}; provisions:`),
    changeList(provisionChanges(before, agreement), "The same provisions."));
}
