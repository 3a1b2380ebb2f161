//! `GET /export?to=SEQ`: the log as NDJSON, the very lines `annals export` writes (one envelope
//! per line, hash included), from seq 1 to `to` (by default the durable head when the request
//! arrives). It streams in chunks read as the client takes them, so it must never hold the
//! whole log in memory, and never send a record past `to` or past the durable head.

use std::convert::Infallible;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::auth::with_scope;
use super::problem::Problem;
use super::{Query, Shared, other_methods, query, reply, with_state};
use crate::audit::export::write_record;
use crate::keys::{Principal, Scope};

/// Records read from the log per chunk of the response.
const CHUNK: usize = 256;

/// `GET /export`.
pub fn routes(state: Shared) -> BoxedFilter<(Response,)> {
    warp::path!("export")
        .and(warp::get())
        .and(with_scope(state.clone(), Scope::Read))
        .and(query())
        .and(with_state(state))
        .map(|_: Principal, q: Query, st: Shared| reply(export(st, &q)))
        .or(warp::path!("export").and(other_methods("GET")))
        .unify()
        .boxed()
}

/// The `to` parameter: a seq from 0 (an empty export) to the durable head.
fn upper_bound(st: &Shared, q: &Query) -> Result<u64, Problem> {
    let head = st.log.head().seq;
    let Some(raw) = q.get("to") else {
        return Ok(head);
    };
    let to = raw.parse::<u64>().map_err(|_| {
        Problem::bad_query("to", format!("`to` must be an integer >= 0 (got `{raw}`)"))
    })?;
    if to > head {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "beyond-head",
            "Beyond the log",
            format!("`to` is {to}, but the log holds {head} records"),
        )
        .with("head", serde_json::json!(head)));
    }
    Ok(to)
}

fn export(st: Shared, q: &Query) -> Result<Response, Problem> {
    let to = upper_bound(&st, q)?;
    let stream = async_stream::stream! {
        let mut next = 1;
        while next <= to {
            let (records, after) = match st.log.read_range(next, CHUNK, |_| true) {
                Ok(x) => x,
                Err(e) => {
                    // The status line is gone: ending short is all that is left, and the
                    // client sees fewer lines than `to` (and a chain that stops early).
                    tracing::error!(error = %e, "export read failed");
                    return;
                }
            };
            let mut chunk = Vec::new();
            for rec in records.iter().filter(|r| r.seq <= to) {
                if let Err(e) = write_record(&mut chunk, rec) {
                    tracing::error!(error = %e, "export encoding failed");
                    return;
                }
            }
            yield Ok::<_, Infallible>(chunk);
            if after <= next {
                return;
            }
            next = after;
        }
    };
    let mut resp = Response::new(warp::hyper::Body::wrap_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}
