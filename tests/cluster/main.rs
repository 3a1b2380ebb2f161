//! The log on a NATS JetStream cluster (issue 9): three real `nats-server` processes on
//! loopback (`nats.rs`) and Annals nodes started in-process over temp folders with
//! `[log] backend = "nats"` (`log.rs`). Tests check what clients of the HTTP API see, and the
//! engine behaviour the backend relies on (`engine.rs`). Nothing here may reach beyond
//! loopback, and every server a test starts is killed when it ends.

#[path = "../api/helpers.rs"]
mod api_helpers;

mod ack_lost;
mod cache_kill;
mod compressed;
mod credentials;
mod engine;
mod failover;
mod keep_out;
mod keys_cli;
mod lease;
mod lease_retry;
mod log;
mod migrate;
mod nats;
mod shared;
mod slow_cluster;
mod stalled_watch;
mod suites;
mod tryout;
mod watches;

// The suite files name their harness and siblings from the crate root.
use suites::{demo_server, helpers, projections, webhooks::support};

use std::time::{Duration, Instant};

use serde_json::json;

use api_helpers::{Backend, TestApp, spawn_app_on};
use nats::NatsCluster;

/// An Annals node over the cluster's stream `annals`, on a fresh folder.
pub async fn node(cluster: &NatsCluster) -> TestApp {
    let backend = Backend::Nats {
        urls: cluster.urls(),
        stream: "annals".into(),
    };
    spawn_app_on(&backend, |c| c).await
}

/// Waits (up to 30 s) until `app`'s durable head reaches `seq`; the head then.
pub async fn caught_up(app: &TestApp, seq: u64) -> (u64, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let head = app.head().await;
        if head.0 >= seq {
            return head;
        }
        assert!(
            Instant::now() < deadline,
            "the node is at {} after 30 s, not {seq}",
            head.0
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_three_node_cluster_starts_and_elects_a_meta_leader() {
    let cluster = NatsCluster::start().await;
    let leader = cluster.wait_for_meta_leader().await;
    assert!(
        cluster.nodes.iter().any(|n| n.name == leader),
        "{leader} is not a node"
    );
}

#[test]
fn a_log_backend_that_is_neither_sled_nor_nats_is_a_clear_configuration_error() {
    let err = annals::config::Config::defaults()
        .unwrap()
        .with(json!({"log": {"backend": "postgres"}}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("backend"), "{err}");
    assert!(err.contains("postgres"), "{err}");
    assert!(err.contains("sled") && err.contains("nats"), "{err}");

    let err = annals::config::Config::defaults()
        .unwrap()
        .with(json!({"log": {"backend": "nats"}}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("log.nats.urls is empty"), "{err}");
}

#[test]
fn the_try_out_cluster_configs_load_as_nats_nodes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for node in ["annals-a", "annals-b"] {
        let path = root.join(format!("config/cluster/{node}.toml"));
        let config = annals::config::Config::load(Some(&path)).unwrap();
        assert_eq!(config.log.backend, annals::log::Backend::Nats, "{node}");
        let nats = config.log.nats.unwrap();
        assert_eq!(nats.urls.len(), 3, "{node}");
        assert_eq!(nats.replicas, 3, "{node}");
    }
}
