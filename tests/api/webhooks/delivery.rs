//! Delivery basics: the routes, start position, replay from seq 1, ordered and parallel
//! modes, and the metrics.

use std::collections::BTreeSet;

use serde_json::json;

use super::support::*;

#[tokio::test]
async fn a_new_subscription_starts_at_the_head_and_replay_from_seq_1_redelivers_the_history() {
    let app = app_with(json!({})).await;
    let history = statements(&app, 1, 3).await;
    let rx = Receiver::ok().await;
    let (id, _) = subscribe(&app, json!({"url": rx.url()})).await;
    let later = statements(&app, 10, 2).await;
    wait_delivered(&rx, &later).await;
    let got: BTreeSet<String> = rx.accepted().into_iter().map(|c| c.id).collect();
    for (_, old) in &history {
        assert!(!got.contains(old), "history delivered before any replay");
    }
    let (status, v) = post(
        &app,
        &format!("/subscriptions/{id}/replay"),
        json!({"from_seq": 1}),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    wait_delivered(&rx, &history).await;
    // Seq 1 (the source registration) comes too: the whole history.
    wait_until("seq 1 delivered", || async {
        rx.accepted().iter().any(|c| c.seq() == 1)
    })
    .await;
}

#[tokio::test]
async fn from_seq_1_delivers_the_whole_history_in_seq_order_in_ordered_mode() {
    let app = app_with(json!({})).await;
    let sent = statements(&app, 1, 20).await;
    let rx = Receiver::ok().await;
    subscribe(
        &app,
        json!({"url": rx.url(), "from_seq": 1, "mode": "ordered"}),
    )
    .await;
    wait_delivered(&rx, &sent).await;
    let seqs: Vec<u64> = rx.accepted().iter().map(|c| c.seq()).collect();
    // The seed's five records, then the twenty statements.
    let expected: Vec<u64> = (1..=25).collect();
    assert_eq!(seqs, expected);
}

#[tokio::test]
async fn parallel_mode_delivers_every_event_at_least_once() {
    let app = app_with(json!({})).await;
    let rx = Receiver::ok().await;
    let (id, _) = subscribe(
        &app,
        json!({"url": rx.url(), "mode": "parallel", "max_in_flight": 8}),
    )
    .await;
    let sent = statements(&app, 1, 40).await;
    wait_delivered(&rx, &sent).await;
    wait_until("cursor at the head", || async {
        sub(&app, &id).await["lag"] == 0
    })
    .await;
}

#[tokio::test]
async fn the_subscription_routes_create_list_get_update_pause_resume_and_delete() {
    let app = app_with(json!({})).await;
    let rx = Receiver::ok().await;
    // Admin scope only.
    let resp = app
        .client
        .get(app.url("/subscriptions"))
        .bearer_auth(&app.keys.read)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = app
        .client
        .get(app.url("/subscriptions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let (id, _) = subscribe(
        &app,
        json!({"url": rx.url(), "description": "desk", "filter": {"types": ["meeting.*"]}}),
    )
    .await;
    let list = admin_get(&app, "/subscriptions").await;
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1);
    let v = sub(&app, &id).await;
    assert_eq!(v["description"], "desk");
    assert_eq!(v["status"], "active");
    assert_eq!(v["mode"], "ordered");

    let resp = app
        .client
        .patch(app.url(&format!("/subscriptions/{id}")))
        .bearer_auth(&app.keys.admin)
        .json(&json!({"description": "newsroom", "mode": "parallel", "max_in_flight": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["description"], "newsroom");
    assert_eq!(v["mode"], "parallel");
    assert_eq!(v["max_in_flight"], 4);
    assert_eq!(v["filter"]["types"], json!(["meeting.*"]));

    let (status, v) = post(&app, &format!("/subscriptions/{id}/pause"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(v["status"], "paused");
    let (status, v) = post(&app, &format!("/subscriptions/{id}/resume"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(v["status"], "active");

    // Bad input names the field.
    let (status, v) = post(
        &app,
        "/subscriptions",
        json!({"url": rx.url(), "mode": "random"}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    let (status, v) = post(&app, "/subscriptions", json!({"description": "no url"})).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["errors"][0]["pointer"], "/url");
    let (status, v) = post(&app, "/subscriptions", json!({"url": "ftp://example.com/"})).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["errors"][0]["pointer"], "/url");

    let resp = app
        .client
        .delete(app.url(&format!("/subscriptions/{id}")))
        .bearer_auth(&app.keys.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app
        .client
        .get(app.url(&format!("/subscriptions/{id}")))
        .bearer_auth(&app.keys.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn a_paused_subscription_receives_nothing_until_resumed_and_then_everything() {
    let app = app_with(json!({})).await;
    let rx = Receiver::ok().await;
    let (id, _) = subscribe(&app, json!({"url": rx.url()})).await;
    let (status, _) = post(&app, &format!("/subscriptions/{id}/pause"), json!({})).await;
    assert_eq!(status, 200);
    let sent = statements(&app, 1, 3).await;
    // The head is durable and the subscription does not move while paused.
    assert_eq!(sub(&app, &id).await["lag"], 3);
    assert!(rx.all().is_empty());
    post(&app, &format!("/subscriptions/{id}/resume"), json!({})).await;
    wait_delivered(&rx, &sent).await;
}

#[tokio::test]
async fn metrics_count_deliveries_and_attempts_and_show_the_lag() {
    let app = app_with(json!({})).await;
    let rx = Receiver::ok().await;
    let (id, _) = subscribe(&app, json!({"url": rx.url()})).await;
    let sent = statements(&app, 1, 3).await;
    wait_delivered(&rx, &sent).await;
    wait_until("lag 0 in metrics", || async {
        let text = app.get("/metrics").await.text().await.unwrap();
        text.contains(&format!(
            "annals_webhook_lag_events{{subscription=\"{id}\"}} 0"
        )) && text.contains("annals_webhook_deliveries_total{outcome=\"delivered\"} 3")
    })
    .await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("annals_webhook_attempts_total{outcome=\"success\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("annals_webhook_attempt_seconds_count 3"),
        "{text}"
    );
}
