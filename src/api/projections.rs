//! Routes under `/projections`: status, the read models (with `known_at`, `valid_at`,
//! `min_seq`, `process`, `limit`), per-entity routes, and rebuilds. Handlers authenticate,
//! parse, ask the projection engine and shape JSON; projection errors become problem details
//! here and nowhere else. This module must never compute a view itself.

use serde_json::{Value, json};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode, header};
use warp::reply::Response;

use super::problem::Problem;
use super::{Query, Shared, authorization, json_response, query, with_state};
use crate::keys::Scope;
use crate::projection::{self, ProjectionError, asof};

/// The projection routes: one filter for every method under `/projections`, so a wrong method
/// on a known path is a 405 problem rather than a fall-through 404.
pub fn routes(state: Shared) -> BoxedFilter<(Response,)> {
    warp::path("projections")
        .and(warp::path::tail())
        .and(warp::method())
        .and(authorization())
        .and(query())
        .and(with_state(state))
        .then(
            |tail: warp::path::Tail, method: Method, auth: Option<String>, q: Query, st: Shared| async move {
                match handle(&st, tail.as_str(), &method, auth.as_deref(), &q).await {
                    Ok(r) => r,
                    Err(p) => warp::Reply::into_response(p),
                }
            },
        )
        .boxed()
}

fn method_not_allowed(allow: &'static str) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("this projection route accepts {allow} only; see /openapi.json"),
    )
    .header(header::ALLOW, allow)
}

/// Turns an engine error into a problem.
fn problem(e: ProjectionError) -> Problem {
    match e {
        ProjectionError::UnknownProjection(_) | ProjectionError::NotFound(_) => {
            Problem::not_found(e.to_string())
        }
        ProjectionError::RebuildRunning => Problem::new(
            StatusCode::CONFLICT,
            "rebuild-running",
            "A rebuild is already running",
            e.to_string(),
        ),
        ProjectionError::Behind { at, wanted } => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "projection-behind",
            "The projections have not caught up yet",
            e.to_string(),
        )
        .with("as_of_seq", json!(at))
        .with("min_seq", json!(wanted))
        .header(header::RETRY_AFTER, "1"),
        other => {
            tracing::error!(error = %other, "projection failure");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "projection-unavailable",
                "Projections unavailable",
                "the projections could not answer; see the server log",
            )
            .header(header::RETRY_AFTER, "1")
        }
    }
}

fn decode(segment: &str) -> Result<String, Problem> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Problem::not_found("path segments must be UTF-8"))
}

async fn handle(
    st: &Shared,
    tail: &str,
    method: &Method,
    auth: Option<&str>,
    q: &Query,
) -> Result<Response, Problem> {
    let segments: Vec<String> = if tail.is_empty() {
        Vec::new()
    } else {
        tail.trim_end_matches('/')
            .split('/')
            .map(decode)
            .collect::<Result<_, _>>()?
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        // A process may be named `rebuild` (process ids are bare words): GET reads it, as
        // `/projections/negotiation/{process}` documents. Actor and source ids carry a prefix,
        // so on every other read model `rebuild` is only the action.
        [name, "rebuild"] if method == Method::GET && *name == projection::negotiation::NAME => {
            view(st, auth, q, name, Some("rebuild")).await
        }
        [_, "rebuild"] if method != Method::POST => Err(method_not_allowed("POST")),
        [name, "rebuild"] => {
            st.auth.require(auth, Scope::Admin)?;
            st.projections.rebuild(name).map_err(problem)?;
            Ok(json_response(
                StatusCode::ACCEPTED,
                json!({
                    "projection": name,
                    "rebuilding": true,
                    "as_of_seq": st.projections.seq(),
                    "status": "/projections",
                })
                .to_string(),
            ))
        }
        _ if method != Method::GET => Err(method_not_allowed("GET")),
        [] => {
            st.auth.require(auth, Scope::Read)?;
            wait_min_seq(st, q).await?;
            let status = st.projections.status();
            Ok(json_response(
                StatusCode::OK,
                json!({
                    "as_of_seq": st.projections.seq(),
                    "projections": status,
                })
                .to_string(),
            ))
        }
        [name] => view(st, auth, q, name, None).await,
        [name, entity] => view(st, auth, q, name, Some(entity)).await,
        _ => Err(Problem::not_found(
            "unknown projection path; see GET /projections",
        )),
    }
}

/// Waits (briefly) for the projections to reach `?min_seq=`, for read-your-writes.
async fn wait_min_seq(st: &Shared, q: &Query) -> Result<(), Problem> {
    if let Some(s) = q.get("min_seq") {
        let min = s.parse::<u64>().map_err(|_| {
            Problem::bad_query(
                "min_seq",
                format!("`min_seq` must be an integer >= 0 (got `{s}`)"),
            )
        })?;
        st.projections.wait_for(min).await.map_err(problem)?;
    }
    Ok(())
}

/// Parses the query, waits for `min_seq`, and answers a view.
async fn view(
    st: &Shared,
    auth: Option<&str>,
    q: &Query,
    name: &str,
    entity: Option<&str>,
) -> Result<Response, Problem> {
    st.auth.require(auth, Scope::Read)?;
    if !projection::NAMES.contains(&name) {
        return Err(problem(ProjectionError::UnknownProjection(
            name.to_string(),
        )));
    }
    let known_at = q
        .get("known_at")
        .map(|s| asof::parse_known_at(s))
        .transpose()
        .map_err(|e| Problem::bad_query("known_at", e.to_string()))?;
    let valid_at = q
        .get("valid_at")
        .map(|s| asof::parse_valid_at(s))
        .transpose()
        .map_err(|e| Problem::bad_query("valid_at", e.to_string()))?;
    let cfg_limit = (st.projections.default_limit(), st.projections.max_limit());
    let limit = match q.get("limit") {
        None => cfg_limit.0,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(cfg_limit.1),
            _ => {
                return Err(Problem::bad_query(
                    "limit",
                    format!("`limit` must be an integer >= 1 (got `{s}`)"),
                ));
            }
        },
    };
    wait_min_seq(st, q).await?;
    let query = projection::Query {
        known_at,
        valid_at: valid_at.clone(),
        process: q.get("process").cloned(),
        limit,
    };
    // A view walks a share of the whole knowledge (milliseconds at a million events): it runs
    // on the blocking pool, not on an async worker that other requests are waiting for.
    let engine = st.projections.clone();
    let (owned_name, owned_entity) = (name.to_string(), entity.map(str::to_string));
    let (seq, body) = tokio::task::spawn_blocking(move || {
        engine.read(|k| projection::answer(k, &owned_name, owned_entity.as_deref(), &query))
    })
    .await
    .map_err(|e| problem(ProjectionError::Task(e.to_string())))?
    .map_err(problem)?;
    let mut out = json!({
        "projection": name,
        "as_of_seq": seq,
        "known_at": q.get("known_at"),
        "valid_at": valid_at,
    });
    if let (Some(o), Value::Object(b)) = (out.as_object_mut(), body) {
        o.extend(b);
    }
    Ok(json_response(StatusCode::OK, out.to_string()))
}
