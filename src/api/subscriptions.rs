//! Routes under `/subscriptions` (scope `admin`): create, list, get, update, pause, resume,
//! delete, rotate-secret, replay, dead letters (paginated by seq) and their redelivery,
//! attempts. Handlers authenticate, parse, call `webhook::Service` and shape replies; webhook
//! errors become problem details here and nowhere else. This module must never hold delivery
//! rules, and never put a secret in any answer but create and rotate-secret.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{Method, StatusCode, header};
use warp::reply::Response;

use super::problem::Problem;
use super::{Query, Shared, authorization, json_response, read_body, with_state};
use crate::event::{FieldError, parse_json};
use crate::keys::Scope;
use crate::webhook::{NewSubscription, SubscriptionPatch, WebhookError};

/// Attempts answered by default.
const ATTEMPTS_DEFAULT: usize = 50;

/// Dead letters per page by default (at most `limits.max_read_limit`).
const DEAD_LETTERS_DEFAULT: u64 = 100;

/// The subscription routes. Paths are matched here rather than with one warp filter per
/// route, so a known path with a wrong method is a 405 naming the allowed ones.
pub fn routes(state: Shared) -> BoxedFilter<(Response,)> {
    warp::path("subscriptions")
        .and(warp::path::tail())
        .and(warp::method())
        .and(authorization())
        .and(
            warp::header::optional::<u64>("content-length")
                .or_else(|_| async { Ok::<_, std::convert::Infallible>((None,)) }),
        )
        .and(
            warp::query::<Query>()
                .or_else(|_| async { Ok::<_, std::convert::Infallible>((Query::new(),)) }),
        )
        .and(warp::body::stream())
        .and(with_state(state))
        .then(
            |tail: warp::path::Tail,
             method: Method,
             auth: Option<String>,
             clen: Option<u64>,
             q: Query,
             body,
             st: Shared| async move {
                let segments: Vec<String> = tail
                    .as_str()
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                match handle(st, segments, method, auth, clen, q, body).await {
                    Ok(r) => r,
                    Err(p) => warp::Reply::into_response(p),
                }
            },
        )
        .boxed()
}

/// The operations, by path shape.
enum Route {
    List,
    Create,
    Get(String),
    Update(String),
    Delete(String),
    Pause(String),
    Resume(String),
    Rotate(String),
    Replay(String),
    DeadLetters(String),
    Redeliver(String),
    Attempts(String),
}

fn route(segments: &[String], method: &Method) -> Result<Route, Problem> {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let allowed = |allow: &'static str| {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("this route accepts {allow}; see /openapi.json"),
        )
        .header(header::ALLOW, allow)
    };
    let m = method.clone();
    Ok(match s.as_slice() {
        [] => match m {
            Method::GET => Route::List,
            Method::POST => Route::Create,
            _ => return Err(allowed("GET, POST")),
        },
        [id] => match m {
            Method::GET => Route::Get(id.to_string()),
            Method::PATCH => Route::Update(id.to_string()),
            Method::DELETE => Route::Delete(id.to_string()),
            _ => return Err(allowed("GET, PATCH, DELETE")),
        },
        [
            id,
            action @ ("pause" | "resume" | "rotate-secret" | "replay"),
        ] => {
            if m != Method::POST {
                return Err(allowed("POST"));
            }
            let id = id.to_string();
            match *action {
                "pause" => Route::Pause(id),
                "resume" => Route::Resume(id),
                "rotate-secret" => Route::Rotate(id),
                _ => Route::Replay(id),
            }
        }
        [id, what @ ("dead-letters" | "attempts")] => {
            if m != Method::GET {
                return Err(allowed("GET"));
            }
            if *what == "attempts" {
                Route::Attempts(id.to_string())
            } else {
                Route::DeadLetters(id.to_string())
            }
        }
        [id, "dead-letters", "redeliver"] => {
            if m != Method::POST {
                return Err(allowed("POST"));
            }
            Route::Redeliver(id.to_string())
        }
        _ => return Err(Problem::not_found("no such route; see /openapi.json")),
    })
}

fn ok(v: Value) -> Result<Response, Problem> {
    Ok(json_response(StatusCode::OK, v.to_string()))
}

async fn handle(
    st: Shared,
    segments: Vec<String>,
    method: Method,
    auth: Option<String>,
    content_length: Option<u64>,
    query: Query,
    body: impl futures_util::Stream<Item = Result<impl bytes::Buf, warp::Error>> + Unpin,
) -> Result<Response, Problem> {
    let route = route(&segments, &method)?;
    st.auth.require(auth.as_deref(), Scope::Admin)?;
    let bytes = read_body(content_length, body, st.limits().max_body_bytes).await?;
    let hooks = &st.webhooks;
    match route {
        Route::List => ok(json!({"subscriptions": hooks.list().map_err(problem)?})),
        Route::Create => {
            let new: NewSubscription = parse_body(&bytes, false)?;
            let (mut view, secret) = hooks.create(new).await.map_err(problem)?;
            if let Some(obj) = view.as_object_mut() {
                obj.insert("secret".into(), json!(secret));
            }
            Ok(json_response(StatusCode::CREATED, view.to_string()))
        }
        Route::Get(id) => ok(hooks.get(&id).map_err(problem)?),
        Route::Update(id) => {
            // The id is checked first so a bad body on a missing subscription is a 404.
            hooks.get(&id).map_err(problem)?;
            let patch: SubscriptionPatch = parse_body(&bytes, false)?;
            ok(hooks.update(&id, patch).await.map_err(problem)?)
        }
        Route::Delete(id) => {
            hooks.delete(&id).await.map_err(problem)?;
            let mut resp = Response::new(Vec::new().into());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            Ok(resp)
        }
        Route::Pause(id) => ok(hooks.pause(&id).await.map_err(problem)?),
        Route::Resume(id) => ok(hooks.resume(&id).await.map_err(problem)?),
        Route::Rotate(id) => {
            let (secret, until) = hooks.rotate_secret(&id).await.map_err(problem)?;
            ok(json!({"secret": secret, "previous_secret_expires_at": until}))
        }
        Route::Replay(id) => {
            hooks.get(&id).map_err(problem)?;
            let r: ReplayBody = parse_body(&bytes, false)?;
            let view = hooks.replay(&id, r.from_seq).await.map_err(problem)?;
            Ok(json_response(StatusCode::ACCEPTED, view.to_string()))
        }
        Route::DeadLetters(id) => {
            let after = int_param(&query, "after", 0, 0)?;
            let max = st.limits().max_read_limit as u64;
            // Larger pages are clamped, as on the other paginated routes.
            let limit = int_param(&query, "limit", DEAD_LETTERS_DEFAULT.min(max), 1)?.min(max);
            let (page, next) = hooks
                .dead_letters(&id, after, limit as usize)
                .map_err(problem)?;
            ok(json!({"dead_letters": page, "next": next}))
        }
        Route::Redeliver(id) => {
            hooks.get(&id).map_err(problem)?;
            let r: RedeliverBody = parse_body(&bytes, true)?;
            let queued = hooks.redeliver(&id, r.seq).await.map_err(problem)?;
            Ok(json_response(
                StatusCode::ACCEPTED,
                json!({"queued": queued}).to_string(),
            ))
        }
        Route::Attempts(id) => {
            let limit = match query.get("limit") {
                None => ATTEMPTS_DEFAULT,
                Some(l) => l.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    Problem::bad_query(
                        "limit",
                        format!("`limit` must be an integer >= 1 (got `{l}`)"),
                    )
                })?,
            };
            ok(json!({"attempts": hooks.attempts(&id, limit).map_err(problem)?}))
        }
    }
}

/// An optional integer query parameter of at least `min`; a 400 naming it otherwise.
fn int_param(query: &Query, name: &str, default: u64, min: u64) -> Result<u64, Problem> {
    match query.get(name) {
        None => Ok(default),
        Some(s) => s.parse::<u64>().ok().filter(|n| *n >= min).ok_or_else(|| {
            Problem::bad_query(
                name,
                format!("`{name}` must be an integer >= {min} (got `{s}`)"),
            )
        }),
    }
}

/// `POST /subscriptions/{id}/replay` body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    from_seq: u64,
}

/// `POST /subscriptions/{id}/dead-letters/redeliver` body (empty: all).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RedeliverBody {
    seq: Option<u64>,
}

/// Parses a JSON body into `T`; an empty body is `{}` when `empty_ok`.
fn parse_body<T: DeserializeOwned>(bytes: &Bytes, empty_ok: bool) -> Result<T, Problem> {
    let value = if empty_ok && bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json(bytes)?
    };
    serde_json::from_value(value).map_err(|e| {
        let message = e.to_string();
        // serde names the field in its message (`missing field `url``, `unknown field ...`).
        let pointer = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field"))
            .map(|f| format!("/{f}"))
            .unwrap_or_default();
        invalid_problem(pointer, message)
    })
}

fn invalid_problem(pointer: String, message: String) -> Problem {
    let at = if pointer.is_empty() { "/" } else { &pointer };
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
        "The subscription request is not acceptable",
        format!("{at}: {message}"),
    )
    .with_errors(vec![FieldError { pointer, message }])
}

/// The only place webhook errors become problem details.
fn problem(e: WebhookError) -> Problem {
    match e {
        WebhookError::NotFound(_) | WebhookError::NoDeadLetter { .. } => {
            Problem::not_found(e.to_string())
        }
        WebhookError::Invalid { pointer, message } => invalid_problem(pointer, message),
        WebhookError::Target(ref g) => {
            let message = g.to_string();
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "target-refused",
                "The webhook target is refused",
                format!("/url: {message}"),
            )
            .with_errors(vec![FieldError {
                pointer: "/url".into(),
                message,
            }])
        }
        WebhookError::NoSecret(_) => Problem::new(
            StatusCode::CONFLICT,
            "no-signing-secret",
            "The subscription has no signing secret",
            e.to_string(),
        ),
        WebhookError::Log(ref le) => Problem::storage(le),
        WebhookError::Store(_) | WebhookError::Config(_) | WebhookError::Key(_) => {
            tracing::error!(error = %e, "webhook store error");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-unavailable",
                "Storage unavailable",
                "the webhook store could not be used; see the server log",
            )
            .header(header::RETRY_AFTER, "1")
        }
    }
}
