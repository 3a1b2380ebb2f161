//! An operator's change made while the cluster is briefly unable to take writes (the server
//! leading the webhook bucket paused with `SIGSTOP`: its requests time out, then it comes
//! back or another leads) is answered as done, not with a 503: the node writes its webhook
//! state to the cluster again within the request's budget, and the cluster then holds it.

use std::time::Duration;

use serde_json::json;

use crate::nats::NatsCluster;
use crate::shared::{hooks_node, subscribe_to_processes};
use crate::support::*;

#[tokio::test]
async fn a_subscription_created_while_the_webhook_bucket_leader_is_paused_is_created_and_in_the_cluster()
 {
    let cluster = NatsCluster::start().await;
    let folder = tempfile::tempdir().unwrap();
    let a = hooks_node(&cluster, &folder.path().join("webhooks.key"), json!({})).await;
    a.seed().await;
    let rx = Receiver::ok().await;
    // The bucket exists and has a leader before it is paused.
    subscribe_to_processes(&a, &rx).await;
    let leader = cluster.stream_leader("KV_annals_webhooks").await;

    // Paused for 4 s, twice the cluster's request timeout: the first write times out.
    cluster.signal(&leader, "STOP");
    let resumed = {
        let leader = leader.clone();
        let pid_owner = &cluster;
        async move {
            tokio::time::sleep(Duration::from_secs(4)).await;
            pid_owner.signal(&leader, "CONT");
        }
    };
    let created = async {
        let (status, v) = post(
            &a,
            "/subscriptions",
            json!({"url": rx.url(), "filter": {"streams": ["process/"]}}),
        )
        .await;
        assert_eq!(status, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    };
    let (id, ()) = tokio::join!(created, resumed);

    // Answered once the cluster holds it.
    let js = async_nats::jetstream::new(cluster.client().await);
    let bucket = js.get_key_value("annals_webhooks").await.unwrap();
    assert!(
        bucket.get(format!("sub.{id}")).await.unwrap().is_some(),
        "the subscription is not in the cluster"
    );
}
