//! The fast path of an append body: the body read once as a borrowed tree ([`Node`]), each
//! event checked by the typed validator from that tree, and each event's payload written
//! straight as the record's text, with no `serde_json::Value` built. It accepts, or leaves the
//! body to the `Value` path (`Validator::submission`), which decides it and words every refusal;
//! it refuses only a member named `node::RESERVED_MEMBER`, which that path cannot always see.
//! So it must never accept what that path refuses, nor make a different event of what both
//! accept (a test runs the examples and their mutations through both, as sent and rewritten).

use std::ops::Range;

use uuid::Uuid;

use super::node::{JsonView, Node, RESERVED_MEMBER};
use super::{
    EventKind, SCHEMA_VERSIONS, Submission, Validator, expected_version, parse_expected, rules,
    version_number,
};
use crate::log::{JsonText, NewEvent};

/// What the fast path made of a body.
pub(super) enum Outcome {
    /// Every event accepted.
    Taken(Submission),
    /// A member named [`RESERVED_MEMBER`] at this pointer: refused here, since the `Value`
    /// path would not see it where serde_json reads it as raw text (an object's first member).
    Reserved(String),
    /// Left to the `Value` path.
    Left,
}

/// What the fast path makes of `body`.
pub(super) fn submission(
    validator: &Validator,
    body: &[u8],
    query_expected: Option<&str>,
) -> Outcome {
    let Ok(body) = serde_json::from_slice::<Node<'_>>(body) else {
        return Outcome::Left;
    };
    if body.has_key(RESERVED_MEMBER) {
        return match body.pointer_of_key(RESERVED_MEMBER, "") {
            Some(pointer) => Outcome::Reserved(pointer),
            None => Outcome::Left,
        };
    }
    match accept(validator, &body, query_expected) {
        Some(submission) => Outcome::Taken(submission),
        None => Outcome::Left,
    }
}

/// The submission of a body read as `body`, if every event passes; `None` leaves it.
fn accept(
    validator: &Validator,
    body: &Node<'_>,
    query_expected: Option<&str>,
) -> Option<Submission> {
    let Node::Object(members) = body else {
        return None;
    };
    let (single, events, body_expected) = match body.get("events") {
        None => (true, std::slice::from_ref(body), None),
        Some(Node::Array(list)) => {
            if members
                .iter()
                .any(|(k, _)| k != "events" && k != "expected_version")
                || list.is_empty()
                || list.len() > validator.limits.max_events_per_request
            {
                return None;
            }
            let expected = match body.get("expected_version") {
                Some(v) => Some(parse_expected(&v.to_value(), "/expected_version").ok()?),
                None => None,
            };
            (false, list.as_slice(), expected)
        }
        Some(_) => return None,
    };
    let expected = expected_version(body_expected, query_expected).ok()?;
    let mut out = Vec::with_capacity(events.len());
    for (i, node) in events.iter().enumerate() {
        let base = if single {
            String::new()
        } else {
            format!("/events/{i}")
        };
        out.push(event(validator, node, &base)?);
    }
    Some(Submission {
        expected,
        events: out,
        single,
        fast: true,
    })
}

/// A typical event's stored size: a statement with its evidence is about 600 bytes.
const EVENT_BYTES_HINT: usize = 768;

/// Where the members of an event the record keeps are in its stored JSON.
#[derive(Default)]
struct Spans {
    occurred: Option<Range<usize>>,
    data: Option<Range<usize>>,
    evidence: Option<Range<usize>>,
    meta: Option<Range<usize>>,
}

/// One event of the body (`base` its pointer), if every check `Validator::event` makes
/// passes, made as that path makes it.
fn event(validator: &Validator, node: &Node<'_>, base: &str) -> Option<NewEvent> {
    let typed = validator.schemas.typed();
    if !typed.event_node_passes(node) {
        return None;
    }
    let Node::Object(members) = node else {
        return None;
    };
    // The event as stored JSON: its length is the size the limit is about, and the members
    // the record keeps are cut from it, already in the record's encoding.
    let mut encoded: Vec<u8> = Vec::with_capacity(EVENT_BYTES_HINT);
    let mut spans = Spans::default();
    encoded.push(b'{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            encoded.push(b',');
        }
        serde_json::to_writer(&mut encoded, key.as_ref()).ok()?;
        encoded.push(b':');
        let start = encoded.len();
        serde_json::to_writer(&mut encoded, value).ok()?;
        let span = Some(start..encoded.len());
        match key.as_ref() {
            "occurred" => spans.occurred = span,
            "data" => spans.data = span,
            "evidence" => spans.evidence = span,
            "meta" => spans.meta = span,
            _ => {}
        }
    }
    encoded.push(b'}');
    let limits = &validator.limits;
    if encoded.len() > limits.max_event_bytes || node.has_string_over(limits.max_string_bytes) {
        return None;
    }
    let encoded = String::from_utf8(encoded).ok()?;
    let part = |span: &Option<Range<usize>>| span.clone().and_then(|r| encoded.get(r));

    let event_type = node.get("type")?.as_str()?;
    let schema_version = match node.get("schema_version") {
        Some(Node::Number(n)) => version_number(n),
        _ => None,
    }
    .unwrap_or(1);
    if !SCHEMA_VERSIONS
        .iter()
        .any(|v| u64::from(*v) == schema_version)
    {
        return None;
    }
    let null = Node::Null;
    let data = node.get("data").unwrap_or(&null);
    if !typed.data_node_passes(event_type, data)? {
        return None;
    }
    if schema_version == 1
        && typed
            .check_version(1, event_type, data, "", node.get("meta"), "")
            .is_err()
    {
        return None;
    }
    if EventKind::from_name(event_type).is_some_and(EventKind::is_fact)
        && node.get("occurred").is_none()
    {
        return None;
    }
    let id = match node.get("id").and_then(Node::as_str) {
        Some(s) => Uuid::parse_str(s)
            .ok()
            .filter(|id| id.get_version_num() == 7)?,
        None => Uuid::now_v7(),
    };
    let no_evidence = Node::Array(Vec::new());
    let evidence = node.get("evidence").unwrap_or(&no_evidence);
    let refs = rules::references(event_type, data, evidence, base).ok()?;
    let text_of = |span: &Option<Range<usize>>, absent: &str| {
        JsonText::encoded(part(span).unwrap_or(absent).to_string())
    };
    Some(NewEvent {
        id,
        event_type: event_type.to_string(),
        schema_version: schema_version as u32,
        occurred: text_of(&spans.occurred, "null"),
        process: node
            .get("process")
            .and_then(JsonView::string)
            .map(str::to_string),
        data: text_of(&spans.data, "null"),
        evidence: text_of(&spans.evidence, "[]"),
        meta: spans.meta.is_some().then(|| text_of(&spans.meta, "null")),
        refs,
        client_id: node.get("id").is_some(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::event::tests::validator;
    use crate::event::typed::equivalence::{examples, mutations, some_of_each_type};

    /// `value` as a client might write it: members in reverse order, spaces and newlines,
    /// every non-ASCII character and `/` escaped.
    fn scrambled(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let members: Vec<String> = map
                    .iter()
                    .rev()
                    .map(|(k, v)| format!("{} :\n {}", escaped(k), scrambled(v)))
                    .collect();
                format!("{{ {} }}", members.join(" ,\n\t"))
            }
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(scrambled).collect();
                format!("[ {} ]", items.join(", "))
            }
            Value::String(s) => escaped(s),
            other => other.to_string(),
        }
    }

    fn escaped(s: &str) -> String {
        let plain = serde_json::to_string(s).unwrap();
        let mut out = String::new();
        for c in plain.chars() {
            match c {
                '/' => out.push_str("\\/"),
                c if c.is_ascii() => out.push(c),
                c => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
        out
    }

    /// The submission the fast path makes of `body`, if it takes it.
    fn taken(validator: &Validator, body: &str, query: Option<&str>) -> Option<Submission> {
        match submission(validator, body.as_bytes(), query) {
            Outcome::Taken(s) => Some(s),
            Outcome::Reserved(_) | Outcome::Left => None,
        }
    }

    /// Whether the fast path accepts `body`; when it does, the `Value` path must accept it
    /// too and make the same submission (a minted id aside).
    fn agree(validator: &Validator, body: &str, query: Option<&str>) -> bool {
        let Some(fast) = taken(validator, body, query) else {
            return false;
        };
        let slow = match super::super::parse_json(body.as_bytes())
            .and_then(|value| validator.submission(&value, query))
        {
            Ok(s) => s,
            Err(e) => panic!("the fast path accepts what the Value path refuses ({e:?}):\n{body}"),
        };
        assert_eq!(fast.expected, slow.expected, "{body}");
        assert_eq!(fast.single, slow.single, "{body}");
        assert_eq!(fast.events.len(), slow.events.len(), "{body}");
        for (f, s) in fast.events.iter().zip(&slow.events) {
            assert_eq!(f.client_id, s.client_id, "{body}");
            if f.client_id {
                assert_eq!(f.id, s.id, "{body}");
            }
            assert_eq!(f.event_type, s.event_type, "{body}");
            assert_eq!(f.schema_version, s.schema_version, "{body}");
            assert_eq!(f.process, s.process, "{body}");
            assert_eq!(f.occurred, s.occurred, "{body}");
            assert_eq!(f.data, s.data, "{body}");
            assert_eq!(f.evidence, s.evidence, "{body}");
            assert_eq!(f.meta, s.meta, "{body}");
            assert_eq!(format!("{:?}", f.refs), format!("{:?}", s.refs), "{body}");
        }
        true
    }

    #[test]
    fn every_example_is_accepted_by_the_fast_path_as_the_value_path_makes_it() {
        let validator = validator();
        let examples = examples();
        for event in &examples {
            assert!(agree(&validator, &event.to_string(), None), "{event}");
            assert!(agree(&validator, &scrambled(event), None), "{event}");
        }
        // A batch, with the expected version in the body and the query.
        let batch = json!({"expected_version": 3, "events": [examples[0], examples[1]]});
        assert!(agree(&validator, &batch.to_string(), None));
        assert!(agree(&validator, &scrambled(&batch), Some("3")));
    }

    #[test]
    fn every_mutation_of_the_examples_is_refused_by_the_fast_path_or_made_as_the_value_path_makes_it()
     {
        let validator = validator();
        let (mut accepted, mut total) = (0, 0);
        for event in some_of_each_type(&examples(), 3) {
            let mut variants = mutations(&event);
            variants.push(("no id".into(), {
                let mut e = event.clone();
                if let Some(o) = e.as_object_mut() {
                    o.remove("id");
                }
                e
            }));
            for (_, changed) in variants {
                for body in [changed.to_string(), scrambled(&changed)] {
                    total += 1;
                    accepted += usize::from(agree(&validator, &body, None));
                }
                let batch = json!({"events": [changed, event]}).to_string();
                agree(&validator, &batch, Some("any"));
            }
        }
        // Many mutations stay valid (an optional member removed, another word of a list): the
        // fast path takes those, and leaves the rest.
        assert!(accepted > 0 && accepted < total, "{accepted} of {total}");
    }

    #[test]
    fn bodies_the_fast_path_leaves_to_the_value_path_and_one_it_takes_as_that_path_does() {
        let validator = validator();
        let event = examples().remove(0);
        let repeated = {
            let text = event.to_string();
            format!("{{\"type\":\"x\",{}", &text[1..])
        };
        for body in [
            "{".to_string(),
            "[]".to_string(),
            json!({"events": []}).to_string(),
            json!({"events": [event], "extra": 1}).to_string(),
            json!({"events": event}).to_string(),
            json!({"expected_version": "never", "events": [event]}).to_string(),
            // A refused event in a batch of good ones: the Value path words the refusal.
            json!({"events": [event, {"type": "statement.made"}]}).to_string(),
        ] {
            assert!(taken(&validator, &body, None).is_none(), "{body}");
        }
        // A member given twice counts once, its last value, as a `Value` keeps it.
        assert!(agree(&validator, &repeated, None), "{repeated}");
        let batch = json!({"expected_version": 1, "events": [event]}).to_string();
        assert!(taken(&validator, &batch, Some("2")).is_none());
        assert!(taken(&validator, &batch, Some("1")).is_some());
    }

    #[test]
    fn the_reserved_member_name_is_refused_at_its_pointer_wherever_it_stands() {
        let validator = validator();
        let event = examples()
            .into_iter()
            .find(|e| e["type"] == "event.corrected" && e["data"]["patch"][0]["op"] == "test")
            .unwrap();
        let reserved = crate::event::node::RESERVED_MEMBER;
        // A patch's `value` may be anything. First in its object, serde_json would read the
        // object as the raw JSON of its string, so the Value path alone would not see it;
        // elsewhere, stored, the record would not read back. Both are refused, at the member.
        for (value, first) in [
            (format!(r#"{{"{reserved}": "{{\"a\": 1}}"}}"#), true),
            (format!(r#"{{"b": 1, "{reserved}": "x"}}"#), false),
        ] {
            let mut changed = event.clone();
            changed["data"]["patch"][0]["value"] = json!("VALUE");
            let text = changed.to_string().replace(r#""VALUE""#, &value);
            let batch = format!(r#"{{"events": [{text}]}}"#);
            let err = validator.submit_body(batch.as_bytes(), None).unwrap_err();
            let crate::event::InputError::Invalid(errors) = err else {
                panic!("{err:?}");
            };
            let pointer = format!("/events/0/data/patch/0/value/{reserved}");
            assert_eq!(errors[0].pointer, pointer);
            assert!(errors[0].message.contains("cannot be a member name"));
            if !first {
                let value = crate::event::parse_json(batch.as_bytes()).unwrap();
                let crate::event::InputError::Invalid(errors) =
                    validator.submission(&value, None).unwrap_err()
                else {
                    panic!("not a field error");
                };
                assert_eq!(errors[0].pointer, pointer);
            }
        }
    }

    #[test]
    fn a_schema_version_written_as_a_float_without_fraction_is_that_version() {
        let validator = validator();
        let event = examples()
            .into_iter()
            .find(|e| e["schema_version"] == 2 && e["type"] == "statement.made")
            .unwrap();
        let body = event
            .to_string()
            .replace(r#""schema_version":2"#, r#""schema_version":2.0"#);
        assert!(body.contains("2.0"), "{body}");
        assert!(agree(&validator, &body, None));
        assert_eq!(
            taken(&validator, &body, None).unwrap().events[0].schema_version,
            2
        );
    }

    #[test]
    fn a_patch_op_is_a_string_not_an_object_naming_one() {
        let validator = validator();
        let mut event = examples()
            .into_iter()
            .find(|e| e["type"] == "event.corrected")
            .unwrap();
        assert!(agree(&validator, &event.to_string(), None));
        // The same operation, named by an object: serde reads an enum so from a `Value`.
        let op = event["data"]["patch"][0]["op"]
            .as_str()
            .unwrap()
            .to_string();
        event["data"]["patch"][0]["op"] = json!({ op: null });
        let body = event.to_string();
        assert!(taken(&validator, &body, None).is_none());
        assert!(
            validator.submit_body(body.as_bytes(), None).is_err(),
            "the schema allows only a string"
        );
    }
}
