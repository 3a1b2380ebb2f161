//! One meaning of `*` (`crate::glob`): a type glob reads the same in `GET /events?type=` as in
//! a subscription's `filter.types`, wherever its stars stand.

use serde_json::json;

use super::support::*;
use crate::helpers::*;

#[tokio::test]
async fn get_events_with_a_leading_star_type_matches_the_same_records_as_a_subscription_filter() {
    let app = app_with(json!({})).await;
    let rx = Receiver::ok().await;
    subscribe(
        &app,
        json!({"url": rx.url(), "from_seq": 1, "filter": {"types": ["*.held"]}}),
    )
    .await;
    let resp = app
        .append("process/ru-ua-peace", &meeting("meeting:glob-1"))
        .await;
    assert_eq!(resp.status(), 201);
    let sent = statements(&app, 1, 1).await;
    let resp = app
        .append("process/ru-ua-peace", &meeting("meeting:glob-2"))
        .await;
    assert_eq!(resp.status(), 201);
    wait_until("both meetings delivered", || async {
        rx.accepted().len() >= 2
    })
    .await;
    let delivered: Vec<u64> = rx.accepted().iter().map(|c| c.seq()).collect();

    let page = app.get_json("/events?from=1&type=*.held").await;
    let read: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(read.len(), 2, "{page}");
    assert_eq!(
        read, delivered,
        "the read and the subscription disagree on `*.held`"
    );
    assert!(!read.contains(&sent[0].0), "a statement matched `*.held`");
    for e in page["events"].as_array().unwrap() {
        assert_eq!(e["type"], "meeting.held");
    }
}
