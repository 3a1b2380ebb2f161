//! `annals keys add` and `annals keys revoke` against a cluster: a key added with the CLI
//! works on every node at once, and a revoked key is refused (401) by every node, the one
//! whose config published it included, which does not publish it again when it restarts.
//! On the sled backend both commands say that keys live in the config file.

use std::time::{Duration, Instant};

use annals::keys::{self, KeyEntry, Scope};
use serde_json::json;
use uuid::Uuid;

use crate::api_helpers::{Backend, TestApp, run_cli, spawn_app_on};
use crate::nats::NatsCluster;

/// The status `app` answers a read made with `key`.
async fn status_with(app: &TestApp, key: &str) -> u16 {
    app.client
        .get(app.url("/log"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits (up to 20 s) until `app` answers a read with `key` by `status`.
async fn answers(app: &TestApp, key: &str, status: u16, what: &str) {
    answers_within(app, key, status, what, Duration::from_secs(20)).await;
}

/// Waits (up to `within`) until `app` answers a read with `key` by `status`.
pub async fn answers_within(app: &TestApp, key: &str, status: u16, what: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = status_with(app, key).await;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: answered {got}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_key_added_with_the_cli_works_on_every_node_and_a_revoked_one_is_refused_by_all_even_after_its_publisher_restarts()
 {
    let cluster = NatsCluster::shared();
    let stream = format!("keys-{}", Uuid::now_v7().simple());
    let backend = Backend::Nats {
        urls: cluster.urls(),
        stream: stream.clone(),
    };
    // A's config holds a key of its own, which A publishes to the cluster at start.
    let configured = keys::generate();
    let entry = KeyEntry {
        principal: "desk-a".into(),
        hash: configured.hash.clone(),
        scopes: vec![Scope::Read],
    };
    let mut a = spawn_app_on(&backend, |c| {
        c.with(json!({"auth": {"keys": [entry]}})).unwrap()
    })
    .await;
    let b = spawn_app_on(&backend, |c| c).await;
    answers(&b, &configured.key, 200, "B accepts A's configured key").await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.toml");
    std::fs::write(&config, backend.toml()).unwrap();
    let config = config.to_str().unwrap();

    // Added with the CLI: printed once, accepted by both nodes.
    let (code, out, err) = run_cli(
        &[
            "keys",
            "add",
            "--config",
            config,
            "--scopes",
            "read",
            "--principal",
            "cli-reader",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let added = out
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .unwrap_or_else(|| panic!("no key printed: {out}"))
        .to_string();
    assert!(!out.contains(&keys::hash_key("not the key")));
    answers(&a, &added, 200, "A accepts the added key").await;
    answers(&b, &added, 200, "B accepts the added key").await;

    // A's configured key revoked by a prefix of its hash: refused by both nodes.
    let prefix = &configured.hash["sha256:".len().."sha256:".len() + 12];
    let (code, out, err) = run_cli(&["keys", "revoke", "--config", config, prefix], None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&configured.hash), "{out}");
    answers(&a, &configured.key, 401, "A refuses its own revoked key").await;
    answers(&b, &configured.key, 401, "B refuses the revoked key").await;

    // A restarts with the key still in its config: it does not publish it again.
    a.restart().await;
    assert_eq!(status_with(&a, &configured.key).await, 401);
    let js = async_nats::jetstream::new(cluster.client().await);
    let bucket = js.get_key_value(format!("{stream}_keys")).await.unwrap();
    let name = format!("k.{}", &configured.hash["sha256:".len()..]);
    assert!(
        bucket.get(&name).await.unwrap().is_none(),
        "the revoked key was published again"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status_with(&b, &configured.key).await, 401);

    // The added key revoked by its principal.
    let (code, out, err) = run_cli(&["keys", "revoke", "--config", config, "cli-reader"], None);
    assert_eq!(code, 0, "{out}\n{err}");
    answers(&a, &added, 401, "A refuses the revoked added key").await;
    answers(&b, &added, 401, "B refuses the revoked added key").await;

    // Nothing matches: a clear failure, nothing revoked.
    let (code, _, err) = run_cli(&["keys", "revoke", "--config", config, "nobody"], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nobody"), "{err}");
}

#[test]
fn on_the_sled_backend_keys_add_and_revoke_say_keys_live_in_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sled.toml");
    std::fs::write(&config, "").unwrap();
    let config = config.to_str().unwrap();
    for args in [
        vec!["keys", "add", "--config", config, "--scopes", "read"],
        vec!["keys", "revoke", "--config", config, "someone"],
    ] {
        let (code, out, err) = run_cli(&args, None);
        assert_eq!(code, 2, "{args:?}: {out}\n{err}");
        assert!(err.contains("config file"), "{err}");
        assert!(err.contains("annals keys new"), "{err}");
        assert!(!out.contains("key: "), "{out}");
    }
}
