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

/// A request of one event with the client's id `id` and `data`.
fn with_id(id: Uuid, data: serde_json::Value) -> Append {
    Append {
        stream: "s".into(),
        expected: ExpectedVersion::Any,
        events: vec![NewEvent {
            id,
            event_type: "statement.made".into(),
            schema_version: 2,
            occurred: serde_json::json!({"start": "2026-01-22", "precision": "day"}).into(),
            process: Some("p".into()),
            data: data.into(),
            evidence: serde_json::json!([{"source": "src:x", "relation": "quotes"}]).into(),
            meta: None,
            refs: References::default(),
            client_id: true,
        }],
        principal: "t".into(),
        abort_on_refusal: None,
    }
}

#[tokio::test]
async fn a_repeated_id_queued_behind_its_first_append_is_a_duplicate_or_a_conflict_by_content() {
    let dir = tempfile::tempdir().unwrap(); // ok: test code (a #[cfg(test)] module)
    let config = LogConfig {
        durability: Durability::Os,
        ..crate::config::Config::defaults().unwrap().log // ok: test code (a #[cfg(test)] module)
    };
    let metrics = Metrics::new().unwrap(); // ok: test code (a #[cfg(test)] module)
    let log = Log::open(dir.path(), config, metrics, |_, _, _| Vec::new()).unwrap(); // ok: test code (a #[cfg(test)] module)
    // Queued together, so most often staged in one group: the repeats then meet the first
    // event in the writer's overlay, where its payload is kept as text.
    let id = Uuid::now_v7();
    let data = serde_json::json!({"statement_id": "statement:a", "content": "x", "n": 0.1});
    let reordered = serde_json::json!({"n": 0.1, "content": "x", "statement_id": "statement:a"});
    let other = serde_json::json!({"statement_id": "statement:a", "content": "y", "n": 0.1});
    let answers = futures_util::future::join_all([
        log.append(with_id(id, data.clone())),
        log.append(with_id(id, reordered)),
        log.append(with_id(id, other)),
    ])
    .await;
    let first = answers[0].as_ref().unwrap(); // ok: test code (a #[cfg(test)] module)
    assert!(!first.duplicate);
    let again = answers[1].as_ref().unwrap(); // ok: test code (a #[cfg(test)] module)
    assert!(again.duplicate, "{again:?}");
    assert_eq!(again.positions, first.positions);
    assert!(
        matches!(&answers[2], Err(AppendError::IdConflict { seq, .. }) if *seq == first.positions[0].seq),
        "{:?}",
        answers[2]
    );
    assert_eq!(log.head().seq, 1);
    let stored = log.get_by_id(&id).unwrap().unwrap().record().unwrap(); // ok: test code (a #[cfg(test)] module)
    assert_eq!(stored.data, data);
    log.close().await;
}
