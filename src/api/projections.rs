//! Routes under `/projections`: status, the read models (with `known_at`, `valid_at`,
//! `min_seq`, `process`, `limit`, the actor view's `cursor` and `next` link, and the
//! negotiation view's `group`), per-entity
//! routes, and rebuilds. Handlers authenticate,
//! parse, ask the projection engine and shape JSON; projection errors become problem details
//! here and nowhere else. This module must never compute a view itself.

use serde_json::{Value, json};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode, header};
use warp::reply::Response;

use super::auth::with_scope;
use super::problem::Problem;
use super::{Query, Shared, json_response, other_methods, query, refuse_method, reply, with_state};
use crate::keys::{Principal, Scope};
use crate::projection::{self, ProjectionError, asof};

/// The projection routes. Path segments arrive percent-encoded (`actor%3Atrump`) and are
/// decoded by the handlers.
pub fn routes(state: Shared) -> BoxedFilter<(Response,)> {
    let read = || with_scope(state.clone(), Scope::Read);
    let st = || with_state(state.clone());
    let status = warp::path!("projections")
        .and(warp::get())
        .and(read())
        .and(query())
        .and(st())
        .then(|_: Principal, q: Query, st: Shared| async move { reply(status(&st, &q).await) })
        .or(warp::path!("projections").and(other_methods("GET")))
        .unify();
    let rebuild = warp::path!("projections" / String / "rebuild")
        .and(warp::post())
        .and(with_scope(state.clone(), Scope::Admin))
        .and(st())
        .map(|name: String, _: Principal, st: Shared| reply(rebuild(&st, &name)));
    let one = warp::path!("projections" / String)
        .and(warp::get())
        .and(read())
        .and(query())
        .and(st())
        .then(
            |name: String, _: Principal, q: Query, st: Shared| async move {
                reply(view(&st, &q, &name, None).await)
            },
        )
        .or(warp::path!("projections" / String)
            .and(other_methods("GET"))
            .map(|_, r| r))
        .unify();
    // A process may be named `rebuild` (process ids are bare words): GET reads it, as
    // `/projections/negotiation/{process}` documents. Actor and source ids carry a prefix, so
    // on every other read model `rebuild` is only the action.
    let entity = warp::path!("projections" / String / String)
        .and_then(|name: String, entity: String| async move {
            if entity == "rebuild" && name != projection::negotiation::NAME {
                Err(warp::reject::not_found())
            } else {
                Ok((name, entity))
            }
        })
        .untuple_one()
        .and(warp::get())
        .and(read())
        .and(query())
        .and(st())
        .then(
            |name: String, entity: String, _: Principal, q: Query, st: Shared| async move {
                reply(view(&st, &q, &name, Some(&entity)).await)
            },
        );
    let others = warp::path!("projections" / String / String)
        .and(warp::method())
        .and_then(|name: String, last: String, method: Method| async move {
            let allow = match last.as_str() {
                "rebuild" if name == projection::negotiation::NAME => "GET, POST",
                "rebuild" => "POST",
                _ => "GET",
            };
            refuse_method(allow, &method)
        });
    status
        .or(rebuild)
        .unify()
        .or(one)
        .unify()
        .boxed()
        .or(entity)
        .unify()
        .or(others)
        .unify()
        .boxed()
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
        // Well-formed, but not a cursor of this actor's walk: like a `min_seq` beyond the
        // head, a request that parses and cannot be answered (400 is for malformed input).
        ProjectionError::NotThisWalk(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "cursor-mismatch",
            "Not a cursor of this walk",
            e.to_string(),
        )
        .with_errors(vec![crate::event::FieldError {
            pointer: "?cursor".into(),
            message: "does not continue a walk of this actor".into(),
        }]),
        ProjectionError::RecordUnavailable(_) => {
            // Never a view with a field missing: the client retries, the operator reads why.
            tracing::error!(error = %e, "a view could not read the records it shows");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "record-unavailable",
                "A record this view shows could not be read",
                "a record this view needs could not be read from the log; see the server log",
            )
            .header(header::RETRY_AFTER, "1")
        }
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

/// `GET /projections`: each read model's state.
async fn status(st: &Shared, q: &Query) -> Result<Response, Problem> {
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

/// `POST /projections/{name}/rebuild`.
fn rebuild(st: &Shared, name: &str) -> Result<Response, Problem> {
    let name = decode(name)?;
    st.projections.rebuild(&name).map_err(problem)?;
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

/// Waits (briefly) for the projections to reach `?min_seq=`, for read-your-writes.
async fn wait_min_seq(st: &Shared, q: &Query) -> Result<(), Problem> {
    if let Some(s) = q.get("min_seq") {
        let min = s.parse::<u64>().map_err(|_| {
            Problem::bad_query(
                "min_seq",
                format!("`min_seq` must be an integer >= 0 (got `{s}`)"),
            )
        })?;
        // A seq no one has written yet is the client's mistake, not a lag to wait out: 503
        // is for what the log holds and the projections have yet to fold.
        let head = st.log.head().seq;
        if min > head {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "beyond-head",
                "Beyond the log",
                format!("`min_seq` is {min}, but the log holds {head} records"),
            )
            .with("min_seq", json!(min))
            .with("head", json!(head))
            .with_errors(vec![crate::event::FieldError {
                pointer: "?min_seq".into(),
                message: format!("must be at most the log's head, {head}"),
            }]));
        }
        st.projections.wait_for(min).await.map_err(problem)?;
    }
    Ok(())
}

/// Waits (briefly) for the projections to reach a cursor's cut: one handed out before a
/// restart may be ahead of a fold still catching up. A cut beyond the log's head was never
/// handed out by this log: 422, as for `min_seq`.
async fn wait_cursor_cut(st: &Shared, cut: u64) -> Result<(), Problem> {
    let head = st.log.head().seq;
    if cut > head {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "cursor-mismatch",
            "Not a cursor of this walk",
            format!("the cursor's cut is seq {cut}, but the log holds {head} records"),
        )
        .with("head", json!(head))
        .with_errors(vec![crate::event::FieldError {
            pointer: "?cursor".into(),
            message: format!("its cut must be at most the log's head, {head}"),
        }]));
    }
    st.projections.wait_for(cut).await.map_err(problem)
}

/// Parses the query, waits for `min_seq`, and answers a view.
async fn view(
    st: &Shared,
    q: &Query,
    name: &str,
    entity: Option<&str>,
) -> Result<Response, Problem> {
    let raw_entity = entity;
    let name = decode(name)?;
    let entity = entity.map(decode).transpose()?;
    let (name, entity) = (name.as_str(), entity.as_deref());
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
    // Only the actor view pages; elsewhere `cursor` means nothing, as any unknown parameter.
    let pages = name == projection::actors::NAME && entity.is_some();
    let cursor = match q.get("cursor") {
        Some(c) if pages => Some(
            projection::actors::Cursor::decode(c)
                .map_err(|e| Problem::bad_query("cursor", e.to_string()))?,
        ),
        _ => None,
    };
    // Only the negotiation view groups, but a `group` it would refuse is refused on every
    // view, as the one documented parameter it is (`limit` likewise).
    let group = q
        .get("group")
        .map(|g| g.parse::<projection::negotiation::Group>())
        .transpose()
        .map_err(|e| Problem::bad_query("group", e.to_string()))?
        .filter(|_| name == projection::negotiation::NAME);
    wait_min_seq(st, q).await?;
    if let Some(c) = cursor {
        wait_cursor_cut(st, c.seq).await?;
    }
    let query = projection::Query {
        known_at,
        valid_at: valid_at.clone(),
        process: q.get("process").cloned(),
        limit,
        cursor,
        group,
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
    if let (true, Some(entity), Some(o)) = (pages, raw_entity, out.as_object_mut()) {
        // Only when there is a next page: the view's own fields (`next_cursor` is null on the
        // last page) stay what the projection computes, link or not.
        let next = o
            .get("next_cursor")
            .and_then(Value::as_str)
            .map(|c| next_link(entity, c, limit, valid_at.as_deref()));
        if let Some(next) = next {
            o.insert("next".into(), Value::String(next));
        }
    }
    Ok(json_response(StatusCode::OK, out.to_string()))
}

/// The link to an actor view's next page: the same actor, `limit` and `valid_at`, and the
/// cursor (which carries the cut, so `known_at` is not repeated).
fn next_link(entity: &str, cursor: &str, limit: usize, valid_at: Option<&str>) -> String {
    let mut link = format!(
        "/projections/{}/{entity}?cursor={cursor}&limit={limit}",
        projection::actors::NAME
    );
    if let Some(v) = valid_at {
        let v = percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
        link.push_str(&format!("&valid_at={v}"));
    }
    link
}
