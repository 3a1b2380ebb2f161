//! Unit tests of `log` (the `Log` handle), kept beside it so the module itself reads as one job. Tests only.

use super::*;

#[tokio::test]
async fn a_tree_dropped_through_sled_reads_as_missing_not_as_a_storage_fault() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        durability: Durability::Os,
        max_group_events: 64,
        queue_capacity: 8,
        cache_capacity_bytes: 1 << 20,
        compression_level: 3,
        ..crate::config::Config::defaults().unwrap().log
    };
    let log = Log::open(dir.path(), config, Metrics::new().unwrap(), |_, _, _| {
        Vec::new()
    })
    .unwrap();
    let tree = log.aux_tree("webhooks").unwrap();
    let db = log.shared.store.read().unwrap().as_ref().unwrap().0.clone();
    assert!(db.drop_tree("webhooks").unwrap());
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
