//! The shared message cache is observable: `webhook_message_cache_lookups_total` counts every
//! record a delivery task examines, as a `hit` when another task had already prepared it and a
//! `miss` when the task read it from the log, so an operator can tell whether
//! `webhooks.message_cache_entries` spares the reads it should.

use serde_json::json;

use super::support::*;

/// The value of `annals_webhook_message_cache_lookups_total{result="<result>"}`.
async fn lookups(app: &crate::helpers::TestApp, result: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let prefix = format!("annals_webhook_message_cache_lookups_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no {prefix} on /metrics"))
}

#[tokio::test]
async fn a_second_subscription_over_the_same_records_finds_them_all_in_the_message_cache() {
    let app = app_with(json!({})).await;
    let sent = statements(&app, 1, 20).await;
    let head = sent.last().unwrap().0;
    assert_eq!(
        (lookups(&app, "hit").await, lookups(&app, "miss").await),
        (0, 0)
    );

    let first = Receiver::ok().await;
    subscribe(&app, json!({"url": first.url(), "from_seq": 1})).await;
    wait_delivered(&first, &sent).await;
    // The first task read every record from the log, once.
    assert_eq!(lookups(&app, "miss").await, head);
    assert_eq!(lookups(&app, "hit").await, 0);

    let second = Receiver::ok().await;
    subscribe(&app, json!({"url": second.url(), "from_seq": 1})).await;
    wait_delivered(&second, &sent).await;
    // The second found every one of them prepared, and read nothing.
    assert_eq!(lookups(&app, "hit").await, head);
    assert_eq!(lookups(&app, "miss").await, head);
}
