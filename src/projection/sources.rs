//! The `sources` read model: per source, its reliability grade over time (A–F), the claims it
//! supports with the Admiralty pair of each (grade + credibility, e.g. `B2`), how many of them
//! an independent originator corroborates, and its corrections and withdrawals. Independence
//! and the Admiralty pair follow the one rule of `evidence.rs` (each claim carries the same
//! `evidence` summary as in every other view). This module must never copy a grade into a
//! claim's record; grades are looked up as of the cut.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::asof::Cut;
use super::evidence::{Standing, Trust, originator};
use super::knowledge::{Ix, Knowledge};
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

/// What is known about a source itself at the cut: its registration, grades, corrections and
/// withdrawals, in seq order.
struct SourceFacts {
    registration: Option<Value>,
    grades: Vec<Value>,
    corrections: Vec<Value>,
    withdrawals: Vec<Value>,
}

fn source_facts(k: &Knowledge, cut: &Cut, id: &str) -> SourceFacts {
    source_facts_among(k, cut, id, &k.of_source(id))
}

/// [`source_facts`] from `candidates`, facts in seq order that include every fact about the
/// source (others are skipped), so a caller that knows a shorter list than every fact citing
/// the source walks only that.
fn source_facts_among(k: &Knowledge, cut: &Cut, id: &str, candidates: &[Ix]) -> SourceFacts {
    let mut s = SourceFacts {
        registration: None,
        grades: Vec::new(),
        corrections: Vec::new(),
        withdrawals: Vec::new(),
    };
    for &ix in candidates {
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

/// A source's standing at the cut: its latest grade and whether it was withdrawn, from
/// `about`, the facts about it in seq order (any superset of them, such as every fact citing
/// it).
pub fn standing(k: &Knowledge, cut: &Cut, id: &str, about: &[Ix]) -> Standing {
    let sf = source_facts_among(k, cut, id, about);
    Standing {
        grade: sf
            .grades
            .last()
            .and_then(|g| g["grade"].as_str().map(str::to_string)),
        withdrawn: !sf.withdrawals.is_empty(),
    }
}

/// One source's record, or `None` when it is unknown at the cut.
pub fn source(k: &Knowledge, cut: &Cut, id: &str) -> Option<Value> {
    source_with(k, cut, id, &Trust::new(k, cut), true)
}

/// One source's record for a view that shares `trust` with others; its claims are listed
/// (with what the coder inferred) only when `listed`, else only counted.
fn source_with(
    k: &Knowledge,
    cut: &Cut,
    id: &str,
    trust: &Trust<'_>,
    listed: bool,
) -> Option<Value> {
    let sf = source_facts(k, cut, id);
    let grade = sf
        .grades
        .last()
        .and_then(|g| g["grade"].as_str().map(str::to_string));
    let mut claims = Vec::new();
    let mut corroborated = 0usize;
    for ix in k.of_source(id) {
        if about_source(k, ix) || !k.visible(ix, cut.seq) {
            continue;
        }
        claims.push(claim(k, trust, ix, id, listed, &mut corroborated));
    }
    // Each entry about the source is itself a fact, and carries its own evidence.
    let stamp_all = |list: Vec<Value>| -> Vec<Value> {
        list.into_iter()
            .map(|v| match v["seq"].as_u64() {
                Some(seq) => trust.stamp_seq(seq, v),
                None => v,
            })
            .collect()
    };
    let (grades, corrections, withdrawals) = (
        stamp_all(sf.grades),
        stamp_all(sf.corrections),
        stamp_all(sf.withdrawals),
    );
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
        "grade_history": grades,
        "withdrawn": !withdrawals.is_empty(),
        "corrections": corrections,
        "withdrawals": withdrawals,
        "claims_count": claims.len(),
        "corroborated_count": corroborated,
        "claims": claims,
    }))
}

/// A claim `source` supports: the fact's evidence summary (the same as in every view), this
/// source's own items of it, and whether independent originators corroborate the fact
/// (`evidence.corroborated`; with `independent_originators`, those not reached through this
/// source's own items).
fn claim(
    k: &Knowledge,
    trust: &Trust<'_>,
    ix: Ix,
    source: &str,
    listed: bool,
    corroborated: &mut usize,
) -> Value {
    let f = k.fact(ix);
    let recorded = k.evidence(ix);
    let summary = trust.summary_of(&recorded);
    let mine: Vec<&Value> = recorded
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i.get("source").and_then(Value::as_str) == Some(source))
        .collect();
    let my_origins: BTreeSet<String> = mine.iter().filter_map(|i| originator(i)).collect();
    let independent: BTreeSet<&str> = summary["originators"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|o| !my_origins.contains(*o))
        .collect();
    let is_corroborated = summary["corroborated"] == true;
    if is_corroborated {
        *corroborated += 1;
    }
    if !listed {
        return Value::Null;
    }
    json!({
        "event_id": f.id(),
        "type": f.kind(),
        "process": f.process(),
        "items": mine.iter().map(|i| trust.item(i)).collect::<Vec<_>>(),
        "corroborated": is_corroborated,
        "independent_originators": independent,
        "evidence": summary,
        "inferred": trust.inferred(ix),
    })
}

/// Every source with its current grade and claim counts.
pub fn view(k: &Knowledge, cut: &Cut) -> Value {
    let trust = Trust::new(k, cut);
    let list: Vec<Value> = k
        .sources()
        .into_iter()
        .filter_map(|s| source_with(k, cut, s, &trust, false))
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
