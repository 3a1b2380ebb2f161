//! Filters: only matching types, streams and processes arrive.

use std::collections::BTreeSet;

use serde_json::json;

use super::support::*;
use crate::helpers::*;

#[tokio::test]
async fn only_events_matching_the_type_glob_stream_prefix_and_process_arrive() {
    let app = app_with(json!({})).await;
    let by_type = Receiver::ok().await;
    let by_stream = Receiver::ok().await;
    let by_process = Receiver::ok().await;
    let everything = Receiver::ok().await;
    subscribe(
        &app,
        json!({"url": by_type.url(), "filter": {"types": ["meeting.*"]}}),
    )
    .await;
    subscribe(
        &app,
        json!({"url": by_stream.url(), "filter": {"streams": ["registry/"]}}),
    )
    .await;
    subscribe(
        &app,
        json!({"url": by_process.url(), "filter": {"processes": ["other-talks"]}}),
    )
    .await;
    subscribe(&app, json!({"url": everything.url()})).await;

    let st = statements(&app, 1, 2).await;
    let resp = app
        .append("process/ru-ua-peace", &meeting("meeting:m1"))
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let resp = app
        .append("registry/sources", &source_event("src:second-wire"))
        .await;
    assert_eq!(resp.status(), 201);
    let mut other = statement(99);
    other["process"] = json!("other-talks");
    let resp = app.append("process/other-talks", &other).await;
    assert_eq!(resp.status(), 201);

    // Everything arrives at the catch-all; then the others have had their chance.
    wait_until("catch-all got 5", || async {
        everything.accepted().len() == 5
    })
    .await;
    wait_until("filtered receivers settled", || async {
        by_type.accepted().len() == 1
            && by_stream.accepted().len() == 1
            && by_process.accepted().len() == 1
    })
    .await;
    let types = |rx: &Receiver| -> BTreeSet<String> {
        rx.accepted()
            .iter()
            .map(|c| c.json()["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        types(&by_type),
        BTreeSet::from(["meeting.held".to_string()])
    );
    assert_eq!(
        types(&by_stream),
        BTreeSet::from(["source.registered".to_string()])
    );
    assert_eq!(
        by_stream.accepted()[0].json()["data"]["stream"],
        "registry/sources"
    );
    assert_eq!(
        by_process.accepted()[0].json()["data"]["process"],
        "other-talks"
    );
    assert!(everything.accepted().iter().any(|c| c.id == st[0].1));
    // Let any stray delivery land, then check nothing else came.
    wait_until("every subscription at the head", || async {
        admin_get(&app, "/subscriptions").await["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["lag"] == 0)
    })
    .await;
    assert_eq!(by_type.all().len(), 1);
    assert_eq!(by_stream.all().len(), 1);
    assert_eq!(by_process.all().len(), 1);
}
