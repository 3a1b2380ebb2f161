//! The actor view's per-actor time indexes stay within `[projections] actor_index_bytes`
//! (issue 13: every cache has a configured bound), through the real server: their size is on
//! `/metrics`, the ones asked for least recently are dropped past the bound, and a dropped or
//! never-kept index answers exactly as a kept one.

use serde_json::{Value, json};

use super::compact::metric;
use super::view;
use crate::helpers::*;

const ACTORS: usize = 6;
const FACTS_EACH: u64 = 20;
const GAUGE: &str = "annals_projection_actor_index_bytes";

fn actor(i: usize) -> String {
    format!("actor:indexed-{i}")
}

/// A server with `bound` bytes for the actor indexes, holding `FACTS_EACH` statements by each
/// of the `ACTORS` actors; answers it and the head.
async fn server(bound: usize) -> (TestApp, u64) {
    let app = spawn_app_with(|mut c| {
        c.projections.actor_index_bytes = bound;
        c
    })
    .await;
    app.seed().await;
    let ids: Vec<String> = (0..ACTORS).map(actor).collect();
    register_all(&app, &ids.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let events: Vec<Value> = (0..ACTORS as u64 * FACTS_EACH)
        .map(|n| {
            let mut s = statement(n);
            s["data"]["speaker"] = json!(actor((n % ACTORS as u64) as usize));
            s["occurred"]["start"] = json!(format!("2026-01-{:02}", 1 + (n * 7) % 28));
            s
        })
        .collect();
    for events in events.chunks(60) {
        let resp = app
            .append("process/ru-ua-peace", &json!({ "events": events }))
            .await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }
    let head = app.head().await.0;
    (app, head)
}

async fn held(app: &TestApp) -> f64 {
    metric(&app.get("/metrics").await.text().await.unwrap(), GAUGE)
}

async fn page(app: &TestApp, i: usize, head: u64) -> Value {
    view(
        app,
        &format!("/projections/actors/{}?limit=5", actor(i)),
        head,
    )
    .await
}

/// A page without its events' ids (minted by each server).
fn without_ids(page: &Value) -> Value {
    let mut page = page.clone();
    for e in page["events"].as_array_mut().unwrap() {
        e.as_object_mut().unwrap().remove("event_id");
    }
    page
}

#[tokio::test]
async fn actor_indexes_never_hold_more_than_actor_index_bytes_and_a_dropped_one_answers_the_same() {
    const BOUND: usize = 1000;
    let (app, head) = server(BOUND).await;
    let mut first = Vec::new();
    for i in 0..ACTORS {
        let p = page(&app, i, head).await;
        assert_eq!(p["total_events"], FACTS_EACH, "{p}");
        first.push(p);
        let bytes = held(&app).await;
        assert!(
            bytes > 0.0 && bytes <= BOUND as f64,
            "after {} actors: {bytes} bytes held, bound {BOUND}",
            i + 1
        );
    }
    // The first actors' indexes were dropped to make room; asked again, they are rebuilt and
    // answer as before.
    for (i, before) in first.iter().enumerate() {
        assert_eq!(&page(&app, i, head).await, before, "{}", actor(i));
        assert!(held(&app).await <= BOUND as f64);
    }

    // With the shipped bound, the same views (but for the server-minted event ids) keep
    // every index: more than the small bound.
    let (roomy, head) = server(32 << 20).await;
    for (i, before) in first.iter().enumerate() {
        let page = page(&roomy, i, head).await;
        assert_eq!(without_ids(&page), without_ids(before), "{}", actor(i));
    }
    assert!(held(&roomy).await > BOUND as f64, "{}", held(&roomy).await);
}

#[tokio::test]
async fn an_actor_index_larger_than_the_bound_is_built_for_the_request_and_never_kept() {
    let (app, head) = server(100).await;
    let p = page(&app, 0, head).await;
    assert_eq!(p["total_events"], FACTS_EACH, "{p}");
    assert_eq!(p["events"].as_array().unwrap().len(), 5, "{p}");
    assert_eq!(held(&app).await, 0.0);
}
