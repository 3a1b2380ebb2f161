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
/// `last`; the commit's answer.
async fn batch(
    js: &jetstream::Context,
    id: &str,
    last: u64,
    payloads: &[&str],
) -> Result<jetstream::publish::PublishAck, String> {
    let client = js.client();
    let inbox = client.new_inbox();
    let mut first_reply = client.subscribe(inbox.clone()).await.unwrap();
    let mut commit = None;
    for (i, p) in payloads.iter().enumerate() {
        let mut h = HeaderMap::new();
        h.insert("Nats-Batch-Id", id);
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
                .unwrap(),
            );
        } else if i == 0 {
            client
                .publish_with_reply_and_headers("probe.log", inbox.clone(), h, p.to_string().into())
                .await
                .unwrap();
        } else {
            client
                .publish_with_headers("probe.log", h, p.to_string().into())
                .await
                .unwrap();
        }
    }
    let ack = commit.unwrap().await.map_err(|e| e.to_string());
    if payloads.len() > 1 {
        // The server answers a batch's first message (a request) once the batch is started.
        use futures_util::StreamExt;
        let reply = tokio::time::timeout(Duration::from_secs(15), first_reply.next()).await;
        assert!(matches!(reply, Ok(Some(_))), "the batch was not started");
    }
    ack
}

#[tokio::test]
async fn an_atomic_batch_expecting_a_stale_last_sequence_stores_none_of_its_messages() {
    let cluster = NatsCluster::start().await;
    let js = stream_with_atomic_publishes(&cluster).await;
    let ack = batch(&js, "a", 0, &["a1", "a2", "a3"]).await.unwrap();
    assert_eq!(ack.sequence, 3);
    // Another node's batch, staged against the empty stream, loses whole.
    let err = batch(&js, "b", 0, &["b1", "b2"]).await.unwrap_err();
    assert!(err.contains("10071"), "{err}");
    // Expecting 2 (one behind) is stale too, however the batch would line up after it.
    let err = batch(&js, "c", 2, &["c1", "c2"]).await.unwrap_err();
    assert!(err.contains("10071"), "{err}");
    let mut s = js.get_stream("probe").await.unwrap();
    assert_eq!(s.info().await.unwrap().state.last_sequence, 3);
    let ack = batch(&js, "d", 3, &["d1"]).await.unwrap();
    assert_eq!(ack.sequence, 4);
    // A batch repeating a stored message id is refused whole (the duplicate window).
    let err = batch(&js, "a", 4, &["a1", "e2"]).await.unwrap_err();
    assert!(err.contains("10201"), "{err}");
    assert_eq!(s.info().await.unwrap().state.last_sequence, 4);
}
