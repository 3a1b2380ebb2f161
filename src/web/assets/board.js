// The negotiation's state as lists: the issue board (status per assessor, contested flagged),
// each actor's latest position with its history and what answers what, the plans with their
// versions and the agreements with what changed (`plans.js`), and the audit of knowledge. Every fact is a button that opens its evidence.
// Never recomputes what a view already decided (status, fate, contested): it shows it.

import { el, name, clear } from "./dom.js";
import { label } from "./dates.js";
import { fromView } from "./evidence.js";
import { versions, superseded } from "./plans.js";

function pick(onPick, fact, title, content = title) {
  return el("button", { type: "button", class: "fact", "data-event-id": fact.event_id, onclick: () => onPick(fact, title) },
    ...[].concat(content));
}

function statusSpan(s) {
  return el("span", { class: `status status-${s}` }, String(s || "unknown").replace(/_/g, " "));
}

/** A small mark of how much stands behind a fact, when the view says it. */
function support(fact) {
  const ev = fromView(fact);
  if (!ev) return "";
  return el("span", { class: ev.corroborated ? "chip corroborated" : "chip single" },
    ev.corroborated ? `${ev.independent_originators} originators` : "one originator",
    ev.admiralty ? ` · ${ev.admiralty}` : "");
}

export function renderIssues(node, proc, onPick) {
  clear(node);
  const contested = new Set((proc.contested || []).map((c) => c.issue_id || c.issue).filter(Boolean));
  // Records that say different things about one id: listed, never resolved here.
  const conflicts = (proc.contested || []).filter((c) => c.kind === "conflicting_records");
  if (conflicts.length) {
    node.append(el("div", { class: "conflicts", id: "conflicts" },
      el("h3", {}, "Contested records ", el("span", { class: "contested" }, `${conflicts.length}`)),
      el("ul", { class: "facts" }, conflicts.map((c) => el("li", { "data-id": c.id },
        `${name(c.id)} (${c.field}): `,
        (c.claims || []).map((cl, i) => pick(onPick, cl, `${name(c.id)}: claim ${i + 1}`, `claim ${i + 1}`)))))));
  }
  if (!(proc.issues || []).length) {
    node.append(el("p", { class: "muted" }, "No issue assessed at this cut."));
    return;
  }
  for (const issue of proc.issues) {
    const isContested = issue.status === "contested" || contested.has(issue.issue_id);
    const rows = (issue.statuses || []).map((s) =>
      el("tr", { "data-assessor": s.assessed_by },
        el("td", {}, name(s.assessed_by)),
        el("td", {}, pick(onPick, s, `${issue.label || name(issue.issue_id)}: ${s.status} (${name(s.assessed_by)})`, [statusSpan(s.status), " ", support(s)])),
        el("td", { class: "muted" }, label(s.when)),
        el("td", {}, s.rationale || "")));
    node.append(el("div", { class: "issue", "data-issue": issue.issue_id },
      el("h3", {}, issue.label || name(issue.issue_id), ": ", statusSpan(issue.status),
        isContested ? el("span", { class: "contested", title: "Claims that overlap in world time disagree" }, "contested") : ""),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Assessor"), el("th", {}, "Status"), el("th", {}, "When"), el("th", {}, "Why"))),
        el("tbody", {}, rows))));
  }
}

export function renderPositions(node, proc, onPick) {
  clear(node);
  const groups = proc.positions || [];
  if (!groups.length) {
    node.append(el("p", { class: "muted" }, "No position stated at this cut."));
    return;
  }
  const objects = new Map();
  for (const g of groups) for (const p of g.positions || []) objects.set(p.position_id, `${name(g.holder)}: ${p.stance} ${p.object || ""}`);
  const byHolder = new Map();
  for (const g of groups) {
    if (!byHolder.has(g.holder)) byHolder.set(g.holder, []);
    byHolder.get(g.holder).push(g);
  }
  for (const [holder, list] of byHolder) {
    const box = el("div", { class: "holder", "data-holder": holder }, el("h3", {}, name(holder)));
    for (const g of list) {
      const ps = g.positions || [];
      if (!ps.length) continue;
      // Newest first: the latest stands out, the earlier ones stay in view as its history.
      box.append(el("div", { class: "position", "data-issue": g.issue },
        el("div", { class: "muted" }, g.issue_label || name(g.issue)),
        el("ol", { class: "facts history" }, ps.slice().reverse().map((p, i) =>
          el("li", { class: i === 0 ? "latest" : "earlier" },
            el("span", { class: "chip" }, i === 0 ? "latest" : "earlier"),
            positionLine(p, holder, objects, onPick))))));
    }
    node.append(box);
  }
}

function positionLine(p, holder, objects, onPick) {
  const title = `${name(holder)} ${p.stance}: ${p.object || ""}`;
  return el("div", { class: "position-line", "data-position": p.position_id },
    pick(onPick, p, title, [
      el("span", { class: "stance" }, String(p.stance).replace(/_/g, " ")), " ",
      p.object || "", p.target ? ` (to ${name(p.target)})` : "", " ",
      el("span", { class: "muted" }, label(p.when)), " ", support(p)]),
    p.conditions && p.conditions.length ? el("div", { class: "muted" }, `if: ${p.conditions.join("; ")}`) : "",
    p.responds_to ? el("div", { class: "muted responds" }, `answers ${objects.get(p.responds_to) || p.responds_to}`) : "",
    (p.answered_by || []).length ? el("div", { class: "muted answered" }, `answered by ${p.answered_by.map((a) => objects.get(a) || a).join("; ")}`) : "");
}

export function renderPlans(node, proc, onPick) {
  clear(node);
  const plans = proc.plans || [];
  const latest = proc.latest_plan;
  if (!plans.length && !(proc.agreements || []).length) {
    node.append(el("p", { class: "muted" }, "No plan or agreement at this cut."));
    return;
  }
  for (const p of plans) {
    const isLatest = latest && latest.plan_id === p.plan_id && latest.version === p.version;
    node.append(el("div", { class: "plan", "data-plan": p.plan_id },
      el("h3", {}, isLatest ? "Latest plan: " : "Plan: ", pick(onPick, p, `${p.title} v${p.version}`, `${p.title || name(p.plan_id)} (version ${p.version})`)),
      el("div", {}, p.points ? `${p.points} points. ` : "", p.proposer ? `Proposed by ${name(p.proposer)}. ` : "",
        p.origin_meeting ? `From ${name(p.origin_meeting)}. ` : "", el("span", { class: "muted" }, label(p.when))),
      (p.open_issues || []).length ? el("div", {}, "Leaves open: ", p.open_issues.map((i) => el("span", { class: "chip" }, name(i)))) : "",
      versions(p, (fact, title, content) => pick(onPick, fact, title, content))));
  }
  for (const a of proc.agreements || []) {
    node.append(el("div", { class: "agreement", "data-agreement": a.agreement_id },
      el("h3", {}, "Agreement: ", pick(onPick, a, a.title || a.agreement_id, `${a.title || name(a.agreement_id)} (${a.stage || "stage unknown"})`)),
      el("div", {}, (a.parties || []).map((x) => el("span", { class: "chip" }, name(x))), el("span", { class: "muted" }, label(a.when))),
      (a.provisions || []).length
        ? el("ul", {}, a.provisions.map((pr) => el("li", {}, typeof pr === "string" ? pr : [pr.issue ? `${name(pr.issue)}: ` : "", pr.summary || "",
          pr.terms ? el("span", { class: "muted" }, ` ${Object.entries(pr.terms).map(([k, v]) => `${k} = ${v}`).join(", ")}`) : ""])))
        : "",
      superseded(a, proc.agreements)));
  }
}

export function renderAudit(node, view, onPick) {
  clear(node);
  const changes = view.changes || [];
  if (!changes.length) {
    node.append(el("p", { class: "muted" }, "No correction, retraction or re-grade recorded at this cut."));
    return;
  }
  const compact = (v) => (v === null || v === undefined ? "" : JSON.stringify(v));
  node.append(el("table", { id: "audit-table" },
    el("thead", {}, el("tr", {}, ["seq", "change", "of", "before", "after", "why", "recorded by", "recorded at"].map((h) => el("th", {}, h)))),
    el("tbody", {}, changes.map((c) => el("tr", { "data-seq": c.seq },
      el("td", {}, pick(onPick, c, `${c.change} at seq ${c.seq}`, String(c.seq))),
      el("td", {}, c.change, c.retracted ? " (retracted)" : ""),
      el("td", {}, c.target_type || c.source_id || ""),
      el("td", {}, el("code", {}, compact(c.before))),
      el("td", {}, el("code", {}, compact(c.after))),
      el("td", {}, c.reason || ""),
      el("td", {}, c.recorded_by || ""),
      el("td", { class: "muted" }, c.recorded_at || ""))))));
}
