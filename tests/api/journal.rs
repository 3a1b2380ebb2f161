//! The journal (`src/log/journal.rs`): a group is acknowledged once its frame is in the journal,
//! while sled is made durable only by the background checkpoint. With the checkpoint set far
//! away, a `kill -9` right after a burst leaves the acknowledged groups in the journal alone,
//! and the next open applies them: every acknowledged event is served, the chain verifies and
//! the Merkle root is the one served before the kill. A journal whose last frame is torn or
//! followed by garbage opens with every whole frame and nothing of the torn one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// A server killed when dropped, so a failed assertion leaves no process behind.
pub(crate) struct Running(Option<BinaryServer>);

impl Running {
    pub(crate) fn start(dir: &Path, config: &Path) -> Running {
        Running(Some(BinaryServer::start(dir, config)))
    }

    pub(crate) fn kill9(mut self) {
        if let Some(s) = self.0.take() {
            s.kill9();
        }
    }
}

impl std::ops::Deref for Running {
    type Target = BinaryServer;
    fn deref(&self) -> &BinaryServer {
        self.0.as_ref().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.kill9();
        }
    }
}

/// A config with the test keys and a checkpoint that never comes during a test.
pub(crate) fn config_without_checkpoints(dir: &Path, keys: &TestKeys) -> PathBuf {
    let path = write_config(dir, keys);
    append_config(
        &path,
        "[log]\ncheckpoint_ms = 3600000\ncheckpoint_bytes = 1073741824\n",
    );
    path
}

/// Adds `lines` (a section of its own) to the config file at `path`.
pub(crate) fn append_config(path: &Path, lines: &str) {
    let mut text = std::fs::read_to_string(path).unwrap();
    text.push('\n');
    text.push_str(lines);
    std::fs::write(path, text).unwrap();
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Posts `body` to `stream` and insists on 201; returns the events' (id, seq, hash).
pub(crate) async fn post(
    client: &reqwest::Client,
    server: &BinaryServer,
    keys: &TestKeys,
    stream: &str,
    body: &Value,
) -> Vec<(String, u64, String)> {
    let resp = client
        .post(format!("{}/streams/{}/events", server.base, encode(stream)))
        .bearer_auth(&keys.append)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["seq"].as_u64().unwrap(),
                e["hash"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn get(client: &reqwest::Client, base: &str, keys: &TestKeys, path: &str) -> Value {
    let resp = client
        .get(format!("{base}{path}"))
        .bearer_auth(&keys.read)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// Appends the source and actors the statements name; their acknowledgements in order.
pub(crate) async fn register(
    client: &reqwest::Client,
    server: &BinaryServer,
    keys: &TestKeys,
) -> Vec<(String, u64, String)> {
    let mut acked = post(
        client,
        server,
        keys,
        "registry/sources",
        &source_event(SOURCE),
    )
    .await;
    acked.extend(post(client, server, keys, FIXTURE_STREAM, &fixture_actors()).await);
    acked
}

/// The source and actors the statements name, then `singles` statements one request each (one
/// group each: one client), then a batch of 20; every acknowledgement in order.
async fn burst(
    client: &reqwest::Client,
    server: &BinaryServer,
    keys: &TestKeys,
    singles: u64,
) -> Vec<(String, u64, String)> {
    let mut acked = register(client, server, keys).await;
    acked.extend(one_at_a_time(client, server, keys, singles, |_| "process/p".into()).await);
    let batch: Vec<Value> = (singles..singles + 20).map(statement).collect();
    acked.extend(
        post(
            client,
            server,
            keys,
            "process/q",
            &json!({ "events": batch }),
        )
        .await,
    );
    acked
}

/// Statements 0 to `n - 1`, one request each, statement `i` to stream `stream(i)`; every
/// acknowledgement in order.
pub(crate) async fn one_at_a_time(
    client: &reqwest::Client,
    server: &BinaryServer,
    keys: &TestKeys,
    n: u64,
    stream: impl Fn(u64) -> String,
) -> Vec<(String, u64, String)> {
    let mut acked = Vec::new();
    for i in 0..n {
        acked.extend(post(client, server, keys, &stream(i), &statement(i)).await);
    }
    acked
}

/// After a reopen: one more append lands right after `head`; then, stopped with -9, the
/// folder's chain verifies to it.
pub(crate) async fn goes_on_and_verifies(
    client: &reqwest::Client,
    server: Running,
    keys: &TestKeys,
    dir: &Path,
    head: u64,
) {
    let next = post(client, &server, keys, "process/p", &statement(1000)).await;
    assert_eq!(
        next[0].1,
        head + 1,
        "the chain goes on from the replayed head"
    );
    server.kill9();
    assert!(
        verify(dir).starts_with(&format!("ok: {} records verified", head + 1)),
        "the chain verifies"
    );
}

/// Every acknowledged event is served at its seq with its hash, and the log ends at `head`.
pub(crate) async fn assert_served(
    client: &reqwest::Client,
    base: &str,
    keys: &TestKeys,
    acked: &[(String, u64, String)],
    head: u64,
) {
    let log = read_whole_log_at(client, base, &keys.read).await;
    assert_eq!(log.len() as u64, head, "the served head");
    for (id, seq, hash) in acked {
        let r = &log[*seq as usize - 1];
        assert_eq!(r["id"], id.as_str(), "acknowledged seq {seq} is missing");
        assert_eq!(r["hash"], hash.as_str(), "seq {seq}");
    }
}

/// `annals verify` of a stopped folder: its verdict line.
pub(crate) fn verify(dir: &Path) -> String {
    let (code, out, err) = run_cli(&["verify", "--data-dir", dir.to_str().unwrap()], None);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    out
}

/// The journal's segment files.
fn segments(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir.join("journal")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_groups_only_the_journal_holds_survive_kill_9_with_their_chain_and_merkle_root()
 {
    let keys = TestKeys::new();
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_without_checkpoints(config_dir.path(), &keys);
    let data = tempfile::tempdir().unwrap();
    let client = client();

    let server = Running::start(data.path(), &config);
    let acked = burst(&client, &server, &keys, 60).await;
    let head = acked.last().unwrap().1;
    let root = get(
        &client,
        &server.base,
        &keys,
        &format!("/audit/root?size={head}"),
    )
    .await;
    server.kill9();
    assert!(
        !segments(data.path()).is_empty(),
        "the acknowledged groups must be in the journal"
    );

    let server = Running::start(data.path(), &config);
    assert_served(&client, &server.base, &keys, &acked, head).await;
    let again = get(
        &client,
        &server.base,
        &keys,
        &format!("/audit/root?size={head}"),
    )
    .await;
    assert_eq!(
        again["root"], root["root"],
        "the Merkle root after the replay"
    );
    goes_on_and_verifies(&client, server, &keys, data.path(), head).await;
}

/// The frames of a segment: (offset, length with its 16-byte head), as `journal.rs` lays them.
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let first = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    let mut out = Vec::new();
    let mut at = 4096;
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let lsn = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap());
        if len == 0 || lsn != first + out.len() as u64 {
            break;
        }
        out.push((at, 16 + len));
        at += 16 + len;
    }
    out
}

/// Copies a stopped data folder.
fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_or_garbage_followed_last_frame_keeps_every_whole_frame_and_nothing_of_the_torn_one()
{
    let keys = TestKeys::new();
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_without_checkpoints(config_dir.path(), &keys);
    let data = tempfile::tempdir().unwrap();
    let client = client();

    let server = Running::start(data.path(), &config);
    let mut acked = burst(&client, &server, &keys, 10).await;
    // The last group: one event alone, one frame.
    acked.extend(post(&client, &server, &keys, "process/p", &statement(500)).await);
    server.kill9();
    let segment = segments(data.path());
    assert_eq!(segment.len(), 1, "one segment");
    let bytes = std::fs::read(&segment[0]).unwrap();
    let frames = frames(&bytes);
    assert!(frames.len() >= 14, "a frame per group: {}", frames.len());
    let (last_at, last_len) = *frames.last().unwrap();
    let (last_id, head, _) = acked.last().unwrap().clone();

    // Torn: the last frame cut short (the file keeps its preallocated size: zeros after).
    // Damaged: one byte of its payload flipped. Both: nothing of that group.
    // Garbage after the last frame: every group.
    type Tamper = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Tamper, u64)> = vec![
        (
            "torn",
            Box::new(move |b: &mut Vec<u8>| {
                b[last_at + last_len / 2..last_at + last_len].fill(0);
            }),
            head - 1,
        ),
        (
            "damaged",
            Box::new(move |b: &mut Vec<u8>| b[last_at + last_len - 1] ^= 0x40),
            head - 1,
        ),
        (
            "garbage after",
            Box::new(move |b: &mut Vec<u8>| {
                let end = last_at + last_len;
                for (i, byte) in b[end..end + 300].iter_mut().enumerate() {
                    *byte = (i as u8).wrapping_mul(37).wrapping_add(11);
                }
            }),
            head,
        ),
        (
            "truncated",
            Box::new(move |b: &mut Vec<u8>| b.truncate(last_at + last_len - 3)),
            head - 1,
        ),
    ];
    for (case, tamper, expected_head) in cases {
        let copy_dir = tempfile::tempdir().unwrap();
        copy(data.path(), copy_dir.path());
        let mut damaged = bytes.clone();
        tamper(&mut damaged);
        std::fs::write(segments(copy_dir.path())[0].clone(), &damaged).unwrap();

        let server = Running::start(copy_dir.path(), &config);
        let kept: Vec<_> = acked
            .iter()
            .filter(|a| a.1 <= expected_head)
            .cloned()
            .collect();
        assert_served(&client, &server.base, &keys, &kept, expected_head).await;
        let lookup = client
            .get(format!("{}/events/{last_id}", server.base))
            .bearer_auth(&keys.read)
            .send()
            .await
            .unwrap();
        let status = if expected_head == head { 200 } else { 404 };
        assert_eq!(lookup.status(), status, "{case}: the last event");
        // Appends go on after what was kept.
        let next = post(&client, &server, &keys, "process/p", &statement(600)).await;
        assert_eq!(next[0].1, expected_head + 1, "{case}");
        server.kill9();
        assert!(
            verify(copy_dir.path()).starts_with(&format!("ok: {} records", expected_head + 1)),
            "{case}: the chain verifies"
        );
    }
}

#[tokio::test]
async fn a_clean_stop_leaves_no_journal() {
    let app = spawn_app().await;
    app.seed().await;
    let dir = app.stop().await;
    assert!(segments(dir.path()).is_empty());
    assert!(!dir.path().join("journal").exists());
}
