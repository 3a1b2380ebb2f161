// The page's controller: asks for a key, reads the views for the chosen process at the chosen
// cut (`known_at` by seq, `valid_at` by world date), draws them, and follows the live feed.
// Every redraw fetches only what is on screen: one process's negotiation and calendar, the
// audit only while its panel is open. Never writes to the log.

import { get, getKey, setKey, forgetKey, follow, ApiError } from "./api.js";
import { el, clear, learnName, name } from "./dom.js";
import * as timeline from "./timeline.js";
import * as board from "./board.js";
import * as evidence from "./evidence.js";

const $ = (id) => document.getElementById(id);

const state = {
  head: 0,
  latest: true,
  process: null,
  processes: [],
  generation: 0,
  stopLive: null,
  pending: null,
  inferred: new Map(),
};

function message(text, kind = "error") {
  const m = $("message");
  m.textContent = text;
  m.className = kind === "info" ? "info" : "";
  m.hidden = !text;
}

function refusal(e) {
  if (e instanceof ApiError && e.status === 401) return "This key was refused (401 Unauthorized). Check that you pasted the whole key (it starts with ak_) and try again.";
  if (e instanceof ApiError && e.status === 403) return "This key is valid but lacks the read scope (403 Forbidden). Use a key with the read scope.";
  return `Could not read the log: ${e.message}`;
}

/** The cut as query parameters: none for the latest and today. */
function cut() {
  return {
    known_at: state.latest ? null : $("known-at").value,
    valid_at: $("valid-at").value || null,
  };
}

function showCut() {
  $("known-at-label").textContent = state.latest ? `latest (seq ${state.head})` : `seq ${$("known-at").value} of ${state.head}`;
}

function setHead(seq) {
  state.head = seq;
  const slider = $("known-at");
  slider.max = String(Math.max(seq, 1));
  if (state.latest) slider.value = slider.max;
  showCut();
}

async function start() {
  message("");
  let head;
  try {
    head = await get("/log");
    // `/log` may be open to any caller; a read of a view proves the key's read scope.
    await get("/projections");
  } catch (e) {
    message(refusal(e));
    $("key").focus();
    return;
  }
  $("key-forget").hidden = false;
  $("controls").hidden = false;
  $("main").hidden = false;
  setHead(head.seq);
  try {
    const actors = await get("/projections/actors");
    for (const a of actors.actors || []) learnName(a.actor_id, a.name);
  } catch (_) { /* names are a nicety: ids are shown instead */ }
  try {
    await loadProcesses();
  } catch (e) {
    message(refusal(e));
  }
  fillPicker();
  await redraw();
  if (state.stopLive) state.stopLive();
  state.stopLive = follow(head.seq + 1, onRecord, onLive);
}

/**
 * Every process of the log, from the process list (`/projections/processes`: one read that
 * costs the number of processes, not the log). The picker opens on the reader's last choice
 * in this tab, else on the most recently active process.
 */
async function loadProcesses() {
  const list = (await get("/projections/processes")).processes || [];
  const recent = list.slice().sort((a, b) => b.last_seq - a.last_seq);
  const remembered = sessionStorage.getItem("annals.process");
  const known = (id) => id && list.some((p) => p.process === id);
  state.process = state.process || (known(remembered) ? remembered : null) || (recent[0] && recent[0].process) || null;
  mergeProcesses(list.map((p) => p.process));
}

function mergeProcesses(ids) {
  const merged = [...new Set([...state.processes, ...ids])].sort();
  if (merged.length === state.processes.length) return;
  state.processes = merged;
  fillPicker();
}

function fillPicker() {
  const sel = $("process");
  clear(sel);
  for (const id of state.processes) sel.append(el("option", { value: id }, id));
  if (state.process) sel.value = state.process;
}

function onLive(up, err) {
  const l = $("live");
  l.className = up ? "live on" : "live off";
  l.textContent = up ? "live" : "not live";
  if (err) message(refusal(err));
}

function onRecord(rec) {
  setHead(Math.max(state.head, rec.seq));
  if (rec.process) {
    mergeProcesses([rec.process]);
    if (!state.process) state.process = rec.process;
  }
  if (!state.latest) return;
  // Records arrive in bursts: one redraw per burst.
  clearTimeout(state.pending);
  state.pending = setTimeout(redraw, 120);
}

const records = new Map();

/** A record by event id, read once: a stored record never changes. Null when unreadable. */
function record(id) {
  if (!records.has(id)) records.set(id, get(`/events/${encodeURIComponent(id)}`).catch(() => null));
  return records.get(id);
}

/**
 * What the views do not give yet, from the records (at most 50 per draw): the inferred
 * pointers of facts whose view has no `inferred` key (`meta.inferred`), and the first planned
 * dates of talks that were moved. True when anything was learnt.
 */
async function learnFromRecords(items) {
  const wanted = items.filter((it) =>
    (!Array.isArray(it.fact.inferred) && !state.inferred.has(it.fact.event_id)) ||
    (it.moved && !it.origin)).slice(0, 50);
  await Promise.all(wanted.map(async (it) => {
    const rec = await record(it.fact.event_id);
    if (!Array.isArray(it.fact.inferred)) state.inferred.set(it.fact.event_id, (rec && rec.meta && rec.meta.inferred) || []);
    if (it.moved && rec && rec.data && rec.data.planned) it.origin = rec.data.planned;
  }));
  return wanted.length > 0;
}

function inferredOf(f) {
  return Array.isArray(f.inferred) ? f.inferred : state.inferred.get(f.event_id) || [];
}

/** Earlier planned dates of moved talks: the first plan, then each move but the last. */
function movesOf(it) {
  const plans = [it.origin, ...it.moved.slice(0, -1)].filter(Boolean);
  return plans.map((p) => ({ precision: "day", ...p }));
}

async function redraw() {
  const gen = ++state.generation;
  showCut();
  const empty = state.head === 0;
  $("empty").hidden = !empty;
  $("views").hidden = empty;
  if (empty) return;
  if (!state.process) {
    await loadProcesses().catch(() => {});
    fillPicker();
    if (!state.process) {
      $("process-title").textContent = "No process yet";
      return;
    }
  }
  const c = cut();
  const proc = encodeURIComponent(state.process);
  let neg;
  let cal;
  try {
    [neg, cal] = await Promise.all([
      get(`/projections/negotiation/${proc}`, c).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
      get("/projections/calendar", { ...c, process: state.process }),
    ]);
  } catch (e) {
    if (gen === state.generation) message(refusal(e));
    return;
  }
  if (gen !== state.generation) return;
  const p = neg || { process: state.process, parties: [], mediators: [], issues: [], positions: [], plans: [], agreements: [] };
  for (const i of p.issues || []) learnName(i.issue_id, i.label);
  for (const g of p.positions || []) learnName(g.issue, g.issue_label);
  const items = [
    ...(cal.meetings || []).map((m) => ({ kind: "meeting", title: m.title || name(m.meeting_id), when: m.when, fact: m })),
    ...(cal.talks || []).map((t) => ({
      kind: "talks", title: t.title || name(t.talks_id), fate: t.fate,
      when: t.planned ? { precision: "day", ...t.planned } : null, fact: t,
      moved: (t.status_history || []).some((h) => h.planned) ? t.status_history.map((h) => h.planned).filter(Boolean) : null,
    })),
  ];
  const settle = () => {
    for (const it of items) {
      it.inferred = inferredOf(it.fact);
      if (it.moved) it.moves = movesOf(it);
    }
  };
  settle();
  message("");
  $("process-title").textContent = `Process: ${state.process}`;
  const parties = $("parties");
  clear(parties);
  parties.append(
    el("div", {}, "Parties: ", (p.parties || []).length ? p.parties.map((x) => el("span", { class: "chip party" }, name(x))) : el("span", { class: "muted" }, "none recorded")),
    el("div", {}, "Mediators: ", (p.mediators || []).length ? p.mediators.map((x) => el("span", { class: "chip mediator" }, name(x))) : el("span", { class: "muted" }, "none recorded")),
    el("div", { class: "muted" }, `As known at seq ${neg ? neg.as_of_seq : cal.as_of_seq}${c.valid_at ? `, as of ${c.valid_at}` : ""}.`),
  );
  const todayMs = c.valid_at ? Date.parse(c.valid_at) : Date.now();
  const legend = $("timeline-legend");
  clear(legend);
  legend.append("A tick is a day; a band is a month, an interval or an unknown date between its bounds; dashed means inferred.",
    ...["meeting", "held", "scheduled", "postponed", "cancelled", "overdue"].flatMap((k) => [el("span", { class: `swatch sw-${k}` }), k === "meeting" ? "meeting held" : `talks ${k}`]));
  const drawTimeline = () => timeline.render($("timeline"), $("undated"), items, todayMs, (it) => openEvidence(it.fact, it.title));
  $("timeline").removeAttribute("data-settled");
  drawTimeline();
  // Until every view carries `inferred`, the records say it: drawn again once they are read.
  learnFromRecords(items).then((learnt) => {
    if (gen !== state.generation) return;
    if (learnt) {
      settle();
      drawTimeline();
    }
    $("timeline").dataset.settled = "";
  });
  board.renderIssues($("board"), p, openEvidence);
  board.renderPositions($("positions"), p, openEvidence);
  board.renderPlans($("plans"), p, openEvidence);
  if ($("audit-details").open) await drawAudit();
  // Measured by the 100k-event check in tests/web/perf.rs: navigation start to this mark.
  if (!state.drawn) {
    state.drawn = true;
    performance.mark("annals:first-view");
  }
}

async function drawAudit() {
  try {
    const view = await get("/projections/audit", cut());
    board.renderAudit($("audit"), view, openEvidence);
  } catch (e) {
    message(refusal(e));
  }
}

function openEvidence(fact, title) {
  // Focus goes to the panel; closing it gives focus back to the fact that opened it.
  state.opener = document.activeElement;
  evidence.show(fact, title, state.latest ? null : $("known-at").value).catch((e) => message(refusal(e)));
}

function bind() {
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const k = $("key").value.trim();
    if (!k) {
      message("Enter an API key with the read scope.", "info");
      return;
    }
    setKey(k);
    $("key").value = "";
    start();
  });
  $("key-forget").addEventListener("click", () => {
    forgetKey();
    if (state.stopLive) state.stopLive();
    location.reload();
  });
  $("process").addEventListener("change", (e) => {
    state.process = e.target.value;
    sessionStorage.setItem("annals.process", state.process);
    redraw();
  });
  $("known-at").addEventListener("input", () => {
    state.latest = Number($("known-at").value) >= state.head;
    showCut();
    clearTimeout(state.pending);
    state.pending = setTimeout(redraw, 80);
  });
  $("known-at-latest").addEventListener("click", () => {
    state.latest = true;
    $("known-at").value = String(state.head);
    redraw();
  });
  $("valid-at").addEventListener("change", redraw);
  $("valid-at-clear").addEventListener("click", () => {
    $("valid-at").value = "";
    redraw();
  });
  $("audit-details").addEventListener("toggle", () => {
    if ($("audit-details").open) drawAudit();
  });
  $("evidence-close").addEventListener("click", closeEvidence);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("evidence").hidden) closeEvidence();
  });
}

function closeEvidence() {
  $("evidence").hidden = true;
  if (state.opener && state.opener.isConnected) state.opener.focus();
}

bind();
if (getKey()) start();
else {
  message("Enter an API key with the read scope to see the log. It is kept for this browser tab only.", "info");
  $("key").focus();
}
