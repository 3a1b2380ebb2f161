//! The state the nodes of a cluster share besides the log: API keys, webhook subscriptions,
//! cursors and dead letters live in the cluster, so what one node was told another node
//! knows. Two in-process Annals nodes over one 3-node JetStream cluster, real receivers;
//! only the HTTP API is used, as an operator and a receiver would.

use std::path::Path;

use serde_json::{Value, json};

use crate::api_helpers::*;
use crate::nats::NatsCluster;
use crate::support::*;

/// An Annals node over the cluster with the webhook test settings, sealing secrets with the
/// key in `key_file` (every node of a cluster needs the same one), adjusted by `extra`.
pub async fn hooks_node(cluster: &NatsCluster, key_file: &Path, extra: Value) -> TestApp {
    let mut hooks = test_webhooks();
    hooks["secret_key_file"] = json!(key_file);
    let urls = cluster.urls();
    spawn_app_with(move |c| {
        let c = c
            .with(json!({
                "log": {"backend": "nats", "nats": {"urls": urls}},
                "webhooks": hooks,
            }))
            .unwrap();
        c.with(extra).unwrap()
    })
    .await
}

/// Two nodes over `cluster` sharing one secret key file (in the folder answered), the
/// fixture source and actors appended through the first.
pub async fn two_nodes(cluster: &NatsCluster) -> (tempfile::TempDir, TestApp, TestApp) {
    let folder = tempfile::tempdir().unwrap();
    let key_file = folder.path().join("webhooks.key");
    let a = hooks_node(cluster, &key_file, json!({})).await;
    let b = hooks_node(cluster, &key_file, json!({})).await;
    a.seed().await;
    (folder, a, b)
}

/// Subscribes `rx` to every process event through `app`; answers (id, secret).
pub async fn subscribe_to_processes(app: &TestApp, rx: &Receiver) -> (String, String) {
    subscribe(
        app,
        json!({"url": rx.url(), "filter": {"streams": ["process/"]}}),
    )
    .await
}

/// PATCH with the admin key; answers (status, body).
async fn patch(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let resp = app
        .client
        .patch(app.url(path))
        .bearer_auth(&app.keys.admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// GET with the admin key: the status.
async fn status_of(app: &TestApp, path: &str) -> u16 {
    app.client
        .get(app.url(path))
        .bearer_auth(&app.keys.admin)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_subscription_created_on_one_node_is_listed_changed_and_deleted_from_the_other() {
    let cluster = NatsCluster::start().await;
    let (_folder, a, b) = two_nodes(&cluster).await;
    let rx = Receiver::ok().await;
    let (id, secret) = subscribe_to_processes(&a, &rx).await;

    // Listed and read on B once its watcher has applied the create (the cluster held it
    // before A answered; B's copy follows within moments, later on a loaded machine).
    wait_until("B lists the subscription", || async {
        admin_get(&b, "/subscriptions").await["subscriptions"]
            .as_array()
            .is_some_and(|subs| !subs.is_empty())
    })
    .await;
    let listed = admin_get(&b, "/subscriptions").await;
    let ids: Vec<&str> = listed["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()], "{listed}");

    // Changed on B: A (whichever node delivers) sees the change.
    let (status, v) = patch(
        &b,
        &format!("/subscriptions/{id}"),
        json!({"description": "changed on b"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    wait_until("A sees B's change", || async {
        sub(&a, &id).await["description"] == "changed on b"
    })
    .await;

    // Delivered once, signed with the secret A answered, whichever node holds the lease;
    // the cursor is read from both nodes.
    let sent = statements(&b, 1, 3).await;
    wait_delivered(&rx, &sent).await;
    assert!(rx.accepted().iter().all(|c| verifies(&secret, c)));
    let last = sent.last().unwrap().0;
    for app in [&a, &b] {
        wait_until(
            "the cursor reaches the last event on both nodes",
            || async { sub(app, &id).await["cursor"].as_u64() == Some(last) },
        )
        .await;
    }

    // Deleted on B: gone on A, and nothing more is delivered.
    let resp = b
        .client
        .delete(b.url(&format!("/subscriptions/{id}")))
        .bearer_auth(&b.keys.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let path = format!("/subscriptions/{id}");
    wait_until("A no longer knows the subscription", || async {
        status_of(&a, &path).await == 404
    })
    .await;
    let before = rx.all().len();
    statements(&a, 10, 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(rx.all().len(), before, "delivered after the delete");
}

#[tokio::test]
async fn dead_letters_made_by_the_delivering_node_are_read_and_redelivered_from_either_node() {
    let cluster = NatsCluster::start().await;
    let (_folder, a, b) = two_nodes(&cluster).await;
    // Refuses everything until told otherwise.
    let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = open.clone();
    let rx = Receiver::start(move |_, _| {
        if gate.load(std::sync::atomic::Ordering::SeqCst) {
            Answer::Status(200)
        } else {
            Answer::Status(500)
        }
    })
    .await;
    let (id, _) = subscribe(
        &a,
        json!({"url": rx.url(), "mode": "parallel", "filter": {"streams": ["process/"]}}),
    )
    .await;
    let sent = statements(&a, 1, 2).await;
    let dead_path = format!("/subscriptions/{id}/dead-letters");
    for app in [&a, &b] {
        wait_until("both dead letters are read on both nodes", || async {
            let v = admin_get(app, &dead_path).await;
            let seqs: Vec<u64> = v["dead_letters"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|d| d["seq"].as_u64())
                .collect();
            seqs == [sent[0].0, sent[1].0]
        })
        .await;
    }

    // Redelivered from B: the delivering node (wherever it is) takes them.
    open.store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, v) = post(&b, &format!("{dead_path}/redeliver"), json!({})).await;
    assert_eq!(status, 202, "{v}");
    wait_delivered(&rx, &sent).await;
    for app in [&a, &b] {
        wait_until("no dead letter left on either node", || async {
            admin_get(app, &dead_path).await["dead_letters"]
                .as_array()
                .unwrap()
                .is_empty()
        })
        .await;
    }
}

#[tokio::test]
async fn an_api_key_configured_on_one_node_works_on_the_other() {
    let cluster = NatsCluster::start().await;
    let folder = tempfile::tempdir().unwrap();
    let key_file = folder.path().join("webhooks.key");
    let b = hooks_node(&cluster, &key_file, json!({})).await;
    let key = annals::keys::generate();
    let entry = json!({"principal": "desk-on-a", "hash": key.hash, "scopes": ["read"]});
    let a = hooks_node(&cluster, &key_file, json!({"auth": {"keys": [entry]}})).await;

    let get = |app: &TestApp, path: &str, with: &str| {
        app.client
            .get(app.url(path))
            .bearer_auth(with.to_string())
            .send()
    };
    assert_eq!(get(&a, "/events", &key.key).await.unwrap().status(), 200);
    // B was running before A published the key: it follows the cluster's keys.
    wait_until("B accepts the key configured on A", || async {
        get(&b, "/events", &key.key).await.unwrap().status() == 200
    })
    .await;
    // With the scopes it was configured with, and no more.
    let resp = b
        .client
        .post(b.url("/streams/process%2Fp/events"))
        .bearer_auth(&key.key)
        .json(&json!({"events": [statement(1)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // A node started after it knows it at once.
    let c = hooks_node(&cluster, &key_file, json!({})).await;
    assert_eq!(get(&c, "/events", &key.key).await.unwrap().status(), 200);
    assert_eq!(
        get(&c, "/events", "ak_unknown").await.unwrap().status(),
        401
    );
}

#[tokio::test]
async fn a_node_moved_from_the_sled_backend_seeds_an_empty_cluster_with_its_subscriptions() {
    let cluster = NatsCluster::start().await;
    let folder = tempfile::tempdir().unwrap();
    let key_file = folder.path().join("webhooks.key");
    let mut hooks = test_webhooks();
    hooks["secret_key_file"] = json!(key_file);
    let mut a = spawn_app_with(|c| c.with(json!({ "webhooks": hooks })).unwrap()).await;
    let rx = Receiver::ok().await;
    let (id, secret) = subscribe_to_processes(&a, &rx).await;

    // The same folder, now a node of the cluster: its subscription becomes the cluster's.
    let urls = cluster.urls();
    a.config = a
        .config
        .clone()
        .with(json!({"log": {"backend": "nats", "nats": {"urls": urls}}}))
        .unwrap();
    a.restart().await;
    let b = hooks_node(&cluster, &key_file, json!({})).await;
    assert_eq!(sub(&b, &id).await["id"], id.as_str());
    a.seed().await;
    let sent = statements(&b, 1, 2).await;
    wait_delivered(&rx, &sent).await;
    assert!(rx.accepted().iter().all(|c| verifies(&secret, c)));
}
