//! Signatures: the Standard Webhooks test vector, and what a delivery carries.

use serde_json::json;

use super::support::*;
use annals::webhook::signing;

#[test]
fn the_signature_matches_the_standard_webhooks_test_vector() {
    let key = signing::decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert_eq!(
        signing::sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[tokio::test]
async fn a_delivery_carries_the_event_id_a_fresh_timestamp_a_valid_signature_and_the_stored_envelope()
 {
    let app = app_with(json!({})).await;
    let rx = Receiver::ok().await;
    let (id, secret) = subscribe(&app, json!({"url": rx.url()})).await;
    assert!(secret.starts_with("whsec_"));
    let sent = statements(&app, 1, 1).await;
    wait_delivered(&rx, &sent).await;
    let c = &rx.accepted()[0];
    assert_eq!(c.id, sent[0].1);
    let ts: i64 = c.timestamp.parse().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - ts).abs() < 300, "timestamp {ts} vs now {now}");
    assert!(verifies(&secret, c), "{}", c.signature);
    let body = c.json();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["data", "timestamp", "type"]
    );
    assert_eq!(body["type"], "statement.made");
    // The data is exactly the stored envelope, as GET /events/{id} serves it.
    let stored = app.get_json(&format!("/events/{}", sent[0].1)).await;
    assert_eq!(body["data"], stored);
    assert_eq!(body["data"]["seq"], sent[0].0);
    assert_eq!(body["timestamp"], stored["recorded_at"]);
    // The secret is never shown again.
    let view = sub(&app, &id).await;
    assert!(view.get("secret").is_none());
    assert!(!view.to_string().contains(&secret));
    let list = admin_get(&app, "/subscriptions").await;
    assert!(!list.to_string().contains("whsec_"));
}
