//! Rules beyond the schema, all of them about what an event must point at: evidence, registry
//! entries, correction targets. They are computed here and checked by the log writer against
//! what is durable, so that two concurrent requests cannot both pass on stale knowledge.
//! This module must never read storage itself.

use serde_json::Value;
use uuid::Uuid;

use super::kind::EventKind;
use super::schema::FieldError;
use crate::log::{References, Requirement};

/// Whether events of `event_type` must carry at least one evidence item (a type this build
/// does not know does: its schema check has already refused it, and this keeps the refusal
/// complete).
pub fn needs_evidence(event_type: &str) -> bool {
    EventKind::from_name(event_type).is_none_or(EventKind::needs_evidence)
}

/// The registry keys an event declares and the references it requires. `base` is the event's
/// pointer in the request body; pointers in the result are absolute.
pub fn references(
    event_type: &str,
    data: &Value,
    evidence: &Value,
    base: &str,
) -> Result<References, Vec<FieldError>> {
    let mut refs = References::default();
    let kind = EventKind::from_name(event_type);
    let str_at = |field: &str| data.get(field).and_then(Value::as_str);
    if let Some(declares) = kind.and_then(EventKind::declares)
        && let Some(id) = str_at(declares.field)
    {
        refs.declares.push((
            format!("{}:{id}", declares.registry),
            format!("{base}/data/{}", declares.field),
        ));
    }
    if kind.is_some_and(EventKind::requires_registered_source)
        && let Some(id) = str_at("source_id")
    {
        refs.requires.push(Requirement::Key {
            key: format!("source:{id}"),
            pointer: format!("{base}/data/source_id"),
        });
    }
    let mut errors = Vec::new();
    if kind.is_some_and(EventKind::targets_event)
        && let Some(target) = str_at("target")
    {
        match Uuid::parse_str(target) {
            Ok(id) => refs.requires.push(Requirement::Event {
                id,
                pointer: format!("{base}/data/target"),
            }),
            Err(_) => errors.push(FieldError {
                pointer: format!("{base}/data/target"),
                message: format!("`{target}` is not an event id (UUID)"),
            }),
        }
    }
    let items = evidence.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() && needs_evidence(event_type) {
        errors.push(FieldError {
            pointer: format!("{base}/evidence"),
            message: format!(
                "a `{event_type}` event needs at least one evidence item naming a registered source"
            ),
        });
    }
    for (i, item) in items.iter().enumerate() {
        if let Some(source) = item.get("source").and_then(Value::as_str) {
            refs.requires.push(Requirement::Key {
                key: format!("source:{source}"),
                pointer: format!("{base}/evidence/{i}/source"),
            });
        }
    }
    if errors.is_empty() {
        Ok(refs)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fact_without_evidence_is_refused_at_the_evidence_pointer() {
        let errs = references("meeting.held", &json!({}), &json!([]), "/events/2").unwrap_err();
        assert_eq!(errs[0].pointer, "/events/2/evidence");
    }

    #[test]
    fn source_registration_declares_its_key_and_needs_no_evidence() {
        let refs = references(
            "source.registered",
            &json!({"source_id": "src:a"}),
            &json!([]),
            "",
        )
        .unwrap();
        assert_eq!(
            refs.declares,
            vec![("source:src:a".to_string(), "/data/source_id".to_string())]
        );
    }

    #[test]
    fn every_evidence_source_is_required() {
        let refs = references(
            "statement.made",
            &json!({}),
            &json!([{"source": "src:a"}, {"source": "src:b"}]),
            "",
        )
        .unwrap();
        assert_eq!(refs.requires.len(), 2);
    }

    #[test]
    fn correction_target_must_be_a_uuid() {
        let errs = references(
            "event.corrected",
            &json!({"target": "nope"}),
            &json!([]),
            "",
        )
        .unwrap_err();
        assert_eq!(errs[0].pointer, "/data/target");
    }
}
