//! Bearer keys and scopes on every route of the contract: 401 with a Bearer challenge without a
//! usable key, 403 naming the scope for a key without it, admin everywhere, public routes open,
//! `recorded_by` from the key, and no key ever echoed back.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const PROBLEM_JSON: &str = "application/problem+json";

/// One protected route of the contract, with real path parameters.
struct Route {
    method: Method,
    path: String,
    scope: &'static str,
}

impl Route {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Every protected route of the contract over a seeded app (a stream and an event exist).
async fn protected_routes(app: &TestApp) -> Vec<Route> {
    let first = app.get_json("/events?limit=1").await;
    let id = first["events"][0]["id"].as_str().unwrap().to_string();
    let route = |method: Method, path: String, scope| Route {
        method,
        path,
        scope,
    };
    vec![
        route(Method::POST, "/streams/process%2Fp/events".into(), "append"),
        route(
            Method::GET,
            "/streams/registry%2Fsources/events".into(),
            "read",
        ),
        route(Method::GET, "/streams".into(), "read"),
        route(Method::GET, "/events".into(), "read"),
        route(Method::GET, format!("/events/{id}"), "read"),
        route(Method::GET, "/events/live?from=1".into(), "read"),
        route(Method::GET, "/log".into(), "read"),
        route(Method::GET, "/metrics".into(), "read"),
        route(Method::GET, "/export".into(), "read"),
    ]
}

/// Sends `route` with an `Authorization` header value (or none); appends carry a valid event.
async fn send(app: &TestApp, route: &Route, authorization: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .request(route.method.clone(), app.url(&route.path));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    if route.method == Method::POST {
        req = req.json(&statement(next_n()));
    }
    req.send().await.unwrap()
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

fn next_n() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Asserts a problem of `status` and `slug`; returns (headers, body).
async fn problem(
    resp: reqwest::Response,
    status: u16,
    slug: &str,
    what: &str,
) -> (reqwest::header::HeaderMap, Value) {
    let got = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "{what}: {text}");
    assert_eq!(
        headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some(PROBLEM_JSON),
        "{what}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["type"],
        format!("https://annals.dev/problems/{slug}"),
        "{what}: {text}"
    );
    assert_eq!(body["status"], status, "{what}: {text}");
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()));
    (headers, body)
}

async fn seeded() -> TestApp {
    let app = spawn_app().await;
    app.seed().await;
    app
}

fn assert_bearer_challenge(headers: &reqwest::header::HeaderMap, what: &str) {
    let challenge = headers
        .get("www-authenticate")
        .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"))
        .to_str()
        .unwrap();
    assert!(
        challenge.to_ascii_lowercase().starts_with("bearer"),
        "{what}: {challenge}"
    );
}

#[tokio::test]
async fn every_protected_route_without_a_key_is_a_401_problem_with_a_bearer_challenge() {
    let app = seeded().await;
    let head = app.head().await;
    for route in protected_routes(&app).await {
        let what = route.name();
        let (headers, _) =
            problem(send(&app, &route, None).await, 401, "unauthorized", &what).await;
        assert_bearer_challenge(&headers, &what);
    }
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn every_protected_route_with_an_unknown_or_malformed_key_is_a_401_problem() {
    let app = seeded().await;
    let head = app.head().await;
    let unknown = keys_generate();
    let credentials = [
        bearer(&unknown),
        bearer(&format!("{}x", app.keys.admin)),
        "Bearer ".to_string(),
        format!("Basic {}", app.keys.admin),
        app.keys.admin.clone(),
        "Bearer".to_string(),
    ];
    for route in protected_routes(&app).await {
        for credential in &credentials {
            let what = format!("{} with {credential:?}", route.name());
            let resp = send(&app, &route, Some(credential)).await;
            let (headers, _) = problem(resp, 401, "unauthorized", &what).await;
            assert_bearer_challenge(&headers, &what);
        }
    }
    assert_eq!(app.head().await, head);
}

/// A well-formed key that no server knows.
fn keys_generate() -> String {
    annals::keys::generate().key
}

#[tokio::test]
async fn a_key_lacking_the_scope_is_a_403_problem_naming_the_scope() {
    let app = seeded().await;
    let head = app.head().await;
    for route in protected_routes(&app).await {
        // The key of the other role.
        let key = if route.scope == "append" {
            &app.keys.read
        } else {
            &app.keys.append
        };
        let what = route.name();
        let (headers, body) = problem(
            send(&app, &route, Some(&bearer(key))).await,
            403,
            "forbidden",
            &what,
        )
        .await;
        assert_eq!(body["required_scope"], route.scope, "{what}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("`{}`", route.scope)),
            "{what}: {detail}"
        );
        assert!(headers.get("www-authenticate").is_none(), "{what}");
    }
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn the_admin_key_is_accepted_on_every_protected_route() {
    let app = seeded().await;
    for route in protected_routes(&app).await {
        let resp = send(&app, &route, Some(&bearer(&app.keys.admin))).await;
        let expected = if route.method == Method::POST {
            201
        } else {
            200
        };
        assert_eq!(resp.status(), expected, "{}", route.name());
    }
    assert_eq!(
        app.head().await.0,
        6,
        "the seed's five records and one append"
    );
}

#[tokio::test]
async fn each_scope_is_accepted_where_it_is_needed() {
    let app = seeded().await;
    for route in protected_routes(&app).await {
        let key = if route.scope == "append" {
            &app.keys.append
        } else {
            &app.keys.read
        };
        let resp = send(&app, &route, Some(&bearer(key))).await;
        let expected = if route.method == Method::POST {
            201
        } else {
            200
        };
        assert_eq!(resp.status(), expected, "{}", route.name());
    }
    // The scheme name is case-insensitive in practice: lower case works too.
    let resp = app
        .client
        .get(app.url("/log"))
        .header("authorization", format!("bearer {}", app.keys.read))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn public_routes_answer_200_without_a_key_and_with_an_unknown_one() {
    let app = seeded().await;
    let unknown = bearer(&keys_generate());
    for path in [
        "/healthz",
        "/openapi.json",
        "/schemas",
        "/schemas/meeting.held",
    ] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert!(body.is_object(), "{path}");
        let resp = app
            .client
            .get(app.url(path))
            .header("authorization", &unknown)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path} with an unknown key");
    }
}

#[tokio::test]
async fn recorded_by_is_the_principal_of_the_key_used_to_append() {
    let app = seeded().await;
    let mut ids = Vec::new();
    for (key, principal) in [
        (&app.keys.append, "test-desk"),
        (&app.keys.admin, "test-admin"),
    ] {
        let resp = app
            .append_with("process/p", &statement(next_n()), key)
            .await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        let id = body["events"][0]["id"].as_str().unwrap().to_string();
        let env = app.get_json(&format!("/events/{id}")).await;
        assert_eq!(env["recorded_by"], principal);
        ids.push(id);
    }
    // A principal cannot be claimed in the body.
    let mut ev = statement(next_n());
    ev["recorded_by"] = json!("test-admin");
    let resp = app.append("process/p", &ev).await;
    assert_eq!(resp.status(), 422);
    // The seed was made with the append key.
    let first = app.get_json("/events?limit=1").await;
    assert_eq!(first["events"][0]["recorded_by"], "test-desk");
}

/// Everything a response says: status line, headers and (for finite bodies) the body.
async fn everything(resp: reqwest::Response, streaming: bool) -> String {
    let mut out = format!("{}\n", resp.status());
    for (name, value) in resp.headers() {
        out.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    if streaming && resp.status() == 200 {
        // The live feed never ends; its first chunk carries the catch-up records.
        let mut resp = resp;
        if let Some(chunk) = resp.chunk().await.unwrap() {
            out.push_str(&String::from_utf8_lossy(&chunk));
        }
    } else {
        out.push_str(&resp.text().await.unwrap());
    }
    out
}

#[tokio::test]
async fn no_response_ever_contains_a_key() {
    let app = seeded().await;
    let unknown = keys_generate();
    let secrets = [
        app.keys.admin.clone(),
        app.keys.append.clone(),
        app.keys.read.clone(),
        unknown.clone(),
    ];
    let mut credentials: Vec<Option<String>> = vec![None];
    for key in &secrets {
        credentials.push(Some(bearer(key)));
        credentials.push(Some(format!("Basic {key}")));
        credentials.push(Some(key.clone()));
    }
    let mut routes = protected_routes(&app).await;
    for path in [
        "/healthz",
        "/openapi.json",
        "/schemas",
        "/schemas/meeting.held",
    ] {
        routes.push(Route {
            method: Method::GET,
            path: path.into(),
            scope: "public",
        });
    }
    // Error paths that echo input.
    routes.push(Route {
        method: Method::GET,
        path: "/events/not-an-id".into(),
        scope: "read",
    });
    routes.push(Route {
        method: Method::DELETE,
        path: "/log".into(),
        scope: "read",
    });
    let mut seen = 0;
    for route in &routes {
        for credential in &credentials {
            let resp = send(&app, route, credential.as_deref()).await;
            let text = everything(resp, route.path.starts_with("/events/live")).await;
            for secret in &secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "{} with {credential:?} echoed a key:\n{text}",
                    route.name()
                );
            }
            seen += 1;
        }
    }
    assert_eq!(seen, routes.len() * credentials.len());
    // Nor does what the log recorded.
    let all = app.get("/events?limit=1000").await.text().await.unwrap();
    for secret in &secrets {
        assert!(!all.contains(secret.as_str()));
    }
}
