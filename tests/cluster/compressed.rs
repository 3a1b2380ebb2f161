//! Stream messages compressed or not (`[log.nats] compression`): a node that compresses and
//! one that does not share one stream, and each reads the other's messages as its own. The
//! log stays one chain that verifies on both, whichever form each group took.

use futures_util::future::join_all;
use serde_json::Value;

use crate::api_helpers::{Backend, spawn_app_on, statement};
use crate::caught_up;
use crate::nats::NatsCluster;

#[tokio::test]
async fn a_node_that_compresses_and_one_that_does_not_read_each_others_groups_as_one_chain() {
    let cluster = NatsCluster::start().await;
    let backend = Backend::Nats {
        urls: cluster.urls(),
        stream: "annals".into(),
    };
    let with = |on: bool| {
        move |mut c: annals::config::Config| {
            if let Some(n) = c.log.nats.as_mut() {
                n.compression = on;
            }
            c
        }
    };
    let packs = spawn_app_on(&backend, with(true)).await;
    let plain = spawn_app_on(&backend, with(false)).await;
    packs.seed().await;

    // Each node appends in turn, so the stream holds groups of both forms.
    for round in 0..4u64 {
        let bodies: Vec<Value> = (0..5u64).map(|n| statement(round * 10 + n)).collect();
        let appends = bodies.iter().enumerate().map(|(n, body)| {
            let (node, stream) = if n % 2 == 0 {
                (&packs, "process/packed")
            } else {
                (&plain, "process/plain")
            };
            node.append(stream, body)
        });
        for resp in join_all(appends).await {
            assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        }
    }
    let head = packs.head().await.0.max(plain.head().await.0);
    assert_eq!(head, 5 + 20);
    assert_eq!(caught_up(&plain, head).await, caught_up(&packs, head).await);

    // Both forms are in the stream.
    let js = async_nats::jetstream::new(cluster.client().await);
    let mut stream = js.get_stream("annals").await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let (mut zstd, mut raw) = (0, 0);
    for s in 1..=last {
        let m = stream.get_raw_message(s).await.unwrap();
        if m.headers.get("Annals-Zstd").is_some() {
            zstd += 1;
        } else {
            raw += 1;
        }
    }
    assert!(zstd > 0 && raw > 0, "{zstd} compressed, {raw} plain");

    // Each node serves every record, the same bytes, one chain.
    for node in [&packs, &plain] {
        let page: Value = node.get_json("/events?from=1&limit=100").await;
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len() as u64, head);
        crate::log::assert_one_chain(events);
    }
    let a: Value = packs.get_json("/events?from=1&limit=100").await;
    let b: Value = plain.get_json("/events?from=1&limit=100").await;
    assert_eq!(a["events"], b["events"]);
}
