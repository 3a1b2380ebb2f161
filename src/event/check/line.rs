//! One line of an import file, as `annals import` and `annals import --check` both read it: an
//! exported record (with `seq` and `hash`, restored verbatim) or a submission (an event plus
//! its `stream` and optional `expected_version`), validated exactly as the API validates an
//! event. A submission without an `id` gets one derived from its line number and content, so
//! that importing the same file again finds every line already present. This must never touch
//! the log: it is pure, so lines are parsed in parallel.

use std::io::Write;

use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ProblemKind;
use crate::event::node::{Node, RESERVED_MEMBER};
use crate::event::{InputError, Validator, parse_json, reserved_member};
use crate::log::{ExpectedVersion, JsonText, NewEvent, Restore};

/// A parsed, validated line.
#[derive(Debug)]
pub enum Line {
    /// Blank: nothing to do.
    Blank,
    /// An exported record, to restore verbatim.
    Record(Restore),
    /// A submission, to append as new.
    Submission {
        /// The stream it goes to.
        stream: String,
        /// Its concurrency check (`any` when absent).
        expected: ExpectedVersion,
        /// The event, its id given or derived.
        event: NewEvent,
    },
}

/// Why a line cannot be imported: every problem found, each with its kind, JSON pointer
/// within the line and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The problems, in the order found.
    pub problems: Vec<(ProblemKind, String, String)>,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (kind, pointer, message) in &self.problems {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            // A problem of the whole line (not JSON at all) has no field to name.
            if pointer.is_empty() && *kind == ProblemKind::Json {
                f.write_str(message)?;
            } else {
                let at = if pointer.is_empty() { "/" } else { pointer };
                write!(f, "{at}: {message}")?;
            }
        }
        Ok(())
    }
}

impl LineError {
    fn one(kind: ProblemKind, pointer: &str, message: impl Into<String>) -> LineError {
        LineError {
            problems: vec![(kind, pointer.to_string(), message.into())],
        }
    }

    /// The same problems, of another kind.
    fn of_kind(self, kind: ProblemKind) -> LineError {
        LineError {
            problems: self
                .problems
                .into_iter()
                .map(|(_, p, m)| (kind, p, m))
                .collect(),
        }
    }
}

impl From<InputError> for LineError {
    fn from(e: InputError) -> LineError {
        match e {
            InputError::Invalid(errors) => LineError {
                problems: errors
                    .into_iter()
                    .map(|e| (ProblemKind::Schema, e.pointer, e.message))
                    .collect(),
            },
            InputError::TooLarge { ref pointer, .. } => LineError::one(
                ProblemKind::TooLarge,
                pointer.as_deref().unwrap_or_default(),
                e.to_string(),
            ),
            e @ InputError::Malformed { .. } => {
                LineError::one(ProblemKind::Json, "", e.to_string())
            }
        }
    }
}

/// The submitted-event view of an exported record, for re-validation. The id stays out: it is
/// the record's own, kept verbatim, and may be one this module derived (not a UUIDv7, which
/// is all a client may choose).
fn as_submission(v: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(obj) = v.as_object() {
        for key in [
            "type",
            "schema_version",
            "occurred",
            "process",
            "data",
            "evidence",
            "meta",
        ] {
            if let Some(x) = obj.get(key) {
                out.insert(key.to_string(), x.clone());
            }
        }
    }
    Value::Object(out)
}

/// Parses and validates line `line_no` (1-based) of an import file.
pub fn parse_line(validator: &Validator, line_no: u64, text: &str) -> Result<Line, LineError> {
    if text.trim().is_empty() {
        return Ok(Line::Blank);
    }
    // serde_json reads an object led by the reserved member name as raw JSON text, so the
    // parsed value would not show it: the line's text is read for it first, as the API does.
    // Any spelling of the name holds either its last word or an escape.
    if (text.contains("RawValue") || text.contains("\\u"))
        && let Ok(node) = serde_json::from_str::<Node<'_>>(text)
        && let Some(pointer) = node.pointer_of_key(RESERVED_MEMBER, "")
    {
        return Err(InputError::Invalid(vec![reserved_member(pointer)]).into());
    }
    let value = parse_json(text.as_bytes())?;
    if value.get("seq").is_some() && value.get("hash").is_some() {
        return record(validator, value).map(Line::Record);
    }
    // Every problem of the line is reported at once (`--check` lists them all): the stream's,
    // the expected version's and the event's.
    let mut problems = Vec::new();
    let stream = match value.get("stream").and_then(Value::as_str) {
        Some(stream) => {
            if let Err(e) = crate::event::check_stream_name(stream, validator.limits()) {
                problems.extend(LineError::from(e).of_kind(ProblemKind::Stream).problems);
            }
            stream.to_string()
        }
        None => {
            problems.push((
                ProblemKind::Stream,
                "/stream".to_string(),
                "a submitted event needs the stream it goes to".to_string(),
            ));
            String::new()
        }
    };
    let expected = match value.get("expected_version") {
        None => ExpectedVersion::Any,
        Some(v) => match crate::event::parse_expected(v, "/expected_version") {
            Ok(x) => x,
            Err(e) => {
                problems.extend(LineError::from(e).problems);
                ExpectedVersion::Any
            }
        },
    };
    let mut event_value = value;
    if let Some(o) = event_value.as_object_mut() {
        o.remove("stream");
        o.remove("expected_version");
    }
    let event = validator.event(&event_value, "");
    let mut event = match event {
        Ok(ev) if problems.is_empty() => ev,
        Ok(_) => return Err(LineError { problems }),
        Err(e) => {
            problems.extend(LineError::from(e).problems);
            return Err(LineError { problems });
        }
    };
    if !event.client_id {
        event.id = derived_id(line_no, &stream, &event);
        // Derived ids are looked up like client-chosen ones: that is what makes a re-import
        // answer "already present" instead of appending the line again.
        event.client_id = true;
    }
    Ok(Line::Submission {
        stream,
        expected,
        event,
    })
}

/// An exported envelope as a record to restore.
fn record(validator: &Validator, value: Value) -> Result<Restore, LineError> {
    let new_event = validator.event(&as_submission(&value), "")?;
    let mut obj = value;
    let hash_hex = obj
        .as_object_mut()
        .and_then(|o| o.remove("hash"))
        .and_then(|h| h.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&hash_hex, &mut hash)
        .map_err(|_| LineError::one(ProblemKind::Schema, "/hash", "not 64 hex digits"))?;
    let record = serde_json::from_value(obj).map_err(|e| {
        LineError::one(
            ProblemKind::Schema,
            "",
            format!("not an exported record: {e}"),
        )
    })?;
    Ok(Restore {
        record,
        hash,
        refs: new_event.refs,
    })
}

/// Feeds what serde writes into the hash without building the text.
struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The id of a submission that came without one: a UUIDv8 whose first 48 bits are the line
/// number and whose other 74 free bits are a SHA-256 of the stream and the event's content
/// (serde_json writes object keys sorted, so key order in the line does not matter).
///
/// Why this shape: the same line at the same place in the same file always gets the same id, so
/// a re-import (after a crash, or by mistake) finds it already present through the log's id
/// index, with no state kept outside the log. The line number keeps two identical lines of one
/// file two events, and puts the ids of one import in ascending order (the projections' id
/// index appends ascending ids without hashing them; sled's id index is appended, not
/// scattered). Its limit: a line edited, or moved by lines added or removed above it, is a new
/// event to a re-import.
pub fn derived_id(line_no: u64, stream: &str, event: &NewEvent) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(b"annals import line id v1\0");
    hasher.update(stream.as_bytes());
    hasher.update([0]);
    hasher.update(event.event_type.as_bytes());
    hasher.update([0]);
    hasher.update(event.schema_version.to_be_bytes());
    {
        let mut w = HashWriter(&mut hasher);
        // Writing into a hash cannot fail; a value serde cannot write would fail the append
        // later anyway, and here only makes the id depend on less.
        // The payload's texts are serde_json's encoding of the values, byte for byte.
        let _ = w.write_all(event.occurred.as_str().as_bytes());
        let _ = w.write_all(b"\0");
        let _ = serde_json::to_writer(&mut w, &event.process);
        let _ = w.write_all(b"\0");
        let _ = w.write_all(event.data.as_str().as_bytes());
        let _ = w.write_all(b"\0");
        let _ = w.write_all(event.evidence.as_str().as_bytes());
        let _ = w.write_all(b"\0");
        let _ = w.write_all(
            event
                .meta
                .as_ref()
                .map_or("null", JsonText::as_str)
                .as_bytes(),
        );
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&line_no.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&digest[..10]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::validator;

    #[test]
    fn a_line_with_the_reserved_member_name_is_refused_at_it_first_in_its_object_or_not() {
        for value in [
            r#"{"$serde_json::private::RawValue": "1"}"#,
            r#"{"b": 1, "$serde_json::private::RawValue": "x"}"#,
            r#"{"\u0024serde_json::private::RawValue": "1"}"#,
        ] {
            let text = format!(
                r#"{{"stream": "process/p", "type": "statement.made", "data": {{"z": {value}}}}}"#
            );
            let err = parse_line(&validator(), 1, &text).unwrap_err();
            assert_eq!(
                err.problems[0].1, "/data/z/$serde_json::private::RawValue",
                "{text}: {err}"
            );
        }
    }

    fn submission(text: &str, line: u64) -> (String, NewEvent) {
        match parse_line(&validator(), line, text).unwrap() {
            Line::Submission { stream, event, .. } => (stream, event),
            other => panic!("{other:?}"),
        }
    }

    const LINE: &str = r#"{"stream":"registry/sources","type":"source.registered","data":{"source_id":"src:a","kind":"wire","publisher":"W"},"evidence":[]}"#;

    #[test]
    fn a_line_without_an_id_gets_the_same_id_every_time_whatever_its_key_order() {
        let (_, a) = submission(LINE, 7);
        let reordered = r#"{"evidence":[],"data":{"publisher":"W","kind":"wire","source_id":"src:a"},"type":"source.registered","stream":"registry/sources"}"#;
        let (_, b) = submission(reordered, 7);
        assert_eq!(a.id, b.id);
        assert!(
            a.client_id,
            "a derived id must be looked up like a chosen one"
        );
        assert_eq!(a.id.get_version_num(), 8);
    }

    #[test]
    fn derived_ids_differ_by_line_and_content_and_ascend_with_the_line() {
        let (_, at7) = submission(LINE, 7);
        let (_, at8) = submission(LINE, 8);
        let other = LINE.replace("\"W\"", "\"V\"");
        let (_, changed) = submission(&other, 7);
        let moved = LINE.replace("registry/sources", "registry/other");
        let (_, elsewhere) = submission(&moved, 7);
        assert_ne!(at7.id, at8.id);
        assert_ne!(at7.id, changed.id);
        assert_ne!(at7.id, elsewhere.id);
        assert!(at7.id < at8.id);
        let (_, far) = submission(LINE, 1_000_000);
        assert!(at8.id < far.id);
    }

    #[test]
    fn a_chosen_id_is_kept() {
        let with_id = LINE.replace(
            "\"type\"",
            "\"id\":\"019be826-9000-701f-91c2-d6a7f0a1c8e9\",\"type\"",
        );
        let (_, e) = submission(&with_id, 3);
        assert_eq!(e.id.to_string(), "019be826-9000-701f-91c2-d6a7f0a1c8e9");
    }

    #[test]
    fn a_line_without_a_stream_or_not_json_says_why() {
        let no_stream = LINE.replace("\"stream\":\"registry/sources\",", "");
        let err = parse_line(&validator(), 1, &no_stream).unwrap_err();
        assert_eq!(err.problems[0].0, ProblemKind::Stream);
        assert_eq!(
            err.to_string(),
            "/stream: a submitted event needs the stream it goes to"
        );
        let err = parse_line(&validator(), 1, "{").unwrap_err();
        assert_eq!(err.problems[0].0, ProblemKind::Json);
        assert!(err.to_string().starts_with("the body is not valid JSON"));
    }
}
