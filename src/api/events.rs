//! Routes under `/events`: the whole log by seq (with a type filter) and one event by id, plus
//! the type filter the live feed shares, and the answer of an append's dry run
//! (`?dry_run=true`). Handlers parse, read the log and shape JSON. They must never decide what
//! is valid (that is `event/`) or how things are stored (that is `log/`), and a dry run must
//! never reach the writer.

use uuid::Uuid;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::auth::with_scope;
use super::problem::{Problem, from_append};
use super::{Query, Shared, json_response, other_methods, query, reply, with_state};
use crate::event::Submission;
use crate::event::check::DryRun;
use crate::keys::{Principal, Scope};
use crate::log::{AppendError, Recorded};

/// `GET /events` and `GET /events/{id}` (the live feed, `/events/live`, is `live::routes`).
pub fn routes(state: Shared) -> BoxedFilter<(Response,)> {
    let all = warp::path!("events")
        .and(warp::get())
        .and(with_scope(state.clone(), Scope::Read))
        .and(query())
        .and(with_state(state.clone()))
        .map(|_: Principal, q: Query, st: Shared| read_all(&st, &q));
    let by_id = warp::path!("events" / String)
        .and(warp::get())
        .and(with_scope(state.clone(), Scope::Read))
        .and(with_state(state))
        .map(|id: String, _: Principal, st: Shared| get_by_id(&st, &id));
    all.or(warp::path!("events").and(other_methods("GET")))
        .unify()
        .or(by_id)
        .unify()
        .or(warp::path!("events" / String)
            .and(other_methods("GET"))
            .map(|_, r| r))
        .unify()
        .boxed()
}

/// Whether a `type` parameter is what the OpenAPI document's pattern for it allows: a
/// comma-separated list of `*`, exact types and `.*` globs. A malformed filter is a client's
/// mistake to be told about, not a filter that quietly matches nothing.
pub fn valid_type_param(value: &str) -> bool {
    // The document's `$` is a Python/ECMA `$`, which also matches before one final newline.
    let value = value.strip_suffix('\n').unwrap_or(value);
    // Each item is one glob of `crate::glob`: a lowercase letter or `*` first, then lowercase
    // letters, digits, `_`, `.` and `*`.
    value.split(',').all(|item| {
        let mut chars = item.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '*')
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '*')
            })
    })
}

/// The `type` parameter as a filter; a 400 naming it if malformed.
pub fn type_param(query: &Query) -> Result<TypeFilter, Problem> {
    match query.get("type") {
        Some(t) if !valid_type_param(t) => Err(Problem::bad_query(
            "type",
            format!(
                "`type` must be a comma-separated list of event types (`meeting.held`) or globs where `*` matches any run of characters (`meeting.*`, `*.held`, `*`) (got `{t}`)"
            ),
        )),
        t => Ok(TypeFilter::parse(t)),
    }
}

/// Parses an optional integer query parameter within bounds.
pub(super) fn int_param(query: &Query, name: &str, default: u64, min: u64) -> Result<u64, Problem> {
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

/// The `limit` parameter: at least 1, clamped to `limits.max_read_limit`.
pub(super) fn limit_param(st: &Shared, query: &Query) -> Result<usize, Problem> {
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

/// Records as a JSON array of envelopes, spliced from the stored bytes.
pub(super) fn envelopes(records: &[Recorded]) -> String {
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
fn read_all(st: &Shared, query: &Query) -> Response {
    reply((|| {
        let from = int_param(query, "from", 1, 1)?;
        let limit = limit_param(st, query)?;
        let filter = type_param(query)?;
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

/// `GET /events/{id}`.
fn get_by_id(st: &Shared, id: &str) -> Response {
    reply((|| {
        let uuid = Uuid::parse_str(id)
            .map_err(|_| Problem::not_found(format!("`{id}` is not an event id (UUID)")))?;
        match st.log.get_by_id(&uuid).map_err(|e| Problem::storage(&e))? {
            Some(rec) => Ok(json_response(StatusCode::OK, rec.envelope_json())),
            None => Err(Problem::not_found(format!("no event with id {uuid}"))),
        }
    })())
}

/// The `dry_run` parameter of an append: `true` or `false` (the default).
pub(super) fn dry_run_param(query: &Query) -> Result<bool, Problem> {
    match query.get("dry_run").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(Problem::bad_query(
            "dry_run",
            format!("`dry_run` must be `true` or `false` (got `{other}`)"),
        )),
    }
}

/// The answer to `POST /streams/{stream}/events?dry_run=true`: the append checked as the
/// writer would check it against the log as it is now (`event::check::DryRun`), nothing
/// written and no seq taken. 200 with what would be appended, or the problem a real append
/// would get (`single`: the body was one event, so pointers have no `/events/i` prefix).
pub(super) fn dry_run(
    st: &Shared,
    stream: &str,
    single: bool,
    submission: &Submission,
) -> Result<Response, Problem> {
    let would = DryRun::new(&st.log)
        .append(stream, submission.expected, &submission.events)
        .map_err(|refusals| {
            let first = refusals
                .into_iter()
                .next()
                .map(|(_, e)| e)
                .unwrap_or_else(|| AppendError::Unavailable("no answer".into()));
            if let AppendError::Unavailable(why) = &first {
                tracing::error!(error = %why, "storage error during a dry run");
            }
            from_append(first, |i| {
                if single {
                    String::new()
                } else {
                    format!("/events/{i}")
                }
            })
        })?;
    let events: Vec<_> = submission
        .events
        .iter()
        .zip(&would.events)
        .zip(&would.repeats)
        .map(|((ev, (id, version)), repeat)| {
            serde_json::json!({
                "id": id,
                "type": ev.event_type,
                "version": version,
                "duplicate": would.duplicate || *repeat,
            })
        })
        .collect();
    let body = serde_json::json!({
        "dry_run": true,
        "stream": stream,
        "stream_version": would.stream_version,
        "events": events,
    });
    Ok(json_response(StatusCode::OK, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_filter_matches_exact_and_glob() {
        let f = TypeFilter::parse(Some(&"meeting.*,statement.made".to_string()));
        assert!(f.matches("meeting.held"));
        assert!(f.matches("statement.made"));
        assert!(!f.matches("position.stated"));
        assert!(TypeFilter::parse(None).matches("anything"));
    }

    #[test]
    fn a_type_parameter_is_valid_only_as_the_document_spells_it() {
        for ok in [
            "meeting.held",
            "meeting.*",
            "*",
            "meeting.*,statement.made",
            "*.held",
            "meeting*",
            "a\n",
        ] {
            assert!(valid_type_param(ok), "{ok:?}");
        }
        for bad in [
            "0.5",
            "",
            "Meeting",
            "meeting.Held",
            "a,,b",
            "a, b",
            "a\n\n",
            "meeting?",
        ] {
            assert!(!valid_type_param(bad), "{bad:?}");
        }
    }
}
