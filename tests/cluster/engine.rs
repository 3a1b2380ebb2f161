//! What the backend relies on in JetStream itself, checked against the real server: an atomic
//! batch (ADR-50) with `Nats-Expected-Last-Sequence` on its first message is stored whole at
//! the expected place or not at all, so a group of records can never be interleaved with
//! another node's. These tests must never depend on Annals.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};

use crate::nats::NatsCluster;

async fn stream_with_atomic_publishes(cluster: &NatsCluster) -> jetstream::Context {
    // Generous: the test machine is shared with builds.
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(15))
        .build(cluster.client().await);
    js.create_stream(stream::Config {
        name: "probe".into(),
        subjects: vec!["probe.log".into()],
        num_replicas: 3,
        allow_atomic_publish: true,
        ..Default::default()
    })
    .await
    .unwrap();
    cluster.stream_leader("probe").await;
    js
}

/// Publishes `payloads` as one atomic batch expecting the stream's last sequence to be
/// `last`, each message's id `id-payload`; the commit's answer, or what went wrong (every step's error, never a panic, so a
/// failure under load says which step it was).
async fn batch(
    js: &jetstream::Context,
    batch_id: &str,
    id: &str,
    last: u64,
    payloads: &[&str],
) -> Result<jetstream::publish::PublishAck, String> {
    let client = js.client();
    let inbox = client.new_inbox();
    let mut first_reply = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    let mut commit = None;
    for (i, p) in payloads.iter().enumerate() {
        let mut h = HeaderMap::new();
        h.insert("Nats-Batch-Id", batch_id);
        h.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
        h.insert("Nats-Msg-Id", format!("{id}-{p}").as_str());
        if i == 0 {
            h.insert("Nats-Expected-Last-Sequence", last.to_string().as_str());
        }
        if i + 1 == payloads.len() {
            h.insert("Nats-Batch-Commit", "1");
            commit = Some(
                js.send_publish(
                    "probe.log",
                    jetstream::message::PublishMessage::build()
                        .headers(h)
                        .payload(p.to_string().into()),
                )
                .await
                .map_err(|e| format!("commit publish: {e}"))?,
            );
        } else if i == 0 {
            client
                .publish_with_reply_and_headers("probe.log", inbox.clone(), h, p.to_string().into())
                .await
                .map_err(|e| format!("first publish: {e}"))?;
        } else {
            client
                .publish_with_headers("probe.log", h, p.to_string().into())
                .await
                .map_err(|e| format!("publish {}: {e}", i + 1))?;
        }
    }
    let ack = commit
        .ok_or("no payload")?
        .await
        .map_err(|e| format!("commit: {e}"));
    if payloads.len() > 1 {
        // The server answers a batch's first message (a request) once the batch is started.
        use futures_util::StreamExt;
        let reply = tokio::time::timeout(Duration::from_secs(15), first_reply.next()).await;
        if !matches!(reply, Ok(Some(_))) {
            return Err(format!("the batch was not started (commit: {ack:?})"));
        }
    }
    ack
}

/// The server's refusal codes this probe expects; any other failure (a timeout, a leader
/// election on a loaded machine) says nothing about atomic batches.
fn is_refusal(err: &str) -> bool {
    err.contains("10071") || err.contains("10201")
}

/// [`batch`], tried again (with a new batch id, the same message ids) while it fails for a
/// reason that is not the server's answer to the batch.
async fn settled_batch(
    cluster: &NatsCluster,
    js: &jetstream::Context,
    id: &str,
    last: u64,
    payloads: &[&str],
) -> Result<jetstream::publish::PublishAck, String> {
    let mut attempt = 0;
    loop {
        let batch_id = if attempt == 0 {
            id.to_string()
        } else {
            format!("{id}{attempt}")
        };
        match batch(js, &batch_id, id, last, payloads).await {
            Err(e) if !is_refusal(&e) && attempt < 3 => {
                eprintln!("batch {batch_id}: {e}; trying again once the stream has a leader");
                cluster.stream_leader("probe").await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn last_sequence(js: &jetstream::Context) -> u64 {
    let mut s = js.get_stream("probe").await.expect("the probe stream");
    s.info()
        .await
        .expect("the probe stream's info")
        .state
        .last_sequence
}

#[tokio::test]
async fn an_atomic_batch_expecting_a_stale_last_sequence_stores_none_of_its_messages() {
    let cluster = NatsCluster::start().await;
    let js = stream_with_atomic_publishes(&cluster).await;
    match settled_batch(&cluster, &js, "a", 0, &["a1", "a2", "a3"]).await {
        Ok(ack) => assert_eq!(ack.sequence, 3),
        // Stored by an attempt whose answer was lost: its retry is refused (a duplicate, or
        // stale); the stream's state below says which batch was stored.
        Err(e) => assert!(is_refusal(&e), "{e}"),
    }
    assert_eq!(last_sequence(&js).await, 3);
    // Another node's batch, staged against the empty stream, loses whole.
    let err = settled_batch(&cluster, &js, "b", 0, &["b1", "b2"])
        .await
        .unwrap_err();
    assert!(err.contains("10071"), "{err}");
    // Expecting 2 (one behind) is stale too, however the batch would line up after it.
    let err = settled_batch(&cluster, &js, "c", 2, &["c1", "c2"])
        .await
        .unwrap_err();
    assert!(err.contains("10071"), "{err}");
    assert_eq!(last_sequence(&js).await, 3);
    match settled_batch(&cluster, &js, "d", 3, &["d1"]).await {
        Ok(ack) => assert_eq!(ack.sequence, 4),
        Err(e) => assert!(is_refusal(&e), "{e}"),
    }
    assert_eq!(last_sequence(&js).await, 4);
    // A batch repeating a stored message id is refused whole (the duplicate window).
    let err = settled_batch(&cluster, &js, "a", 4, &["a1", "e2"])
        .await
        .unwrap_err();
    assert!(err.contains("10201"), "{err}");
    assert_eq!(last_sequence(&js).await, 4);
}
