//! The HTTP suites of the `api` binary that issue 9 names (append and read, idempotency,
//! concurrency, projections, webhooks; and audit: roots, proofs, signed checkpoints, replay)
//! compiled again, unchanged, with every server they start
//! on the nats backend: each on a new stream of one 3-node cluster shared by this binary
//! ([`NatsCluster::shared`]). The suite files reach the harness as `crate::helpers`, which in
//! this binary is [`helpers`] below: the `api` helpers with the server-starting entry points
//! given the nats [`Backend`]. Nothing here may copy a suite or weaken one of its assertions.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::api_helpers::Backend;
use crate::nats::NatsCluster;

/// The harness the suite files see as `crate::helpers`: everything of `tests/api/helpers.rs`,
/// but a server they start keeps its log on a new stream of the shared cluster, and its log
/// reads (`/events`, `/streams`) are answered by a second node over that stream once caught up.
pub mod helpers {
    use std::path::{Path, PathBuf};

    use annals::config::Config;

    pub use crate::api_helpers::*;

    /// [`crate::api_helpers::test_config`] on a new stream of the shared cluster (the demo
    /// server of the projection suites starts from it).
    pub fn test_config(dir: &Path) -> Config {
        test_config_on(dir, &super::new_stream())
    }

    /// [`crate::api_helpers::write_config`] with the `[log]` section of a new stream of the
    /// shared cluster, for the suites that start the real binary.
    pub fn write_config(dir: &Path, keys: &TestKeys) -> PathBuf {
        let path = crate::api_helpers::write_config(dir, keys);
        let text = std::fs::read_to_string(&path).unwrap() + &super::new_stream().toml();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The suites here run on the nats backend.
    pub fn on_nats() -> bool {
        true
    }

    /// [`crate::api_helpers::spawn_app`] on a new stream of the shared cluster.
    pub async fn spawn_app() -> TestApp {
        spawn_app_with(|c| c).await
    }

    /// [`crate::api_helpers::spawn_app_with`] on a new stream of the shared cluster, its log
    /// reads answered by a second node over that stream.
    pub async fn spawn_app_with(adjust: impl FnOnce(Config) -> Config) -> TestApp {
        // The second node keeps out of webhook delivery (`webhooks.deliver = false`), so
        // the webhook suites' assertions about one node's cursor, attempts and in-flight
        // bound hold with it too.
        spawn_app_on(&super::new_stream(), adjust)
            .await
            .with_log_reads_on_a_second_node()
    }
}

/// A stream of the shared cluster no server has used yet.
pub fn new_stream() -> Backend {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Backend::Nats {
        urls: NatsCluster::shared().urls(),
        stream: format!("suite-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
    }
}

#[path = "../api/append.rs"]
mod append;
#[path = "../api/audit.rs"]
mod audit;
#[path = "../api/concurrency.rs"]
mod concurrency;
#[path = "../api/demo_server.rs"]
pub mod demo_server;
#[path = "../api/idempotency.rs"]
mod idempotency;
#[path = "../api/projections/mod.rs"]
pub mod projections;
#[path = "../api/webhooks/mod.rs"]
pub mod webhooks;

/// The harness itself: a suite's server is a nats node on a stream of its own in the shared
/// cluster (3 replicas), and its log reads come from another node that has caught up.
#[tokio::test]
async fn suite_servers_log_to_their_own_replicated_stream_and_read_it_from_a_second_node() {
    let app = helpers::spawn_app().await;
    app.seed().await;
    let nats = app.config.log.nats.clone().unwrap();
    assert_eq!(app.config.log.backend, annals::log::Backend::Nats);
    assert!(nats.stream.starts_with("suite-"), "{}", nats.stream);

    let js = async_nats::jetstream::new(NatsCluster::shared().client().await);
    let mut stream = js.get_stream(&nats.stream).await.unwrap();
    let info = stream.info().await.unwrap().clone();
    assert_eq!(info.config.num_replicas, 3);
    // The 5 records, in chunk messages (a group's records share one): the last message
    // holds seq 5 last.
    let last = stream
        .get_raw_message(info.state.last_sequence)
        .await
        .unwrap();
    let header = |name: &str| -> u64 { last.headers.get(name).unwrap().as_str().parse().unwrap() };
    assert_eq!(header("Annals-First") + header("Annals-Count") - 1, 5);
    assert!(
        (1..=5).contains(&info.state.messages),
        "{}",
        info.state.messages
    );

    let reader = app.log_read_base().await.to_string();
    assert_ne!(reader, app.base, "log reads answered by the appending node");
    let page = app.get_json("/events?from=1").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 5);
}
