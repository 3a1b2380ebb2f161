//! The log owns its writer thread: `Log::close` is the one way to stop it, and it returns only
//! once the last group is durable and the folder is let go, even while other handles of the
//! same log (a draining connection, a downstream task) are still alive.

use annals::log::{
    Append, AppendError, Durability, ExpectedVersion, Log, LogError, NewEvent, References,
};
use serde_json::json;
use uuid::Uuid;

fn open(dir: &std::path::Path) -> Log {
    crate::helpers::open_log(dir, Durability::Fsync)
}

fn source(n: u32) -> Append {
    Append {
        stream: "registry/sources".into(),
        expected: ExpectedVersion::Any,
        events: vec![NewEvent {
            id: Uuid::now_v7(),
            event_type: "source.registered".into(),
            schema_version: 1,
            occurred: json!({"start": "2026-01-22", "precision": "day"}).into(),
            process: None,
            data: json!({"source_id": format!("src:{n}"), "kind": "wire", "publisher": "P"}).into(),
            evidence: json!([]).into(),
            meta: None,
            refs: References::default(),
            client_id: false,
        }],
        principal: "t".into(),
        abort_on_refusal: None,
    }
}

/// Whether another opener could take sled's lock on the folder right now (no waiting).
fn folder_is_free(dir: &std::path::Path) -> bool {
    let file = std::fs::File::open(dir.join("db")).unwrap();
    match file.try_lock() {
        Ok(()) => {
            file.unlock().unwrap();
            true
        }
        Err(std::fs::TryLockError::WouldBlock) => false,
        Err(e) => panic!("cannot lock: {e:?}"),
    }
}

#[tokio::test]
async fn close_returns_with_the_folder_free_though_another_handle_outlives_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let outliving = log.clone();
    // Queued, not awaited: close must let the writer finish it before stopping.
    let queued = log.enqueue(source(1)).await.unwrap();
    log.close().await;
    assert!(
        folder_is_free(dir.path()),
        "the folder is still locked after Log::close returned"
    );
    queued
        .wait()
        .await
        .expect("an append queued before close is made durable");

    // The outliving handle answers, but holds nothing.
    assert!(matches!(
        outliving.append(source(2)).await,
        Err(AppendError::Unavailable(_))
    ));
    assert!(matches!(outliving.get(1), Err(LogError::Closed)));
    assert!(matches!(
        outliving.aux_tree("projections"),
        Err(LogError::Closed)
    ));

    // What was queued before close is there after a reopen.
    let reopened = open(dir.path());
    assert_eq!(reopened.head().seq, 1);
    reopened.close().await;
    drop(outliving);
}

#[tokio::test]
async fn closing_from_two_handles_at_once_returns_from_both_with_the_folder_free() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append(source(1)).await.unwrap();
    let other = log.clone();
    tokio::join!(log.close(), other.close());
    assert!(folder_is_free(dir.path()));
    // And once more: closing a closed log does nothing.
    log.close().await;
    assert!(folder_is_free(dir.path()));
}
