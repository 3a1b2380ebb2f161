//! Rules beyond the schema, all of them about what an event must point at: evidence, the ids
//! it introduces and the ids it refers to (each of the kind its field needs, from
//! `EventKind::id_refs`), correction targets. They are computed here and checked by the log writer against
//! what is durable, so that two concurrent requests cannot both pass on stale knowledge.
//! This module must never read storage itself.

use uuid::Uuid;

use super::kind::{EventKind, IdKind};
use super::node::JsonView;
use super::schema::FieldError;
use crate::log::{Declaration, Entry, References, Requirement};

/// Whether events of `event_type` must carry at least one evidence item (a type this build
/// does not know does: its schema check has already refused it, and this keeps the refusal
/// complete).
pub fn needs_evidence(event_type: &str) -> bool {
    EventKind::from_name(event_type).is_none_or(EventKind::needs_evidence)
}

/// The registry key of an id of `kind`: sources keep their own namespace (as folders from
/// before kinds hold them), every other id is an `entity:`.
fn registry_key(kind: IdKind, id: &str) -> String {
    match kind {
        IdKind::Source => ["source:", id].concat(),
        _ => ["entity:", id].concat(),
    }
}

/// A requirement that `id`, named at `pointer`, is an id of `kind`.
fn require(kind: IdKind, id: &str, pointer: String) -> Requirement {
    Requirement::Id {
        id: id.to_string(),
        kind: kind.phrase(),
        introduced_by: kind.introduced_by(),
        pointer,
        must_exist: kind.must_be_known(),
        // Sources were checked before ids had kinds; an old export restores only if nothing
        // stricter is asked of it.
        on_restore: kind == IdKind::Source,
    }
}

/// Every string at `path` (segments separated by `/`, `*` for each array item) under `value`,
/// with its pointer below `pointer`. The pointer grows in place and is back as it was on
/// return: only a string found costs a pointer of its own (this runs on every event).
fn strings_at<'a, J: JsonView>(
    value: &'a J,
    path: &str,
    pointer: &mut String,
    out: &mut Vec<(&'a str, String)>,
) {
    let (head, rest) = match path.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let len = pointer.len();
    let mut visit = |v: &'a J, pointer: &mut String| match rest {
        Some(r) => strings_at(v, r, pointer, out),
        None => {
            if let Some(s) = v.string() {
                out.push((s, pointer.clone()));
            }
        }
    };
    if head == "*" {
        for (i, item) in value.items().into_iter().flatten().enumerate() {
            pointer.push('/');
            pointer.push_str(itoa::Buffer::new().format(i));
            visit(item, pointer);
            pointer.truncate(len);
        }
    } else if let Some(v) = value.member(head) {
        pointer.push('/');
        pointer.push_str(head);
        visit(v, pointer);
        pointer.truncate(len);
    }
}

/// The ids an event of `event_type` with this payload introduces, at pointers below `base`.
/// A registry entry's registration or update also carries what it states about the entry, so
/// the writer judges a re-registration against the entry as updated so far (`registry::apply`).
pub fn declarations<J: JsonView>(event_type: &str, data: &J, base: &str) -> Vec<Declaration> {
    let Some(kind) = EventKind::from_name(event_type) else {
        return Vec::new();
    };
    let Some(intro) = kind.introduces().or(kind.updates()) else {
        return Vec::new();
    };
    let Some(id) = data.member(intro.field).and_then(J::string) else {
        return Vec::new();
    };
    let entry = kind.update_type().map(|update| Entry {
        event_type: event_type.to_string(),
        stated: data.value(),
        at: format!("{base}/data"),
        update_with: update.name().to_string(),
        rule: super::registry::apply,
    });
    vec![Declaration {
        id: id.to_string(),
        key: registry_key(intro.kind, id),
        kind: intro.kind.phrase().to_string(),
        // An update names a known entry; a registration is judged against it.
        once: intro.kind.is_registry() && kind.updates().is_none(),
        pointer: [base, "/data/", intro.field].concat(),
        entry,
    }]
}

/// The ids an event introduces and the references it requires. `base` is the event's pointer
/// in the request body; pointers in the result are absolute.
pub fn references<J: JsonView>(
    event_type: &str,
    data: &J,
    evidence: &J,
    base: &str,
) -> Result<References, Vec<FieldError>> {
    let mut refs = References {
        declares: declarations(event_type, data, base),
        requires: Vec::new(),
    };
    let kind = EventKind::from_name(event_type);
    let mut errors = Vec::new();
    // Joined, not `format!`ted: this runs for every event, and the formatting machinery costs
    // more than the copies.
    let mut pointer = [base, "/data"].concat();
    for (path, id_kind) in kind.map(EventKind::id_refs).unwrap_or_default() {
        let mut found = Vec::new();
        strings_at(data, path, &mut pointer, &mut found);
        // An update needs the entry it changes, whatever its kind's leniency.
        let updated = kind
            .and_then(EventKind::updates)
            .is_some_and(|u| u.field == *path);
        for (id, pointer) in found {
            let mut req = require(*id_kind, id, pointer);
            if let Requirement::Id { must_exist, .. } = &mut req {
                *must_exist |= updated;
            }
            refs.requires.push(req);
        }
    }
    let mut event_ids = Vec::new();
    if kind.is_some_and(EventKind::targets_event) {
        strings_at(data, "target", &mut pointer, &mut event_ids);
    }
    for path in kind.map(EventKind::event_refs).unwrap_or_default() {
        strings_at(data, path, &mut pointer, &mut event_ids);
    }
    for (id, pointer) in event_ids {
        match Uuid::parse_str(id) {
            Ok(id) => refs.requires.push(Requirement::Event { id, pointer }),
            Err(_) => errors.push(FieldError {
                pointer,
                message: format!("`{id}` is not an event id (UUID)"),
            }),
        }
    }
    let items = evidence.items().unwrap_or_default();
    if items.is_empty() && needs_evidence(event_type) {
        errors.push(FieldError {
            pointer: format!("{base}/evidence"),
            message: format!(
                "a `{event_type}` event needs at least one evidence item naming a registered source"
            ),
        });
    }
    // The first source has nothing else to cite: a registration may cite the source it
    // registers, as its own primary record.
    let registers = (kind == Some(EventKind::SourceRegistered))
        .then(|| data.member("source_id").and_then(J::string))
        .flatten();
    // Each item's pointer, grown in place as `strings_at` grows it.
    pointer.truncate(base.len());
    pointer.push_str("/evidence/");
    let items_at = pointer.len();
    for (i, item) in items.iter().enumerate() {
        pointer.truncate(items_at);
        pointer.push_str(itoa::Buffer::new().format(i));
        if let Some(source) = item.member("source").and_then(J::string) {
            if Some(source) == registers {
                if item.member("relation").and_then(J::string) != Some("primary") {
                    errors.push(FieldError {
                        pointer: format!("{pointer}/relation"),
                        message: format!(
                            "a source registration may cite `{source}` itself only as its `primary` record"
                        ),
                    });
                }
            } else {
                refs.requires.push(require(
                    IdKind::Source,
                    source,
                    [&pointer, "/source"].concat(),
                ));
            }
        }
        let mut chain = Vec::new();
        strings_at(item, "attribution/*", &mut pointer, &mut chain);
        for (actor, pointer) in chain {
            refs.requires.push(require(IdKind::Actor, actor, pointer));
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
            vec![Declaration {
                id: "src:a".into(),
                key: "source:src:a".into(),
                kind: "a source".into(),
                once: true,
                pointer: "/data/source_id".into(),
                entry: Some(Entry {
                    event_type: "source.registered".into(),
                    stated: json!({"source_id": "src:a"}),
                    at: "/data".into(),
                    update_with: "source.updated".into(),
                    rule: crate::event::registry::apply,
                }),
            }]
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

    #[test]
    fn every_reference_field_requires_an_id_of_its_kind_at_its_pointer() {
        let refs = references(
            "meeting.held",
            &json!({"meeting_id": "mtg:a", "participants": [
                {"actor": "actor:a", "side": "actor:s"}], "location": null, "fulfils": "talks:t"}),
            &json!([{"source": "src:a", "relation": "reports", "attribution": ["org:m"]}]),
            "/events/1",
        )
        .unwrap();
        let got: Vec<(String, String, String)> = refs
            .requires
            .iter()
            .filter_map(|r| match r {
                Requirement::Id {
                    id, kind, pointer, ..
                } => Some((pointer.clone(), id.clone(), kind.to_string())),
                Requirement::Event { .. } => None,
            })
            .collect();
        let want = [
            ("/events/1/data/participants/0/actor", "actor:a", "an actor"),
            ("/events/1/data/participants/0/side", "actor:s", "an actor"),
            ("/events/1/data/fulfils", "talks:t", "talks"),
            ("/events/1/evidence/0/source", "src:a", "a source"),
            ("/events/1/evidence/0/attribution/0", "org:m", "an actor"),
        ];
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(p, i, k)| (p.to_string(), i.to_string(), k.to_string()))
            .collect();
        assert_eq!(got, want);
        assert!(!refs.declares[0].once, "a meeting may be claimed again");
    }

    #[test]
    fn a_source_registration_may_cite_itself_only_as_primary() {
        let data = json!({"source_id": "src:a"});
        let ok = references(
            "source.registered",
            &data,
            &json!([{"source": "src:a", "relation": "primary"}]),
            "",
        )
        .unwrap();
        assert!(ok.requires.is_empty());
        let errs = references(
            "source.registered",
            &data,
            &json!([{"source": "src:a", "relation": "reports"}]),
            "",
        )
        .unwrap_err();
        assert_eq!(errs[0].pointer, "/evidence/0/relation");
    }
}
