//! Where server and document used to disagree (found by schemathesis): a malformed `type`
//! filter, a live feed's malformed `from` hidden by `Last-Event-ID`, `min_seq` beyond the head,
//! and the proof routes' lower bounds. Each is now what `/openapi.json` says.

use serde_json::Value;

use crate::helpers::*;

async fn problem(resp: reqwest::Response, status: u16, what: &str) -> Value {
    assert_eq!(resp.status(), status, "{what}");
    assert_eq!(
        resp.headers()["content-type"],
        "application/problem+json",
        "{what}"
    );
    resp.json().await.unwrap()
}

#[tokio::test]
async fn a_type_filter_the_document_does_not_allow_is_a_400_naming_type() {
    let app = spawn_app().await;
    app.seed().await;
    for bad in [
        "0.5",
        "Meeting.held",
        "meeting?",
        "a,,b",
        "meeting held",
        "",
    ] {
        let q = bad.replace(' ', "%20");
        for path in [
            format!("/events?type={q}"),
            format!("/events/live?from=1&type={q}"),
        ] {
            let p = problem(app.get(&path).await, 400, &path).await;
            assert_eq!(p["errors"][0]["pointer"], "?type", "{path}");
        }
    }
    for good in [
        "source.registered",
        "source.*",
        "*",
        "meeting.held,source.*",
        "*.registered",
    ] {
        let v = app.get_json(&format!("/events?type={good}")).await;
        assert!(v["events"].is_array(), "{good}");
    }
}

#[tokio::test]
async fn a_malformed_from_on_the_live_feed_is_a_400_even_with_last_event_id() {
    let app = spawn_app().await;
    app.seed().await;
    let resp = app
        .client
        .get(app.url("/events/live?from=null"))
        .bearer_auth(&app.keys.read)
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    let p = problem(resp, 400, "from=null with Last-Event-ID").await;
    assert_eq!(p["errors"][0]["pointer"], "?from");
}

#[tokio::test]
async fn min_seq_beyond_the_head_is_a_422_naming_min_seq_and_the_head() {
    let app = spawn_app().await;
    app.seed().await;
    let (head, _) = app.head().await;
    for path in [
        "/projections",
        "/projections/calendar",
        "/projections/actors/actor:nobody",
    ] {
        let url = format!("{path}?min_seq={}", head + 1);
        let p = problem(app.get(&url).await, 422, &url).await;
        assert_eq!(p["min_seq"], head + 1, "{url}");
        assert_eq!(p["head"], head, "{url}");
        assert_eq!(p["errors"][0]["pointer"], "?min_seq", "{url}");
    }
    // The head itself is written: the projections answer once they have it.
    let v = app.get_json(&format!("/projections?min_seq={head}")).await;
    assert!(v["as_of_seq"].as_u64().unwrap() >= head);
}

/// The `minimum` the document gives a query parameter of an operation.
fn minimum(doc: &Value, path: &str, name: &str) -> u64 {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["schema"]["minimum"].as_u64())
        .unwrap_or_else(|| panic!("{path} ?{name} states no minimum"))
}

#[tokio::test]
async fn the_proof_routes_accept_their_documented_minimum_and_refuse_below_it() {
    let app = spawn_app().await;
    app.seed().await;
    let doc: Value = app.get_json("/openapi.json").await;
    // Each case: the path, the parameter, the other parameters that make the request valid.
    let cases = [
        ("/audit/root", "size", ""),
        ("/audit/proof/inclusion", "seq", "&size=1"),
        ("/audit/proof/inclusion", "size", "&seq=1"),
        ("/audit/proof/consistency", "from", "&to=1"),
        ("/audit/proof/consistency", "to", "&from=1"),
        ("/audit/replay", "from", "&to=1"),
        ("/audit/replay", "to", "&from=1"),
    ];
    for (path, name, rest) in cases {
        let min = minimum(&doc, path, name);
        let ok = format!("{path}?{name}={min}{rest}");
        assert_eq!(app.get(&ok).await.status(), 200, "{ok}");
        if min > 0 {
            let below = format!("{path}?{name}={}{rest}", min - 1);
            let status = app.get(&below).await.status();
            assert!(status == 400 || status == 422, "{below}: {status}");
        }
    }
}

#[tokio::test]
async fn redelivering_a_seq_with_no_dead_letter_is_a_422_naming_seq_not_a_404() {
    let app = spawn_app_with(|c| {
        c.with(serde_json::json!({"webhooks": {"allow_private_targets": true}}))
            .unwrap()
    })
    .await;
    let resp = app
        .client
        .post(app.url("/subscriptions"))
        .bearer_auth(&app.keys.admin)
        .json(&serde_json::json!({"url": "http://127.0.0.1:9/annals"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = app
        .client
        .post(app.url(&format!("/subscriptions/{id}/dead-letters/redeliver")))
        .bearer_auth(&app.keys.admin)
        .json(&serde_json::json!({"seq": 7}))
        .send()
        .await
        .unwrap();
    let p = problem(resp, 422, "redeliver seq 7").await;
    assert_eq!(p["errors"][0]["pointer"], "/seq");
}
