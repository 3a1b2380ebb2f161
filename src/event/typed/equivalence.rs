//! The typed validator held equal to the JSON Schemas: every example event (both data sets,
//! the coding guide's examples) and systematic mutations of each (a member removed, a value
//! of every other type, unknown members, strings too long or empty, repeated items, bad
//! words, dates and ids) go through both, which must agree on the verdict, the typed
//! validator's pointer being one the schema reports. Tests only; it must never weaken a case
//! to make the two agree.

use serde_json::{Value, json};

use crate::event::{FieldError, Schemas, VocabularyConfig};

/// The examples: every line of both data sets and every event of the coding guide.
pub(crate) fn examples() -> Vec<Value> {
    let mut out = Vec::new();
    for set in [
        crate::server::DEMO_NDJSON,
        crate::server::BLACK_SEA_GRAIN_NDJSON,
    ] {
        for line in set.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(line) else {
                panic!("an example line is not an object: {line}");
            };
            obj.remove("stream");
            obj.remove("expected_version");
            out.push(Value::Object(obj));
        }
    }
    let guide = include_str!("../../../schemas/README.md");
    for block in guide.split("```json").skip(1) {
        let text = block.split("```").next().unwrap_or_default();
        for value in serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .map_while(Result::ok)
        {
            let events = match value.get("events").and_then(Value::as_array) {
                Some(list) => list.clone(),
                None => vec![value],
            };
            out.extend(
                events
                    .into_iter()
                    .filter(|e| e.get("type").is_some() && e.get("data").is_some())
                    .map(|mut e| {
                        if let Some(o) = e.as_object_mut() {
                            o.remove("stream");
                            o.remove("expected_version");
                        }
                        e
                    }),
            );
        }
    }
    out
}

/// The verdicts of both validators on one event, stage by stage as `Validator::event` runs
/// them: the event, then its data, then version 1's forms.
fn compare(schemas: &Schemas, event: &Value, what: &str) -> bool {
    match try_compare(schemas, event, what) {
        Ok(accepted) => accepted,
        Err(disagreement) => panic!("{disagreement}"),
    }
}

/// [`compare`], the first disagreement as `Err`.
fn try_compare(schemas: &Schemas, event: &Value, what: &str) -> Result<bool, String> {
    let typed = schemas.typed();
    let agree =
        |t: Result<(), FieldError>, s: Vec<FieldError>, stage: &str| match (&t, s.is_empty()) {
            (Ok(()), true) => Ok(true),
            (Err(e), false) if s.iter().any(|f| f.pointer == e.pointer) => Ok(false),
            (Err(e), false) => Err(format!(
                "{what}: {stage}: the typed validator blames {} ({}) but the schema {s:?}\n{event}",
                e.pointer, e.message
            )),
            _ => Err(format!(
                "{what}: {stage}: typed says {t:?}, the schema {s:?}\n{event}"
            )),
        };
    if !agree(
        typed.check_event(event, "/events/0"),
        schemas.schema_check_event(event, "/events/0"),
        "event.json",
    )? {
        return Ok(false);
    }
    let event_type = event["type"].as_str().unwrap_or_default();
    let data = &event["data"];
    let (Some(t), Some(s)) = (
        typed.check_data(event_type, data, "/events/0/data"),
        schemas.schema_check_data(event_type, data, "/events/0/data"),
    ) else {
        return Err(format!("{what}: no schema for `{event_type}`"));
    };
    if !agree(t, s, event_type)? {
        return Ok(false);
    }
    let version = event
        .get("schema_version")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let meta = event.get("meta");
    agree(
        typed.check_version(version, event_type, data, "/d", meta, "/m"),
        schemas.schema_check_version(version, event_type, data, "/d", meta, "/m"),
        "version-1",
    )
}

/// Values to put in place of one.
fn replacements(value: &Value) -> Vec<Value> {
    let mut out = vec![
        Value::Null,
        json!(true),
        json!(7),
        json!(-1),
        json!(0),
        json!(2.0),
        json!(1.5),
        json!("x"),
        json!(""),
        json!("a".repeat(4001)),
        json!("é".repeat(300)),
        json!("é".repeat(301)),
        json!("firm"),
        json!("Actor:X"),
        json!("actor:x"),
        json!("2026-13-01"),
        json!("2026-02-30"),
        json!("2026-02"),
        json!("2026"),
        json!("2026-02-03T04:05:06Z"),
        json!("P"),
        json!("PT3H"),
        json!("https://example.org/a"),
        json!("019be826-9000-701f-91c2-d6a7f0a1c8e9"),
        json!("019be826-9000-401f-91c2-d6a7f0a1c8e9"),
        json!([]),
        json!({}),
        json!(["x"]),
        json!({"zz_unknown": 1}),
    ];
    match value {
        Value::String(s) => {
            out.push(json!(format!("{s}{}", "a".repeat(300))));
            out.push(json!(format!("{s} ")));
            out.push(json!(s.to_uppercase()));
        }
        Value::Array(items) => {
            if let Some(first) = items.first() {
                let mut twice = items.clone();
                twice.push(first.clone());
                out.push(Value::Array(twice));
                out.push(json!([first]));
            }
            out.push(Value::Array(vec![json!("x"); 201]));
        }
        Value::Object(map) => {
            let mut more = map.clone();
            more.insert("zz_unknown".into(), json!(1));
            out.push(Value::Object(more));
        }
        _ => {}
    }
    out
}

/// Every variant of `event` with one change: at each place, the value replaced or (for a
/// member) removed.
pub(crate) fn mutations(event: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut paths = Vec::new();
    collect_paths(event, &mut Vec::new(), &mut paths);
    for path in paths {
        let Some(current) = get(event, &path) else {
            continue;
        };
        for replacement in replacements(current) {
            let mut changed = event.clone();
            if let Some(slot) = get_mut(&mut changed, &path) {
                *slot = replacement;
            }
            out.push((format!("{path:?} replaced"), changed));
        }
        if let Some((last, parent)) = path.split_last()
            && let Some(Value::Object(map)) = get_mut(&mut event.clone(), parent)
        {
            let _ = map;
            let mut changed = event.clone();
            if let Some(Value::Object(map)) = get_mut(&mut changed, parent) {
                map.remove(last);
            }
            out.push((format!("{path:?} removed"), changed));
        }
    }
    out
}

fn collect_paths(value: &Value, here: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if !here.is_empty() {
        out.push(here.clone());
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                here.push(k.clone());
                collect_paths(v, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate().take(2) {
                here.push(i.to_string());
                collect_paths(v, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| match v {
        Value::Object(m) => m.get(k),
        Value::Array(a) => a.get(k.parse::<usize>().ok()?),
        _ => None,
    })
}

fn get_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, k| match v {
        Value::Object(m) => m.get_mut(k),
        Value::Array(a) => a.get_mut(k.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Up to `per_type` examples of each event type, so the mutations stay a few seconds.
pub(crate) fn some_of_each_type(examples: &[Value], per_type: usize) -> Vec<Value> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    examples
        .iter()
        .filter(|e| {
            let n = counts
                .entry(e["type"].as_str().unwrap_or_default().to_string())
                .or_default();
            *n += 1;
            *n <= per_type
        })
        .cloned()
        .collect()
}

#[test]
fn every_example_event_is_accepted_by_both_validators() {
    let schemas = Schemas::load().unwrap(); // ok: a test-only module (`#[cfg(test)] mod equivalence` in typed.rs)
    let examples = examples();
    assert!(examples.len() > 100, "only {} examples", examples.len());
    for (i, event) in examples.iter().enumerate() {
        assert!(
            compare(&schemas, event, &format!("example {i}")),
            "example {i} is refused: {event}"
        );
    }
    let types: std::collections::BTreeSet<&str> =
        examples.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types.len(),
        schemas.event_types().count(),
        "the examples cover every event type"
    );
}

#[test]
fn every_mutation_of_the_examples_gets_the_same_verdict_and_pointer_from_both_validators() {
    let schemas = Schemas::load().unwrap(); // ok: a test-only module (`#[cfg(test)] mod equivalence` in typed.rs)
    let mut refused = 0;
    let mut total = 0;
    let mut disagreements = Vec::new();
    for event in some_of_each_type(&examples(), 3) {
        let mut variants = mutations(&event);
        // Every type's data under every other type: required, unknown and mistyped members.
        for other in schemas.event_types() {
            let mut changed = event.clone();
            changed["type"] = json!(other);
            variants.push((format!("as {other}"), changed));
        }
        for (what, changed) in variants {
            total += 1;
            match try_compare(&schemas, &changed, &what) {
                Ok(true) => {}
                Ok(false) => refused += 1,
                Err(d) => disagreements.push(d),
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements, the first:\n{}",
        disagreements.len(),
        disagreements
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    assert!(
        total > 10_000 && refused > total / 2,
        "{refused} of {total}"
    );
}

#[test]
fn a_configured_vocabulary_word_is_accepted_by_both_validators_and_only_where_configured() {
    let mut added = VocabularyConfig::none();
    added.tones = vec!["firm".into()];
    added.meeting_formats = vec!["firm".into()];
    let extended = Schemas::load_with(&added).unwrap(); // ok: a test-only module (`#[cfg(test)] mod equivalence` in typed.rs)
    let plain = Schemas::load().unwrap(); // ok: a test-only module (`#[cfg(test)] mod equivalence` in typed.rs)
    let statement = json!({
        "type": "statement.made",
        "occurred": {"precision": "day", "start": "2026-01-02"},
        "data": {"statement_id": "statement:a", "speaker": "actor:a", "content": "c", "tone": "firm"},
        "evidence": []
    });
    assert!(compare(&extended, &statement, "firm tone, configured"));
    assert!(!compare(&plain, &statement, "firm tone, not configured"));
    for event in some_of_each_type(&examples(), 1) {
        for (what, changed) in mutations(&event) {
            compare(&extended, &changed, &what);
        }
    }
}

#[test]
fn every_schema_compiles() {
    Schemas::load().unwrap().compile_all().unwrap(); // ok: a test-only module (`#[cfg(test)] mod equivalence` in typed.rs)
    let mut added = VocabularyConfig::none();
    added.stances = vec!["insist".into()];
    Schemas::load_with(&added).unwrap().compile_all().unwrap(); // ok: a test-only module (`#[cfg(test)] mod equivalence` in typed.rs)
}
