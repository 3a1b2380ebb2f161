//! The log's errors say what went wrong: a failed `fdatasync` of auxiliary writes is not "cannot
//! start the writer", and the log's own tree asked for as an auxiliary tree is not corruption.

use annals::log::{Durability, Log, LogConfig, LogError};
use annals::metrics::Metrics;

fn open(dir: &std::path::Path) -> Log {
    Log::open(
        dir,
        LogConfig {
            durability: Durability::Fsync,
            max_group_events: 64,
            queue_capacity: 8,
            cache_capacity_bytes: 64 << 20,
            compression: true,
            compression_level: 3,
        },
        Metrics::new().unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_failed_sync_of_auxiliary_writes_is_reported_as_such_not_as_the_writer_failing_to_start()
{
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.aux_tree("projections")
        .unwrap()
        .insert("k", "v")
        .unwrap();
    // sled keeps its data file open; only the fdatasync step, which opens it by name, fails.
    std::fs::remove_file(dir.path().join("db")).unwrap();
    let sync = log.clone();
    let err = tokio::task::spawn_blocking(move || sync.sync_aux())
        .await
        .unwrap()
        .expect_err("syncing a data file that is gone cannot succeed");
    assert!(matches!(err, LogError::Sync(_)), "{err:?}");
    let message = err.to_string();
    assert!(!message.contains("writer"), "{message}");
    assert!(message.contains("durable"), "{message}");
    log.close().await;
}

#[tokio::test]
async fn the_log_tree_asked_for_as_an_auxiliary_tree_is_refused_as_such_not_as_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let err = log
        .aux_tree("log")
        .expect_err("the log's own tree is never handed out");
    assert!(matches!(err, LogError::NotAuxiliary(_)), "{err:?}");
    assert!(!err.to_string().contains("corrupt"), "{err}");
    log.close().await;
}
