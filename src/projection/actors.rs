//! The `actors` read model: per actor, everything they did or said (statements, positions,
//! meetings, assessments, foundings...), ordered by when it occurred and shown at the precision
//! it was recorded with: a month-precision fact is never shown as a day. Derived at query time
//! from the knowledge layer. This module must never invent a date or a role the data lacks.

use serde_json::{Value, json};

use super::asof::{self, Cut};
use super::knowledge::{Ix, Knowledge, dedup};
use crate::event::{EventKind, registry};

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

/// Whether a fact is the actor's registry entry (its registration or an update of it) rather
/// than something the actor did.
fn is_entry(k: &Knowledge, ix: Ix) -> bool {
    matches!(
        k.fact(ix).event_kind(),
        Some(EventKind::ActorRegistered | EventKind::ActorUpdated)
    )
}

/// The actor's registry entry, as registered and updated as known at the cut.
fn registration(k: &Knowledge, cut: &Cut, actor: &str) -> Option<Value> {
    let mut changes: Vec<(u64, Ix)> = k
        .of_actor(actor)
        .iter()
        .copied()
        .filter(|&ix| is_entry(k, ix) && k.visible(ix, cut.seq))
        .map(|ix| (k.fact(ix).seq, ix))
        .collect();
    changes.sort_unstable();
    changes.dedup();
    registry::fold(
        changes
            .into_iter()
            .map(|(_, ix)| (k.fact(ix).kind(), k.data_at(ix, cut.seq)))
            .filter(|(_, d)| d.get("actor_id").and_then(Value::as_str) == Some(actor)),
    )
}

/// One actor's record, or `None` when nothing about them is known at the cut. `limit` caps
/// the number of events listed (the most recent by occurred time are kept).
pub fn actor(k: &Knowledge, cut: &Cut, actor: &str, limit: usize) -> Option<Value> {
    let mut events: Vec<(String, u64, Ix, Option<Value>)> = Vec::new();
    for ix in dedup(k.of_actor(actor)) {
        if !k.visible(ix, cut.seq) || is_entry(k, ix) {
            continue;
        }
        let occurred = k.occurred(ix);
        if !asof::occurred_by(cut, &occurred) {
            continue;
        }
        // A fact never corrected names the actor in a role field: that is how the index
        // found it. Its payload is parsed only if it is listed. A corrected one is checked
        // now, as the correction may have taken the actor out.
        let data = if k.ever_corrected(ix) {
            let data = k.data_at(ix, cut.seq);
            if roles(&data, actor).is_empty() {
                continue;
            }
            Some(data)
        } else {
            None
        };
        events.push((asof::sort_key(&occurred), k.fact(ix).seq, ix, data));
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
        .map(|(_, seq, ix, data)| {
            let f = k.fact(ix);
            let data = data.unwrap_or_else(|| k.data_at(ix, cut.seq));
            let roles = roles(&data, actor);
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
                .filter(|&ix| k.visible(ix, cut.seq) && !is_entry(k, ix))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, data: &Value) -> Vec<u8> {
        let id = uuid::Uuid::now_v7();
        format!(
            r#"{{"id":"{id}","seq":{seq},"stream":"s","version":{seq},"type":"statement.made","schema_version":1,"recorded_at":"2026-01-01T00:00:00.000000Z","recorded_by":"t","occurred":{{"precision":"unknown"}},"data":{data},"evidence":[],"prev_hash":"00"}}"#
        )
        .into_bytes()
    }

    /// The actor view trusts the index for facts never corrected, so every field that gives a
    /// role must be one the index reads, and every fact the index finds must get a role.
    #[test]
    fn every_role_field_is_one_the_actor_index_reads() {
        let mut payloads: Vec<Value> = SINGLE
            .iter()
            .map(|(field, _)| json!({ *field: "actor:x" }))
            .collect();
        payloads.extend(MANY.iter().map(|(field, _)| json!({ *field: ["actor:x"] })));
        payloads.push(json!({"participants": [{"actor": "actor:x", "side": "org:s"}]}));
        let mut k = Knowledge::new();
        for (i, data) in payloads.iter().enumerate() {
            let seq = i as u64 + 1;
            k.apply(seq, &record(seq, data)).unwrap();
        }
        let found = dedup(k.of_actor("actor:x"));
        assert_eq!(found.len(), payloads.len(), "{found:?}");
        for ix in found {
            assert!(!roles(&k.data_at(ix, u64::MAX), "actor:x").is_empty());
        }
    }

    #[test]
    fn the_types_whose_schema_has_a_role_field_are_the_types_that_name_actors() {
        let schemas = crate::event::Schemas::load().unwrap();
        let role_fields: Vec<&str> = SINGLE
            .iter()
            .chain(MANY)
            .map(|(field, _)| *field)
            .chain(["participants"])
            .collect();
        for kind in crate::event::EventKind::ALL {
            let properties = &schemas.document(kind.name()).unwrap()["properties"];
            let has_role = role_fields.iter().any(|f| properties.get(f).is_some());
            assert_eq!(has_role, kind.names_actors(), "{kind}");
        }
    }

    #[test]
    fn a_correction_that_replaces_the_speaker_takes_the_fact_from_the_old_speaker_from_then_on() {
        let mut k = Knowledge::new();
        let statement = record(1, &json!({"speaker": "actor:x", "content": "c"}));
        k.apply(1, &statement).unwrap();
        let id = k.fact(0).id().to_string();
        let patch = json!({"target": id, "reason": "misattributed",
            "patch": [{"op": "replace", "path": "/speaker", "value": "actor:y"}]});
        let correction = String::from_utf8(record(2, &patch))
            .unwrap()
            .replace("statement.made", "event.corrected");
        k.apply(2, correction.as_bytes()).unwrap();
        let cut = |seq| Cut {
            seq,
            valid_at: None,
            today: "2026-01-01".into(),
        };
        let before = actor(&k, &cut(1), "actor:x", 10).unwrap();
        assert_eq!(before["total_events"], 1);
        assert_eq!(before["events"][0]["roles"], json!(["speaker"]));
        assert!(actor(&k, &cut(2), "actor:x", 10).is_none());
        let now = actor(&k, &cut(2), "actor:y", 10).unwrap();
        assert_eq!(now["events"][0]["data"]["speaker"], "actor:y");
    }
}
