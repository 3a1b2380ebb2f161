//! The HTTP API: warp filters that route requests to handlers, one file per resource. Filters
//! only match paths and extract inputs; handlers authenticate, call into `event/` and `log/`,
//! and shape the reply. This module must never hold business rules or storage details.

mod audit;
pub mod auth;
mod events;
mod live;
mod meta;
pub mod problem;
mod projections;
mod subscriptions;

pub use live::LiveConfig;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use warp::Filter;
use warp::http::StatusCode;
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
    pub checkpoints: crate::audit::checkpointer::Checkpointer,
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

fn authorization()
-> impl Filter<Extract = (Option<String>,), Error = std::convert::Infallible> + Clone {
    warp::header::optional::<String>("authorization")
        .or_else(|_| async { Ok::<_, std::convert::Infallible>((None,)) })
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

/// Every route, with problem-details recovery and request logging.
pub fn routes(
    state: Shared,
) -> impl Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone {
    let metrics = state.metrics.clone();

    let append = warp::path("streams")
        .and(warp::post())
        .and(warp::path::tail())
        .and(authorization())
        .and(
            warp::header::optional::<String>("content-type")
                .or_else(|_| async { Ok::<_, std::convert::Infallible>((None,)) }),
        )
        .and(
            warp::header::optional::<u64>("content-length")
                .or_else(|_| async { Ok::<_, std::convert::Infallible>((None,)) }),
        )
        .and(query())
        .and(warp::body::stream())
        .and(with_state(state.clone()))
        .then(
            |tail: warp::path::Tail, auth, ctype, clen, q, body, st: Shared| async move {
                events::append(st, tail.as_str().to_string(), auth, ctype, clen, q, body).await
            },
        );

    let stream_read = warp::path("streams")
        .and(warp::get())
        .and(warp::path::tail())
        .and(authorization())
        .and(query())
        .and(with_state(state.clone()))
        .map(
            |tail: warp::path::Tail, auth: Option<String>, q, st: Shared| {
                if tail.as_str().is_empty() {
                    events::list_streams(&st, auth.as_deref(), &q)
                } else {
                    events::read_stream(&st, tail.as_str(), auth.as_deref(), &q)
                }
            },
        );

    let live = warp::path!("events" / "live")
        .and(warp::get())
        .and(authorization())
        .and(
            warp::header::optional::<String>("last-event-id")
                .or_else(|_| async { Ok::<_, std::convert::Infallible>((None,)) }),
        )
        .and(query())
        .and(with_state(state.clone()))
        .map(|auth: Option<String>, last_id, q, st: Shared| {
            live::feed(st, auth.as_deref(), last_id, &q)
        });

    let all = warp::path!("events")
        .and(warp::get())
        .and(authorization())
        .and(query())
        .and(with_state(state.clone()))
        .map(|auth: Option<String>, q, st: Shared| events::read_all(&st, auth.as_deref(), &q));

    let by_id = warp::path!("events" / String)
        .and(warp::get())
        .and(authorization())
        .and(with_state(state.clone()))
        .map(|id: String, auth: Option<String>, st: Shared| {
            events::get_by_id(&st, &id, auth.as_deref())
        });

    let head = warp::path!("log")
        .and(warp::get())
        .and(authorization())
        .and(with_state(state.clone()))
        .map(|auth: Option<String>, st: Shared| meta::head(&st, auth.as_deref()));

    let health = warp::path!("healthz")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|st: Shared| meta::health(&st));

    let metrics_route = warp::path!("metrics")
        .and(warp::get())
        .and(authorization())
        .and(with_state(state.clone()))
        .map(|auth: Option<String>, st: Shared| meta::metrics(&st, auth.as_deref()));

    let openapi = warp::path!("openapi.json")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|st: Shared| meta::openapi(&st));

    let schema_list = warp::path!("schemas")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|st: Shared| meta::schema_list(&st));

    let schema_one = warp::path!("schemas" / String)
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|name: String, st: Shared| meta::schema(&st, &name));

    // Boxed in groups: one long chain of `or` makes a type too deep for release builds.
    let core = append
        .or(stream_read)
        .unify()
        .or(live)
        .unify()
        .or(all)
        .unify()
        .or(by_id)
        .unify()
        .or(head)
        .unify()
        .or(health)
        .unify()
        .or(metrics_route)
        .unify()
        .or(openapi)
        .unify()
        .or(schema_list)
        .unify()
        .or(schema_one)
        .unify()
        .boxed();
    core.or(audit::routes(state.clone()))
        .unify()
        .or(projections::routes(state.clone()))
        .unify()
        .or(subscriptions::routes(state.clone()))
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
