//! The OpenAPI document and the server agree: every documented operation is routed and answers
//! a documented status, every route of the contract is documented with the scope it enforces,
//! and every schema the document or the event types refer to is served.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// The contract's routes: (method, OpenAPI path template, scope or None for public).
const CONTRACT_ROUTES: &[(&str, &str, Option<&str>)] = &[
    ("post", "/streams/{stream}/events", Some("append")),
    ("get", "/streams/{stream}/events", Some("read")),
    ("get", "/streams", Some("read")),
    ("get", "/events", Some("read")),
    ("get", "/events/{id}", Some("read")),
    ("get", "/events/live", Some("read")),
    ("get", "/log", Some("read")),
    ("get", "/healthz", None),
    ("get", "/metrics", Some("read")),
    ("get", "/openapi.json", None),
    ("get", "/schemas", None),
    ("get", "/schemas/{name}", None),
    ("get", "/export", Some("read")),
];

/// The 21 event types of the contract.
const EVENT_TYPES: &[&str] = &[
    "actor.registered",
    "issue.defined",
    "source.registered",
    "source.assessed",
    "meeting.held",
    "statement.made",
    "position.stated",
    "plan.proposed",
    "plan.revised",
    "talks.scheduled",
    "talks.status_changed",
    "organisation.founded",
    "issue.status_changed",
    "agreement.reached",
    "event.corrected",
    "event.retracted",
    "source.corrected",
    "source.withdrawn",
    "actor.updated",
    "issue.updated",
    "source.updated",
];

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// GET /openapi.json without a key.
async fn document(app: &TestApp) -> Value {
    let resp = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Every (method, path template, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            if HTTP_METHODS.contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// A seeded app and an existing event id.
async fn seeded() -> (TestApp, String) {
    let app = spawn_app().await;
    app.seed().await;
    let first = app.get_json("/events?limit=1").await;
    let id = first["events"][0]["id"].as_str().unwrap().to_string();
    (app, id)
}

/// A path template with real values: an existing stream and event, a served schema.
fn concrete(template: &str, id: &str) -> String {
    let path = template
        .replace("{stream}", &encode("registry/sources"))
        .replace("{id}", id)
        .replace("{name}", "meeting.held");
    // Parameters of later resources (subscriptions, projections...) get a placeholder: those
    // routes are checked for being routed, not for succeeding.
    let mut out = String::new();
    let mut rest = path.as_str();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                out.push('x');
                rest = &rest[open + close + 1..];
            }
            None => panic!("unbalanced path parameter in {template}"),
        }
    }
    out.push_str(rest);
    out
}

/// Sends an operation with the admin key; a POST carries a valid event.
async fn call(app: &TestApp, method: &str, path: &str) -> reqwest::Response {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    let post = method == Method::POST;
    let mut req = app
        .client
        .request(method, app.url(path))
        .bearer_auth(&app.keys.admin);
    if post {
        req = req.json(&statement(1));
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_openapi_document_is_served_publicly_as_openapi_3_1_json() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value = resp.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    assert!(doc["info"]["version"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_answers_a_documented_success() {
    let (app, id) = seeded().await;
    let doc = document(&app).await;
    let ops = operations(&doc);
    assert!(
        ops.len() >= CONTRACT_ROUTES.len(),
        "{} operations",
        ops.len()
    );
    let contract: BTreeSet<(String, String)> = CONTRACT_ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    for (method, template, op) in ops {
        let path = concrete(&template, &id);
        let resp = call(&app, &method, &path).await;
        let status = resp.status();
        if !contract.contains(&(method.clone(), template.clone())) {
            // A route of a later resource: it must exist (its own tests check what it does).
            let text = resp.text().await.unwrap();
            assert!(
                status != 405 && !(status == 404 && text.contains("no such route")),
                "{method} {path} is documented but not routed: {status} {text}"
            );
            continue;
        }
        let documented: BTreeSet<String> = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {template} has no responses"))
            .keys()
            .cloned()
            .collect();
        let text = if template == "/events/live" {
            String::new() // never ends; the status is enough
        } else {
            resp.text().await.unwrap()
        };
        assert!(
            status != 404 && status != 405,
            "{method} {path} is documented but not routed: {status} {text}"
        );
        assert!(
            status.is_success(),
            "{method} {path} with the admin key and real values: {status} {text}"
        );
        assert!(
            documented.contains(status.as_str()),
            "{method} {template} answered {status}, documented {documented:?}"
        );
    }
}

#[tokio::test]
async fn every_contract_route_is_in_the_document_with_the_scope_it_enforces() {
    let (app, id) = seeded().await;
    let doc = document(&app).await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    for (method, template, scope) in CONTRACT_ROUTES {
        assert!(
            documented.contains(&(method.to_string(), template.to_string())),
            "{method} {template} is missing from /openapi.json"
        );
        let op = &doc["paths"][template][method];
        match scope {
            Some(scope) => {
                assert_eq!(op["x-required-scope"], *scope, "{method} {template}");
                assert_eq!(
                    op["security"],
                    json!([{"bearer": [scope]}]),
                    "{method} {template}"
                );
            }
            None => {
                assert_eq!(op["x-required-scope"], Value::Null, "{method} {template}");
                assert_eq!(op["security"], json!([]), "{method} {template}");
            }
        }
        // What the document says is what the server does without a key.
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let resp = app
            .client
            .request(method.clone(), app.url(&concrete(template, &id)))
            .send()
            .await
            .unwrap();
        let expected = if scope.is_some() { 401 } else { 200 };
        assert_eq!(resp.status(), expected, "{method} {template} without a key");
        if scope.is_some() {
            assert!(
                doc["paths"][template][method.as_str().to_ascii_lowercase()]["responses"]
                    .get("401")
                    .is_some(),
                "{method} {template} does not document its 401"
            );
        }
    }
}

#[tokio::test]
async fn methods_the_document_does_not_list_are_refused_on_documented_paths() {
    let (app, id) = seeded().await;
    let doc = document(&app).await;
    let head = app.head().await;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path = concrete(template, &id);
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                continue;
            }
            let resp = call(&app, method, &path).await;
            assert_eq!(resp.status(), 405, "{method} {template}");
            assert_eq!(resp.headers()["content-type"], "application/problem+json");
            // RFC 9110: a 405 names the methods the path supports, as the document lists them.
            let allow: BTreeSet<String> = resp
                .headers()
                .get("allow")
                .unwrap_or_else(|| panic!("{method} {template}: 405 without Allow"))
                .to_str()
                .unwrap()
                .split(',')
                .map(|m| m.trim().to_ascii_lowercase())
                .collect();
            let documented: BTreeSet<String> = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| HTTP_METHODS.contains(&k.as_str()))
                .cloned()
                .collect();
            assert_eq!(allow, documented, "{method} {template}");
        }
    }
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn every_event_type_has_a_schema_served_at_schemas_slash_type() {
    let app = spawn_app().await;
    let get = |path: String| {
        let app = &app;
        async move {
            let resp = app.client.get(app.url(&path)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            resp.json::<Value>().await.unwrap()
        }
    };
    // The type enum as event.json refers to it.
    let event = get("/schemas/event".into()).await;
    assert_eq!(
        event["properties"]["type"]["$ref"],
        "https://annals.dev/schemas/common.json#/$defs/event_type"
    );
    let common = get("/schemas/common".into()).await;
    let types: BTreeSet<String> = common["$defs"]["event_type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let contract: BTreeSet<String> = EVENT_TYPES.iter().map(|t| t.to_string()).collect();
    assert_eq!(types, contract);

    let list = get("/schemas".into()).await;
    let listed: BTreeSet<String> = list["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    for t in &types {
        assert!(listed.contains(t), "/schemas does not list {t}");
        let schema = get(format!("/schemas/{t}")).await;
        assert_eq!(
            schema["$id"],
            format!("https://annals.dev/schemas/events/{t}.json"),
            "{t}"
        );
        assert_eq!(schema["type"], "object", "{t}");
        assert!(
            schema["required"].as_array().is_some_and(|r| !r.is_empty()),
            "{t}"
        );
        // The `.json` spelling is the same document.
        assert_eq!(get(format!("/schemas/{t}.json")).await, schema, "{t}");
    }
    for name in [
        "envelope",
        "event",
        "common",
        "append-request",
        "vocabularies",
        "version-1",
    ] {
        assert!(listed.contains(name), "/schemas does not list {name}");
    }
    // Nothing else is listed, and everything listed is served.
    let mut expected = types.clone();
    expected.extend(
        [
            "envelope",
            "event",
            "common",
            "append-request",
            "vocabularies",
            "version-1",
        ]
        .map(String::from),
    );
    assert_eq!(listed, expected);
    assert!(!listed.contains("openapi"));
    for name in &listed {
        get(format!("/schemas/{name}")).await;
    }
    // An unknown name is a 404 problem.
    let resp = app
        .client
        .get(app.url("/schemas/meeting.cancelled"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let resp = app
        .client
        .get(app.url("/schemas/openapi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// Every `$ref` string anywhere in `v`.
fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref"
                    && let Some(s) = child.as_str()
                {
                    out.insert(s.to_string());
                }
                refs(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

/// Resolves a JSON pointer fragment (`/a/b`) inside `doc`.
fn resolve<'a>(doc: &'a Value, fragment: &str) -> Option<&'a Value> {
    if fragment.is_empty() {
        return Some(doc);
    }
    doc.pointer(fragment)
}

/// Puts the references of an embedded copy back as the served schema `id` spells them: its
/// own `#/components/schemas/schema.{self}/x` as `#/x`, another's as that schema's `$id`.
fn unbundle(v: &mut Value, me: &str, ids: &std::collections::BTreeMap<String, String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "$ref"
                    && let Value::String(r) = child
                    && let Some(rest) = r.strip_prefix("#/components/schemas/schema.")
                {
                    let (name, fragment) = rest.split_once('/').unwrap_or((rest, ""));
                    let fragment = if fragment.is_empty() {
                        String::new()
                    } else {
                        format!("#/{fragment}")
                    };
                    *r = if name == me {
                        fragment
                    } else {
                        format!("{}{fragment}", ids[name])
                    };
                } else {
                    unbundle(child, me, ids);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| unbundle(i, me, ids)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_resolves_on_its_own_with_the_served_schemas_embedded_unchanged() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut all = BTreeSet::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    // Every reference is inside the document: a tool that cannot fetch annals.dev sees it all.
    for r in &all {
        let fragment = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{r} points outside the document"));
        assert!(resolve(&doc, fragment).is_some(), "{r} does not resolve");
    }
    // The append body and the envelope are among what is embedded.
    for name in ["event", "envelope", "common"] {
        assert!(
            doc["components"]["schemas"][format!("schema.{name}")].is_object(),
            "schema.{name} is not embedded"
        );
    }
    // Each embedded copy is the schema `/schemas/{name}` serves (from `schemas/`, the single
    // source), but for its `$id` and where its references point.
    let list: Value = app
        .client
        .get(app.url("/schemas"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut served = std::collections::BTreeMap::new();
    let mut ids = std::collections::BTreeMap::new();
    for name in list["schemas"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        let schema: Value = app
            .client
            .get(app.url(&format!("/schemas/{name}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert(
            name.to_string(),
            schema["$id"].as_str().unwrap().to_string(),
        );
        served.insert(name.to_string(), schema);
    }
    let mut embedded = 0;
    for (key, copy) in doc["components"]["schemas"].as_object().unwrap() {
        let Some(name) = key.strip_prefix("schema.") else {
            continue;
        };
        let mut copy = copy.clone();
        unbundle(&mut copy, name, &ids);
        let mut original = served[name].clone();
        let obj = original.as_object_mut().unwrap();
        obj.remove("$id");
        obj.remove("$schema");
        assert_eq!(copy, original, "schema.{name} differs from /schemas/{name}");
        embedded += 1;
    }
    assert!(embedded >= 3);
}
