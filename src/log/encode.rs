//! A submitted append's record JSON, encoded in parts on the submitter's task before it is
//! queued, so the writer thread only joins them around what it assigns (seq, version,
//! `recorded_at`, `prev_hash`) instead of serialising every payload itself. The joined bytes
//! must never differ from [`Record::to_bytes`] of the same record: every hash depends on them
//! (the tests below hold the two equal).

use std::sync::Arc;

use serde::Serialize;

use super::append::{Append, AppendError, JsonText};
use super::record::Hash;

/// An append as the writer takes it: the request and its events' record JSON parts.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    /// The request.
    pub(crate) append: Append,
    /// Its events' record JSON, but for what the writer assigns.
    pub(crate) encoded: Arc<Encoded>,
    /// A copy of the request made on the caller's task, for a writer that may have to stage
    /// it again (the nats backend, when the stream refuses a group): the writer then does
    /// not copy every payload itself.
    pub(crate) retry: Option<Append>,
}

impl Queued {
    /// Encodes `append`'s parts on the caller's task, and copies it when `retryable`.
    pub(crate) fn of(append: Append, retryable: bool) -> Result<Queued, AppendError> {
        let encoded = Encoded::of(&append)
            .map_err(|e| AppendError::Unavailable(format!("cannot encode record: {e}")))?;
        Ok(Queued {
            retry: retryable.then(|| append.clone()),
            append,
            encoded: Arc::new(encoded),
        })
    }
}

/// An append's events as record JSON parts: the request's `stream` and principal once, and
/// each event's parts before and after `recorded_at`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Encoded {
    /// The stream name as a JSON string.
    stream: Vec<u8>,
    /// The principal as a JSON string.
    by: Vec<u8>,
    /// Per event: `,"type":…,"schema_version":…` and, from the split offset on, the fields
    /// after `recorded_by` (`,"occurred":…` when given, `,"process":…` when given, `,"data":…`,
    /// `,"evidence":…`, `,"meta":…` when given).
    events: Vec<(Vec<u8>, usize)>,
}

impl Encoded {
    /// Encodes `append`'s parts (the costly half of a record's bytes: its payload).
    pub(crate) fn of(append: &Append) -> Result<Encoded, serde_json::Error> {
        let mut events = Vec::with_capacity(append.events.len());
        for ev in &append.events {
            let mut out = Vec::with_capacity(RECORD_BYTES_HINT);
            out.extend_from_slice(b",\"type\":");
            serde_json::to_writer(&mut out, &ev.event_type)?;
            out.extend_from_slice(b",\"schema_version\":");
            serde_json::to_writer(&mut out, &ev.schema_version)?;
            let split = out.len();
            if !ev.occurred.is_null() {
                text_field(&mut out, "occurred", &ev.occurred);
            }
            if let Some(process) = &ev.process {
                field(&mut out, "process", process)?;
            }
            text_field(&mut out, "data", &ev.data);
            text_field(&mut out, "evidence", &ev.evidence);
            if let Some(meta) = &ev.meta {
                text_field(&mut out, "meta", meta);
            }
            events.push((out, split));
        }
        Ok(Encoded {
            stream: serde_json::to_vec(&append.stream)?,
            by: serde_json::to_vec(&append.principal)?,
            events,
        })
    }

    /// The stored bytes of the record of event `index` at the writer's positions:
    /// `recorded_at` as a JSON string (one per group), the chain hash before it.
    /// `None` when `index` has no parts (an `Encoded` of another append).
    pub(crate) fn record(
        &self,
        index: usize,
        id: &uuid::Uuid,
        seq: u64,
        version: u64,
        recorded_at: &[u8],
        prev: &Hash,
    ) -> Option<Vec<u8>> {
        let (parts, split) = self.events.get(index)?;
        let (typed, tail) = parts.split_at(*split);
        let mut out = Vec::with_capacity(parts.len() + self.stream.len() + self.by.len() + 256);
        let mut ids = uuid::Uuid::encode_buffer();
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(b"{\"id\":\"");
        out.extend_from_slice(id.hyphenated().encode_lower(&mut ids).as_bytes());
        out.extend_from_slice(b"\",\"seq\":");
        out.extend_from_slice(n.format(seq).as_bytes());
        out.extend_from_slice(b",\"stream\":");
        out.extend_from_slice(&self.stream);
        out.extend_from_slice(b",\"version\":");
        out.extend_from_slice(n.format(version).as_bytes());
        out.extend_from_slice(typed);
        out.extend_from_slice(b",\"recorded_at\":");
        out.extend_from_slice(recorded_at);
        out.extend_from_slice(b",\"recorded_by\":");
        out.extend_from_slice(&self.by);
        out.extend_from_slice(tail);
        out.extend_from_slice(b",\"prev_hash\":\"");
        let mut hex = [0u8; 64];
        // Infallible: the buffer is exactly twice the hash.
        if hex::encode_to_slice(prev, &mut hex).is_err() {
            return None;
        }
        out.extend_from_slice(&hex);
        out.extend_from_slice(b"\"}");
        Some(out)
    }
}

/// `,"name":value`, as serde writes a struct field after the first.
fn field<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    name: &str,
    value: &T,
) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    serde_json::to_writer(out, value)
}

/// `,"name":value` of a value already encoded (the validator wrote it as serde would).
fn text_field(out: &mut Vec<u8>, name: &str, value: &JsonText) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(value.as_str().as_bytes());
}

/// `recorded_at` as the JSON string the parts are joined with.
pub(crate) fn json_string(text: &str) -> Vec<u8> {
    // A `&str` always serialises.
    serde_json::to_vec(text).unwrap_or_default()
}

/// A typical record's payload parts: a statement with its evidence is about 600 bytes.
const RECORD_BYTES_HINT: usize = 768;

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::*;
    use crate::log::append::{ExpectedVersion, NewEvent, References};
    use crate::log::record::Record;

    fn event(
        occurred: Value,
        process: Option<String>,
        data: Value,
        meta: Option<Value>,
    ) -> NewEvent {
        NewEvent {
            id: Uuid::now_v7(),
            event_type: "statement.made".into(),
            schema_version: 2,
            occurred: occurred.into(),
            process,
            data: data.into(),
            evidence:
                json!([{"source": "src:x", "relation": "quotes", "quote": "\"q\" \u{1F600}"}])
                    .into(),
            meta: meta.map(JsonText::from),
            refs: References::default(),
            client_id: false,
        }
    }

    /// Joins the parts for every event of `append` and compares with serde's record.
    fn holds_equal(append: Append) {
        let encoded = Encoded::of(&append).unwrap();
        let recorded_at = "2026-12-06T23:59:59.123456Z";
        let prev: Hash = [7u8; 32];
        for (i, ev) in append.events.iter().enumerate() {
            let record = Record {
                id: ev.id,
                seq: 1_000_000 + i as u64,
                stream: append.stream.clone(),
                version: 42 + i as u64,
                event_type: ev.event_type.clone(),
                schema_version: ev.schema_version,
                recorded_at: recorded_at.into(),
                recorded_by: append.principal.clone(),
                occurred: ev.occurred.value(),
                process: ev.process.clone(),
                data: ev.data.value(),
                evidence: ev.evidence.value(),
                meta: ev.meta.as_ref().map(JsonText::value),
                prev_hash: hex::encode(prev),
            };
            let joined = encoded
                .record(
                    i,
                    &ev.id,
                    record.seq,
                    record.version,
                    &json_string(recorded_at),
                    &prev,
                )
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&joined),
                String::from_utf8_lossy(&record.to_bytes().unwrap())
            );
        }
    }

    fn append(stream: &str, principal: &str, events: Vec<NewEvent>) -> Append {
        Append {
            stream: stream.into(),
            expected: ExpectedVersion::Any,
            events,
            principal: principal.into(),
            abort_on_refusal: None,
        }
    }

    #[test]
    fn a_float_reads_back_as_the_value_it_was_written_from() {
        // Auditors re-encode a parsed record to check its hash: a float must survive the trip
        // (serde_json's `float_roundtrip`; without it these read back one unit off).
        for f in [5.967595080910843e294, -1.2388547852049603e262, 0.1, 1e-300] {
            let text = JsonText::of(&json!([f]));
            assert_eq!(text.value(), json!([f]), "{}", text.as_str());
            assert_eq!(JsonText::of(&text.value()), text);
        }
    }

    #[test]
    fn joined_parts_equal_serdes_record_with_and_without_the_optional_fields() {
        holds_equal(append(
            "process/ru-ua \"peace\"",
            "analyst\\one",
            vec![
                event(
                    json!({"start": "2026-01-22", "precision": "day"}),
                    Some("ru-ua-peace".into()),
                    json!({"content": "line\nbreak \u{7}", "n": 1.5, "z": null, "a": [1, -2]}),
                    Some(json!({"notes": "é"})),
                ),
                event(Value::Null, None, json!({}), None),
            ],
        ));
    }

    #[test]
    fn an_index_without_parts_gives_none() {
        let encoded = Encoded::of(&append("s", "p", vec![])).unwrap();
        assert!(
            encoded
                .record(0, &Uuid::nil(), 1, 1, b"\"t\"", &[0; 32])
                .is_none()
        );
    }

    /// Any JSON value (strings with escapes and non-ASCII, numbers, nesting).
    pub(crate) fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn joined_parts_equal_serdes_record_for_any_payload(
            stream in any::<String>(),
            principal in any::<String>(),
            data in any_json(),
            occurred in any_json(),
            process in proptest::option::of(any::<String>()),
            meta in proptest::option::of(any_json()),
        ) {
            holds_equal(append(&stream, &principal, vec![event(occurred, process, data, meta)]));
        }
    }
}
