// The evidence panel: for a clicked fact, its sources, the attribution chain ("the article says
// Russian media say Moscow wants…"), the quote, the Admiralty pair and whether more than one
// originator stands behind it, all from the view's `evidence` object (the server's one rule of
// originators and corroboration); the record (`GET /events/{id}`) only for its text. Never
// judges a source or counts originators itself.

import { get } from "./api.js";
import { el, name, clear } from "./dom.js";

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
  // Every fact of every view carries the summary; a fact without one has no evidence to show.
  if (!ev) ev = { items: [], originators: [], independent_originators: 0, corroborated: false, admiralty: null };
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

/** "The article says Russian media say Russia …": the chain read out. */
function chainSentence(chain) {
  return chain.map((c, i) => `${name(c)} ${i === chain.length - 1 ? "says so" : "says"}`).join(" → ");
}
