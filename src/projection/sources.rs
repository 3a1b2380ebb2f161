//! The `sources` read model: per source, its reliability grade over time (A–F), the claims it
//! supports with the Admiralty pair of each (grade + credibility, e.g. `B2`), how many of them
//! an independent originator corroborates, and its corrections and withdrawals. Independence
//! follows attribution chains: the originator of an evidence item is the last link of its
//! chain (or the source itself when it reports on its own account), so ten rewrites of one
//! wire story are one originator. This module must never copy a grade into a claim's record;
//! grades are looked up as of the cut.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::asof::Cut;
use super::knowledge::{Ix, Knowledge, dedup};
use crate::event::{EventKind, registry};
use crate::log::EntryChange;

/// The name of this projection in routes and status.
pub const NAME: &str = "sources";

/// Whether a fact is about a source itself rather than a claim citing it.
fn about_source(k: &Knowledge, ix: Ix) -> bool {
    k.fact(ix)
        .event_kind()
        .is_some_and(EventKind::is_about_source)
}

/// Who an evidence item's claim comes from: the end of its attribution chain, else the source.
fn originator(item: &Value) -> Option<String> {
    item.get("attribution")
        .and_then(Value::as_array)
        .and_then(|a| a.last())
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            item.get("source")
                .and_then(Value::as_str)
                .map(|s| s.to_string())
        })
}

/// What is known about a source itself at the cut: its registration, grades, corrections and
/// withdrawals, in seq order.
struct SourceFacts {
    registration: Option<Value>,
    grades: Vec<Value>,
    corrections: Vec<Value>,
    withdrawals: Vec<Value>,
}

fn source_facts(k: &Knowledge, cut: &Cut, id: &str) -> SourceFacts {
    let mut s = SourceFacts {
        registration: None,
        grades: Vec::new(),
        corrections: Vec::new(),
        withdrawals: Vec::new(),
    };
    for ix in dedup(k.of_source(id)) {
        let f = k.fact(ix);
        if !about_source(k, ix) || !k.visible(ix, cut.seq) {
            continue;
        }
        let d = k.data_at(ix, cut.seq);
        if d.get("source_id").and_then(Value::as_str) != Some(id) {
            continue;
        }
        let stamp = |mut v: Value| {
            if let Some(o) = v.as_object_mut() {
                o.insert("event_id".into(), json!(f.id()));
                o.insert("seq".into(), json!(f.seq));
                o.insert("recorded_at".into(), json!(f.recorded_at()));
            }
            v
        };
        match f.event_kind() {
            Some(EventKind::SourceRegistered) => {
                if let Some(r) = d.get("reliability").filter(|r| r.get("grade").is_some()) {
                    s.grades.push(stamp(
                        json!({"grade": r.get("grade"), "basis": r.get("basis")}),
                    ));
                }
                if s.registration.is_none() {
                    s.registration = Some(d);
                }
            }
            // The entry as updated: an update replaces the fields it gives from its seq on.
            Some(EventKind::SourceUpdated) => {
                if let Some(EntryChange::Set(v)) = s
                    .registration
                    .as_ref()
                    .map(|r| registry::apply(Some(r), f.kind(), &d))
                {
                    s.registration = Some(v);
                }
            }
            Some(EventKind::SourceAssessed) => s.grades.push(stamp(json!({
                "grade": d.get("grade"), "basis": d.get("basis"), "scope": d.get("scope"),
            }))),
            Some(EventKind::SourceCorrected) => s.corrections.push(stamp(d)),
            _ => s.withdrawals.push(stamp(d)),
        }
    }
    s
}

/// The grade of a source at the cut (`None` if it was never graded).
pub fn grade_at(k: &Knowledge, cut: &Cut, id: &str) -> Option<String> {
    source_facts(k, cut, id)
        .grades
        .last()
        .and_then(|g| g["grade"].as_str().map(str::to_string))
}

/// One source's record, or `None` when it is unknown at the cut.
pub fn source(k: &Knowledge, cut: &Cut, id: &str) -> Option<Value> {
    let sf = source_facts(k, cut, id);
    let grade = sf
        .grades
        .last()
        .and_then(|g| g["grade"].as_str().map(str::to_string));
    let mut claims = Vec::new();
    let mut corroborated = 0usize;
    for ix in dedup(k.of_source(id)) {
        if about_source(k, ix) || !k.visible(ix, cut.seq) {
            continue;
        }
        claims.push(claim(k, cut, ix, id, grade.as_deref(), &mut corroborated));
    }
    if sf.registration.is_none() && claims.is_empty() {
        return None;
    }
    let reg = sf.registration.unwrap_or(Value::Null);
    Some(json!({
        "source_id": id,
        "kind": reg.get("kind"),
        "publisher": reg.get("publisher"),
        "title": reg.get("title"),
        "url": reg.get("url"),
        "grade": grade,
        "grade_history": sf.grades,
        "withdrawn": !sf.withdrawals.is_empty(),
        "corrections": sf.corrections,
        "withdrawals": sf.withdrawals,
        "claims_count": claims.len(),
        "corroborated_count": corroborated,
        "claims": claims,
    }))
}

/// A claim `source` supports: each of its evidence items with the Admiralty pair, and whether
/// an independent originator (through a source not withdrawn) backs the same fact.
fn claim(
    k: &Knowledge,
    cut: &Cut,
    ix: Ix,
    source: &str,
    grade: Option<&str>,
    corroborated: &mut usize,
) -> Value {
    let f = k.fact(ix);
    let evidence = k.evidence(ix);
    let items: Vec<&Value> = evidence
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mine: Vec<&Value> = items
        .iter()
        .copied()
        .filter(|i| i.get("source").and_then(Value::as_str) == Some(source))
        .collect();
    let my_origins: BTreeSet<String> = mine.iter().filter_map(|i| originator(i)).collect();
    let withdrawn = |s: &str| !source_facts(k, cut, s).withdrawals.is_empty();
    let independent: BTreeSet<String> = items
        .iter()
        .filter(|i| {
            i.get("source")
                .and_then(Value::as_str)
                .is_some_and(|s| !withdrawn(s))
        })
        .filter_map(|i| originator(i))
        .filter(|o| !my_origins.contains(o))
        .collect();
    if !independent.is_empty() {
        *corroborated += 1;
    }
    json!({
        "event_id": f.id(),
        "type": f.kind(),
        "process": f.process(),
        "items": mine.iter().map(|i| {
            let cred = i.get("credibility").and_then(Value::as_u64).unwrap_or(6);
            json!({
                "relation": i.get("relation"),
                "attribution": i.get("attribution").cloned().unwrap_or(json!([])),
                "originator": originator(i),
                "credibility": i.get("credibility"),
                "admiralty": format!("{}{}", grade.unwrap_or("F"), cred),
            })
        }).collect::<Vec<_>>(),
        "corroborated": !independent.is_empty(),
        "independent_originators": independent,
    })
}

/// Every source with its current grade and claim counts.
pub fn view(k: &Knowledge, cut: &Cut) -> Value {
    let list: Vec<Value> = k
        .sources()
        .into_iter()
        .filter_map(|s| source(k, cut, s))
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("claims");
                o.remove("grade_history");
            }
            v
        })
        .collect();
    json!({ "sources": list })
}
