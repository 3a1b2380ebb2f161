//! The writer's quiet path (`src/log/writer.rs`, `write_group`): a group that nothing waits
//! behind has its journal frame synced first and then goes into sled as plain inserts, not
//! one atomic batch. A `kill -9` may then leave sled with any prefix of such a group, or none
//! of it; the journal holds it whole and the next open applies it again. One client's single
//! appends take that path; these tests kill the server right after the last acknowledgement,
//! with checkpoints far away (sled holds none of the singles) and with checkpoints racing the
//! inserts (sled flushed in the middle of groups), and insist that every acknowledged event
//! is served and the chain verifies. A large group takes that path even while other appends
//! wait (its inserts then go in key order): concurrent batches of 150 are killed the same way.

use std::path::Path;

use crate::helpers::*;
use crate::journal::{
    Running, append_config, assert_served, client, config_without_checkpoints,
    goes_on_and_verifies, one_at_a_time, post, register,
};

/// Appends, kills with -9 right after the last acknowledgement, opens again: every
/// acknowledged event is served, the log goes on from its head, and the chain verifies.
async fn singles_survive_kill_9(keys: &TestKeys, config: &Path) {
    let data = tempfile::tempdir().unwrap();
    let client = client();

    let server = Running::start(data.path(), config);
    // One client: each request its own group, on the quiet path. Half on one stream, half
    // on fresh ones: stream runs both extended and new.
    let mut acked = register(&client, &server, keys).await;
    let stream = |i: u64| {
        if i.is_multiple_of(2) {
            "process/p".to_string()
        } else {
            format!("process/s{i}")
        }
    };
    acked.extend(one_at_a_time(&client, &server, keys, 120, stream).await);
    let head = acked.last().unwrap().1;
    server.kill9();

    let server = Running::start(data.path(), config);
    assert_served(&client, &server.base, keys, &acked, head).await;
    goes_on_and_verifies(&client, server, keys, data.path(), head).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_appends_acknowledged_before_sled_holds_any_of_them_survive_kill_9() {
    let keys = TestKeys::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config_without_checkpoints(dir.path(), &keys);
    singles_survive_kill_9(&keys, &config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_appends_survive_kill_9_with_checkpoints_flushing_sled_in_the_middle_of_groups() {
    let keys = TestKeys::new();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &keys);
    // A checkpoint (and sled's own flusher) every millisecond, and after every frame: sled
    // writes its buffer out while the writer is between a group's inserts.
    append_config(&path, "[log]\ncheckpoint_ms = 1\ncheckpoint_bytes = 1\n");
    singles_survive_kill_9(&keys, &path).await;
}

/// Four clients post batches of 150 statements at once, five each: groups of 150 events or
/// more, each written ahead (its frame synced, then its inserts in key order) while the next
/// requests wait. Killed with -9 right after the last acknowledgement, with checkpoints far
/// away: every acknowledged event is served, the log goes on, and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_batches_acknowledged_before_sled_holds_them_survive_kill_9() {
    let keys = TestKeys::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config_without_checkpoints(dir.path(), &keys);
    // Every request a large group of its own, whatever else waits.
    append_config(&config, "[limits]\nmax_events_per_request = 150\n");
    let data = tempfile::tempdir().unwrap();
    let client = client();

    let server = Running::start(data.path(), &config);
    let mut acked = register(&client, &server, &keys).await;
    let clients = (0..4u64).map(|c| {
        let (client, server, keys) = (&client, &server, &keys);
        async move {
            let mut mine = Vec::new();
            for round in 0..5u64 {
                let first = 10_000 * (c + 1) + 150 * round;
                let batch: Vec<_> = (first..first + 150).map(statement).collect();
                let body = serde_json::json!({ "events": batch });
                mine.extend(post(client, server, keys, &format!("process/b{c}"), &body).await);
            }
            mine
        }
    });
    for mine in futures_util::future::join_all(clients).await {
        acked.extend(mine);
    }
    acked.sort_by_key(|a| a.1);
    let head = acked.last().unwrap().1;
    assert_eq!(
        acked.len() as u64,
        head,
        "every seq up to the head was acknowledged once"
    );
    server.kill9();

    let server = Running::start(data.path(), &config);
    assert_served(&client, &server.base, &keys, &acked, head).await;
    goes_on_and_verifies(&client, server, &keys, data.path(), head).await;
}
