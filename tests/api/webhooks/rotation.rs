//! Secret rotation: during the overlap both secrets sign; after it only the new one.

use serde_json::json;

use super::support::*;

#[tokio::test]
async fn during_the_rotation_overlap_both_secrets_verify() {
    let app = app_with(json!({"secret_overlap_secs": 3600})).await;
    let rx = Receiver::ok().await;
    let (id, old) = subscribe(&app, json!({"url": rx.url()})).await;
    let first = statements(&app, 1, 1).await;
    wait_delivered(&rx, &first).await;
    assert_eq!(rx.accepted()[0].signature.split(' ').count(), 1);

    let (status, v) = post(
        &app,
        &format!("/subscriptions/{id}/rotate-secret"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let new = v["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_"));
    assert_ne!(new, old);
    assert!(v["previous_secret_expires_at"].is_string());

    let second = statements(&app, 2, 1).await;
    wait_delivered(&rx, &second).await;
    let c = rx
        .accepted()
        .into_iter()
        .find(|c| c.id == second[0].1)
        .unwrap();
    assert_eq!(c.signature.split(' ').count(), 2, "{}", c.signature);
    assert!(verifies(&old, &c), "old secret rejected during the overlap");
    assert!(verifies(&new, &c), "new secret rejected");
    // The view says when the old one stops, and shows neither.
    let view = sub(&app, &id).await;
    assert!(view["previous_secret_expires_at"].is_string());
    assert!(!view.to_string().contains("whsec_"));
}

#[tokio::test]
async fn after_the_overlap_only_the_new_secret_verifies() {
    let app = app_with(json!({"secret_overlap_secs": 0})).await;
    let rx = Receiver::ok().await;
    let (id, old) = subscribe(&app, json!({"url": rx.url()})).await;
    let (status, v) = post(
        &app,
        &format!("/subscriptions/{id}/rotate-secret"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let new = v["secret"].as_str().unwrap().to_string();
    let sent = statements(&app, 1, 1).await;
    wait_delivered(&rx, &sent).await;
    let c = &rx.accepted()[0];
    assert_eq!(c.signature.split(' ').count(), 1);
    assert!(verifies(&new, c));
    assert!(!verifies(&old, c));
}
