//! The target guard: non-global targets are refused at creation (422 naming /url) and at
//! delivery, unless the configuration allows them.

use serde_json::json;

use super::support::*;

#[tokio::test]
async fn urls_resolving_to_loopback_private_or_link_local_addresses_are_refused_with_a_422() {
    let app = app_with(json!({"allow_private_targets": false})).await;
    for (url, kind) in [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://localhost:9/hook", "loopback"),
        ("http://192.168.0.10/hook", "private"),
        ("http://100.64.1.1/hook", "CGNAT"),
    ] {
        let (status, v) = post(&app, "/subscriptions", json!({"url": url})).await;
        assert_eq!(status, 422, "{url}: {v}");
        assert_eq!(
            v["type"], "https://annals.dev/problems/target-refused",
            "{url}"
        );
        assert_eq!(v["errors"][0]["pointer"], "/url", "{url}");
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.contains(kind), "{url}: {detail}");
    }
    assert!(
        admin_get(&app, "/subscriptions").await["subscriptions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_target_that_is_no_longer_allowed_is_refused_at_delivery_and_nothing_is_sent() {
    let mut app = app_with(json!({"retry_schedule_ms": [0, 50]})).await;
    let rx = Receiver::ok().await;
    let (id, _) = subscribe(&app, json!({"url": rx.url(), "mode": "parallel"})).await;
    app.config.webhooks.allow_private_targets = false;
    app.restart().await;
    let sent = statements(&app, 1, 1).await;
    wait_until("a dead letter", || async {
        !admin_get(&app, &format!("/subscriptions/{id}/dead-letters")).await["dead_letters"]
            .as_array()
            .unwrap()
            .is_empty()
    })
    .await;
    let a = attempts(&app, &id).await;
    assert!(
        a[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("target refused"),
        "{a:?}"
    );
    assert!(a[0]["status"].is_null());
    assert!(rx.all().is_empty());
    assert_eq!(a[0]["event_id"], sent[0].1);
}
