//! Moving a log between the backends with the command line, as an operator would: `annals
//! export` from a sled folder, `annals import` with a nats config (the records restored
//! verbatim into the stream), and back from a node's folder into a new sled folder; the head
//! hash is the same at every step. These tests must only use the binary and the HTTP API.

use std::path::Path;

use crate::api_helpers::*;
use crate::nats::NatsCluster;
use crate::{caught_up, node};

/// A config file naming the cluster's stream.
fn nats_config(dir: &Path, cluster: &NatsCluster) -> std::path::PathBuf {
    cluster.config_file(dir, "cluster.toml", "", "")
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `annals verify` over a stopped folder; the head hash it reports.
fn verified_head(dir: &Path) -> String {
    let (code, out, err) = run_cli(&["verify", "--data-dir", arg(dir)], None);
    assert_eq!(code, 0, "{out} {err}");
    out.rsplit("hash ").next().unwrap().trim().to_string()
}

#[tokio::test]
async fn a_sled_log_exported_and_imported_into_the_cluster_and_back_keeps_its_head_hash() {
    let cluster = NatsCluster::start().await;
    let work = tempfile::tempdir().unwrap();

    let sled = spawn_app().await;
    sled.seed().await;
    for n in 0..30 {
        let resp = sled.append("process/p", &statement(n)).await;
        assert_eq!(resp.status(), 201);
    }
    let head = sled.head().await;
    let sled_dir = sled.stop().await;
    let (code, export, err) = run_cli(&["export", "--data-dir", arg(sled_dir.path())], None);
    assert_eq!(code, 0, "{err}");
    let file = work.path().join("log.ndjson");
    std::fs::write(&file, &export).unwrap();

    // Into the cluster: the importing folder is only a cache of the stream.
    let config = nats_config(work.path(), &cluster);
    let cache = work.path().join("import-cache");
    let (code, out, err) = run_cli(
        &[
            "import",
            "--config",
            arg(&config),
            "--data-dir",
            arg(&cache),
            arg(&file),
        ],
        None,
    );
    assert_eq!(code, 0, "{out} {err}");
    let node = node(&cluster).await;
    assert_eq!(caught_up(&node, head.0).await, head);

    // And back: the node's folder exported, imported into a new sled folder.
    let node_dir = node.stop().await;
    let (code, export_again, err) = run_cli(&["export", "--data-dir", arg(node_dir.path())], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        export_again, export,
        "the cluster's export differs from sled's"
    );
    let back = work.path().join("back");
    let again = work.path().join("again.ndjson");
    std::fs::write(&again, &export_again).unwrap();
    let (code, out, err) = run_cli(&["import", "--data-dir", arg(&back), arg(&again)], None);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(verified_head(&back), head.1);
    assert_eq!(verified_head(node_dir.path()), head.1);
}
