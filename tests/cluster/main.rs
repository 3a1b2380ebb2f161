//! The log on a NATS JetStream cluster (issue 9): three real `nats-server` processes on
//! loopback (`nats.rs`) and Annals nodes started in-process over temp folders with
//! `[log] backend = "nats"`. Tests check what clients of the HTTP API see, and the engine
//! behaviour the backend relies on. Nothing here may reach beyond loopback.

mod engine;
#[path = "../api/helpers.rs"]
mod helpers;
mod nats;

use nats::NatsCluster;

#[tokio::test]
async fn a_three_node_cluster_starts_and_elects_a_meta_leader() {
    let cluster = NatsCluster::start().await;
    let leader = cluster.wait_for_meta_leader().await;
    assert!(
        cluster.nodes.iter().any(|n| n.name == leader),
        "{leader} is not a node"
    );
}
