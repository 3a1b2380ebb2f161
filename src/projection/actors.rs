//! The `actors` read model: per actor, everything they did or said (statements, positions,
//! meetings, assessments, foundings...), ordered by when it occurred and shown at the precision
//! it was recorded with: a month-precision fact is never shown as a day. Derived at query time
//! from the knowledge layer. This module must never invent a date or a role the data lacks.

use serde_json::{Value, json};

use super::asof::{self, Cut};
use super::knowledge::{Ix, Knowledge, dedup};

/// The name of this projection in routes and status.
pub const NAME: &str = "actors";

/// The fields of a payload that can name an actor, and the role that makes the actor play.
const SINGLE: &[(&str, &str)] = &[
    ("actor_id", "registered"),
    ("speaker", "speaker"),
    ("holder", "holder"),
    ("assessed_by", "assessor"),
    ("proposer", "proposer"),
    ("announced_by", "announcer"),
];
const MANY: &[(&str, &str)] = &[
    ("parties", "party"),
    ("founders", "founder"),
    ("joint_with", "joint_speaker"),
    ("co_proposers", "co_proposer"),
];

/// The roles `actor` plays in a payload (empty when a correction removed the actor).
fn roles(data: &Value, actor: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (field, role) in SINGLE {
        if data.get(field).and_then(Value::as_str) == Some(actor) {
            out.push(*role);
        }
    }
    for (field, role) in MANY {
        if data
            .get(field)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(actor)))
        {
            out.push(*role);
        }
    }
    for p in data
        .get("participants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if p.get("actor").and_then(Value::as_str) == Some(actor) {
            out.push("participant");
        }
    }
    out
}

/// The actor's registration, as known at the cut.
fn registration(k: &Knowledge, cut: &Cut, actor: &str) -> Option<Value> {
    k.of_actor(actor)
        .iter()
        .copied()
        .filter(|&ix| k.fact(ix).kind() == "actor.registered" && k.visible(ix, cut.seq))
        .map(|ix| k.data_at(ix, cut.seq))
        .find(|d| d.get("actor_id").and_then(Value::as_str) == Some(actor))
}

/// One actor's record, or `None` when nothing about them is known at the cut. `limit` caps
/// the number of events listed (the most recent by occurred time are kept).
pub fn actor(k: &Knowledge, cut: &Cut, actor: &str, limit: usize) -> Option<Value> {
    let mut events: Vec<(String, u64, Ix, Value, Vec<&'static str>)> = Vec::new();
    for ix in dedup(k.of_actor(actor)) {
        if !k.visible(ix, cut.seq) || k.fact(ix).kind() == "actor.registered" {
            continue;
        }
        let occurred = k.occurred(ix);
        if !asof::occurred_by(cut, &occurred) {
            continue;
        }
        let data = k.data_at(ix, cut.seq);
        let roles = roles(&data, actor);
        if roles.is_empty() {
            continue;
        }
        events.push((asof::sort_key(&occurred), k.fact(ix).seq, ix, data, roles));
    }
    let reg = registration(k, cut, actor);
    if events.is_empty() && reg.is_none() {
        return None;
    }
    events.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let total = events.len();
    let skip = total.saturating_sub(limit);
    let list: Vec<Value> = events
        .into_iter()
        .skip(skip)
        .map(|(_, seq, ix, data, roles)| {
            let f = k.fact(ix);
            json!({
                "event_id": f.id(),
                "seq": seq,
                "type": f.kind(),
                "process": f.process(),
                "roles": roles,
                "when": asof::when(&k.occurred(ix)),
                "data": data,
            })
        })
        .collect();
    Some(json!({
        "actor_id": actor,
        "name": reg.as_ref().and_then(|r| r.get("name")),
        "kind": reg.as_ref().and_then(|r| r.get("kind")),
        "registration": reg,
        "total_events": total,
        "events": list,
    }))
}

/// Every actor with their name and how many visible events name them.
pub fn view(k: &Knowledge, cut: &Cut) -> Value {
    let list: Vec<Value> = k
        .actors()
        .into_iter()
        .filter_map(|a| {
            let reg = registration(k, cut, a);
            let count = dedup(k.of_actor(a))
                .into_iter()
                .filter(|&ix| k.visible(ix, cut.seq) && k.fact(ix).kind() != "actor.registered")
                .count();
            (reg.is_some() || count > 0).then(|| {
                json!({
                    "actor_id": a,
                    "name": reg.as_ref().and_then(|r| r.get("name")),
                    "kind": reg.as_ref().and_then(|r| r.get("kind")),
                    "events": count,
                })
            })
        })
        .collect();
    json!({ "actors": list })
}
