//! Registry entries (actors, issues, sources) as registrations and updates make them: the one
//! rule (`apply`) the log writer calls to judge a re-registration against the entry as updated
//! so far, and the projections call to show an entry as known at a time. A re-registration
//! that states nothing new is a no-op; one that says something else is a contradiction, to be
//! made with an update event instead. This module must never read storage: it folds payloads.

use serde_json::{Map, Value};

use super::kind::EventKind;
use crate::log::EntryChange;

/// How an event of `event_type` with payload `stated` changes the entry `prior` (`None`: not
/// registered yet).
///
/// A registration of a known entry is `Same` when every field it gives agrees with the entry:
/// equal, or for a list (aliases, members, roles, authors) a subset of the known items; a field
/// it leaves out is no contradiction. Any other field is a difference, named by its pointer
/// below `data`, including one the entry lacks (a no-op would drop it silently). An update
/// replaces each field it gives and keeps the others.
pub fn apply(prior: Option<&Value>, event_type: &str, stated: &Value) -> EntryChange {
    let kind = EventKind::from_name(event_type);
    let is_update = kind.and_then(EventKind::updates).is_some();
    match prior {
        None => EntryChange::Set(stated.clone()),
        Some(known) if is_update => {
            let mut merged = known.as_object().cloned().unwrap_or_else(Map::new);
            for (field, value) in stated.as_object().into_iter().flatten() {
                merged.insert(field.clone(), value.clone());
            }
            EntryChange::Set(Value::Object(merged))
        }
        Some(known) => {
            let differs = differences(known, stated);
            if differs.is_empty() {
                EntryChange::Same
            } else {
                EntryChange::Differs(differs)
            }
        }
    }
}

/// The entry after every change in `changes` (type and payload, in log order), or `None`
/// when none of them registers it.
pub fn fold<'a>(changes: impl IntoIterator<Item = (&'a str, Value)>) -> Option<Value> {
    let mut entry: Option<Value> = None;
    for (event_type, data) in changes {
        let is_update = EventKind::from_name(event_type)
            .and_then(EventKind::updates)
            .is_some();
        // An update of an entry never registered (not possible through the writer) shows
        // nothing; a second registration changes nothing (it was a no-op or refused).
        match (&entry, is_update) {
            (None, true) | (Some(_), false) => {}
            _ => {
                if let EntryChange::Set(v) = apply(entry.as_ref(), event_type, &data) {
                    entry = Some(v);
                }
            }
        }
    }
    entry
}

/// The pointers (below `data`) of the fields of `stated` that `known` does not already say.
fn differences(known: &Value, stated: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (field, value) in stated.as_object().into_iter().flatten() {
        let agrees = match (known.get(field), value) {
            (Some(Value::Array(have)), Value::Array(items)) => {
                items.iter().all(|item| have.contains(item))
            }
            (Some(have), _) => have == value,
            (None, _) => false,
        };
        if !agrees {
            out.push(format!("/{}", escape(field)));
        }
    }
    out
}

/// A field name as a JSON pointer segment (RFC 6901).
fn escape(field: &str) -> String {
    field.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACTOR: &str = "actor.registered";

    #[test]
    fn a_registration_that_leaves_fields_out_or_names_fewer_aliases_is_the_same_entry() {
        let known = json!({"actor_id": "actor:x", "name": "X", "kind": "person",
            "aliases": ["Ex", "Xx"], "description": "d"});
        let again =
            json!({"actor_id": "actor:x", "name": "X", "kind": "person", "aliases": ["Xx"]});
        assert_eq!(apply(Some(&known), ACTOR, &again), EntryChange::Same);
    }

    #[test]
    fn a_registration_with_another_name_or_a_new_field_differs_at_their_pointers() {
        let known = json!({"actor_id": "actor:x", "name": "X", "kind": "person"});
        let again = json!({"actor_id": "actor:x", "name": "Y", "kind": "person",
            "aliases": ["Why"]});
        assert_eq!(
            apply(Some(&known), ACTOR, &again),
            EntryChange::Differs(vec!["/aliases".into(), "/name".into()])
        );
    }

    #[test]
    fn an_update_replaces_the_fields_it_gives_and_keeps_the_others() {
        let known = json!({"actor_id": "actor:x", "name": "X", "kind": "person"});
        let update = json!({"actor_id": "actor:x", "name": "Y"});
        assert_eq!(
            apply(Some(&known), "actor.updated", &update),
            EntryChange::Set(json!({"actor_id": "actor:x", "name": "Y", "kind": "person"}))
        );
        let folded = fold([
            (ACTOR, known.clone()),
            ("actor.updated", update),
            (ACTOR, known),
        ]);
        assert_eq!(folded.unwrap()["name"], "Y");
    }
}
