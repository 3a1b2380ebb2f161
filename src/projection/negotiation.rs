//! The `negotiation` read model: per process, the parties and mediators, the latest plan and
//! each plan's versions, the issues with their status per assessor (the latest in world time), positions per actor × issue (with
//! what answers what), the last meeting, the next scheduled talks, and the contested claims.
//! Derived at query time from the knowledge layer's entries, so a correction replaces what it
//! corrects and an as-of cut is a filter. Every fact shown carries its evidence summary and
//! inferred pointers (`evidence.rs`); `?group=side` also nests positions under the side each
//! holder represents (`negotiation/side.rs`). This module must never resolve a disagreement
//! between claims of equal standing: it shows them as contested (for statuses, claims that
//! overlap in world time; a status that changed over time is no disagreement).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::asof::{self, Cut};
use super::calendar;
use super::evidence::Trust;
use super::knowledge::{Ix, Knowledge};
use crate::event::{EventKind, registry};

mod side;

/// The name of this projection in routes and status.
pub const NAME: &str = "negotiation";

/// How the view may also group positions, beyond holder × issue (`?group=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Each holder's positions under the side they represent (`?group=side`):
    /// `positions_by_side`.
    Side,
}

/// A `group` that is not one the view knows.
#[derive(Debug, thiserror::Error)]
#[error("`group` must be `side` (got `{0}`)")]
pub struct BadGroup(pub String);

impl std::str::FromStr for Group {
    type Err = BadGroup;

    fn from_str(s: &str) -> Result<Group, BadGroup> {
        match s {
            "side" => Ok(Group::Side),
            other => Err(BadGroup(other.to_string())),
        }
    }
}

/// Types whose facts belong to a negotiation view.
const KINDS: [EventKind; 7] = [
    EventKind::MeetingHeld,
    EventKind::PlanProposed,
    EventKind::PlanRevised,
    EventKind::IssueStatusChanged,
    EventKind::PositionStated,
    EventKind::TalksScheduled,
    EventKind::AgreementReached,
];

/// The id field that names the thing a fact of each type is about (for contested claims).
fn entity_field(kind: Option<EventKind>) -> Option<&'static str> {
    Some(match kind? {
        EventKind::MeetingHeld => "meeting_id",
        EventKind::PositionStated => "position_id",
        EventKind::TalksScheduled => "talks_id",
        EventKind::AgreementReached => "agreement_id",
        EventKind::PlanProposed | EventKind::PlanRevised => "plan_id",
        _ => return None,
    })
}

/// Whether a type is a version of a plan (its claims are per plan and version).
fn is_plan(kind: Option<EventKind>) -> bool {
    matches!(kind, Some(EventKind::PlanProposed | EventKind::PlanRevised))
}

/// Issue labels from `issue.defined`, as `issue.updated` changed them, as known at the cut.
fn issue_labels(k: &Knowledge, cut: &Cut) -> BTreeMap<String, Value> {
    let mut changes: Vec<Ix> = k
        .of_kind(EventKind::IssueDefined)
        .iter()
        .chain(k.of_kind(EventKind::IssueUpdated))
        .copied()
        .filter(|&ix| k.visible(ix, cut.seq))
        .collect();
    changes.sort_unstable_by_key(|&ix| k.seq_of(ix));
    let mut by_issue: BTreeMap<String, Vec<(&str, Value)>> = BTreeMap::new();
    for ix in changes {
        let d = k.data_at(ix, cut.seq);
        if let Some(id) = d.get("issue_id").and_then(Value::as_str) {
            by_issue
                .entry(id.to_string())
                .or_default()
                .push((k.fact(ix).kind(), d));
        }
    }
    by_issue
        .into_iter()
        .filter_map(|(id, changes)| {
            let entry = registry::fold(changes)?;
            Some((id, entry["label"].clone()))
        })
        .collect()
}

/// Whether two facts may have held at the same world time: their `occurred` spans (earliest:
/// `start` or `not_before`; latest: `end`, else `not_after`, else `start`) overlap, compared
/// at the coarser precision. A fact with an open side cannot be excluded on that side.
fn overlap(a: &Value, b: &Value) -> bool {
    let latest = |o: &Value| {
        ["end", "not_after", "start"]
            .iter()
            .find_map(|f| o.get(*f).and_then(Value::as_str).map(str::to_string))
    };
    let before = |start: Option<&str>, end: Option<String>| match (start, end) {
        (Some(s), Some(e)) => asof::not_after(s, &e),
        _ => true,
    };
    before(asof::earliest(a), latest(b)) && before(asof::earliest(b), latest(a))
}

/// The view of one process, or `None` if nothing is known of it at the cut.
pub fn process(k: &Knowledge, cut: &Cut, process: &str) -> Option<Value> {
    process_grouped(k, cut, process, None)
}

/// The view of one process, with its positions also grouped as `group` asks.
pub fn process_grouped(
    k: &Knowledge,
    cut: &Cut,
    process: &str,
    group: Option<Group>,
) -> Option<Value> {
    let trust = Trust::new(k, cut);
    // The process's own facts, not every fact of each type: a process's view must cost what
    // the process holds, whatever the other processes hold.
    let mut own = k.of_process(process, cut.seq).peekable();
    own.peek()?;
    let ixs: Vec<Ix> = own
        .filter(|&ix| {
            k.fact(ix)
                .event_kind()
                .is_some_and(|kind| KINDS.contains(&kind))
                && k.visible(ix, cut.seq)
                && asof::occurred_by(cut, &k.occurred(ix))
        })
        .collect();
    let labels = issue_labels(k, cut);
    let mut parties = BTreeSet::new();
    let mut mediators = BTreeSet::new();
    let mut last_meeting: Option<(String, u64, Ix)> = None;
    let mut plans: BTreeMap<String, (u64, u64, Ix, Value)> = BTreeMap::new();
    // Every version of each plan, so a reader sees what changed from one to the next.
    let mut plan_versions: BTreeMap<String, Vec<(u64, u64, Ix, Value)>> = BTreeMap::new();
    let mut issues: BTreeMap<String, BTreeMap<String, (Ix, Value)>> = BTreeMap::new();
    let mut positions: BTreeMap<(String, String), Vec<(Ix, Value)>> = BTreeMap::new();
    let mut answered_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut talks: Vec<(String, Ix)> = Vec::new();
    let mut agreements = Vec::new();
    let mut claims: BTreeMap<(String, String), Vec<(Ix, Value)>> = BTreeMap::new();
    for &ix in &ixs {
        let f = k.fact(ix);
        let d = k.data_at(ix, cut.seq);
        let s = |key: &str| d.get(key).and_then(Value::as_str).map(str::to_string);
        if let Some(field) = entity_field(f.event_kind())
            && let Some(id) = s(field)
        {
            let key = if is_plan(f.event_kind()) {
                format!("{id}@v{}", d["version"])
            } else {
                id
            };
            claims
                .entry((field.to_string(), key))
                .or_default()
                .push((ix, d.clone()));
        }
        match f.event_kind() {
            Some(EventKind::MeetingHeld) => {
                for p in d["participants"].as_array().into_iter().flatten() {
                    let side = p.get("side").and_then(Value::as_str);
                    if p.get("role").and_then(Value::as_str) == Some("mediator") {
                        if let Some(a) = p.get("actor").and_then(Value::as_str) {
                            mediators.insert(a.to_string());
                        }
                    } else if let Some(side) = side {
                        parties.insert(side.to_string());
                    }
                }
                let key = asof::sort_key(&k.occurred(ix));
                if last_meeting
                    .as_ref()
                    .is_none_or(|(k0, s0, _)| (&key, f.seq) > (k0, *s0))
                {
                    last_meeting = Some((key, f.seq, ix));
                }
            }
            Some(EventKind::PlanProposed | EventKind::PlanRevised) => {
                if let Some(id) = s("plan_id") {
                    let version = d["version"].as_u64().unwrap_or(0);
                    let newer = plans
                        .get(&id)
                        .is_none_or(|(v, seq, _, _)| (version, f.seq) >= (*v, *seq));
                    plan_versions.entry(id.clone()).or_default().push((
                        version,
                        f.seq,
                        ix,
                        d.clone(),
                    ));
                    if newer {
                        plans.insert(id, (version, f.seq, ix, d.clone()));
                    }
                }
            }
            Some(EventKind::IssueStatusChanged) => {
                // An assessor's latest status is the latest in world time; log order only
                // breaks a tie (a late-recorded older assessment does not replace a newer one).
                if let (Some(issue), Some(by)) = (s("issue_id"), s("assessed_by")) {
                    let slot = issues.entry(issue).or_default().entry(by);
                    let key = asof::sort_key(&k.occurred(ix));
                    match slot {
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert((ix, d.clone()));
                        }
                        std::collections::btree_map::Entry::Occupied(mut o) => {
                            if key >= asof::sort_key(&k.occurred(o.get().0)) {
                                o.insert((ix, d.clone()));
                            }
                        }
                    }
                }
            }
            Some(EventKind::PositionStated) => {
                if let (Some(holder), Some(issue)) = (s("holder"), s("issue")) {
                    if let (Some(pid), Some(to)) = (s("position_id"), s("responds_to")) {
                        answered_by.entry(to).or_default().push(pid);
                    }
                    positions
                        .entry((holder, issue))
                        .or_default()
                        .push((ix, d.clone()));
                }
            }
            Some(EventKind::TalksScheduled) => {
                for p in d["parties"].as_array().into_iter().flatten() {
                    if let Some(p) = p.as_str() {
                        parties.insert(p.to_string());
                    }
                }
                talks.push((s("talks_id").unwrap_or_default(), ix));
            }
            Some(EventKind::AgreementReached) => {
                for p in d["parties"].as_array().into_iter().flatten() {
                    if let Some(p) = p.as_str() {
                        parties.insert(p.to_string());
                    }
                }
                agreements.push(trust.stamp(
                    ix,
                    json!({
                        "agreement_id": d.get("agreement_id"),
                        "title": d.get("title"),
                        "stage": d.get("stage"),
                        "parties": d.get("parties"),
                        "provisions": d.get("provisions"),
                        "supersedes": d.get("supersedes"),
                        "when": asof::when(&k.occurred(ix)),
                        "event_id": f.id(),
                    }),
                ));
            }
            _ => {}
        }
    }

    let plan_json = |(version, _, ix, d): &(u64, u64, Ix, Value)| {
        let plan = json!({
            "plan_id": d.get("plan_id"),
            "title": d.get("title"),
            "version": version,
            "points": d.get("points"),
            "proposer": d.get("proposer"),
            "origin_meeting": d.get("origin_meeting"),
            "open_issues": d.get("open_issues"),
            "when": asof::when(&k.occurred(*ix)),
            "event_id": k.fact(*ix).id(),
        });
        trust.stamp(*ix, plan)
    };
    // A plan in `plans` also lists its versions, oldest first, each as recorded (with what it
    // says changed), so a client can show what changed between them without another read.
    let version_json = |version: &(u64, u64, Ix, Value)| {
        let mut out = plan_json(version);
        if let Some(o) = out.as_object_mut() {
            for field in ["parent_version", "summary", "issues", "changes"] {
                o.insert(
                    field.into(),
                    version.3.get(field).cloned().unwrap_or(Value::Null),
                );
            }
        }
        out
    };
    let plans_json: Vec<Value> = plans
        .iter()
        .map(|(id, latest)| {
            let mut plan = plan_json(latest);
            let mut versions = plan_versions.get(id).cloned().unwrap_or_default();
            versions.sort_by_key(|(v, seq, _, _)| (*v, *seq));
            if let Some(o) = plan.as_object_mut() {
                o.insert(
                    "versions".into(),
                    Value::Array(versions.iter().map(version_json).collect()),
                );
            }
            plan
        })
        .collect();
    let latest_plan = plans
        .values()
        .max_by(|a, b| {
            (asof::sort_key(&k.occurred(a.2)), a.1).cmp(&(asof::sort_key(&k.occurred(b.2)), b.1))
        })
        .map(plan_json);

    let mut contested = Vec::new();
    let issues_json: Vec<Value> = issues
        .iter()
        .map(|(issue, by)| {
            let statuses: Vec<Value> = by
                .iter()
                .map(|(assessor, (ix, d))| {
                    trust.stamp(
                        *ix,
                        json!({
                            "assessed_by": assessor,
                            "status": d.get("status"),
                            "rationale": d.get("rationale"),
                            "derived_from": d.get("derived_from"),
                            "when": asof::when(&k.occurred(*ix)),
                            "event_id": k.fact(*ix).id(),
                        }),
                    )
                })
                .collect();
            // Contested: two assessors' latest claims disagree and overlap in world time. A
            // later claim that differs from an earlier one is a change, not a disagreement.
            let latest: Vec<&(Ix, Value)> = by.values().collect();
            let disagree = latest.iter().enumerate().any(|(i, (a, da))| {
                latest[i + 1..].iter().any(|(b, db)| {
                    da["status"] != db["status"] && overlap(&k.occurred(*a), &k.occurred(*b))
                })
            });
            let status = if disagree {
                json!("contested")
            } else {
                latest
                    .iter()
                    .max_by(|(a, _), (b, _)| {
                        (asof::sort_key(&k.occurred(*a)), *a)
                            .cmp(&(asof::sort_key(&k.occurred(*b)), *b))
                    })
                    .and_then(|(_, d)| d.get("status").cloned())
                    .unwrap_or(Value::Null)
            };
            if disagree {
                contested.push(json!({
                    "kind": "issue_status",
                    "issue_id": issue,
                    "claims": statuses.clone(),
                }));
            }
            json!({
                "issue_id": issue,
                "label": labels.get(issue),
                "status": status,
                "statuses": statuses,
            })
        })
        .collect();

    for ((field, id), list) in &claims {
        let distinct: BTreeSet<String> = list.iter().map(|(_, d)| d.to_string()).collect();
        if distinct.len() > 1 {
            contested.push(json!({
                "kind": "conflicting_records",
                "field": field,
                "id": id,
                "claims": list.iter().map(|(ix, d)| trust.stamp(*ix, json!({
                    "event_id": k.fact(*ix).id(),
                    "data": d,
                }))).collect::<Vec<_>>(),
            }));
        }
    }

    let positions_json: Vec<Value> = positions
        .iter()
        .map(|((holder, issue), list)| {
            json!({
                "holder": holder,
                "issue": issue,
                "issue_label": labels.get(issue),
                "positions": list.iter().map(|(ix, d)| {
                    let pid = d["position_id"].as_str().unwrap_or("");
                    trust.stamp(*ix, json!({
                        "position_id": d.get("position_id"),
                        "stance": d.get("stance"),
                        "object": d.get("object"),
                        "target": d.get("target"),
                        "conditions": d.get("conditions"),
                        "responds_to": d.get("responds_to"),
                        "answered_by": answered_by.get(pid).cloned().unwrap_or_default(),
                        "derived_from": d.get("derived_from"),
                        "when": asof::when(&k.occurred(*ix)),
                        "event_id": k.fact(*ix).id(),
                    }))
                }).collect::<Vec<_>>(),
            })
        })
        .collect();

    let mut pending: Vec<(String, u64, Value)> = talks
        .iter()
        .map(|(_, ix)| calendar::talks_json(k, *ix, cut, &trust))
        .filter(|t| matches!(t["fate"].as_str(), Some(f) if f != "held" && f != "cancelled"))
        .map(|t| {
            let start = t["planned"]["start"].as_str().unwrap_or("~").to_string();
            (start, t["seq"].as_u64().unwrap_or(0), t)
        })
        .collect();
    pending.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));

    let by_side = (group == Some(Group::Side)).then(|| side::group(k, cut, &positions_json));
    let mut out = json!({
        "process": process,
        "parties": parties,
        "mediators": mediators,
        "latest_plan": latest_plan,
        "plans": plans_json,
        "issues": issues_json,
        "positions": positions_json,
        "last_meeting": last_meeting.map(|(_, _, ix)| calendar::meeting_json(k, ix, cut, &trust)),
        "next_talks": pending.first().map(|t| t.2.clone()),
        "agreements": agreements,
        "contested": contested,
    });
    if let (Some(o), Some(by_side)) = (out.as_object_mut(), by_side) {
        o.insert("positions_by_side".into(), by_side);
    }
    Some(out)
}

/// Every process, or one when `process` is given.
pub fn view(k: &Knowledge, cut: &Cut, process_filter: Option<&str>) -> Value {
    view_grouped(k, cut, process_filter, None)
}

/// [`view`], with each process's positions also grouped as `group` asks.
pub fn view_grouped(
    k: &Knowledge,
    cut: &Cut,
    process_filter: Option<&str>,
    group: Option<Group>,
) -> Value {
    let list: Vec<Value> = k
        .processes()
        .into_iter()
        .filter(|p| process_filter.is_none_or(|f| f == *p))
        .filter_map(|p| process_grouped(k, cut, p, group))
        .collect();
    json!({ "processes": list })
}
