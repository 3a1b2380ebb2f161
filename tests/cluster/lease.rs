//! The webhook delivery lease: a node whose renewal is refused (another holder wrote the
//! lease) stops delivering at once, nothing is delivered while the other holder's lease
//! stands, and once it expires a node takes the lease again and delivers what was appended
//! meanwhile, in order. The intruder is the test itself, writing the lease in the cluster's
//! bucket as another node would.

use std::time::Duration;

use crate::nats::NatsCluster;
use crate::shared::{subscribe_to_processes, two_nodes};
use crate::support::*;

/// The lease's TTL (`webhooks.lease_ttl_ms`, shipped default).
const TTL: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_node_whose_lease_was_taken_stops_delivering_until_it_holds_the_lease_again() {
    let cluster = NatsCluster::start().await;
    let (_folder, a, _b) = two_nodes(&cluster).await;
    let rx = Receiver::ok().await;
    let (id, secret) = subscribe_to_processes(&a, &rx).await;
    let first = statements(&a, 1, 1).await;
    wait_delivered(&rx, &first).await;

    // Another holder writes the lease: the holder's next renewal (within 2 s) is refused.
    let js = async_nats::jetstream::new(cluster.client().await);
    let leases = js.get_key_value("annals_webhook_leases").await.unwrap();
    let key = format!("lease.{id}");
    // Retried: on a cluster just started, the bucket's stream may briefly answer "not found"
    // while its leader settles (one CI run saw it); the test is about what follows the write.
    let mut attempts = 0;
    let taken = loop {
        let at = tokio::time::Instant::now();
        match leases.put(&key, "intruder".into()).await {
            Ok(_) => break at,
            Err(e) if attempts < 20 => {
                attempts += 1;
                eprintln!("the intruder's write is retried: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("the intruder cannot write the lease: {e}"),
        }
    };
    tokio::time::sleep(Duration::from_millis(3500)).await;

    let meanwhile = statements(&a, 2, 3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        taken.elapsed() < TTL,
        "the machine is too slow for this test: {:?} since the lease was taken",
        taken.elapsed()
    );
    let seen: Vec<String> = rx.all().into_iter().map(|c| c.id).collect();
    assert!(
        meanwhile.iter().all(|(_, id)| !seen.contains(id)),
        "delivered while another node held the lease"
    );

    // The intruder never renews: its lease expires and a node takes it back.
    wait_delivered(&rx, &meanwhile).await;
    let holder = leases.get(&key).await.unwrap().unwrap();
    assert_ne!(&holder[..], b"intruder");
    assert_verified_in_order(&rx, &secret);
}

/// Asserts that every delivery `rx` accepted verifies with `secret` and that their seqs never
/// go back (repeats allowed: delivery is at least once).
pub(crate) fn assert_verified_in_order(rx: &Receiver, secret: &str) {
    let all = rx.accepted();
    assert!(all.iter().all(|c| verifies(secret, c)));
    let seqs: Vec<u64> = all.iter().map(|c| c.seq()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {seqs:?}"
    );
}
