//! A lease keeper whose first read of the subscription's state under a freshly taken lease
//! fails (the cluster answered nothing: an election of the webhook bucket, here a connection
//! cut by a loopback proxy) gives the lease back and takes it again on the next round, then
//! delivers: a transient cluster error must never end a keeper, which may be the only node
//! left to deliver the subscription. This must never reach beyond loopback.

use serde_json::json;
use uuid::Uuid;

use crate::ack_lost::AckCutter;
use crate::lease::assert_verified_in_order;
use crate::nats::NatsCluster;
use crate::shared::{hooks_node, subscribe_to_processes};
use crate::support::*;

#[tokio::test]
async fn a_keeper_whose_read_of_the_cluster_under_a_new_lease_fails_takes_the_lease_again_and_delivers()
 {
    let cluster = NatsCluster::shared();
    let stream = format!("lease-retry-{}", Uuid::now_v7().simple());
    // Only the state read a keeper makes under a new lease filters the bucket by a wildcard
    // kind (`*.<subscription>`); start-up and resyncs read it whole (`>`).
    let cutter = AckCutter::start(&cluster.urls()[0], format!("{stream}_webhooks.*.")).await;
    let folder = tempfile::tempdir().unwrap();
    let node = hooks_node(
        cluster,
        &folder.path().join("webhooks.key"),
        json!({"log": {"nats": {"urls": [cutter.url()], "stream": stream}}}),
    )
    .await;
    node.seed().await;
    let rx = Receiver::ok().await;

    cutter.arm();
    let (_id, secret) = subscribe_to_processes(&node, &rx).await;
    let sent = statements(&node, 1, 3).await;
    wait_delivered(&rx, &sent).await;
    assert_eq!(cutter.cuts(), 1, "the keeper's read was not cut");

    assert_verified_in_order(&rx, &secret);
}
