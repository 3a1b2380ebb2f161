//! The event-id index keeps ids minted close together in one bucket key (a UUIDv7's
//! millisecond, 256 lines of an import) rather than one sled key per event. Every id is found
//! where it landed, after a restart as before it; a repeat is answered with the original
//! position; a full bucket goes on in the span's next generation (a burst of ids in one
//! millisecond, a second import file's lines); a folder from before buckets (one key per id)
//! keeps working beside them; and `annals verify` checks every id whichever way it is held.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

/// The number of keys under each id index prefix: (`b` buckets, `i` single ids).
fn id_keys(dir: &std::path::Path) -> (usize, usize) {
    let db = open_store(dir);
    let tree = db.open_tree("log").unwrap();
    (
        tree.scan_prefix(b"b").count(),
        tree.scan_prefix(b"i").count(),
    )
}

/// The generations (bucket keys) of the span of a UUIDv7 `id`: `b`, its first 6 bytes.
fn generations_of(dir: &std::path::Path, id: &Uuid) -> usize {
    let db = open_store(dir);
    let tree = db.open_tree("log").unwrap();
    let mut span = vec![b'b'];
    span.extend_from_slice(&id.as_bytes()[..6]);
    tree.scan_prefix(span).count()
}

/// Restarts `app`, counting its id index keys while it is stopped: (`b` buckets, `i` singles).
async fn restart_counting_id_keys(app: &mut TestApp) -> (usize, usize) {
    let mut counted = (0, 0);
    app.restart_after(|dir| {
        wait_until_released(dir);
        counted = id_keys(dir);
    })
    .await;
    counted
}

/// Stops `app` and has `annals verify` check its folder, every id index entry included.
async fn verify_ok(app: TestApp) {
    let dir = app.stop().await;
    let (code, out, err) = run_cli(
        &["verify", "--data-dir", dir.path().to_str().unwrap()],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
}

/// Statement `n` with `id` as its client-chosen id.
fn with_id(n: u64, id: Uuid) -> Value {
    let mut e = statement(n);
    e["id"] = json!(id.to_string());
    e
}

/// `count` UUIDv7s of one millisecond: they share a bucket.
fn same_millisecond(count: u16) -> Vec<Uuid> {
    let base = *Uuid::now_v7().as_bytes();
    (0..count)
        .map(|n| {
            let mut b = base;
            b[14..].copy_from_slice(&n.to_be_bytes());
            Uuid::from_bytes(b)
        })
        .collect()
}

/// Appends `events` in batches of 100 to `stream`; returns (id, seq) of each.
async fn append_batches(app: &TestApp, stream: &str, events: &[Value]) -> Vec<(String, u64)> {
    let mut landed = Vec::new();
    for part in events.chunks(100) {
        let resp = app
            .append(stream, &json!({"expected_version": "any", "events": part}))
            .await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        for e in body["events"].as_array().unwrap() {
            landed.push((
                e["id"].as_str().unwrap().to_string(),
                e["seq"].as_u64().unwrap(),
            ));
        }
    }
    landed
}

/// Every id reads back at its seq, and a repeat of its request is a duplicate answered with it.
async fn assert_found_and_repeats_are_duplicates(
    app: &TestApp,
    stream: &str,
    events: &[Value],
    landed: &[(String, u64)],
) {
    for (id, seq) in landed {
        let env = app.get_json(&format!("/events/{id}")).await;
        assert_eq!(env["seq"].as_u64(), Some(*seq), "event {id}");
    }
    for (i, part) in events.chunks(100).enumerate() {
        let resp = app
            .append(stream, &json!({"expected_version": "any", "events": part}))
            .await;
        assert_eq!(resp.status(), 200, "batch {i} repeated");
        let body: Value = resp.json().await.unwrap();
        let events = body["events"].as_array().unwrap();
        assert!(events.iter().all(|e| e["duplicate"] == true), "{body}");
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        let want: Vec<u64> = landed[i * 100..(i * 100 + part.len())]
            .iter()
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(seqs, want, "batch {i} repeated");
    }
}

#[tokio::test]
async fn ids_minted_together_share_a_few_bucket_keys_and_are_found_after_a_restart() {
    let mut app = spawn_app().await;
    app.seed().await;
    // Server-minted ids, and client ids, three batches of 100 each.
    let minted: Vec<Value> = (0..300).map(statement).collect();
    let minted_landed = append_batches(&app, "process/minted", &minted).await;
    let chosen: Vec<Value> = (300..600).map(|n| with_id(n, Uuid::now_v7())).collect();
    let chosen_landed = append_batches(&app, "process/chosen", &chosen).await;
    let (buckets, singles) = restart_counting_id_keys(&mut app).await;
    assert_eq!(singles, 0, "no bucket was full: no id has a key of its own");
    assert!(
        buckets * 10 <= 601,
        "{buckets} bucket keys for 601 events: not kept together"
    );
    assert_found_and_repeats_are_duplicates(&app, "process/chosen", &chosen, &chosen_landed).await;
    for (id, seq) in &minted_landed {
        let env = app.get_json(&format!("/events/{id}")).await;
        assert_eq!(env["seq"].as_u64(), Some(*seq));
    }
    // An id in no bucket is not found, and a new event with it is appended.
    let unknown = Uuid::now_v7();
    assert_eq!(app.get(&format!("/events/{unknown}")).await.status(), 404);
    let resp = app.append("process/chosen", &with_id(900, unknown)).await;
    assert_eq!(resp.status(), 201);
    verify_ok(app).await;
}

#[tokio::test]
async fn ids_past_a_full_bucket_go_on_in_the_next_generation_and_are_found_and_repeated() {
    let mut app = spawn_app().await;
    app.seed().await;
    // 600 ids of one millisecond: a bucket holds 256, so three generations.
    let ids = same_millisecond(600);
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| with_id(n as u64, *id))
        .collect();
    let landed = append_batches(&app, "process/burst", &events).await;
    let mut generations = 0;
    app.restart_after(|dir| {
        wait_until_released(dir);
        assert_eq!(id_keys(dir).1, 0, "no id needs a key of its own");
        generations = generations_of(dir, &ids[0]);
    })
    .await;
    assert_eq!(generations, 3);
    assert_found_and_repeats_are_duplicates(&app, "process/burst", &events, &landed).await;
    verify_ok(app).await;
}

#[tokio::test]
async fn a_folder_with_one_key_per_id_from_before_buckets_keeps_working_beside_them() {
    let mut app = spawn_app().await;
    app.seed().await;
    let old: Vec<Value> = (0..150).map(|n| with_id(n, Uuid::now_v7())).collect();
    let old_landed = append_batches(&app, "process/old", &old).await;
    app.restart_after(|dir| {
        wait_until_released(dir);
        // As folders were written before buckets: one `i` key (id → seq) per event.
        let db = open_store(dir);
        let tree = db.open_tree("log").unwrap();
        let buckets: Vec<(sled::IVec, sled::IVec)> =
            tree.scan_prefix(b"b").map(|kv| kv.unwrap()).collect();
        assert!(!buckets.is_empty());
        for (k, v) in buckets {
            for entry in v.chunks(24) {
                let mut key = vec![b'i'];
                key.extend_from_slice(&entry[..16]);
                tree.insert(key, &entry[16..]).unwrap();
            }
            tree.remove(k).unwrap();
        }
        db.flush().unwrap();
    })
    .await;
    assert_found_and_repeats_are_duplicates(&app, "process/old", &old, &old_landed).await;
    // New events go into buckets beside the old keys; both kinds are found and repeated.
    let new: Vec<Value> = (150..250).map(|n| with_id(n, Uuid::now_v7())).collect();
    let new_landed = append_batches(&app, "process/new", &new).await;
    let (buckets, singles) = restart_counting_id_keys(&mut app).await;
    assert!(
        singles >= 150 && buckets >= 1,
        "{singles} singles, {buckets} buckets"
    );
    assert_found_and_repeats_are_duplicates(&app, "process/old", &old, &old_landed).await;
    assert_found_and_repeats_are_duplicates(&app, "process/new", &new, &new_landed).await;
    verify_ok(app).await;
}

/// `n` statements of one stream as submissions without ids, the `k`-th file's own content.
fn import_file(dir: &std::path::Path, k: u64, n: u64) -> std::path::PathBuf {
    let mut out = String::new();
    for i in 0..n {
        let mut event = statement(k * 100_000 + i);
        event["stream"] = json!(format!("process/file-{k}"));
        out.push_str(&event.to_string());
        out.push('\n');
    }
    let path = dir.join(format!("file-{k}.ndjson"));
    std::fs::write(&path, out).unwrap();
    path
}

/// `annals import` of `file` into `data` succeeds, and its summary says `counts`.
fn import_reports(data: &str, file: &std::path::Path, counts: &str) {
    let (code, out, err) = run_cli(
        &["import", "--data-dir", data, file.to_str().unwrap()],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains(counts), "{out}{err}");
}

#[tokio::test]
async fn a_second_import_files_derived_ids_share_the_first_files_spans_in_later_generations() {
    let app = spawn_app().await;
    app.seed().await;
    let dir = app.stop().await;
    let data = dir.path().to_str().unwrap();
    // Derived ids start with the line number, and every file starts at line 1: the three
    // files' lines share spans of 256 lines, generation after generation.
    let files: Vec<_> = (1..=3).map(|k| import_file(dir.path(), k, 600)).collect();
    for file in &files {
        import_reports(data, file, "600 appended, 0 already present");
    }
    wait_until_released(dir.path());
    let (buckets, singles) = id_keys(dir.path());
    assert_eq!(singles, 0, "no id needs a key of its own");
    // Lines 1-255, 256-511, 512-600 of each file (and the seed's bucket or two): generations,
    // not a key per line.
    assert!((9..=12).contains(&buckets), "{buckets} buckets");
    // Each file again: every line is found in its generation, and nothing is appended twice.
    for file in files.iter().rev() {
        import_reports(data, file, "0 appended, 600 already present");
    }
    let (code, out, err) = run_cli(&["verify", "--data-dir", data], None);
    assert_eq!(code, 0, "{out}{err}");
}
