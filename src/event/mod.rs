//! Events as clients submit them: parsing, limits, schema validation and the rules beyond the
//! schema, turning a request body into [`NewEvent`]s for the log. This module must never touch
//! storage; whatever needs the log's state (references, versions) is checked by the writer.

pub mod check;
mod fast;
pub mod kind;
pub mod node;
pub mod registry;
pub mod rules;
pub mod schema;
mod size;
pub mod typed;
pub mod upcast;
pub mod vocabulary;

use serde_json::Value;
use uuid::Uuid;

use crate::limits::Limits;
use crate::log::{ExpectedVersion, JsonText, NewEvent};
pub use kind::EventKind;
pub use schema::{FieldError, Schemas};
pub use upcast::{CURRENT_SCHEMA_VERSION, SCHEMA_VERSIONS};
pub use vocabulary::{VocabularyConfig, VocabularyError};

/// Why a submission was refused before reaching the log.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The body is not JSON.
    #[error("the body is not valid JSON: {message}")]
    Malformed {
        /// Parser message.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A size limit was exceeded.
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The configured limit.
        limit: usize,
        /// JSON pointer, when one field is to blame.
        pointer: Option<String>,
    },
    /// Schema or rule violations.
    #[error("the request breaks {} rule(s)", .0.len())]
    Invalid(Vec<FieldError>),
}

/// A parsed, validated append request.
#[derive(Debug)]
pub struct Submission {
    /// The concurrency check.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<NewEvent>,
    /// Whether the body was one event, not `{"events": [...]}`: a refusal's pointers then
    /// have no `/events/i` prefix.
    pub single: bool,
    /// Whether the fast path read it (`fast.rs`); `false` when the `Value` path did.
    pub fast: bool,
}

/// Validates submissions against the schemas and the configured limits.
pub struct Validator {
    schemas: Schemas,
    limits: Limits,
}

/// Parses JSON bytes, reporting the line and column of a syntax error.
pub fn parse_json(bytes: &[u8]) -> Result<Value, InputError> {
    serde_json::from_slice(bytes).map_err(|e| InputError::Malformed {
        message: e.to_string(),
        line: e.line(),
        column: e.column(),
    })
}

/// A schema version given as a number: an integer, or a float without a fraction (`2.0`),
/// which JSON Schema's `integer` accepts too (read as 1 before: version 1's forms applied, and
/// the record said 1).
pub(crate) fn version_number(n: &serde_json::Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(f))
            .map(|f| f as u64)
    })
}

/// The expected version of a request, from its body's and its query's (either, both equal, or
/// neither: `any`). Both paths of a body decide it here.
pub(crate) fn expected_version(
    body: Option<ExpectedVersion>,
    query: Option<&str>,
) -> Result<ExpectedVersion, InputError> {
    let query = match query {
        Some(q) => Some(parse_expected_str(q).ok_or_else(|| {
            invalid(
                "",
                format!(
                    "query parameter expected_version=`{q}` is not any, no_stream, exists or a number"
                ),
            )
        })?),
        None => None,
    };
    Ok(match (body, query) {
        (Some(b), Some(q)) if b != q => {
            return Err(invalid(
                "/expected_version",
                format!("the body says {b} but the query says {q}"),
            ));
        }
        (Some(b), _) => b,
        (None, Some(q)) => q,
        (None, None) => ExpectedVersion::Any,
    })
}

/// The refusal of a member named [`node::RESERVED_MEMBER`] at `pointer`.
pub(crate) fn reserved_member(pointer: String) -> FieldError {
    FieldError {
        pointer,
        message: format!(
            "`{}` cannot be a member name: the JSON library reads an object with it as raw JSON text, so a record holding it would not read back as it was stored",
            node::RESERVED_MEMBER
        ),
    }
}

fn invalid(pointer: impl Into<String>, message: impl Into<String>) -> InputError {
    InputError::Invalid(vec![FieldError {
        pointer: pointer.into(),
        message: message.into(),
    }])
}

/// Parses an expected version as written in a body or a query string.
pub fn parse_expected(value: &Value, pointer: &str) -> Result<ExpectedVersion, InputError> {
    match value {
        Value::String(s) => parse_expected_str(s).ok_or_else(|| {
            invalid(
                pointer,
                format!(
                    "`{s}` is not an expected version (any, no_stream, exists or a number >= 0)"
                ),
            )
        }),
        Value::Number(n) => n.as_u64().map(ExpectedVersion::Exact).ok_or_else(|| {
            invalid(
                pointer,
                "an expected version number must be an integer >= 0",
            )
        }),
        _ => Err(invalid(
            pointer,
            "expected version must be \"any\", \"no_stream\", \"exists\" or an integer >= 0",
        )),
    }
}

/// Parses `any`, `no_stream`, `exists` or a number.
pub fn parse_expected_str(s: &str) -> Option<ExpectedVersion> {
    match s {
        "any" => Some(ExpectedVersion::Any),
        "no_stream" => Some(ExpectedVersion::NoStream),
        "exists" => Some(ExpectedVersion::Exists),
        n => n.parse().ok().map(ExpectedVersion::Exact),
    }
}

/// Checks a stream name: lower-case segments separated by `/`, within the length limit.
pub fn check_stream_name(name: &str, limits: &Limits) -> Result<(), InputError> {
    if name.len() > limits.max_stream_name_bytes {
        return Err(invalid(
            "/stream",
            format!(
                "the stream name is {} bytes long; the limit is {}",
                name.len(),
                limits.max_stream_name_bytes
            ),
        ));
    }
    let segment_ok = |s: &str| {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
    };
    if name.is_empty() || !name.split('/').all(segment_ok) {
        return Err(invalid(
            "/stream",
            format!(
                "`{name}` is not a stream name: lower-case segments of a-z, 0-9, '.', '_', '-' separated by '/', e.g. process/ru-ua-peace"
            ),
        ));
    }
    Ok(())
}

impl Validator {
    /// A validator over compiled schemas and configured limits.
    pub fn new(schemas: Schemas, limits: Limits) -> Validator {
        Validator { schemas, limits }
    }

    /// The compiled schemas.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    /// The configured limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Turns the bytes of an append body into a submission: read without building a
    /// `serde_json::Value` when every event passes (`fast.rs`), else parsed and decided by
    /// [`Validator::submission`], which words the refusals.
    pub fn submit_body(
        &self,
        body: &[u8],
        query_expected: Option<&str>,
    ) -> Result<Submission, InputError> {
        match fast::submission(self, body, query_expected) {
            fast::Outcome::Taken(submission) => Ok(submission),
            fast::Outcome::Reserved(pointer) => {
                Err(InputError::Invalid(vec![reserved_member(pointer)]))
            }
            fast::Outcome::Left => self.submission(&parse_json(body)?, query_expected),
        }
    }

    /// Turns an append body into a submission. The body is either `{expected_version?,
    /// events: [...]}` or a single event object; `query_expected` comes from the URL.
    pub fn submission(
        &self,
        body: &Value,
        query_expected: Option<&str>,
    ) -> Result<Submission, InputError> {
        let Some(obj) = body.as_object() else {
            return Err(invalid(
                "",
                "the body must be a JSON object: an event, or {\"events\": [...]}",
            ));
        };
        let (batch, base_of, body_expected): (bool, Box<dyn Fn(usize) -> String>, _) = if let Some(
            events,
        ) =
            obj.get("events")
        {
            if let Some(list) = events.as_array()
                && list.len() > self.limits.max_events_per_request
            {
                return Err(InputError::TooLarge {
                    what: format!("a batch of {} events", list.len()),
                    limit: self.limits.max_events_per_request,
                    pointer: Some("/events".into()),
                });
            }
            // The envelope of the request is checked by hand; each event is checked
            // against `event.json` below, once, with its own pointer.
            let mut errors: Vec<FieldError> = obj
                    .keys()
                    .filter(|k| *k != "events" && *k != "expected_version")
                    .map(|k| FieldError {
                        pointer: format!("/{k}"),
                        message: format!(
                            "unknown member `{k}`: an append request has `events` and `expected_version`"
                        ),
                    })
                    .collect();
            match events.as_array() {
                Some(list) if list.is_empty() => errors.push(FieldError {
                    pointer: "/events".into(),
                    message: "`events` must hold at least one event".into(),
                }),
                Some(_) => {}
                None => errors.push(FieldError {
                    pointer: "/events".into(),
                    message: "`events` must be an array of events".into(),
                }),
            }
            if !errors.is_empty() {
                return Err(InputError::Invalid(errors));
            }
            let expected = match obj.get("expected_version") {
                Some(v) => Some(parse_expected(v, "/expected_version")?),
                None => None,
            };
            (true, Box::new(|i| format!("/events/{i}")), expected)
        } else {
            // Checked against `event.json` once, in `event()` below.
            (false, Box::new(|_| String::new()), None)
        };
        let expected = expected_version(body_expected, query_expected)?;
        let raw_events = match obj.get("events").and_then(Value::as_array) {
            Some(list) if batch => list.as_slice(),
            _ => std::slice::from_ref(body),
        };
        let mut events = Vec::with_capacity(raw_events.len());
        let mut errors = Vec::new();
        for (i, raw) in raw_events.iter().enumerate() {
            match self.event(raw, &base_of(i)) {
                Ok(ev) => events.push(ev),
                Err(InputError::Invalid(mut errs)) => errors.append(&mut errs),
                Err(other) => return Err(other),
            }
        }
        if !errors.is_empty() {
            return Err(InputError::Invalid(errors));
        }
        Ok(Submission {
            expected,
            events,
            single: !batch,
            fast: false,
        })
    }

    /// Validates one submitted event (already shaped by `event.json` or about to be) whose
    /// pointer in the body is `base`. Its `occurred`, `data`, `evidence` and `meta` are
    /// encoded for the record once every check has passed.
    pub fn event(&self, raw: &Value, base: &str) -> Result<NewEvent, InputError> {
        let shape = self.schemas.check_event(raw, base);
        if !shape.is_empty() {
            return Err(InputError::Invalid(shape));
        }
        let measured = size::measure(raw, self.limits.max_string_bytes);
        let size = measured.len;
        if size > self.limits.max_event_bytes {
            return Err(InputError::TooLarge {
                what: format!("an event of {size} bytes"),
                limit: self.limits.max_event_bytes,
                pointer: Some(base.into()),
            });
        }
        let mut errors = Vec::new();
        if measured.long_string {
            size::check_strings(raw, base, self.limits.max_string_bytes, &mut errors);
        }
        if measured.reserved
            && let Some(pointer) = size::pointer_of_key(raw, node::RESERVED_MEMBER, base)
        {
            errors.push(reserved_member(pointer));
        }
        let event_type = raw
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let schema_version = raw
            .get("schema_version")
            .and_then(Value::as_number)
            .and_then(version_number)
            .unwrap_or(1);
        if !SCHEMA_VERSIONS
            .iter()
            .any(|v| u64::from(*v) == schema_version)
        {
            errors.push(FieldError {
                pointer: format!("{base}/schema_version"),
                message: format!(
                    "schema version {schema_version} of `{event_type}` does not exist; the versions are 1 and 2"
                ),
            });
        }
        let null = Value::Null;
        let data = raw.get("data").unwrap_or(&null);
        let data_base = format!("{base}/data");
        match self.schemas.check_data(&event_type, data, &data_base) {
            // Only a payload the current schema accepts is held to version 1's forms, so a
            // mistake is reported once, by the schema that explains it best. Only version 1
            // narrows anything: the other versions skip the check and its pointer.
            Some(errs) if errs.is_empty() && schema_version == 1 => {
                let mut errs = self.schemas.check_version(
                    schema_version,
                    &event_type,
                    data,
                    &data_base,
                    raw.get("meta"),
                    &format!("{base}/meta"),
                );
                errors.append(&mut errs);
            }
            Some(mut errs) => errors.append(&mut errs),
            None => errors.push(FieldError {
                pointer: format!("{base}/type"),
                message: format!("unknown event type `{event_type}`"),
            }),
        }
        if EventKind::from_name(&event_type).is_some_and(EventKind::is_fact)
            && raw.get("occurred").is_none()
        {
            errors.push(FieldError {
                pointer: format!("{base}/occurred"),
                message: format!(
                    "a `{event_type}` is a fact and needs `occurred`, when it happened in the world (a precision of `unknown` says the time is not known)"
                ),
            });
        }
        let id = match raw.get("id").and_then(Value::as_str) {
            Some(s) => match Uuid::parse_str(s) {
                Ok(id) if id.get_version_num() == 7 => Some(id),
                Ok(_) => {
                    errors.push(FieldError {
                        pointer: format!("{base}/id"),
                        message: format!("`{s}` is a UUID but not version 7"),
                    });
                    None
                }
                Err(_) => {
                    errors.push(FieldError {
                        pointer: format!("{base}/id"),
                        message: format!("`{s}` is not a UUID"),
                    });
                    None
                }
            },
            None => Some(Uuid::now_v7()),
        };
        let no_evidence = Value::Array(vec![]);
        let evidence = raw.get("evidence").unwrap_or(&no_evidence);
        let refs = match rules::references(&event_type, data, evidence, base) {
            Ok(r) => Some(r),
            Err(mut errs) => {
                errors.append(&mut errs);
                None
            }
        };
        if !errors.is_empty() {
            return Err(InputError::Invalid(errors));
        }
        let (Some(id), Some(refs)) = (id, refs) else {
            return Err(invalid(base, "invalid event"));
        };
        let client_id = raw.get("id").is_some();
        let process = raw
            .get("process")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(NewEvent {
            id,
            event_type,
            schema_version: schema_version as u32,
            occurred: JsonText::of(raw.get("occurred").unwrap_or(&null)),
            process,
            data: JsonText::of(data),
            evidence: JsonText::of(evidence),
            meta: raw.get("meta").map(JsonText::of),
            refs,
            client_id,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A validator over the shipped schemas and the default limits.
    pub(crate) fn validator() -> Validator {
        Validator::new(
            Schemas::load().unwrap(),
            crate::config::Config::defaults().unwrap().limits,
        )
    }
}
