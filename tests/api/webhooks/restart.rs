//! Crashes and restarts: the cursor is durable, so nothing matching is lost; what is sent
//! again carries the same webhook-id.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

use super::support::*;
use crate::helpers::*;

/// Every (seq, id) accepted, checking that each webhook-id always comes with the same body.
fn check_duplicates(rx: &Receiver) -> BTreeMap<String, usize> {
    let mut bodies: BTreeMap<String, bytes::Bytes> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for c in rx.all() {
        assert_eq!(
            c.json()["data"]["id"],
            c.id.as_str(),
            "webhook-id is the event id"
        );
        if let Some(prev) = bodies.get(&c.id) {
            assert_eq!(prev, &c.body, "a redelivery of {} changed its body", c.id);
        }
        bodies.insert(c.id.clone(), c.body.clone());
        *counts.entry(c.id).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn a_graceful_restart_resumes_from_the_cursor_and_loses_nothing() {
    let mut app = app_with(json!({})).await;
    let rx = Receiver::ok().await;
    let (id, _) = subscribe(&app, json!({"url": rx.url()})).await;
    let before = statements(&app, 1, 5).await;
    wait_delivered(&rx, &before).await;
    app.restart().await;
    let after = statements(&app, 6, 5).await;
    wait_delivered(&rx, &after).await;
    let counts = check_duplicates(&rx);
    // The cursor was made durable at shutdown: nothing before the restart came twice.
    for (_, eid) in &before {
        assert_eq!(
            counts[eid], 1,
            "{eid} delivered again after a graceful restart"
        );
    }
    assert_eq!(sub(&app, &id).await["status"], "active");
}

/// Kills the binary when the test ends, even by a panic, so no server outlives its test.
struct Running(Option<BinaryServer>);

impl Running {
    fn kill9(mut self) {
        if let Some(s) = self.0.take() {
            s.kill9();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.0.as_mut() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

/// A minimal client for the real binary.
struct Bin {
    base: String,
    client: reqwest::Client,
    keys: TestKeys,
}

impl Bin {
    async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn append(&self, stream: &str, body: &Value) -> Value {
        let (status, v) = self
            .post(
                &format!("/streams/{}/events", encode(stream)),
                &self.keys.append,
                body,
            )
            .await;
        assert_eq!(status, 201, "{v}");
        v
    }
}

#[tokio::test]
async fn killing_the_server_mid_delivery_loses_nothing_and_duplicates_carry_the_same_webhook_id() {
    let dir = tempfile::tempdir().unwrap();
    let keys = TestKeys::new();
    let config = dir.path().join("annals.toml");
    std::fs::write(
        &config,
        format!(
            "{}[webhooks]\nallow_private_targets = true\nretry_schedule_ms = [0, 50, 100, 200, 400, 800]\ncursor_sync_ms = 50\n",
            keys.toml()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    // A slow receiver, so the kill lands while deliveries are in flight.
    let rx = Receiver::start(|_, _| Answer::SlowOk(20)).await;
    let server = Running(Some(BinaryServer::start(&data, &config)));
    let bin = Bin {
        base: server.0.as_ref().unwrap().base.clone(),
        client: reqwest::Client::new(),
        keys: keys.clone(),
    };
    bin.append("registry/sources", &source_event(SOURCE)).await;
    let (status, v) = bin
        .post(
            "/subscriptions",
            &keys.admin,
            &json!({"url": rx.url(), "from_seq": 1, "filter": {"types": ["statement.*"]}}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let mut expected = BTreeSet::new();
    for i in 1..=60 {
        let v = bin.append("process/ru-ua-peace", &statement(i)).await;
        expected.insert(v["events"][0]["id"].as_str().unwrap().to_string());
    }
    wait_until("some deliveries before the kill", || async {
        rx.accepted().len() >= 10
    })
    .await;
    server.kill9();
    let delivered_before = rx.accepted().len();

    let server = Running(Some(BinaryServer::start(&data, &config)));
    wait_until("every statement delivered after the restart", || async {
        let got: BTreeSet<String> = rx.accepted().into_iter().map(|c| c.id).collect();
        expected.iter().all(|id| got.contains(id))
    })
    .await;
    server.kill9();
    let counts = check_duplicates(&rx);
    // Only statements matched; the source registration (seq 1) was filtered out.
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(
        delivered_before < expected.len(),
        "the kill did not land mid-delivery"
    );
}
