//! Dead letters stay bounded: a subscription keeps at most
//! `webhooks.max_dead_letters_per_subscription`, the oldest (lowest seq) are evicted, counted
//! and the newest kept; the list is paged by seq; a cap of 0 is refused with the configuration.

use serde_json::{Value, json};

use super::support::*;
use crate::helpers::*;

/// One page of `GET /subscriptions/{id}/dead-letters` with the given query (answers the body).
async fn page(app: &TestApp, id: &str, query: &str) -> Value {
    admin_get(app, &format!("/subscriptions/{id}/dead-letters{query}")).await
}

/// The seqs of a page.
fn seqs(page: &Value) -> Vec<u64> {
    page["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["seq"].as_u64().unwrap())
        .collect()
}

/// The value of this subscription's eviction counter on `/metrics` (absent: 0).
async fn evicted(app: &TestApp, id: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let prefix = format!("annals_webhook_dead_letters_evicted_total{{subscription=\"{id}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

/// Queues every dead letter of a subscription for redelivery; answers how many were queued.
async fn redeliver_all(app: &TestApp, id: &str) -> u64 {
    let (status, v) = post(
        app,
        &format!("/subscriptions/{id}/dead-letters/redeliver"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    v["queued"].as_u64().unwrap()
}

#[tokio::test]
async fn at_the_dead_letter_cap_the_oldest_are_evicted_and_counted_and_a_failed_redelivery_evicts_nothing()
 {
    let app = app_with(json!({
        "retry_schedule_ms": [0],
        "max_dead_letters_per_subscription": 3
    }))
    .await;
    let rx = Receiver::start(|_, _| Answer::Status(500)).await;
    let (id, _) = subscribe(
        &app,
        json!({"url": rx.url(), "mode": "parallel", "max_in_flight": 2}),
    )
    .await;
    let sent = statements(&app, 1, 5).await;
    wait_until("five messages settled", || async {
        sub(&app, &id).await["lag"] == 0
    })
    .await;
    // Every message was tried and dead-lettered; only the three newest are kept.
    assert_eq!(rx.all().len(), 5);
    let kept = page(&app, &id, "").await;
    let newest: Vec<u64> = sent[2..].iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs(&kept), newest, "{kept}");
    assert_eq!(kept["next"], Value::Null);
    assert_eq!(evicted(&app, &id).await, 2);

    // A redelivery that fails again replaces its own dead letter: nothing more is evicted,
    // and the count of attempts goes on.
    assert_eq!(redeliver_all(&app, &id).await, 3);
    wait_until("three redeliveries failed again", || async {
        let p = page(&app, &id, "").await;
        p["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["attempts"] == 2 && d["redeliver"] == false)
    })
    .await;
    assert_eq!(rx.all().len(), 8);
    assert_eq!(seqs(&page(&app, &id, "").await), newest);
    assert_eq!(evicted(&app, &id).await, 2);
}

#[tokio::test]
async fn the_dead_letter_list_is_paged_by_seq_with_limit_and_after() {
    let app = app_with(json!({"retry_schedule_ms": [0]})).await;
    let rx = Receiver::start(|_, _| Answer::Status(500)).await;
    let (id, _) = subscribe(&app, json!({"url": rx.url(), "mode": "parallel"})).await;
    let sent = statements(&app, 1, 5).await;
    let all: Vec<u64> = sent.iter().map(|(s, _)| *s).collect();
    wait_until("five dead letters", || async {
        seqs(&page(&app, &id, "").await).len() == 5
    })
    .await;

    let first = page(&app, &id, "?limit=2").await;
    assert_eq!(seqs(&first), all[..2]);
    assert_eq!(first["next"], all[1]);
    let second = page(&app, &id, &format!("?limit=2&after={}", all[1])).await;
    assert_eq!(seqs(&second), all[2..4]);
    assert_eq!(second["next"], all[3]);
    let last = page(&app, &id, &format!("?limit=2&after={}", all[3])).await;
    assert_eq!(seqs(&last), all[4..]);
    assert_eq!(last["next"], Value::Null, "the end of the list says so");
    // A page that ends exactly at the last dead letter has no next page either.
    let exact = page(&app, &id, &format!("?limit=3&after={}", all[1])).await;
    assert_eq!(seqs(&exact), all[2..]);
    assert_eq!(exact["next"], Value::Null);
    let beyond = page(&app, &id, &format!("?after={}", all[4])).await;
    assert!(seqs(&beyond).is_empty());

    for bad in ["?limit=0", "?limit=many", "?after=-1"] {
        let resp = app
            .client
            .get(app.url(&format!("/subscriptions/{id}/dead-letters{bad}")))
            .bearer_auth(&app.keys.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
}

#[test]
fn a_dead_letter_cap_of_zero_is_refused_with_the_configuration_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let refused =
        test_config(dir.path()).with(json!({"webhooks": {"max_dead_letters_per_subscription": 0}}));
    match refused {
        Ok(_) => panic!("a configuration with no room for dead letters was accepted"),
        Err(e) => assert!(
            e.to_string()
                .contains("webhooks.max_dead_letters_per_subscription"),
            "{e}"
        ),
    }
}

#[tokio::test]
async fn redeliver_all_sends_no_more_at_once_than_the_subscription_allows_in_flight() {
    let app = app_with(json!({"retry_schedule_ms": [0]})).await;
    // The first six requests fail (six dead letters); the redeliveries each take 300 ms.
    let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = arrivals.clone();
    let rx = Receiver::start(move |n, _| {
        if n < 6 {
            Answer::Status(500)
        } else {
            seen.lock().unwrap().push(std::time::Instant::now());
            Answer::SlowOk(300)
        }
    })
    .await;
    let (id, _) = subscribe(
        &app,
        json!({"url": rx.url(), "mode": "parallel", "max_in_flight": 2}),
    )
    .await;
    statements(&app, 1, 6).await;
    wait_until("six dead letters", || async {
        seqs(&page(&app, &id, "").await).len() == 6
    })
    .await;

    assert_eq!(redeliver_all(&app, &id).await, 6);
    wait_until("every dead letter redelivered", || async {
        seqs(&page(&app, &id, "").await).is_empty()
    })
    .await;

    // With two in flight, a third request can only start once one of the two before it was
    // answered, 300 ms after it arrived.
    let mut times = arrivals.lock().unwrap().clone();
    times.sort();
    assert_eq!(times.len(), 6);
    for w in times.windows(3) {
        assert!(
            w[2] - w[0] >= std::time::Duration::from_millis(250),
            "three redeliveries in flight at once: {:?}",
            w[2] - w[0]
        );
    }
}
