//! The history of knowledge, a read model served as `/projections/audit`: every change of
//! knowledge (corrections, retractions, source re-grades, source corrections and withdrawals)
//! in the order it was recorded, with the values before and after, and who recorded it when.
//! Retracted events, hidden from every other view, are shown here with the reason. Each entry
//! is the change event itself and carries that event's evidence and inferred pointers. (It is not
//! the audit of the log itself: that is `src/audit/`, signed checkpoints and proofs.) This
//! module must never hide an entry: a retracted correction is listed and marked, not dropped.

use serde_json::{Value, json};

use super::asof::Cut;
use super::evidence::Trust;
use super::knowledge::{Ix, Knowledge};
use super::sources;
use crate::event::EventKind;

/// The name of this projection in routes and status. It predates the module's name and is
/// part of the HTTP contract (`/projections/audit`), so it stays.
pub const NAME: &str = "audit";

/// The types that change knowledge.
const CHANGES: [EventKind; 5] = [
    EventKind::EventCorrected,
    EventKind::EventRetracted,
    EventKind::SourceAssessed,
    EventKind::SourceCorrected,
    EventKind::SourceWithdrawn,
];

fn entry(k: &Knowledge, cut: &Cut, trust: &Trust<'_>, ix: Ix) -> Value {
    let f = k.fact(ix);
    let d = k.data_at(ix, cut.seq);
    let before_cut = Cut {
        seq: f.seq - 1,
        valid_at: None,
        today: cut.today.clone(),
    };
    let at_cut = Cut {
        seq: f.seq,
        ..before_cut.clone()
    };
    let target = d
        .get("target")
        .and_then(Value::as_str)
        .and_then(|t| k.by_id(t));
    let target_type = target.map(|t| k.fact(t).kind().to_string());
    let (change, before, after) = match f.event_kind() {
        Some(EventKind::EventCorrected) => (
            "correction",
            target.map(|t| k.data_at(t, f.seq - 1)),
            target.map(|t| k.data_at(t, f.seq)),
        ),
        Some(EventKind::EventRetracted) => {
            ("retraction", target.map(|t| k.data_at(t, f.seq - 1)), None)
        }
        Some(EventKind::SourceAssessed) => {
            let id = d["source_id"].as_str().unwrap_or("");
            (
                "regrade",
                Some(json!({"grade": sources::grade_at(k, &before_cut, id)})),
                Some(json!({"grade": sources::grade_at(k, &at_cut, id)})),
            )
        }
        Some(EventKind::SourceCorrected) => ("source_correction", None, None),
        _ => (
            "source_withdrawal",
            Some(json!({"withdrawn": false})),
            Some(json!({"withdrawn": true})),
        ),
    };
    let entry = json!({
        "change": change,
        "event_id": f.id(),
        "seq": f.seq,
        "type": f.kind(),
        "recorded_at": f.recorded_at(),
        "recorded_by": f.recorded_by(),
        "target": d.get("target"),
        "target_type": target_type,
        "source_id": d.get("source_id"),
        "reason": d.get("reason").or_else(|| d.get("basis")).or_else(|| d.get("text")),
        "patch": d.get("patch"),
        "replacement": d.get("replacement"),
        "before": before,
        "after": after,
        "retracted": k.retraction_at(ix, cut.seq).is_some(),
    });
    // The entry is the change event itself: its evidence is why the change was made.
    trust.stamp(ix, entry)
}

/// Every change of knowledge recorded by the cut, oldest first.
pub fn view(k: &Knowledge, cut: &Cut) -> Value {
    let mut ixs: Vec<Ix> = CHANGES
        .iter()
        .flat_map(|kind| k.of_kind(*kind).iter().copied())
        .filter(|&ix| k.known(ix, cut.seq))
        .collect();
    ixs.sort_unstable();
    let trust = Trust::new(k, cut);
    json!({ "changes": ixs.into_iter().map(|ix| entry(k, cut, &trust, ix)).collect::<Vec<_>>() })
}
