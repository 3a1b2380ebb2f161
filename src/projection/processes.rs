//! The `processes` read model: every negotiation process known at the cut, with how many of
//! its events were recorded by then and when it was last active, so a client can list and pick
//! processes without reading any process's view. Computed from the knowledge layer's process
//! index alone (one binary search per process, no record read), so it costs the number of
//! processes, whatever the log holds. This module must never read a record: what needs a
//! payload (parties, mediators) is the negotiation view's, for the one process shown.

use serde_json::{Value, json};

use super::asof::Cut;
use super::knowledge::Knowledge;

/// The name of this projection in routes and status.
pub const NAME: &str = "processes";

/// The processes with an event recorded by the cut, by id: each with the number of its events
/// recorded by then (`events`, retracted ones included, as the log holds them) and its first
/// and last (`first_seq`, `last_seq`, `last_recorded_at`).
pub fn view(k: &Knowledge, cut: &Cut) -> Value {
    let list: Vec<Value> = k
        .processes()
        .into_iter()
        .filter_map(|p| {
            let (known, first, last) = k.process_span(p, cut.seq)?;
            Some(json!({
                "process": p,
                "events": known,
                "first_seq": k.seq_of(first),
                "last_seq": k.seq_of(last),
                "last_recorded_at": k.fact(last).recorded_at().to_string(),
            }))
        })
        .collect();
    json!({ "processes": list })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::fact::tests::{A, record};

    #[test]
    fn a_process_is_listed_from_its_first_event_on_with_what_was_recorded_by_the_cut() {
        let mut k = Knowledge::new();
        k.apply(1, &record(1, A, "statement.made", "{}")).unwrap();
        let cut = |seq| Cut {
            seq,
            today: "2026-01-01".into(),
            valid_at: None,
        };
        assert_eq!(view(&k, &cut(0))["processes"], json!([]));
        let one = view(&k, &cut(1));
        assert_eq!(one["processes"][0]["process"], "p");
        assert_eq!(one["processes"][0]["events"], 1);
        assert_eq!(one["processes"][0]["last_seq"], 1);
    }
}
