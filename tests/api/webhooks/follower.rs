//! New records reach the delivery tasks already prepared: one follower reads each record the
//! log makes durable and prepares it in the shared message cache, so a task that keeps up
//! never reads the log itself (a log read on a delivery thread waited behind every sled
//! flush, and held every subscription of the thread while it did). Counted by
//! `webhook_message_cache_lookups_total`: a `miss` is a record a task read from the log.

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
async fn subscriptions_that_keep_up_find_every_new_record_prepared_and_read_none_from_the_log() {
    let app = app_with(json!({})).await;
    let first = Receiver::ok().await;
    subscribe(&app, json!({"url": first.url()})).await;
    let second = Receiver::ok().await;
    subscribe(&app, json!({"url": second.url()})).await;
    // Both tasks (and so the follower) run once each has delivered a record.
    let warm = statements(&app, 1, 1).await;
    wait_delivered(&first, &warm).await;
    wait_delivered(&second, &warm).await;
    let (hits, misses) = (lookups(&app, "hit").await, lookups(&app, "miss").await);

    let sent = statements(&app, 2, 20).await;
    wait_delivered(&first, &sent).await;
    wait_delivered(&second, &sent).await;

    // Every record examined by either task was in the cache before the task got to it.
    assert_eq!(lookups(&app, "miss").await, misses);
    assert_eq!(lookups(&app, "hit").await, hits + 2 * sent.len() as u64);
}

#[tokio::test]
async fn a_subscription_behind_the_follower_still_reads_the_older_records_and_delivers_them_in_order()
 {
    let app = app_with(json!({})).await;
    let early = statements(&app, 1, 5).await;
    // Its task starts the follower after the head: the first five are before it.
    let first = Receiver::ok().await;
    subscribe(&app, json!({"url": first.url(), "from_seq": early[0].0})).await;
    wait_delivered(&first, &early).await;
    let hits = lookups(&app, "hit").await;
    let late = statements(&app, 6, 5).await;
    let all: Vec<_> = early.iter().chain(late.iter()).cloned().collect();
    wait_delivered(&first, &all).await;

    let seqs: Vec<u64> = first.accepted().iter().map(|c| c.seq()).collect();
    assert_eq!(seqs, all.iter().map(|(s, _)| *s).collect::<Vec<_>>());
    assert_eq!(lookups(&app, "miss").await, early.len() as u64);
    assert_eq!(lookups(&app, "hit").await, hits + late.len() as u64);
}
