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

use super::auth::with_scope;
use super::problem::Problem;
use super::{
    Query, Shared, json_response, optional_header, other_methods, read_body, refuse_method, reply,
    with_state,
};
use crate::event::{FieldError, parse_json};
use crate::keys::{Principal, Scope};
use crate::webhook::{NewSubscription, SubscriptionPatch, WebhookError};

/// Attempts answered by default.
const ATTEMPTS_DEFAULT: usize = 50;

/// Dead letters per page by default (at most `limits.max_read_limit`).
const DEAD_LETTERS_DEFAULT: u64 = 100;

/// The subscription routes, all with the `admin` scope. Each path answers a wrong method with
/// a 405 naming the allowed ones, before any key is checked.
pub fn routes(state: Shared) -> BoxedFilter<(Response,)> {
    use warp::{delete, get, patch, path, post};
    let id = || path!("subscriptions" / String);
    let ops = path!("subscriptions")
        .and(get())
        .map(|| Route::List)
        .or(path!("subscriptions").and(post()).map(|| Route::Create))
        .unify()
        .or(id().and(get()).map(Route::Get))
        .unify()
        .or(id().and(patch()).map(Route::Update))
        .unify()
        .or(id().and(delete()).map(Route::Delete))
        .unify()
        .boxed()
        .or(path!("subscriptions" / String / String)
            .and(post())
            .and_then(|id: String, action: String| async move {
                match action.as_str() {
                    "pause" => Ok(Route::Pause(id)),
                    "resume" => Ok(Route::Resume(id)),
                    "rotate-secret" => Ok(Route::Rotate(id)),
                    "replay" => Ok(Route::Replay(id)),
                    _ => Err(warp::reject::not_found()),
                }
            }))
        .unify()
        .or(path!("subscriptions" / String / String)
            .and(get())
            .and_then(|id: String, what: String| async move {
                match what.as_str() {
                    "dead-letters" => Ok(Route::DeadLetters(id)),
                    "attempts" => Ok(Route::Attempts(id)),
                    _ => Err(warp::reject::not_found()),
                }
            }))
        .unify()
        .or(
            path!("subscriptions" / String / "dead-letters" / "redeliver")
                .and(post())
                .map(Route::Redeliver),
        )
        .unify()
        .boxed();
    let handled = ops
        .and(with_scope(state.clone(), Scope::Admin))
        .and(optional_header::<u64>("content-length"))
        .and(
            warp::query::<Query>()
                .or_else(|_| async { Ok::<_, std::convert::Infallible>((Query::new(),)) }),
        )
        .and(warp::body::stream())
        .and(with_state(state))
        .then(
            |route: Route, _: Principal, clen: Option<u64>, q: Query, body, st: Shared| async move {
                reply(handle(st, route, clen, q, body).await)
            },
        );
    let others = path!("subscriptions")
        .and(other_methods("GET, POST"))
        .or(id().and(other_methods("GET, PATCH, DELETE")).map(|_, r| r))
        .unify()
        .or(path!("subscriptions" / String / String)
            .and(warp::method())
            .and_then(|_: String, last: String, method: Method| async move {
                match last.as_str() {
                    "pause" | "resume" | "rotate-secret" | "replay" => {
                        refuse_method("POST", &method)
                    }
                    "dead-letters" | "attempts" => refuse_method("GET", &method),
                    _ => Err(warp::reject::not_found()),
                }
            }))
        .unify()
        .or(
            path!("subscriptions" / String / "dead-letters" / "redeliver")
                .and(other_methods("POST"))
                .map(|_, r| r),
        )
        .unify();
    handled.or(others).unify().boxed()
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

fn ok(v: Value) -> Result<Response, Problem> {
    Ok(json_response(StatusCode::OK, v.to_string()))
}

async fn handle(
    st: Shared,
    route: Route,
    content_length: Option<u64>,
    query: Query,
    body: impl futures_util::Stream<Item = Result<impl bytes::Buf, warp::Error>> + Unpin,
) -> Result<Response, Problem> {
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
    let error = FieldError { pointer, message };
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
        "The subscription request is not acceptable",
        error.to_string(),
    )
    .with_errors(vec![error])
}

/// The only place webhook errors become problem details.
fn problem(e: WebhookError) -> Problem {
    match e {
        WebhookError::NotFound(_) => Problem::not_found(e.to_string()),
        // The route exists and so does the subscription: a `seq` naming no dead letter is a
        // refused body field, not a missing resource.
        WebhookError::NoDeadLetter { .. } => invalid_problem("/seq".into(), e.to_string()),
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
