//! Service routes: health, head, metrics, the OpenAPI document and the schemas. They must never
//! require a key for what a client needs before it has one (health, OpenAPI, schemas).

use serde_json::json;
use warp::Reply;
use warp::http::StatusCode;
use warp::reply::Response;

use super::problem::Problem;
use super::{Shared, json_response};
use crate::keys::Scope;

/// `GET /healthz`: 200 once appends are accepted, 503 if the writer has failed.
pub fn health(st: &Shared) -> Response {
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
pub fn head(st: &Shared, auth: Option<&str>) -> Response {
    if let Err(p) = st.auth.require(auth, Scope::Read) {
        return p.into_response();
    }
    let h = st.log.head();
    json_response(
        StatusCode::OK,
        json!({"seq": h.seq, "hash": hex::encode(h.hash)}).to_string(),
    )
}

/// `GET /metrics`: Prometheus text.
pub fn metrics(st: &Shared, auth: Option<&str>) -> Response {
    if let Err(p) = st.auth.require(auth, Scope::Read) {
        return p.into_response();
    }
    let mut resp = Response::new(st.metrics.render().into());
    resp.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

/// `GET /openapi.json`.
pub fn openapi(st: &Shared) -> Response {
    match st.validator.schemas().document("openapi") {
        Some(doc) => json_response(StatusCode::OK, doc.to_string()),
        None => Problem::not_found("no OpenAPI document was built in").into_response(),
    }
}

/// `GET /schemas`: the names of every schema.
pub fn schema_list(st: &Shared) -> Response {
    let names: Vec<&str> = st
        .validator
        .schemas()
        .names()
        .filter(|n| *n != "openapi")
        .collect();
    json_response(StatusCode::OK, json!({"schemas": names}).to_string())
}

/// `GET /schemas/{name}`: one schema, by event type or by name.
pub fn schema(st: &Shared, name: &str) -> Response {
    let name = name.strip_suffix(".json").unwrap_or(name);
    match st.validator.schemas().document(name) {
        Some(doc) if name != "openapi" => json_response(StatusCode::OK, doc.to_string()),
        _ => Problem::not_found(format!("no schema named `{name}`; see /schemas")).into_response(),
    }
}
