//! Service routes: health, head, metrics, the OpenAPI document and the schemas. They must never
//! require a key for what a client needs before it has one (health, OpenAPI, schemas).

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth::with_scope;
use super::problem::Problem;
use super::{Shared, json_response, other_methods, with_state};
use crate::keys::{Principal, Scope};

/// Health, head, metrics, the OpenAPI document and the schemas (all GET only).
pub fn routes(state: Shared) -> BoxedFilter<(Response,)> {
    let health = warp::path!("healthz")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|st: Shared| health(&st))
        .or(warp::path!("healthz").and(other_methods("GET")))
        .unify();
    let head = warp::path!("log")
        .and(warp::get())
        .and(with_scope(state.clone(), Scope::Read))
        .and(with_state(state.clone()))
        .map(|_: Principal, st: Shared| head(&st))
        .or(warp::path!("log").and(other_methods("GET")))
        .unify();
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_scope(state.clone(), Scope::Read))
        .and(with_state(state.clone()))
        .map(|_: Principal, st: Shared| metrics(&st))
        .or(warp::path!("metrics").and(other_methods("GET")))
        .unify();
    let openapi = warp::path!("openapi.json")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|st: Shared| openapi(&st))
        .or(warp::path!("openapi.json").and(other_methods("GET")))
        .unify();
    let schema_list = warp::path!("schemas")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|st: Shared| schema_list(&st))
        .or(warp::path!("schemas").and(other_methods("GET")))
        .unify();
    let schema_one = warp::path!("schemas" / String)
        .and(warp::get())
        .and(with_state(state))
        .map(|name: String, st: Shared| schema(&st, &name))
        .or(warp::path!("schemas" / String)
            .and(other_methods("GET"))
            .map(|_, r| r))
        .unify();
    health
        .or(head)
        .unify()
        .or(metrics)
        .unify()
        .boxed()
        .or(openapi)
        .unify()
        .or(schema_list)
        .unify()
        .or(schema_one)
        .unify()
        .boxed()
}

/// `GET /healthz`: 200 once appends are accepted, 503 if the writer has failed.
fn health(st: &Shared) -> Response {
    if st.log.is_failed() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "failed", "detail": "the log writer failed; restart the server"})
                .to_string(),
        );
    }
    json_response(
        StatusCode::OK,
        json!({"status": "ok", "seq": st.log.head().seq}).to_string(),
    )
}

/// `GET /log`: the durable head.
fn head(st: &Shared) -> Response {
    let h = st.log.head();
    json_response(
        StatusCode::OK,
        json!({"seq": h.seq, "hash": hex::encode(h.hash)}).to_string(),
    )
}

/// `GET /metrics`: Prometheus text.
fn metrics(st: &Shared) -> Response {
    let mut resp = Response::new(st.metrics.render().into());
    resp.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

/// `GET /openapi.json`: the document with the schemas it refers to embedded, bundled once
/// per schema set (the vocabularies it embeds are the server's, with its additions).
fn openapi(st: &Shared) -> Response {
    let bundled = st.validator.schemas().served_openapi(|schemas| {
        schemas
            .document("openapi")
            .map(|doc| super::openapi::bundle(doc, |name| schemas.document(name)).to_string())
    });
    match bundled {
        Some(doc) => json_response(StatusCode::OK, doc.to_string()),
        None => Problem::not_found("no OpenAPI document was built in").into_response(),
    }
}

/// `GET /schemas`: the names of every schema.
fn schema_list(st: &Shared) -> Response {
    let names: Vec<&str> = st
        .validator
        .schemas()
        .names()
        .filter(|n| *n != "openapi")
        .collect();
    json_response(StatusCode::OK, json!({"schemas": names}).to_string())
}

/// `GET /schemas/{name}`: one schema, by event type or by name.
fn schema(st: &Shared, name: &str) -> Response {
    let name = name.strip_suffix(".json").unwrap_or(name);
    match st.validator.schemas().document(name) {
        Some(doc) if name != "openapi" => json_response(StatusCode::OK, doc.to_string()),
        _ => Problem::not_found(format!("no schema named `{name}`; see /schemas")).into_response(),
    }
}
