//! Routes under `/streams`: append to a stream, read one, list them. Handlers parse, call the
//! validator and the log, and shape JSON. They must never decide what is valid (that is
//! `event/`) or how things are stored (that is `log/`).

use serde_json::json;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode};
use warp::path::Tail;
use warp::reply::Response;

use super::auth::with_scope;
use super::events::{envelopes, int_param, limit_param};
use super::problem::{Problem, from_append};
use super::{
    Query, Shared, json_response, optional_header, query, read_body, refuse_method, reply,
    with_state,
};
use crate::event::{self, InputError};
use crate::keys::{Principal, Scope};
use crate::log::{Append, Recorded};

/// The stream routes. A stream name may hold raw slashes, so the path after `/streams/` is
/// taken whole and must end in `/events`.
pub fn routes(state: Shared) -> BoxedFilter<(Response,)> {
    let read = warp::path("streams")
        .and(warp::get())
        .and(warp::path::tail())
        .and(with_scope(state.clone(), Scope::Read))
        .and(query())
        .and(with_state(state.clone()))
        .map(|tail: Tail, _: Principal, q: Query, st: Shared| {
            if tail.as_str().is_empty() {
                list_streams(&st, &q)
            } else {
                read_stream(&st, tail.as_str(), &q)
            }
        });
    let append = warp::path("streams")
        .and(warp::post())
        .and(warp::path::tail())
        .and_then(|tail: Tail| async move {
            // `/streams` itself only lists: the 405 below answers a POST there.
            if tail.as_str().is_empty() {
                Err(warp::reject::not_found())
            } else {
                Ok(tail.as_str().to_string())
            }
        })
        .and(with_scope(state.clone(), Scope::Append))
        .and(optional_header::<String>("content-type"))
        .and(optional_header::<u64>("content-length"))
        .and(query())
        .and(warp::body::stream())
        .and(with_state(state))
        .then(
            |tail: String, principal, ctype, clen, q, body, st: Shared| async move {
                append(st, tail, principal, ctype, clen, q, body).await
            },
        );
    let others = warp::path("streams")
        .and(warp::path::tail())
        .and(warp::method())
        .and_then(|tail: Tail, method: Method| async move {
            if tail.as_str().is_empty() {
                refuse_method("GET", &method)
            } else if stream_from_tail(tail.as_str()).is_some() {
                refuse_method("GET, POST", &method)
            } else {
                Err(warp::reject::not_found())
            }
        });
    read.or(append).unify().or(others).unify().boxed()
}

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

/// `POST /streams/{stream}/events`.
async fn append(
    st: Shared,
    tail: String,
    principal: Principal,
    content_type: Option<String>,
    content_length: Option<u64>,
    query: Query,
    body: impl futures_util::Stream<Item = Result<impl bytes::Buf, warp::Error>> + Unpin,
) -> Response {
    reply(
        async {
            let stream = stream_from_tail(&tail)
                .ok_or_else(|| Problem::not_found("append to /streams/{stream}/events"))?;
            event::check_stream_name(&stream, st.limits())?;
            let dry_run = super::events::dry_run_param(&query)?;
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
            let submitted = st
                .validator
                .submit_body(&bytes, query.get("expected_version").map(String::as_str));
            let path = match &submitted {
                Ok(s) if s.fast => "fast",
                _ => "value",
            };
            st.metrics.append_bodies.with_label_values(&[path]).inc();
            let submission = submitted?;
            let single = submission.single;
            if dry_run {
                return super::events::dry_run(&st, &stream, single, &submission);
            }
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
                .map(|p| Placed {
                    // A line answered with another event's position is a registry no-op (it
                    // registers again what the log, or an earlier line, holds): it is reported
                    // as a duplicate of that registration, as it would be alone.
                    duplicate: appended.duplicate || p.repeat,
                    hash: crate::log::record::hash_hex(&p.hash),
                    id: p.id,
                    recorded_at: &p.recorded_at,
                    seq: p.seq,
                    version: p.version,
                })
                .collect();
            let status = if appended.duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let body = Answer {
                events,
                stream: &stream,
                stream_version: appended.stream_version,
            };
            let stream_version = body.stream_version;
            // Strings, numbers and UUIDs never fail to encode; the events are stored whatever
            // happens here, so the fallback still answers where the stream stands.
            let body = serde_json::to_string(&body).unwrap_or_else(|_| {
                json!({"stream": stream, "stream_version": stream_version}).to_string()
            });
            Ok(json_response(status, body))
        }
        .await,
    )
}

/// The answer to an append, members in the order `json!` gave them (sorted), written without
/// building a JSON value per event.
#[derive(serde::Serialize)]
struct Answer<'a> {
    events: Vec<Placed<'a>>,
    stream: &'a str,
    stream_version: u64,
}

/// Where one appended event was placed.
#[derive(serde::Serialize)]
struct Placed<'a> {
    duplicate: bool,
    hash: String,
    id: uuid::Uuid,
    recorded_at: &'a str,
    seq: u64,
    version: u64,
}

/// `GET /streams/{stream}/events?from=&limit=`.
fn read_stream(st: &Shared, tail: &str, query: &Query) -> Response {
    reply((|| {
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
fn list_streams(st: &Shared, query: &Query) -> Response {
    reply((|| {
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
}
