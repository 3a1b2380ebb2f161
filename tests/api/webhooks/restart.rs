//! Crashes and restarts: the cursor is durable, so nothing matching is lost; what is sent
//! again carries the same webhook-id. A message being retried keeps its attempt count and its
//! place in the schedule across task and process restarts.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

use super::support::*;
use crate::helpers::*;

/// Every (seq, id) accepted, checking that each webhook-id always comes with the same body.
fn check_duplicates(rx: &Receiver) -> BTreeMap<String, usize> {
    let mut bodies: BTreeMap<String, bytes::Bytes> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for c in rx.all() {
        assert_eq!(
            c.json()["data"]["id"],
            c.id.as_str(),
            "webhook-id is the event id"
        );
        if let Some(prev) = bodies.get(&c.id) {
            assert_eq!(prev, &c.body, "a redelivery of {} changed its body", c.id);
        }
        bodies.insert(c.id.clone(), c.body.clone());
        *counts.entry(c.id).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn a_graceful_restart_resumes_from_the_cursor_and_loses_nothing() {
    let mut app = app_with(json!({})).await;
    let rx = Receiver::ok().await;
    let (id, _) = subscribe(&app, json!({"url": rx.url()})).await;
    let before = statements(&app, 1, 5).await;
    wait_delivered(&rx, &before).await;
    app.restart().await;
    let after = statements(&app, 6, 5).await;
    wait_delivered(&rx, &after).await;
    let counts = check_duplicates(&rx);
    // The cursor was made durable at shutdown: nothing before the restart came twice.
    for (_, eid) in &before {
        assert_eq!(
            counts[eid], 1,
            "{eid} delivered again after a graceful restart"
        );
    }
    assert_eq!(sub(&app, &id).await["status"], "active");
}

#[tokio::test]
async fn a_graceful_restart_lets_a_request_in_flight_finish_and_never_sends_it_again() {
    let mut app = app_with(json!({})).await;
    // Every request is recorded on arrival and answered 300 ms later, so the restart below
    // lands while the first message's request is in flight.
    let rx = Receiver::start(|_, _| Answer::SlowOk(300)).await;
    subscribe(
        &app,
        json!({"url": rx.url(), "filter": {"types": ["statement.*"]}}),
    )
    .await;
    let before = statements(&app, 1, 1).await;
    let first = before[0].1.clone();
    wait_until("the first request to arrive", || async {
        rx.all().iter().any(|c| c.id == first)
    })
    .await;
    app.restart().await;
    let after = statements(&app, 2, 1).await;
    wait_delivered(&rx, &after).await;
    let counts = check_duplicates(&rx);
    // The stop waited for the answer on its way, so the cursor moved past it before the
    // shutdown made it durable.
    assert_eq!(counts[&first], 1, "the request in flight was sent again");
}

#[tokio::test]
async fn killing_the_server_mid_delivery_loses_nothing_and_duplicates_carry_the_same_webhook_id() {
    let folder =
        Folder::new("retry_schedule_ms = [0, 50, 100, 200, 400, 800]\ncursor_sync_ms = 50\n");
    // A slow receiver, so the kill lands while deliveries are in flight.
    let rx = Receiver::start(|_, _| Answer::SlowOk(20)).await;
    let (server, bin) = folder.start();
    bin.seed_and_subscribe(
        &json!({"url": rx.url(), "from_seq": 1, "filter": {"types": ["statement.*"]}}),
    )
    .await;
    let mut expected = BTreeSet::new();
    for i in 1..=60 {
        let v = bin.append("process/ru-ua-peace", &statement(i)).await;
        expected.insert(v["events"][0]["id"].as_str().unwrap().to_string());
    }
    wait_until("some deliveries before the kill", || async {
        rx.accepted().len() >= 10
    })
    .await;
    server.kill9();
    let delivered_before = rx.accepted().len();

    let (server, _) = folder.start();
    wait_until("every statement delivered after the restart", || async {
        let got: BTreeSet<String> = rx.accepted().into_iter().map(|c| c.id).collect();
        expected.iter().all(|id| got.contains(id))
    })
    .await;
    server.kill9();
    let counts = check_duplicates(&rx);
    // Only statements matched; the source registration (seq 1) was filtered out.
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(
        delivered_before < expected.len(),
        "the kill did not land mid-delivery"
    );
}

/// The attempt numbers recorded for `seq`, ascending.
fn attempt_numbers(attempts: &[Value], seq: u64) -> Vec<u64> {
    let mut n: Vec<u64> = attempts
        .iter()
        .filter(|a| a["seq"] == seq)
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    n.sort_unstable();
    n
}

#[tokio::test]
async fn after_a_kill_9_mid_retry_the_next_attempt_is_numbered_on_and_the_message_dead_letters_after_the_configured_total()
 {
    // Six attempts in all. The long gap after the second is where the kill lands.
    let folder = Folder::new(
        "retry_schedule_ms = [0, 100, 3000, 100, 100, 100]\njitter_percent = 0\ncursor_sync_ms = 50\n",
    );
    let rx = Receiver::start(|_, _| Answer::Status(500)).await;
    let (server, bin) = folder.start();
    let v = bin
        .seed_and_subscribe(&json!({"url": rx.url(), "mode": "parallel"}))
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let appended = bin.append("process/ru-ua-peace", &statement(1)).await;
    let seq = appended["events"][0]["seq"].as_u64().unwrap();
    let event_id = appended["events"][0]["id"].as_str().unwrap().to_string();
    let attempts_path = format!("/subscriptions/{id}/attempts?limit=100");
    wait_until("two failed attempts recorded", || async {
        attempt_numbers(
            bin.get(&attempts_path).await["attempts"]
                .as_array()
                .unwrap(),
            seq,
        ) == [1, 2]
    })
    .await;
    // The retry state is made durable by the next sync (every 50 ms), long before the third
    // attempt is due (3 s): kill well inside that gap.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    server.kill9();
    assert_eq!(rx.all().len(), 2, "the kill landed after the third attempt");

    let (server, bin) = folder.start();
    let dl_path = format!("/subscriptions/{id}/dead-letters");
    wait_until("the message dead-lettered", || async {
        !bin.get(&dl_path).await["dead_letters"]
            .as_array()
            .unwrap()
            .is_empty()
    })
    .await;
    let dl = bin.get(&dl_path).await["dead_letters"][0].clone();
    assert_eq!(dl["seq"], seq);
    assert_eq!(dl["attempts"], 6, "{dl}");
    // Six requests in all, one per attempt, all with the same webhook-id: the restart went
    // on with attempt 3 instead of starting the schedule over.
    let all = rx.all();
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|c| c.id == event_id));
    let attempts = bin.get(&attempts_path).await["attempts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(attempt_numbers(&attempts, seq), [1, 2, 3, 4, 5, 6]);
    // The third attempt waited for its due time across the restart (3 s after the second),
    // rather than being sent as soon as the new process started.
    let ts = |i: usize| all[i].timestamp.parse::<i64>().unwrap();
    assert!(
        ts(2) - ts(1) >= 2,
        "retried {} s after the second attempt",
        ts(2) - ts(1)
    );
    server.kill9();
}

#[tokio::test]
async fn an_operator_change_mid_retry_keeps_the_attempt_count_and_the_message_dead_letters_after_the_configured_total()
 {
    let app =
        app_with(json!({"retry_schedule_ms": [0, 100, 1000, 100], "jitter_percent": 0})).await;
    let rx = Receiver::start(|_, _| Answer::Status(500)).await;
    let (id, _) = subscribe(&app, json!({"url": rx.url(), "mode": "parallel"})).await;
    let sent = statements(&app, 1, 1).await;
    let seq = sent[0].0;
    wait_until("two failed attempts", || async {
        attempt_numbers(&attempts(&app, &id).await, seq) == [1, 2]
    })
    .await;
    // A change restarts the delivery task.
    let resp = app
        .client
        .patch(app.url(&format!("/subscriptions/{id}")))
        .bearer_auth(&app.keys.admin)
        .json(&json!({"description": "changed mid-retry"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let dl_path = format!("/subscriptions/{id}/dead-letters");
    wait_until("the message dead-lettered", || async {
        !admin_get(&app, &dl_path).await["dead_letters"]
            .as_array()
            .unwrap()
            .is_empty()
    })
    .await;
    assert_eq!(
        admin_get(&app, &dl_path).await["dead_letters"][0]["attempts"],
        4
    );
    assert_eq!(rx.all().len(), 4);
    assert_eq!(
        attempt_numbers(&attempts(&app, &id).await, seq),
        [1, 2, 3, 4]
    );
}
