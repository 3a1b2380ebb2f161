//! Handlers for appending and reading events and streams. They authenticate, parse, call the
//! validator and the log, and shape JSON. They must never decide what is valid (that is
//! `event/`) or how things are stored (that is `log/`).

use serde_json::json;
use uuid::Uuid;
use warp::Reply;
use warp::http::StatusCode;
use warp::reply::Response;

use super::problem::{Problem, from_append};
use super::{Query, Shared, json_response, read_body};
use crate::event::{self, InputError};
use crate::keys::Scope;
use crate::log::{Append, Recorded};

/// Decodes the stream name from the path tail after `/streams/` (raw or percent-encoded),
/// requiring it to end in `/events`.
fn stream_from_tail(tail: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(tail)
        .decode_utf8()
        .ok()?
        .into_owned();
    // No trimming: `process/x/` has an empty last segment and must be refused, not renamed.
    Some(decoded.strip_suffix("/events")?.to_string())
}

fn reply(result: Result<Response, Problem>) -> Response {
    match result {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

/// `POST /streams/{stream}/events`.
pub async fn append(
    st: Shared,
    tail: String,
    auth: Option<String>,
    content_type: Option<String>,
    content_length: Option<u64>,
    query: Query,
    body: impl futures_util::Stream<Item = Result<impl bytes::Buf, warp::Error>> + Unpin,
) -> Response {
    reply(
        async {
            if tail.is_empty() {
                return Err(Problem::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method-not-allowed",
                    "Method not allowed",
                    "/streams lists streams (GET); append with POST /streams/{stream}/events",
                )
                .header(warp::http::header::ALLOW, "GET"));
            }
            let principal = st.auth.require(auth.as_deref(), Scope::Append)?;
            let stream = stream_from_tail(&tail)
                .ok_or_else(|| Problem::not_found("append to /streams/{stream}/events"))?;
            event::check_stream_name(&stream, st.limits())?;
            let json_type = content_type.as_deref().is_some_and(|ct| {
                let mime = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
            if !json_type {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported content type",
                    format!(
                        "send Content-Type: application/json (got {})",
                        content_type.as_deref().unwrap_or("none")
                    ),
                ));
            }
            let bytes = read_body(content_length, body, st.limits().max_body_bytes).await?;
            let value = event::parse_json(&bytes)?;
            let single = value.get("events").is_none();
            let submission = st
                .validator
                .submission(&value, query.get("expected_version").map(String::as_str))?;
            let append = Append {
                stream: stream.clone(),
                expected: submission.expected,
                events: submission.events,
                principal: principal.name,
                abort_on_refusal: None,
            };
            let appended = st.log.append(append).await.map_err(|e| {
                from_append(e, |i| {
                    if single {
                        String::new()
                    } else {
                        format!("/events/{i}")
                    }
                })
            })?;
            let events: Vec<_> = appended
                .positions
                .iter()
                .map(|p| {
                    json!({
                        "id": p.id,
                        "seq": p.seq,
                        "version": p.version,
                        "hash": hex::encode(p.hash),
                        "recorded_at": p.recorded_at,
                        "duplicate": appended.duplicate,
                    })
                })
                .collect();
            let status = if appended.duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let body = json!({
                "stream": stream,
                "stream_version": appended.stream_version,
                "events": events,
            });
            Ok(json_response(status, body.to_string()))
        }
        .await,
    )
}

/// Parses an optional integer query parameter within bounds.
fn int_param(query: &Query, name: &str, default: u64, min: u64) -> Result<u64, Problem> {
    match query.get(name) {
        None => Ok(default),
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n >= min => Ok(n),
            _ => Err(Problem::bad_query(
                name,
                format!("`{name}` must be an integer >= {min} (got `{s}`)"),
            )),
        },
    }
}

fn limit_param(st: &Shared, query: &Query) -> Result<usize, Problem> {
    let max = st.limits().max_read_limit as u64;
    Ok(int_param(query, "limit", 100.min(max), 1)?.min(max) as usize)
}

/// An event-type filter: comma-separated globs ([`crate::glob`], the syntax of subscription
/// filters too; a pattern without `*` is an exact type).
pub struct TypeFilter(Vec<String>);

impl TypeFilter {
    /// From the `type` query parameter; `None` matches everything.
    pub fn parse(param: Option<&String>) -> TypeFilter {
        TypeFilter(
            param
                .map(|p| {
                    p.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    /// Whether nothing is filtered.
    pub fn is_all(&self) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| crate::glob::matches_everything(p))
    }

    /// Whether a type matches.
    pub fn matches(&self, event_type: &str) -> bool {
        self.is_all() || self.0.iter().any(|p| crate::glob::matches(p, event_type))
    }

    /// Whether a stored record matches.
    pub fn keeps(&self, rec: &Recorded) -> bool {
        self.is_all()
            || crate::log::record::event_type_of(&rec.bytes).is_some_and(|t| self.matches(&t))
    }
}

fn envelopes(records: &[Recorded]) -> String {
    let mut out = String::from("[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&r.envelope_json());
    }
    out.push(']');
    out
}

/// `GET /events?from=&limit=&type=`.
pub fn read_all(st: &Shared, auth: Option<&str>, query: &Query) -> Response {
    reply((|| {
        st.auth.require(auth, Scope::Read)?;
        let from = int_param(query, "from", 1, 1)?;
        let limit = limit_param(st, query)?;
        let filter = TypeFilter::parse(query.get("type"));
        let head = st.log.head().seq;
        // Unfiltered, `limit` bounds the work; filtered, the search window does.
        let window = if filter.is_all() {
            usize::MAX
        } else {
            st.limits().max_scan_per_read
        };
        let (records, after) = st
            .log
            .read_range_within(from, limit, window, |r| filter.keeps(r))
            .map_err(|e| Problem::storage(&e))?;
        let next = if after <= head {
            after.to_string()
        } else {
            "null".into()
        };
        Ok(json_response(
            StatusCode::OK,
            format!(
                "{{\"events\":{},\"next\":{next},\"head\":{head}}}",
                envelopes(&records)
            ),
        ))
    })())
}

/// `GET /streams/{stream}/events?from=&limit=`.
pub fn read_stream(st: &Shared, tail: &str, auth: Option<&str>, query: &Query) -> Response {
    reply((|| {
        st.auth.require(auth, Scope::Read)?;
        let stream = stream_from_tail(tail)
            .ok_or_else(|| Problem::not_found("read a stream at /streams/{stream}/events"))?;
        event::check_stream_name(&stream, st.limits()).map_err(|e: InputError| Problem::from(e))?;
        let from = int_param(query, "from", 1, 1)?;
        let limit = limit_param(st, query)?;
        let Some(info) = st
            .log
            .stream_info(&stream)
            .map_err(|e| Problem::storage(&e))?
        else {
            return Err(Problem::not_found(format!(
                "stream `{stream}` does not exist"
            )));
        };
        let items = st
            .log
            .read_stream(&stream, from, limit)
            .map_err(|e| Problem::storage(&e))?;
        let last = items.last().map(|(v, _)| *v);
        let records: Vec<Recorded> = items.into_iter().map(|(_, r)| r).collect();
        let next = match last {
            Some(v) if v < info.version => (v + 1).to_string(),
            _ => "null".into(),
        };
        Ok(json_response(
            StatusCode::OK,
            format!(
                "{{\"stream\":{},\"version\":{},\"events\":{},\"next\":{next}}}",
                json!(stream),
                info.version,
                envelopes(&records)
            ),
        ))
    })())
}

/// `GET /streams?prefix=&after=&limit=`.
pub fn list_streams(st: &Shared, auth: Option<&str>, query: &Query) -> Response {
    reply((|| {
        st.auth.require(auth, Scope::Read)?;
        let limit = limit_param(st, query)?;
        let prefix = query.get("prefix").map(String::as_str).unwrap_or("");
        let after = query.get("after").map(String::as_str);
        let streams = st
            .log
            .streams(prefix, after, limit)
            .map_err(|e| Problem::storage(&e))?;
        let next = if streams.len() >= limit {
            streams.last().map(|s| json!(s.name)).unwrap_or(json!(null))
        } else {
            json!(null)
        };
        let list: Vec<_> = streams
            .iter()
            .map(|s| json!({"name": s.name, "version": s.version, "last_seq": s.last_seq}))
            .collect();
        Ok(json_response(
            StatusCode::OK,
            json!({"streams": list, "next": next}).to_string(),
        ))
    })())
}

/// `GET /events/{id}`.
pub fn get_by_id(st: &Shared, id: &str, auth: Option<&str>) -> Response {
    reply((|| {
        st.auth.require(auth, Scope::Read)?;
        let uuid = Uuid::parse_str(id)
            .map_err(|_| Problem::not_found(format!("`{id}` is not an event id (UUID)")))?;
        match st.log.get_by_id(&uuid).map_err(|e| Problem::storage(&e))? {
            Some(rec) => Ok(json_response(StatusCode::OK, rec.envelope_json())),
            None => Err(Problem::not_found(format!("no event with id {uuid}"))),
        }
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_come_raw_or_percent_encoded() {
        assert_eq!(
            stream_from_tail("process%2Fru-ua-peace/events").as_deref(),
            Some("process/ru-ua-peace")
        );
        assert_eq!(
            stream_from_tail("process/ru-ua-peace/events").as_deref(),
            Some("process/ru-ua-peace")
        );
        assert_eq!(stream_from_tail("process/ru-ua-peace"), None);
    }

    #[test]
    fn type_filter_matches_exact_and_glob() {
        let f = TypeFilter::parse(Some(&"meeting.*,statement.made".to_string()));
        assert!(f.matches("meeting.held"));
        assert!(f.matches("statement.made"));
        assert!(!f.matches("position.stated"));
        assert!(TypeFilter::parse(None).matches("anything"));
    }
}
