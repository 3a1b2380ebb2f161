//! The writer's memory of registry lookups stays within `[log] known_ids` (issue 13: every
//! cache has a configured bound), through the real server: its size is on `/metrics`.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::projections::compact::metric;

const IDS: usize = 20;

/// Ids the writer remembers after `IDS` registered actors are each named by a statement, with
/// `known_ids` set to `bound`.
async fn remembered_with(bound: usize) -> f64 {
    let app = spawn_app_with(|mut c| {
        c.log.known_ids = bound;
        c
    })
    .await;
    app.seed().await;
    let ids: Vec<String> = (0..IDS).map(|i| format!("actor:known-bound-{i}")).collect();
    register_all(&app, &ids.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let mut s = statement(n as u64);
            s["data"]["speaker"] = json!(id);
            s
        })
        .collect();
    let resp = app
        .append("process/ru-ua-peace", &json!({ "events": events }))
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let text = app.get("/metrics").await.text().await.unwrap();
    metric(&text, "annals_log_writer_known_ids")
}

#[tokio::test]
async fn the_writer_remembers_at_most_log_known_ids_registry_ids() {
    let small = remembered_with(8).await;
    assert!(small > 0.0 && small <= 8.0, "{small}");
    // The shipped bound holds every id the statements named (and their source).
    let roomy = remembered_with(4096).await;
    assert!(roomy > IDS as f64, "{roomy}");
    assert_eq!(remembered_with(0).await, 0.0);
}
