//! The watches a node keeps on the cluster's shared state survive the loss of the server
//! their consumer lived on (a leader kill): API keys added or revoked elsewhere afterwards
//! are honoured, and subscriptions created on the other node are seen. A key-value watch is
//! an ordered consumer on one server; when that server dies while the node's connection is
//! on another, the client reports a missed heartbeat, and the node must watch again and
//! read the bucket again. Two in-process Annals nodes over a 3-node JetStream cluster of
//! their own (servers are killed).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::api_helpers::TestApp;
use crate::keys_cli::answers_within;
use crate::nats::NatsCluster;
use crate::shared::{subscribe_to_processes, two_nodes};
use crate::support::*;

/// How long a node may take to see a change made after its watch's server died: the
/// client notices after two missed 5 s heartbeats, then the node watches again once the
/// bucket has a leader.
const SEEN_WITHIN: Duration = Duration::from_secs(45);

/// The server (by name) each watch consumer of the key-value stream `kv_stream` lives on,
/// with the server its subscriber is connected to.
async fn watch_placements(cluster: &NatsCluster, kv_stream: &str) -> Vec<(String, String)> {
    let js = async_nats::jetstream::new(cluster.client().await);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut out = Vec::new();
        if let Ok(stream) = js.get_stream(kv_stream).await {
            let mut consumers = stream.consumers();
            while let Some(Ok(info)) = consumers.next().await {
                let (Some(host), Some(subject)) = (
                    info.cluster.and_then(|c| c.leader),
                    info.config.deliver_subject,
                ) else {
                    continue;
                };
                for node in cluster.nodes.iter() {
                    let url = format!("http://127.0.0.1:{}/connz?subs=1", node.http_port);
                    let Ok(resp) = http.get(&url).send().await else {
                        continue;
                    };
                    let connz: Value = resp.json().await.unwrap_or(Value::Null);
                    let subscribed = connz["connections"].as_array().is_some_and(|conns| {
                        conns.iter().any(|c| {
                            c["subscriptions_list"]
                                .as_array()
                                .is_some_and(|subs| subs.iter().any(|s| s == &json!(subject)))
                        })
                    });
                    if subscribed {
                        out.push((host.clone(), node.name.clone()));
                    }
                }
            }
        }
        if out.len() >= 2 {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "no two watches found on {kv_stream}: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Kills (`kill -9`) a server that holds a node's watch consumer of `kv_stream` while that
/// node's connection is on another server: the watch then fails (a missed heartbeat) rather
/// than being set up again by a reconnect. While every watch lives on its subscriber's own
/// server, that server is killed and started again first (the client moves, and its watch
/// with it). Answers the index of the server left dead.
async fn kill_a_watch_host(cluster: &mut NatsCluster, kv_stream: &str) -> usize {
    for _ in 0..5 {
        let placements = watch_placements(cluster, kv_stream).await;
        let host = match placements.iter().find(|(host, conn)| host != conn) {
            Some((host, _)) => {
                let i = index_of(cluster, host);
                cluster.kill9(host);
                return i;
            }
            None => placements[0].0.clone(),
        };
        let i = index_of(cluster, &host);
        cluster.kill9(&host);
        cluster.wait_for_meta_leader().await;
        cluster.restart(i);
        cluster.wait_for_meta_leader().await;
        cluster.stream_leader(kv_stream).await;
    }
    panic!("every watch of {kv_stream} stayed on its subscriber's own server");
}

fn index_of(cluster: &NatsCluster, name: &str) -> usize {
    cluster
        .nodes
        .iter()
        .position(|n| n.name == name)
        .unwrap_or_else(|| panic!("no server {name}"))
}

/// A read-only key entry for `principal`, and the key.
pub(crate) fn read_key(principal: &str) -> (annals::keys::KeyEntry, String) {
    let key = annals::keys::generate();
    let entry = annals::keys::KeyEntry {
        principal: principal.into(),
        hash: key.hash.clone(),
        scopes: vec![annals::keys::Scope::Read],
    };
    (entry, key.key.clone())
}

#[tokio::test]
async fn keys_added_and_revoked_after_the_keys_watch_lost_its_server_are_honoured_by_both_nodes() {
    let mut cluster = NatsCluster::start().await;
    let (_folder, a, b) = two_nodes(&cluster).await;
    let nats = a.config.log.nats.clone().unwrap();

    // A key known to both nodes before the failure, revoked after it.
    let (before, before_key) = read_key("before");
    annals::keys::add_to_cluster(&nats, &before).await.unwrap();
    for app in [&a, &b] {
        answers_within(app, &before_key, 200, "a key added before", SEEN_WITHIN).await;
    }

    let dead = kill_a_watch_host(&mut cluster, "KV_annals_keys").await;

    // Added and revoked through the cluster (as `annals keys add` / `revoke` do) while the
    // watch's server is dead: both nodes see both changes.
    let (after, after_key) = read_key("after");
    annals::keys::add_to_cluster(&nats, &after).await.unwrap();
    annals::keys::revoke_in_cluster(&nats, "before")
        .await
        .unwrap();
    for app in [&a, &b] {
        answers_within(
            app,
            &after_key,
            200,
            "a key added after the kill",
            SEEN_WITHIN,
        )
        .await;
        answers_within(
            app,
            &before_key,
            401,
            "a key revoked after the kill",
            SEEN_WITHIN,
        )
        .await;
    }

    // And again once the server is back and another watch server is lost.
    cluster.restart(dead);
    cluster.wait_for_meta_leader().await;
    kill_a_watch_host(&mut cluster, "KV_annals_keys").await;
    annals::keys::revoke_in_cluster(&nats, "after")
        .await
        .unwrap();
    for app in [&a, &b] {
        answers_within(
            app,
            &after_key,
            401,
            "a key revoked after the second kill",
            SEEN_WITHIN,
        )
        .await;
    }
}

#[tokio::test]
async fn a_subscription_created_after_the_webhook_watch_lost_its_server_is_seen_by_the_other_node()
{
    let mut cluster = NatsCluster::start().await;
    let (_folder, a, b) = two_nodes(&cluster).await;
    let rx = Receiver::ok().await;
    subscribe_to_processes(&a, &rx).await;
    kill_a_watch_host(&mut cluster, "KV_annals_webhooks").await;

    // Created on each node after the kill: each node lists both, whichever watch failed.
    let (on_b, _) = subscribe_to_processes(&b, &rx).await;
    let (on_a, _) = subscribe_to_processes(&a, &rx).await;
    let deadline = Instant::now() + SEEN_WITHIN;
    for (app, id, name) in [(&a, &on_b, "A"), (&b, &on_a, "B")] {
        lists_by(app, id, name, deadline).await;
    }
}

/// Waits until node `name` lists the subscription `id` made on another node; panics at
/// `deadline`.
pub(crate) async fn lists_by(app: &TestApp, id: &str, name: &str, deadline: Instant) {
    loop {
        let listed = admin_get(app, "/subscriptions").await;
        let seen = listed["subscriptions"]
            .as_array()
            .is_some_and(|subs| subs.iter().any(|s| s["id"] == json!(id)));
        if seen {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} does not list the subscription made on the other node: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
