//! `kill -9` of the Annals node that delivers a subscription, during appends and delivery: two
//! real `annals serve` processes over one 3-node JetStream cluster and a real receiver that
//! verifies every signature. The other node keeps answering, takes the subscription's lease
//! once the dead node's expires, and goes on from the cursor in the cluster: every matching
//! event reaches the receiver, verified and in order (at least once: repeats allowed), and
//! the killed node, restarted, answers the same views as the survivor.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::api_helpers::*;
use crate::nats::NatsCluster;
use crate::support::*;

/// The config file both processes run with: the test keys, the cluster, the webhook test
/// settings and one shared secret key file.
fn write_cluster_config(dir: &Path, keys: &TestKeys, cluster: &NatsCluster) -> std::path::PathBuf {
    let webhooks = format!(
        "[webhooks]\nallow_private_targets = true\nretry_schedule_ms = [0, 50, 100, 200]\n\
         timeout_ms = 2000\nconnect_timeout_ms = 500\ncursor_sync_ms = 50\n\
         secret_key_file = {:?}\n",
        dir.join("webhooks.key")
    );
    cluster.config_file(dir, "annals.toml", &keys.toml(), &webhooks)
}

/// Appends statement `n` (with its own event id, so a retry elsewhere is answered once) to
/// `base`; its (seq, id) if acknowledged, `None` if the node did not answer.
async fn append(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    body: &Value,
) -> Option<(u64, String)> {
    let resp = client
        .post(format!("{base}/streams/process%2Fru-ua-peace/events"))
        .bearer_auth(key)
        .json(&json!({"events": [body]}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .ok()?;
    assert_eq!(resp.status(), 201, "{base}");
    let v: Value = resp.json().await.ok()?;
    Some((
        v["events"][0]["seq"].as_u64()?,
        v["events"][0]["id"].as_str()?.to_string(),
    ))
}

/// The process id in the value of the subscription's lease (`<pid>-<node uuid>`), once one
/// node holds it.
async fn lease_holder(cluster: &NatsCluster, id: &str) -> u32 {
    let js = async_nats::jetstream::new(cluster.client().await);
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        if let Ok(kv) = js.get_key_value("annals_webhook_leases").await
            && let Ok(Some(v)) = kv.get(format!("lease.{id}")).await
        {
            let text = String::from_utf8_lossy(&v).to_string();
            return text.split('-').next().unwrap().parse().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no node took the lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn killing_the_delivering_node_mid_stream_loses_no_event_and_both_nodes_agree_afterwards() {
    let cluster = NatsCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = TestKeys::new();
    let config = write_cluster_config(dir.path(), &keys, &cluster);
    let datas = [dir.path().join("a"), dir.path().join("b")];
    let mut runs = [
        Running(Some(BinaryServer::start(&datas[0], &config))),
        Running(Some(BinaryServer::start(&datas[1], &config))),
    ];
    let bin = |r: &Running| Bin {
        base: r.0.as_ref().unwrap().base.clone(),
        client: reqwest::Client::new(),
        keys: keys.clone(),
    };
    let bins = [bin(&runs[0]), bin(&runs[1])];
    let rx = Receiver::ok().await;
    let created = bins[0]
        .seed_and_subscribe(&json!({"url": rx.url(), "filter": {"streams": ["process/"]}}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();

    // The node to kill is the one delivering: the lease names its process.
    let holder = lease_holder(&cluster, &id).await;
    let k = runs
        .iter()
        .position(|r| r.0.as_ref().unwrap().child.id() == holder)
        .expect("the lease names neither node");
    let (dead_base, survivor) = (bins[k].base.clone(), &bins[1 - k]);

    // Appends to both nodes, alternating; the holder is killed after the 15th, while
    // deliveries are under way. An append the dead node did not answer goes to the survivor
    // with the same event id (answered once, wherever it was stored).
    let client = reqwest::Client::new();
    let mut acked: Vec<(u64, String)> = Vec::new();
    let mut dead = false;
    for n in 0..40u64 {
        let mut body = statement(n);
        body["id"] = json!(Uuid::now_v7().to_string());
        let base = if n % 2 == 0 && !dead {
            &dead_base
        } else {
            &survivor.base
        };
        let got = match append(&client, base, &keys.append, &body).await {
            Some(got) => got,
            None => append(&client, &survivor.base, &keys.append, &body)
                .await
                .expect("the surviving node stops answering"),
        };
        acked.push(got);
        if n == 15 {
            wait_until("deliveries are under way", || async {
                !rx.accepted().is_empty()
            })
            .await;
            runs[k].0.take().unwrap().kill9();
            dead = true;
            // Until then one node delivered, the lease holder: nothing came twice.
            let before = rx.all();
            let ids: std::collections::BTreeSet<&str> =
                before.iter().map(|c| c.id.as_str()).collect();
            assert_eq!(
                ids.len(),
                before.len(),
                "delivered twice while both nodes ran"
            );
        }
    }

    // Every acknowledged event reaches the receiver (the lease expires, the survivor takes
    // over from the cursor in the cluster), verified, first deliveries in seq order.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got: std::collections::BTreeSet<String> =
            rx.accepted().into_iter().map(|c| c.id).collect();
        if acked.iter().all(|(_, id)| got.contains(id)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} acknowledged events delivered after 60 s",
            acked.iter().filter(|(_, id)| got.contains(id)).count(),
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = rx.accepted();
    assert!(
        all.iter().all(|c| verifies(&secret, c)),
        "a signature does not verify"
    );
    let mut seen = std::collections::BTreeSet::new();
    let firsts: Vec<u64> = all
        .iter()
        .map(|c| c.seq())
        .filter(|s| seen.insert(*s))
        .collect();
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "not in order: {firsts:?}"
    );
    let mut want: Vec<u64> = acked.iter().map(|(s, _)| *s).collect();
    want.sort();
    assert!(want.iter().all(|s| seen.contains(s)));

    // The killed node, restarted over its folder, catches up and answers as the survivor.
    runs[k] = Running(Some(BinaryServer::start(&datas[k], &config)));
    let back = bin(&runs[k]);
    let head = survivor.get("/log").await["seq"].as_u64().unwrap();
    for path in [
        "/projections/negotiation/ru-ua-peace",
        "/projections/processes",
        "/projections/audit",
    ] {
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            let (x, y) = (survivor.get(path).await, back.get(path).await);
            if x == y && back.get("/log").await["seq"].as_u64() == Some(head) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} differs between the nodes:\n{x}\n{y}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
