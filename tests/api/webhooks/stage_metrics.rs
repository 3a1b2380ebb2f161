//! Where a delivery's time went is on `/metrics`, always: `webhook_stage_seconds{stage}`
//! has one histogram per stage of each message's first attempt (`seen_to_prepared`,
//! `prepared_to_queued`, `queued_to_sent`, `sent_to_answered`), so a stall can be placed
//! without turning on a log.

use serde_json::json;

use super::support::*;

/// `annals_webhook_stage_seconds{stage}`: its count, and how many took at most `le` seconds.
async fn stage(app: &crate::helpers::TestApp, stage: &str, le: &str) -> (u64, u64) {
    let text = app.get("/metrics").await.text().await.unwrap();
    let value = |prefix: String| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("no {prefix} on /metrics"))
    };
    (
        value(format!(
            "annals_webhook_stage_seconds_count{{stage=\"{stage}\"}} "
        )),
        value(format!(
            "annals_webhook_stage_seconds_bucket{{stage=\"{stage}\",le=\"{le}\"}} "
        )),
    )
}

#[tokio::test]
async fn a_slow_receiver_shows_in_sent_to_answered_and_the_ordered_backlog_in_prepared_to_queued() {
    let app = app_with(json!({})).await;
    // Every answer takes 40 ms.
    let rx = Receiver::start(|_, _| Answer::SlowOk(40)).await;
    subscribe(&app, json!({"url": rx.url()})).await;
    // One batch: the five are prepared together, so each waits only for those before it.
    let events: Vec<_> = (1..=5).map(crate::helpers::statement).collect();
    let resp = app
        .append("process/ru-ua-peace", &json!({ "events": events }))
        .await;
    assert_eq!(resp.status(), 201);
    let v: serde_json::Value = resp.json().await.unwrap();
    let sent: Vec<(u64, String)> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), e["id"].as_str().unwrap().into()))
        .collect();
    wait_delivered(&rx, &sent).await;
    wait_until("every first attempt observed", || async {
        stage(&app, "sent_to_answered", "0.02").await.0 == 5
    })
    .await;

    // Each attempt waited for its 40 ms answer.
    assert_eq!(stage(&app, "sent_to_answered", "0.02").await, (5, 0));
    // Every message was prepared from the log once, and set up at once.
    assert_eq!(stage(&app, "seen_to_prepared", "5").await, (5, 5));
    assert_eq!(stage(&app, "queued_to_sent", "5").await, (5, 5));
    // Ordered delivery sends one at a time: all but the first waited their turn in the
    // task, behind at least one 40 ms answer.
    let (count, quick) = stage(&app, "prepared_to_queued", "0.02").await;
    assert_eq!(count, 5);
    assert!(
        quick <= 1,
        "only the first message can have been queued within 20 ms; {quick} were"
    );
}
