//! The OpenAPI document as served: `schemas/openapi.json` with every JSON Schema it refers to
//! by `$id` URL (the envelope, the event, `common`...) embedded under `components/schemas`, so
//! the document resolves on its own and a tool that cannot fetch `https://annals.dev/schemas/`
//! still sees every body. `schemas/` stays the single source: this must never change what a
//! schema says, only where its references point.

use serde_json::Value;

/// The `$id` prefix of every schema in `schemas/`.
const BASE: &str = "https://annals.dev/schemas/";

/// The `components/schemas` key of the embedded copy of the schema named `name`.
pub fn component_key(name: &str) -> String {
    format!("schema.{name}")
}

/// `openapi` with the schemas it reaches embedded; `schema` finds a schema by public name
/// (`common`, `meeting.held`). A reference to a schema `schema` does not know is left as it is.
pub fn bundle<'a>(openapi: &Value, schema: impl Fn(&str) -> Option<&'a Value>) -> Value {
    let mut doc = openapi.clone();
    let mut pending = Vec::new();
    rewrite(&mut doc, None, &schema, &mut pending);
    let mut embedded = serde_json::Map::new();
    while let Some(name) = pending.pop() {
        let key = component_key(&name);
        if embedded.contains_key(&key) {
            continue;
        }
        let Some(found) = schema(&name) else { continue };
        let mut copy = found.clone();
        if let Some(obj) = copy.as_object_mut() {
            // With its `$id` kept, the copy's own references would resolve against that URL
            // instead of the document.
            obj.remove("$id");
            obj.remove("$schema");
        }
        rewrite(&mut copy, Some(&name), &schema, &mut pending);
        embedded.insert(key, copy);
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.extend(embedded);
    }
    doc
}

/// The public name of a schema `$id` (`https://annals.dev/schemas/events/meeting.held.json`
/// is `meeting.held`), as `/schemas/{name}` serves it.
fn public_name(base: &str) -> Option<&str> {
    let path = base.strip_prefix(BASE)?.strip_suffix(".json")?;
    Some(path.strip_prefix("events/").unwrap_or(path))
}

/// Points every `$ref` of `v` into the document. `owner` names the embedded schema `v` is part
/// of, whose own `#/...` references now live under its component.
fn rewrite<'a>(
    v: &mut Value,
    owner: Option<&str>,
    schema: &impl Fn(&str) -> Option<&'a Value>,
    pending: &mut Vec<String>,
) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "$ref"
                    && let Value::String(r) = child
                {
                    let (base, fragment) = r.split_once('#').unwrap_or((r.as_str(), ""));
                    let target = if base.is_empty() {
                        owner
                    } else {
                        public_name(base).filter(|n| schema(n).is_some())
                    };
                    if let Some(name) = target {
                        if !base.is_empty() {
                            pending.push(name.to_string());
                        }
                        *r = format!("#/components/schemas/{}{fragment}", component_key(name));
                    }
                } else {
                    rewrite(child, owner, schema, pending);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| rewrite(i, owner, schema, pending)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn external_refs_become_components_and_their_own_refs_follow_them() {
        let common = json!({"$id": "https://annals.dev/schemas/common.json", "$defs": {
            "a": {"type": "string"}, "b": {"$ref": "#/$defs/a"}}});
        let event = json!({"$id": "https://annals.dev/schemas/event.json", "$schema": "x",
            "properties": {"t": {"$ref": "https://annals.dev/schemas/common.json#/$defs/b"}}});
        let doc = json!({"components": {"schemas": {
            "Event": {"$ref": "https://annals.dev/schemas/event.json"},
            "Local": {"$ref": "#/components/schemas/Event"},
            "Unknown": {"$ref": "https://annals.dev/schemas/nothing.json"}}}});
        let out = bundle(&doc, |n| match n {
            "common" => Some(&common),
            "event" => Some(&event),
            _ => None,
        });
        let s = &out["components"]["schemas"];
        assert_eq!(s["Event"]["$ref"], "#/components/schemas/schema.event");
        assert_eq!(s["Local"]["$ref"], "#/components/schemas/Event");
        assert_eq!(
            s["Unknown"]["$ref"],
            "https://annals.dev/schemas/nothing.json"
        );
        assert_eq!(
            s["schema.event"],
            json!({"properties": {"t": {"$ref": "#/components/schemas/schema.common/$defs/b"}}})
        );
        assert_eq!(
            s["schema.common"]["$defs"]["b"]["$ref"],
            "#/components/schemas/schema.common/$defs/a"
        );
        assert!(s["schema.common"].get("$id").is_none());
    }
}
