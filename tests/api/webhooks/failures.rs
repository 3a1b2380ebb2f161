//! Failing receivers: every matching event still arrives at least once (in seq order in
//! ordered mode), attempts are recorded and numbered per message, 410 disables, exhausted
//! retries dead-letter (parallel) or pause (ordered), and dead letters redeliver.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use super::support::*;

/// Seqs of accepted deliveries, in arrival order, without repeats of the same event.
fn accepted_seqs(rx: &Receiver) -> Vec<u64> {
    let mut seen = std::collections::BTreeSet::new();
    rx.accepted()
        .into_iter()
        .map(|c| c.seq())
        .filter(|s| seen.insert(*s))
        .collect()
}

#[tokio::test]
async fn a_receiver_that_fails_the_first_three_times_gets_everything_in_order_with_the_failures_recorded()
 {
    let app = app_with(json!({})).await;
    let rx = Receiver::start(|n, _| {
        if n < 3 {
            Answer::Status(500)
        } else {
            Answer::Status(200)
        }
    })
    .await;
    let (id, _) = subscribe(&app, json!({"url": rx.url(), "mode": "ordered"})).await;
    let sent = statements(&app, 1, 5).await;
    wait_delivered(&rx, &sent).await;
    let expected: Vec<u64> = sent.iter().map(|(s, _)| *s).collect();
    assert_eq!(accepted_seqs(&rx), expected);
    // The first event was tried 4 times with the same webhook-id.
    let all = rx.all();
    assert!(all[..4].iter().all(|c| c.id == sent[0].1));
    let attempts = attempts(&app, &id).await;
    let failures: Vec<&Value> = attempts
        .iter()
        .filter(|a| a["outcome"] == "failure")
        .collect();
    assert_eq!(failures.len(), 3, "{attempts:?}");
    assert!(
        failures
            .iter()
            .all(|a| a["status"] == 500 && a["seq"] == sent[0].0)
    );
    assert!(failures.iter().all(|a| a["error"] == "HTTP 500"));
    assert_eq!(failures[0]["response"], "received");
    assert_eq!(
        attempts
            .iter()
            .filter(|a| a["outcome"] == "success")
            .count(),
        5
    );
    assert_eq!(sub(&app, &id).await["status"], "active");
}

#[tokio::test]
async fn a_receiver_that_times_out_is_retried_and_the_timeout_is_recorded() {
    let app = app_with(json!({"timeout_ms": 300})).await;
    let rx = Receiver::start(|n, _| {
        if n == 0 {
            Answer::Hang
        } else {
            Answer::Status(200)
        }
    })
    .await;
    let (id, _) = subscribe(&app, json!({"url": rx.url()})).await;
    let sent = statements(&app, 1, 2).await;
    wait_delivered(&rx, &sent).await;
    let attempts = attempts(&app, &id).await;
    assert!(
        attempts.iter().any(|a| a["outcome"] == "failure"
            && a["error"] == "timed out"
            && a["status"].is_null()),
        "{attempts:?}"
    );
    let expected: Vec<u64> = sent.iter().map(|(s, _)| *s).collect();
    assert_eq!(accepted_seqs(&rx), expected);
}

#[tokio::test]
async fn a_receiver_that_is_down_and_comes_back_gets_every_event_in_order() {
    let app = app_with(json!({"retry_schedule_ms": [0, 100, 200, 400, 800, 1600, 3200]})).await;
    let mut rx = Receiver::ok().await;
    rx.stop().await;
    let (id, _) = subscribe(&app, json!({"url": rx.url()})).await;
    let sent = statements(&app, 1, 4).await;
    wait_until("a failed attempt recorded", || async {
        attempts(&app, &id)
            .await
            .iter()
            .any(|a| a["outcome"] == "failure")
    })
    .await;
    let a = attempts(&app, &id).await;
    assert!(
        a[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("connection failed"),
        "{a:?}"
    );
    rx.restart(|_, _| Answer::Status(200)).await;
    wait_delivered(&rx, &sent).await;
    let expected: Vec<u64> = sent.iter().map(|(s, _)| *s).collect();
    assert_eq!(accepted_seqs(&rx), expected);
    assert_eq!(sub(&app, &id).await["status"], "active");
}

#[tokio::test]
async fn a_410_disables_the_subscription_with_the_reason_visible() {
    let app = app_with(json!({})).await;
    let rx = Receiver::start(|_, _| Answer::Status(410)).await;
    let (id, _) = subscribe(&app, json!({"url": rx.url()})).await;
    statements(&app, 1, 3).await;
    wait_until("disabled", || async {
        sub(&app, &id).await["status"] == "disabled"
    })
    .await;
    let v = sub(&app, &id).await;
    assert!(v["status_reason"].as_str().unwrap().contains("410"), "{v}");
    // One attempt, no retries after a 410.
    assert_eq!(rx.all().len(), 1);
    assert_eq!(attempts(&app, &id).await.len(), 1);
}

#[tokio::test]
async fn retry_after_on_a_429_is_honoured_and_the_message_then_arrives() {
    let app = app_with(json!({})).await;
    let rx = Receiver::start(|n, _| {
        if n == 0 {
            Answer::RetryAfter(429, 1)
        } else {
            Answer::Status(200)
        }
    })
    .await;
    let (id, _) = subscribe(&app, json!({"url": rx.url()})).await;
    let sent = statements(&app, 1, 1).await;
    wait_delivered(&rx, &sent).await;
    let all = rx.all();
    assert_eq!(all.len(), 2);
    // The retry waited for Retry-After (1 s), not the 50 ms of the schedule.
    let gap = all[1].timestamp.parse::<i64>().unwrap() - all[0].timestamp.parse::<i64>().unwrap();
    assert!(gap >= 1, "retried after {gap} s");
    let a = attempts(&app, &id).await;
    assert_eq!(a.last().unwrap()["status"], 429);
}

#[tokio::test]
async fn in_parallel_mode_exhausted_messages_become_dead_letters_delivery_goes_on_and_they_redeliver()
 {
    let app = app_with(json!({})).await;
    let poison = Arc::new(AtomicBool::new(true));
    let p = poison.clone();
    // Statements numbered 3 and 5 fail until the receiver is fixed.
    let rx = Receiver::start(move |_, c| {
        let content = c.json()["data"]["data"]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if p.load(Ordering::SeqCst) && (content.ends_with(" 3.") || content.ends_with(" 5.")) {
            Answer::Status(500)
        } else {
            Answer::Status(200)
        }
    })
    .await;
    let (id, _) = subscribe(&app, json!({"url": rx.url(), "mode": "parallel"})).await;
    let sent = statements(&app, 1, 6).await;
    let good: Vec<(u64, String)> = sent
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2 && *i != 4)
        .map(|(_, s)| s.clone())
        .collect();
    wait_delivered(&rx, &good).await;
    let dl_path = format!("/subscriptions/{id}/dead-letters");
    wait_until("two dead letters", || async {
        admin_get(&app, &dl_path).await["dead_letters"]
            .as_array()
            .unwrap()
            .len()
            == 2
    })
    .await;
    let dls = admin_get(&app, &dl_path).await["dead_letters"].clone();
    assert_eq!(dls[0]["seq"], sent[2].0);
    assert_eq!(dls[0]["event_id"], sent[2].1);
    assert_eq!(dls[0]["attempts"], 4);
    assert_eq!(dls[0]["reason"], "HTTP 500");
    assert_eq!(dls[1]["seq"], sent[4].0);
    // Delivery went on past them: the cursor is at the head.
    wait_until("cursor at the head", || async {
        sub(&app, &id).await["lag"] == 0
    })
    .await;

    poison.store(false, Ordering::SeqCst);
    // Redeliver one, then the rest.
    let (status, v) = post(
        &app,
        &format!("{dl_path}/redeliver"),
        json!({"seq": sent[2].0}),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["queued"], 1);
    wait_delivered(&rx, &sent[2..3]).await;
    let (status, v) = post(&app, &format!("{dl_path}/redeliver"), json!({})).await;
    assert_eq!(status, 202, "{v}");
    wait_delivered(&rx, &sent).await;
    wait_until("no dead letters left", || async {
        admin_get(&app, &dl_path).await["dead_letters"]
            .as_array()
            .unwrap()
            .is_empty()
    })
    .await;
    // The subscription exists: a seq with no dead letter is a refused body field.
    let (status, _) = post(&app, &format!("{dl_path}/redeliver"), json!({"seq": 999})).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn in_ordered_mode_exhausted_retries_pause_the_subscription_and_resume_continues_in_order() {
    let app = app_with(json!({})).await;
    let broken = Arc::new(AtomicBool::new(true));
    let b = broken.clone();
    let rx = Receiver::start(move |_, _| {
        if b.load(Ordering::SeqCst) {
            Answer::Status(503)
        } else {
            Answer::Status(200)
        }
    })
    .await;
    let (id, _) = subscribe(&app, json!({"url": rx.url(), "mode": "ordered"})).await;
    let sent = statements(&app, 1, 3).await;
    wait_until("paused", || async {
        sub(&app, &id).await["status"] == "paused"
    })
    .await;
    let v = sub(&app, &id).await;
    let reason = v["status_reason"].as_str().unwrap();
    assert!(reason.contains(&format!("seq {}", sent[0].0)), "{reason}");
    // Nothing later overtook the failing message.
    assert!(rx.all().iter().all(|c| c.id == sent[0].1));
    assert!(
        admin_get(&app, &format!("/subscriptions/{id}/dead-letters")).await["dead_letters"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    broken.store(false, Ordering::SeqCst);
    post(&app, &format!("/subscriptions/{id}/resume"), json!({})).await;
    wait_delivered(&rx, &sent).await;
    let expected: Vec<u64> = sent.iter().map(|(s, _)| *s).collect();
    assert_eq!(accepted_seqs(&rx), expected);
    // The resume started a new round of the schedule, and the count went on: the four failed
    // tries are attempts 1 to 4, the one that got through is attempt 5.
    let mut numbers: Vec<(u64, String)> = attempts(&app, &id)
        .await
        .iter()
        .filter(|a| a["seq"] == sent[0].0)
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap(),
                a["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    numbers.sort();
    let failure = || "failure".to_string();
    assert_eq!(
        numbers,
        [
            (1, failure()),
            (2, failure()),
            (3, failure()),
            (4, failure()),
            (5, "success".to_string())
        ]
    );
}

#[tokio::test]
async fn a_subscription_that_only_fails_for_the_configured_time_is_disabled_with_the_reason() {
    let app = app_with(json!({
        "disable_after_failing_secs": 0,
        "retry_schedule_ms": [0, 50]
    }))
    .await;
    let rx = Receiver::start(|_, _| Answer::Status(500)).await;
    let (id, _) = subscribe(&app, json!({"url": rx.url(), "mode": "parallel"})).await;
    statements(&app, 1, 1).await;
    wait_until("disabled", || async {
        sub(&app, &id).await["status"] == "disabled"
    })
    .await;
    let v = sub(&app, &id).await;
    assert!(
        v["status_reason"]
            .as_str()
            .unwrap()
            .contains("failed since"),
        "{v}"
    );
}

#[tokio::test]
async fn redirects_are_never_followed_and_count_as_failures() {
    let app = app_with(json!({"retry_schedule_ms": [0]})).await;
    let rx = Receiver::start(|_, _| Answer::Status(302)).await;
    let (id, _) = subscribe(&app, json!({"url": rx.url(), "mode": "parallel"})).await;
    let sent = statements(&app, 1, 1).await;
    wait_until("dead letter", || async {
        !admin_get(&app, &format!("/subscriptions/{id}/dead-letters")).await["dead_letters"]
            .as_array()
            .unwrap()
            .is_empty()
    })
    .await;
    let a = attempts(&app, &id).await;
    assert_eq!(a[0]["status"], 302);
    assert!(
        a[0]["error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed")
    );
    assert_eq!(rx.all().len(), 1);
    assert_eq!(rx.all()[0].id, sent[0].1);
}
