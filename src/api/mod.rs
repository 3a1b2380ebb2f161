//! The HTTP API: one `routes()` per resource (its own file), composed here. Filters match the
//! path and method, check the key (`auth::with_scope`) and extract inputs; handlers call into
//! `event/`, `log/` and the downstream services, and shape the reply. This module must never
//! hold business rules or storage details.

pub mod auth;
mod events;
mod export;
mod live;
mod meta;
mod openapi;
pub mod problem;
mod projections;
mod proofs;
mod streams;
mod subscriptions;

pub use live::LiveConfig;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use warp::Filter;
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use crate::event::Validator;
use crate::limits::Limits;
use crate::log::Log;
use crate::metrics::Metrics;
use auth::Auth;
use problem::Problem;

/// What every handler shares.
pub struct State {
    /// The log.
    pub log: Log,
    /// Schemas and limits.
    pub validator: Validator,
    /// API keys.
    pub auth: Auth,
    /// Instruments.
    pub metrics: Metrics,
    /// Live feed settings.
    pub live: LiveConfig,
    /// Flips to true when the server shuts down, so live feeds end and let it finish.
    pub shutdown: watch::Receiver<bool>,
    /// Read models.
    pub projections: crate::projection::Engine,
    /// Webhook subscriptions and delivery.
    pub webhooks: crate::webhook::Service,
    /// Signed checkpoints.
    pub checkpoints: crate::audit::signer::Signer,
}

impl State {
    fn limits(&self) -> &Limits {
        self.validator.limits()
    }
}

type Shared = Arc<State>;
type Query = HashMap<String, String>;

fn with_state(
    state: Shared,
) -> impl Filter<Extract = (Shared,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

fn query() -> impl Filter<Extract = (Query,), Error = warp::Rejection> + Clone {
    warp::query::<Query>()
}

/// Collects a request body up to `limit` bytes; beyond it, a 413 without reading the rest.
async fn read_body(
    content_length: Option<u64>,
    body: impl futures_util::Stream<Item = Result<impl bytes::Buf, warp::Error>> + Unpin,
    limit: usize,
) -> Result<Bytes, Problem> {
    use futures_util::StreamExt;
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Request too large",
            format!("the body exceeds the limit of {limit} bytes (limits.max_body_bytes)"),
        )
    };
    if content_length.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = body;
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-body",
                "Unreadable body",
                e.to_string(),
            )
        })?;
        while bytes::Buf::has_remaining(&chunk) {
            let part = bytes::Buf::chunk(&chunk);
            if buf.len() + part.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(part);
            let n = part.len();
            bytes::Buf::advance(&mut chunk, n);
        }
    }
    Ok(Bytes::from(buf))
}

/// Every route, with problem-details recovery and request logging. Each resource owns its
/// paths in its own `routes()`; this only composes them.
pub fn routes(
    state: Shared,
) -> impl Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone {
    let metrics = state.metrics.clone();
    // Boxed in groups: one long chain of `or` makes a type too deep for release builds (E0275).
    // `live` precedes `events`, whose `/events/{id}` would otherwise take `/events/live`.
    let log = streams::routes(state.clone())
        .or(live::routes(state.clone()))
        .unify()
        .or(events::routes(state.clone()))
        .unify()
        .or(export::routes(state.clone()))
        .unify()
        .boxed();
    let downstream = projections::routes(state.clone())
        .or(subscriptions::routes(state.clone()))
        .unify()
        .or(proofs::routes(state.clone()))
        .unify()
        .boxed();
    log.or(downstream)
        .unify()
        .or(meta::routes(state))
        .unify()
        .or(crate::web::routes())
        .unify()
        .recover(problem::recover)
        .unify()
        .with(warp::log::custom(move |info| {
            let status = info.status();
            metrics
                .http_responses
                .with_label_values(&[status.as_str()])
                .inc();
            metrics.http_seconds.observe(info.elapsed().as_secs_f64());
            tracing::info!(
                target: "annals::http",
                method = %info.method(),
                path = info.path(),
                status = status.as_u16(),
                micros = info.elapsed().as_micros() as u64,
                "request"
            );
        }))
}

/// Put last on a path, after its routes: any method but `allow` (a comma-separated list, as
/// the `Allow` header spells it) is a 405 naming them. An allowed method steps aside as a 404,
/// so the rejection of the route that matched it (a refused key, say) is the one answered.
fn other_methods(
    allow: &'static str,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::method().and_then(move |method: Method| async move { refuse_method(allow, &method) })
}

/// The 405 of [`other_methods`] for a path whose methods are known only once it is parsed.
fn refuse_method(allow: &str, method: &Method) -> Result<Response, warp::Rejection> {
    if allow.split(", ").any(|m| m == method.as_str()) {
        Err(warp::reject::not_found())
    } else {
        Ok(warp::Reply::into_response(problem::method_not_allowed(
            allow,
        )))
    }
}

/// An optional header; an unreadable one counts as absent.
fn optional_header<T: std::str::FromStr + Send + 'static>(
    name: &'static str,
) -> impl Filter<Extract = (Option<T>,), Error = std::convert::Infallible> + Clone {
    warp::header::optional::<T>(name)
        .or_else(|_| async { Ok::<_, std::convert::Infallible>((None,)) })
}

/// A handler's result as a reply.
fn reply(result: Result<Response, Problem>) -> Response {
    result.unwrap_or_else(warp::Reply::into_response)
}

/// Keep-alive interval for the live feed.
fn keep_alive(live: &LiveConfig) -> Duration {
    Duration::from_secs(live.keep_alive_secs.max(1))
}

/// A JSON reply with a status.
fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    resp
}
