//! Unit tests of `log` (the `Log` handle), kept beside it so the module itself reads as one job. Tests only.

use super::*;

#[tokio::test]
async fn a_tree_dropped_through_sled_reads_as_missing_not_as_a_storage_fault() {
    let dir = tempfile::tempdir().unwrap(); // ok: test code (a #[cfg(test)] module)
    let config = LogConfig {
        durability: Durability::Os,
        max_group_events: 64,
        queue_capacity: 8,
        cache_capacity_bytes: 1 << 20,
        compression_level: 3,
        ..crate::config::Config::defaults().unwrap().log // ok: test code (a #[cfg(test)] module)
    };
    let metrics = Metrics::new().unwrap(); // ok: test code (a #[cfg(test)] module)
    let log = Log::open(dir.path(), config, metrics, |_, _, _| Vec::new()).unwrap(); // ok: test code (a #[cfg(test)] module)
    let tree = log.aux_tree("webhooks").unwrap(); // ok: test code (a #[cfg(test)] module)
    let db = log.shared.store.read().unwrap().as_ref().unwrap().0.clone(); // ok: test code (a #[cfg(test)] module)
    assert!(db.drop_tree("webhooks").unwrap()); // ok: test code (a #[cfg(test)] module)
    drop(db);

    let err = LogError::from(tree.insert("k", "v").unwrap_err());
    assert!(
        matches!(&err, LogError::MissingTree(name) if name == "webhooks"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the tree `webhooks` is missing from the store"
    );
    drop(tree);
    log.close().await;
}
