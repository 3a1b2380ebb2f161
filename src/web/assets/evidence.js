// The evidence panel: for a clicked fact, its sources, the attribution chain ("the article says
// Russian media say Moscow wants…"), the quote, the Admiralty pair and whether more than one
// originator stands behind it. Reads the view's `evidence` object when the view has one, else
// the record itself (`GET /events/{id}`). Never judges a source itself beyond the contract's
// rules (originator = last link of the attribution, else the source).

import { get } from "./api.js";
import { el, name, clear } from "./dom.js";

/** The contract's summary from raw evidence items (used when a view gives only the items). */
export function summarise(items) {
  const norm = items.map((it) => {
    const attribution = it.attribution || [];
    const originator = it.originator || (attribution.length ? attribution[attribution.length - 1] : it.source);
    const cred = it.credibility ?? 6;
    const grade = it.grade || null;
    return { ...it, attribution, originator, admiralty: it.admiralty || (grade ? `${grade}${cred}` : null) };
  });
  const live = norm.filter((it) => !it.withdrawn);
  const originators = [...new Set(live.map((it) => it.originator))];
  const pairs = live.map((it) => it.admiralty).filter(Boolean).sort();
  return {
    items: norm,
    originators,
    independent_originators: originators.length,
    corroborated: originators.length >= 2,
    admiralty: pairs[0] || null,
  };
}

/** The evidence of a fact as the view gives it: the contract's object, or null if absent. */
export function fromView(fact) {
  const ev = fact && fact.evidence;
  if (ev && !Array.isArray(ev) && Array.isArray(ev.items)) return ev;
  return null;
}

/** Shows the evidence of the fact `fact` (any view object with an `event_id`) in the panel. */
export async function show(fact, title, cut) {
  const panel = document.getElementById("evidence");
  const body = document.getElementById("evidence-body");
  clear(body);
  panel.hidden = false;
  document.getElementById("evidence-title").textContent = `Evidence: ${title}`;
  let ev = fromView(fact);
  let record = null;
  if (fact.event_id) {
    try {
      record = await get(`/events/${encodeURIComponent(fact.event_id)}`);
    } catch (e) {
      body.append(el("p", { class: "muted" }, `The record could not be read: ${e.message}`));
    }
  }
  if (!ev) ev = summarise(await graded((record && record.evidence) || (Array.isArray(fact.evidence) ? fact.evidence : []), cut));
  const inferred = fact.inferred || (record && record.meta && record.meta.inferred) || [];
  body.append(
    el("p", { class: ev.corroborated ? "corroborated" : "single", id: "corroboration" },
      ev.corroborated
        ? `Corroborated: ${ev.independent_originators} independent originators.`
        : `Rests on ${ev.independent_originators === 1 ? "one originator" : `${ev.independent_originators} originators`}: not corroborated.`,
      ev.admiralty ? [" Best Admiralty pair ", el("span", { class: "admiralty" }, ev.admiralty), "."] : " No grade."),
  );
  if (inferred.length) {
    body.append(el("p", { class: "inferred-note" }, `Inferred by the coder: ${inferred.join(", ")}`));
  }
  const list = el("ol", { class: "evidence-items" });
  for (const it of ev.items) {
    const chain = [it.source, ...(it.attribution || [])];
    const li = el("li", { class: it.withdrawn ? "withdrawn evidence-item" : "evidence-item" },
      el("div", {}, el("strong", {}, name(it.source)), it.relation ? ` ${it.relation}` : "",
        it.admiralty ? [" ", el("span", { class: "admiralty" }, it.admiralty)] :
          it.credibility ? ` (credibility ${it.credibility})` : "",
        it.withdrawn ? " (source withdrawn)" : ""),
      el("div", {}, "Attribution chain: ",
        el("ol", { class: "chain", "aria-label": "attribution chain" },
          chain.map((c) => el("li", { "data-id": c }, name(c))))),
      el("div", { class: "muted" }, chainSentence(chain)),
      it.quote ? el("blockquote", {}, it.quote) : "",
      it.locator ? el("div", { class: "muted" }, `at ${it.locator}`) : "",
    );
    list.append(li);
  }
  body.append(el("h3", {}, `Sources (${ev.items.length})`), list);
  if (record) {
    body.append(
      el("h3", {}, "Record"),
      el("p", { class: "muted" },
        `seq ${record.seq}, ${record.type}, recorded ${record.recorded_at} by ${record.recorded_by}`,
        cut ? ` (shown as known at seq ${cut})` : ""),
      el("pre", {}, JSON.stringify(record.data, null, 2)),
    );
  }
  panel.focus();
}

/**
 * Raw evidence items with their source's grade and withdrawal at the cut, from the sources
 * view, as the contract would give them (used until every view carries `evidence`).
 */
async function graded(items, cut) {
  // The sources list is small (no claims); one source's own view lists every claim it backs.
  const sources = new Map();
  try {
    const list = await get("/projections/sources", { known_at: cut });
    for (const s of list.sources || []) sources.set(s.source_id, s);
  } catch (_) { /* ungraded: shown without a letter */ }
  return items.map((it) => {
    const s = sources.get(it.source);
    return s ? { ...it, grade: it.grade || s.grade || "F", withdrawn: it.withdrawn ?? Boolean(s.withdrawn) } : it;
  });
}

/** "The article says Russian media say Russia …": the chain read out. */
function chainSentence(chain) {
  return chain.map((c, i) => `${name(c)} ${i === chain.length - 1 ? "says so" : "says"}`).join(" → ");
}
