//! A stored subscription whose URL no longer parses (a store written by an earlier version that
//! let credentials into URLs, or edited by hand) is disabled when its delivery task starts, like
//! any other stop: with its reason, the time of the change, the stop counted in
//! `webhook_deliveries_total`, and the change made durable.

use serde_json::{Value, json};
use uuid::Uuid;

use super::support::*;
use crate::helpers::*;

/// When the tampered subscription says it last changed.
const OLD_UPDATED_AT: &str = "2026-01-23T00:00:00Z";

/// Rewrites the stored subscription `id` of a stopped data folder with `change`, through sled.
fn rewrite_stored(data: &std::path::Path, id: &str, change: impl FnOnce(&mut Value)) {
    wait_until_released(data);
    let db = open_store(data);
    let tree = db.open_tree("webhooks").unwrap();
    let mut k = vec![b's'];
    k.extend_from_slice(Uuid::parse_str(id).unwrap().as_bytes());
    let mut stored: Value = serde_json::from_slice(&tree.get(&k).unwrap().unwrap()).unwrap();
    change(&mut stored);
    tree.insert(k, serde_json::to_vec(&stored).unwrap())
        .unwrap();
    db.flush().unwrap();
    drop(tree);
    drop(db);
    wait_until_released(data);
}

/// `/metrics` as text.
async fn metrics(bin: &Bin) -> String {
    let resp = bin
        .client
        .get(format!("{}/metrics", bin.base))
        .bearer_auth(&bin.keys.read)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn a_stored_url_that_no_longer_parses_disables_the_subscription_with_its_time_its_metric_and_durably()
 {
    if on_nats() {
        // The test edits the node's sled copy; on the nats backend a node starts from the
        // cluster's copy of its subscriptions (issue 9), so that edit never reaches it.
        return;
    }
    let folder = Folder::new("cursor_sync_ms = 50\n");
    let rx = Receiver::ok().await;
    let (server, bin) = folder.start();
    let v = bin.seed_and_subscribe(&json!({"url": rx.url()})).await;
    let id = v["id"].as_str().unwrap().to_string();
    server.kill9();

    // Credentials in the URL: refused by the guard since, so the URL no longer parses.
    let with_credentials = format!("http://annals:hunter2@{}/hook", rx.addr);
    rewrite_stored(&folder.data, &id, |s| {
        s["url"] = json!(with_credentials);
        s["updated_at"] = json!(OLD_UPDATED_AT);
    });

    let (server, bin) = folder.start();
    let path = format!("/subscriptions/{id}");
    wait_until("the subscription disabled", || async {
        bin.get(&path).await["status"] == "disabled"
    })
    .await;
    let view = bin.get(&path).await;
    assert!(
        view["status_reason"]
            .as_str()
            .unwrap()
            .contains("credentials"),
        "{view}"
    );
    let disabled_at = view["updated_at"].as_str().unwrap().to_string();
    assert_ne!(
        disabled_at, OLD_UPDATED_AT,
        "the stop did not record its time"
    );
    let text = metrics(&bin).await;
    assert!(
        text.contains("annals_webhook_deliveries_total{outcome=\"disabled\"} 1"),
        "the stop was not counted:\n{text}"
    );

    // The syncer covers the write within `cursor_sync_ms`; a kill well after that keeps it: the
    // next start finds the subscription already disabled (it would otherwise disable it again,
    // at another time).
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    server.kill9();
    let (server, bin) = folder.start();
    let view = bin.get(&path).await;
    assert_eq!(view["status"], "disabled", "{view}");
    assert_eq!(view["updated_at"], disabled_at.as_str(), "{view}");
    assert!(
        rx.all().is_empty(),
        "a request went to a URL that does not parse"
    );
    server.kill9();
}
