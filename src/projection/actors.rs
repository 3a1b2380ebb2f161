//! The `actors` read model: per actor, everything they did or said (statements, positions,
//! meetings, assessments, foundings...), ordered by when it occurred and shown at the precision
//! it was recorded with: a month-precision fact is never shown as a day. Each event carries its
//! evidence summary and inferred pointers (`evidence.rs`). Derived at query time
//! from the knowledge layer, a page at a time: an actor's facts are walked in their time index
//! from the end (or from a [`Cursor`], which keeps the first page's cut), so a page costs what
//! it lists. This module must never invent a date or a role the data lacks.

use serde_json::{Value, json};

use super::asof::{self, Cut};
use super::evidence::Trust;
use super::knowledge::{Ix, Knowledge};
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
pub(crate) fn registration(k: &Knowledge, cut: &Cut, actor: &str) -> Option<Value> {
    registration_among(k, cut, actor, &k.of_actor(actor))
}

/// [`registration`] from `facts`, which must hold every registry entry naming the actor
/// (each fact naming them, or only the few their time index keeps for a closer look: its
/// `special` list, so a view of an actor with millions of facts does not walk them all).
fn registration_among(k: &Knowledge, cut: &Cut, actor: &str, facts: &[Ix]) -> Option<Value> {
    let mut changes: Vec<(u64, Ix)> = facts
        .iter()
        .copied()
        .filter(|&ix| is_entry(k, ix) && k.visible(ix, cut.seq))
        .map(|ix| (k.seq_of(ix), ix))
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

/// Where a page of an actor's events ends: the cut the first page was computed at, and the
/// seq of the earliest event it showed. A later page lists the events before that one in the
/// view's order, at the same cut, so appends in between change nothing in the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The cut (as of seq) every page of the walk is computed at.
    pub seq: u64,
    /// The seq of the earliest event the previous page showed.
    pub before: u64,
}

/// A `cursor` that is not a cursor at all (not the 32 hex digits this server hands out).
#[derive(Debug, thiserror::Error)]
#[error("`cursor` must be the `next_cursor` of a previous page (32 hex digits)")]
pub struct BadCursor;

/// A well-formed `cursor` that does not continue a walk of this actor: its event is not one
/// of theirs (a cursor of another actor's walk, or made up).
#[derive(Debug, thiserror::Error)]
#[error(
    "`cursor` does not continue a walk of this actor's events: pass the `next_cursor` of a previous page of the same actor"
)]
pub struct NotThisWalk;

impl Cursor {
    /// The opaque text a client passes back as `?cursor=`: 32 hex digits, so that every
    /// string of that shape reads as a cursor and only its meaning can be refused.
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.seq.to_be_bytes());
        bytes[8..].copy_from_slice(&self.before.to_be_bytes());
        hex::encode(bytes)
    }

    /// Reads a cursor from its text.
    pub fn decode(text: &str) -> Result<Cursor, BadCursor> {
        let mut bytes = [0u8; 16];
        if text.len() != 32 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(BadCursor);
        }
        hex::decode_to_slice(text, &mut bytes).map_err(|_| BadCursor)?;
        let (seq, before) = bytes.split_at(8);
        Ok(Cursor {
            seq: u64::from_be_bytes(seq.try_into().map_err(|_| BadCursor)?),
            before: u64::from_be_bytes(before.try_into().map_err(|_| BadCursor)?),
        })
    }
}

/// Whether a fact of the actor's order is listed in their view at the cut, and the effective
/// data when it had to be read to tell (a corrected fact).
fn listed(k: &Knowledge, cut: &Cut, actor: &str, ix: Ix) -> Option<Option<Value>> {
    if !k.visible(ix, cut.seq) || is_entry(k, ix) {
        return None;
    }
    if cut.valid_at.is_some() && !asof::occurred_by(cut, &k.occurred(ix)) {
        return None;
    }
    // A fact never corrected names the actor in a role field: that is how the index found
    // it. Its payload is read only if it is listed. A corrected one is checked now, as the
    // correction may have taken the actor out.
    if k.ever_corrected(ix) {
        let data = k.data_at(ix, cut.seq);
        if roles(&data, actor).is_empty() {
            return None;
        }
        return Some(Some(data));
    }
    Some(None)
}

/// One actor's record, or `None` when nothing about them is known at the cut. `limit` caps
/// the number of events listed: the most recent by occurred time, or, after `cursor` (whose
/// cut the caller has used for `cut`), the ones before the earliest the previous page
/// showed. The events are walked in the actor's time order ([`Knowledge::of_actor_by_time`]),
/// so a page reads only the records it lists; `next_cursor` continues the walk.
pub fn actor(
    k: &Knowledge,
    cut: &Cut,
    actor: &str,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<Option<Value>, NotThisWalk> {
    let index = k.of_actor_by_time(actor);
    let order = &index.by_time;
    let end = match cursor {
        None => order.len(),
        Some(c) => {
            let anchor = k.ix_of_seq(c.before).ok_or(NotThisWalk)?;
            let key = k.time_key(anchor);
            let at = order.partition_point(|&ix| k.time_key(ix) < key);
            if order.get(at) != Some(&anchor) {
                return Err(NotThisWalk);
            }
            at
        }
    };
    // Without a date cut, only the facts that were ever corrected or retracted (and
    // registrations) are looked at one by one; the others are counted by a binary search. A
    // date cut looks at each fact's `occurred`.
    let total = if cut.valid_at.is_some() {
        order
            .iter()
            .filter(|&&ix| listed(k, cut, actor, ix).is_some())
            .count()
    } else {
        index.count(k, actor, cut.seq, |ix| listed(k, cut, actor, ix).is_some())
    };
    let reg = registration_among(k, cut, actor, index.special());
    if total == 0 && reg.is_none() {
        return Ok(None);
    }
    let mut page: Vec<(Ix, Option<Value>)> = Vec::new();
    let mut more = false;
    for &ix in order[..end].iter().rev() {
        if let Some(data) = listed(k, cut, actor, ix) {
            if page.len() == limit {
                more = true;
                break;
            }
            page.push((ix, data));
        }
    }
    let next_cursor = match (more, page.last()) {
        (true, Some(&(ix, _))) => Some(
            Cursor {
                seq: cut.seq,
                before: k.seq_of(ix),
            }
            .encode(),
        ),
        _ => None,
    };
    let trust = Trust::new(k, cut);
    let list: Vec<Value> = page
        .into_iter()
        .rev()
        .map(|(ix, data)| {
            let f = k.fact(ix);
            let data = data.unwrap_or_else(|| k.data_at(ix, cut.seq));
            let roles = roles(&data, actor);
            trust.stamp(
                ix,
                json!({
                    "event_id": f.id(),
                    "seq": f.seq,
                    "type": f.kind(),
                    "process": f.process(),
                    "roles": roles,
                    "when": asof::when(&k.occurred(ix)),
                    "data": data,
                }),
            )
        })
        .collect();
    Ok(Some(json!({
        "actor_id": actor,
        "name": reg.as_ref().and_then(|r| r.get("name")),
        "kind": reg.as_ref().and_then(|r| r.get("kind")),
        "registration": reg,
        "total_events": total,
        "events": list,
        "next_cursor": next_cursor,
    })))
}

/// Every actor with their name and how many visible events name them.
pub fn view(k: &Knowledge, cut: &Cut) -> Value {
    let list: Vec<Value> = k
        .actors()
        .into_iter()
        .filter_map(|a| {
            let reg = registration(k, cut, a);
            let count = k
                .of_actor(a)
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
        let found = k.of_actor("actor:x");
        assert_eq!(found.len(), payloads.len(), "{found:?}");
        for ix in found {
            assert!(!roles(&k.data_at(ix, u64::MAX), "actor:x").is_empty());
        }
    }

    /// A record of `kind` with `data` at `seq`, with this id.
    fn typed(seq: u64, id: &str, kind: &str, data: &Value) -> Vec<u8> {
        format!(
            r#"{{"id":"{id}","seq":{seq},"stream":"s","version":{seq},"type":"{kind}","schema_version":1,"recorded_at":"2026-01-01T00:00:00.000000Z","recorded_by":"t","occurred":{{"start":"2025-0{}-01","precision":"day"}},"data":{data},"evidence":[],"prev_hash":"00"}}"#,
            1 + seq % 9
        )
        .into_bytes()
    }

    #[test]
    fn the_counted_total_is_the_number_of_listed_events_at_every_cut() {
        let mut k = Knowledge::new();
        let ids: Vec<String> = (0..40).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let mut seq = 0;
        let mut add = |k: &mut Knowledge, kind: &str, data: Value| {
            seq += 1;
            k.apply(seq, &typed(seq, &ids[seq as usize], kind, &data))
                .unwrap();
        };
        add(
            &mut k,
            "actor.registered",
            json!({"actor_id": "actor:x", "name": "X", "kind": "person"}),
        );
        for i in 0..6 {
            add(
                &mut k,
                "statement.made",
                json!({"speaker": "actor:x", "content": i}),
            );
        }
        // Built now: everything after is kept in it as it is folded.
        let _ = k.of_actor_by_time("actor:x");
        let speaker_to_y = json!({"target": ids[2], "reason": "r",
            "patch": [{"op": "replace", "path": "/speaker", "value": "actor:y"}]});
        add(&mut k, "event.corrected", speaker_to_y);
        add(
            &mut k,
            "event.retracted",
            json!({"target": ids[3], "reason": "r"}),
        );
        add(
            &mut k,
            "statement.made",
            json!({"speaker": "actor:y", "content": "y"}),
        );
        let back_to_x = json!({"target": ids[9], "reason": "r",
            "patch": [{"op": "replace", "path": "/speaker", "value": "actor:x"}]});
        add(&mut k, "event.corrected", back_to_x);
        add(
            &mut k,
            "event.retracted",
            json!({"target": ids[8], "reason": "r"}),
        );
        add(
            &mut k,
            "statement.made",
            json!({"speaker": "actor:x", "content": "late"}),
        );
        add(
            &mut k,
            "event.retracted",
            json!({"target": ids[11], "reason": "r"}),
        );
        for cut_seq in 0..=seq {
            let cut = Cut {
                seq: cut_seq,
                valid_at: None,
                today: "2026-01-01".into(),
            };
            for who in ["actor:x", "actor:y"] {
                let index = k.of_actor_by_time(who);
                let one_by_one = index
                    .by_time
                    .iter()
                    .filter(|&&ix| listed(&k, &cut, who, ix).is_some())
                    .count();
                let counted =
                    index.count(&k, who, cut.seq, |ix| listed(&k, &cut, who, ix).is_some());
                assert_eq!(counted, one_by_one, "{who} at {cut_seq}");
                let total = actor(&k, &cut, who, 100, None)
                    .unwrap()
                    .map_or(0, |v| v["total_events"].as_u64().unwrap());
                assert_eq!(total, one_by_one as u64, "{who} at {cut_seq}");
            }
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
        let before = actor(&k, &cut(1), "actor:x", 10, None).unwrap().unwrap();
        assert_eq!(before["total_events"], 1);
        assert_eq!(before["events"][0]["roles"], json!(["speaker"]));
        assert!(actor(&k, &cut(2), "actor:x", 10, None).unwrap().is_none());
        let now = actor(&k, &cut(2), "actor:y", 10, None).unwrap().unwrap();
        assert_eq!(now["events"][0]["data"]["speaker"], "actor:y");
    }
}
