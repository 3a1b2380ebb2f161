//! Schema versions and the upcasters: how a reader sees a payload of any accepted version in
//! the current (version 2) shape. Version 1 had one tone string, a bare PLOVER code and
//! plain-string provisions; version 2 has a list of tones, a PLOVER object, provision objects
//! with terms, and still accepts the version-1 forms as shorthands. One step reads both:
//! every shorthand becomes its structured form. This module must never be used to rewrite a
//! stored record (the log is hash-chained); it shapes copies for readers only, and it must
//! never drop a value it does not recognise.

use serde_json::{Map, Value, json};

use super::EventKind;

/// The version of the event schemas this build writes about and readers see.
pub const CURRENT_SCHEMA_VERSION: u32 = 2;

/// Every version a submission may declare (a missing `schema_version` is 1).
pub const SCHEMA_VERSIONS: [u32; 2] = [1, 2];

/// Brings the `data` of an event of `kind` to the current shape, in place. Idempotent, and
/// a no-op on a payload already in the current shape, so it may run again after a
/// correction's patch (which may write a shorthand back).
pub fn upcast_data(kind: Option<EventKind>, data: &mut Value) {
    match kind {
        Some(EventKind::StatementMade) => {
            if let Some(tone) = data.get_mut("tone")
                && tone.is_string()
            {
                *tone = Value::Array(vec![tone.take()]);
            }
        }
        Some(EventKind::AgreementReached) => {
            each_string_item(data, "provisions");
        }
        Some(EventKind::PlanRevised) => {
            each_string_item(data, "changes");
        }
        _ => {}
    }
}

/// Brings an event's `meta` to the current shape, in place: a bare PLOVER code becomes
/// `{"event": code}`.
pub fn upcast_meta(meta: &mut Value) {
    if let Some(plover) = meta.pointer_mut("/codes/plover")
        && plover.is_string()
    {
        *plover = json!({ "event": plover.take() });
    }
}

/// Turns every string item of the array `field` into `{"summary": item}`.
fn each_string_item(data: &mut Value, field: &str) {
    let Some(items) = data.get_mut(field).and_then(Value::as_array_mut) else {
        return;
    };
    for item in items.iter_mut().filter(|i| i.is_string()) {
        let mut object = Map::new();
        object.insert("summary".into(), item.take());
        *item = Value::Object(object);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(kind: EventKind, mut data: Value) -> Value {
        upcast_data(Some(kind), &mut data);
        data
    }

    #[test]
    fn a_version_1_tone_becomes_a_list_of_one_and_a_list_stays_as_it_is() {
        assert_eq!(
            up(EventKind::StatementMade, json!({"tone": "cautious"})),
            json!({"tone": ["cautious"]})
        );
        let list = json!({"tone": ["firm", "cautious"]});
        assert_eq!(up(EventKind::StatementMade, list.clone()), list);
        assert_eq!(
            up(EventKind::StatementMade, json!({"content": "x"})),
            json!({"content": "x"})
        );
    }

    #[test]
    fn a_string_provision_becomes_a_summary_and_an_object_keeps_its_issue_and_terms() {
        let data = json!({"provisions": [
            "ceasefire from Monday",
            {"issue": "issue:front", "summary": "pull back", "terms": {"km": 15}}
        ]});
        assert_eq!(
            up(EventKind::AgreementReached, data),
            json!({"provisions": [
                {"summary": "ceasefire from Monday"},
                {"issue": "issue:front", "summary": "pull back", "terms": {"km": 15}}
            ]})
        );
    }

    #[test]
    fn a_string_change_of_a_plan_becomes_a_summary() {
        assert_eq!(
            up(
                EventKind::PlanRevised,
                json!({"changes": ["point 5 dropped", {"point": 7, "summary": "s"}]})
            ),
            json!({"changes": [{"summary": "point 5 dropped"}, {"point": 7, "summary": "s"}]})
        );
    }

    #[test]
    fn a_bare_plover_code_becomes_an_object_and_other_types_are_untouched() {
        let mut meta = json!({"codes": {"plover": "CONSULT", "cameo": "040"}});
        upcast_meta(&mut meta);
        assert_eq!(
            meta,
            json!({"codes": {"plover": {"event": "CONSULT"}, "cameo": "040"}})
        );
        let mut again = meta.clone();
        upcast_meta(&mut again);
        assert_eq!(again, meta);
        let tone = json!({"tone": "cautious"});
        assert_eq!(up(EventKind::MeetingHeld, tone.clone()), tone);
    }
}
