//! `webhooks.deliver = false`: a node that keeps out of webhook delivery still serves the
//! subscriptions API and follows the cluster's webhook state, but never takes a delivery
//! lease, so only the other nodes deliver.

use std::time::Duration;

use serde_json::json;

use crate::nats::NatsCluster;
use crate::shared::{hooks_node, subscribe_to_processes};
use crate::support::*;

#[tokio::test]
async fn a_node_that_keeps_out_of_delivery_serves_subscriptions_but_never_takes_a_lease() {
    let cluster = NatsCluster::start().await;
    let folder = tempfile::tempdir().unwrap();
    let key_file = folder.path().join("webhooks.key");
    let reader = hooks_node(&cluster, &key_file, json!({"webhooks": {"deliver": false}})).await;
    reader.seed().await;
    let rx = Receiver::ok().await;
    let (id, _) = subscribe_to_processes(&reader, &rx).await;
    let sent = statements(&reader, 1, 2).await;

    // More than two rounds of lease attempts (every 2 s): a delivering node would have taken
    // the lease and delivered by now.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(rx.all().is_empty(), "a node kept out of delivery delivered");
    let js = async_nats::jetstream::new(cluster.client().await);
    let leases = js.get_key_value("annals_webhook_leases").await.unwrap();
    assert!(
        leases.get(format!("lease.{id}")).await.unwrap().is_none(),
        "a node kept out of delivery took the lease"
    );

    // A delivering node joins: it takes the lease and delivers what was appended, and the
    // reader follows the cursor it moves.
    let _deliverer = hooks_node(&cluster, &key_file, json!({})).await;
    wait_delivered(&rx, &sent).await;
    let last = sent.last().unwrap().0;
    wait_until("the reader shows the deliverer's cursor", || async {
        sub(&reader, &id).await["cursor"] == last
    })
    .await;
    assert!(leases.get(format!("lease.{id}")).await.unwrap().is_some());
}
