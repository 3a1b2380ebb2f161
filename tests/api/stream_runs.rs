//! The stream index keeps a page of runs per entry (each append request a run of consecutive
//! versions at consecutive seqs, added to the stream's last entry until it is full), not an
//! entry per event or per request: reads from any version, inside a run or not, answer
//! exactly as before; a stream's head and the stream listing come from its last run (no key of
//! their own); and a folder written with one entry per event and a head key per stream reads
//! the same, and is extended from there.

use serde_json::{Value, json};

use annals::log::stream_index::runs;

use crate::helpers::*;

const STREAM: &str = "process/runs";

fn batch(first: u64, n: u64) -> Value {
    json!({"expected_version": "any", "events": (first..first + n).map(statement).collect::<Vec<_>>()})
}

/// Appends 5, 1 and 3 events to `STREAM` (three runs), each followed by one event elsewhere so
/// the stream's seqs have gaps between runs. Returns the seqs of the stream's events in order.
async fn three_runs(app: &TestApp) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut n = 0;
    for size in [5u64, 1, 3] {
        let resp = app.append(STREAM, &batch(n, size)).await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        for e in body["events"].as_array().unwrap() {
            seqs.push(e["seq"].as_u64().unwrap());
        }
        n += size;
        let other = app.append("process/other", &statement(1000 + n)).await;
        assert_eq!(other.status(), 201);
    }
    seqs
}

/// Every page of the stream, from every version and with limits 1 to 4, as (version, seq).
async fn every_page(app: &TestApp) -> Vec<Vec<(u64, u64)>> {
    let mut pages = Vec::new();
    for from in 1..=10 {
        for limit in 1..=4 {
            let page = app
                .get_json(&format!(
                    "/streams/{}/events?from={from}&limit={limit}",
                    encode(STREAM)
                ))
                .await;
            assert_eq!(page["version"], 9);
            pages.push(
                page["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| (e["version"].as_u64().unwrap(), e["seq"].as_u64().unwrap()))
                    .collect(),
            );
        }
    }
    pages
}

fn stream_index_entries(dir: &std::path::Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = open_store(dir);
    let tree = db.open_tree("log").unwrap();
    stream_index_entries_of(&tree)
}

#[tokio::test]
async fn a_stream_read_from_any_version_inside_a_batch_starts_exactly_there() {
    let app = spawn_app().await;
    app.seed().await;
    let seqs = three_runs(&app).await;
    let pages = every_page(&app).await;
    let mut i = 0;
    for from in 1..=10u64 {
        for limit in 1..=4u64 {
            let want: Vec<(u64, u64)> = (from..=9)
                .take(limit as usize)
                .map(|v| (v, seqs[v as usize - 1]))
                .collect();
            assert_eq!(pages[i], want, "from={from} limit={limit}");
            i += 1;
        }
    }
}

#[tokio::test]
async fn appends_to_a_stream_extend_its_last_index_entry_a_page_of_one_run_per_request() {
    let app = spawn_app().await;
    app.seed().await;
    let seqs = three_runs(&app).await;
    let dir = app.stop().await;
    wait_until_released(dir.path());
    let entries = stream_index_entries(dir.path());
    assert_eq!(entries.len(), 1, "one entry, rewritten by each request");
    let (k, v) = &entries[0];
    assert_eq!(u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap()), 1);
    let runs: Vec<(u64, u64)> = runs(v)
        .expect("a page")
        .into_iter()
        .map(|r| (r.seq, r.len))
        .collect();
    assert_eq!(runs, vec![(seqs[0], 5), (seqs[5], 1), (seqs[6], 3)]);
}

#[tokio::test]
async fn a_stream_of_many_requests_takes_an_entry_per_full_page_and_reads_every_version_after_a_restart()
 {
    let mut app = spawn_app().await;
    app.seed().await;
    // Each request a run of its own: another stream's event follows it.
    let mut seqs = Vec::new();
    for n in 0..150 {
        let resp = app.append(STREAM, &statement(n)).await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        seqs.push(body["events"][0]["seq"].as_u64().unwrap());
        assert_eq!(body["stream_version"], n + 1);
        let other = app.append("process/other", &statement(1000 + n)).await;
        assert_eq!(other.status(), 201);
    }
    assert_eq!(read_all(&app).await, versions_at(&seqs));
    app.restart_after(|dir| {
        wait_until_released(dir);
        let entries = stream_index_entries(dir);
        assert!(entries.len() >= 3, "{} entries", entries.len());
        let mut version = 1;
        for (k, v) in &entries {
            assert_eq!(
                u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap()),
                version
            );
            assert!(v.len() < 160, "a page of {} bytes", v.len());
            version += runs(v).expect("a page").iter().map(|r| r.len).sum::<u64>();
        }
        assert_eq!(version, 151);
    })
    .await;
    assert_eq!(read_all(&app).await, versions_at(&seqs));
    // The writer goes on from the last entry it reads back.
    let resp = app.append(STREAM, &batch(500, 2)).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["stream_version"], 152);
    for e in body["events"].as_array().unwrap() {
        seqs.push(e["seq"].as_u64().unwrap());
    }
    assert_eq!(read_all(&app).await, versions_at(&seqs));
    let listed = app.get_json("/streams?prefix=process/runs").await;
    assert_eq!(listed["streams"][0]["version"], 152, "{listed}");
    assert_eq!(listed["streams"][0]["last_seq"], seqs[151], "{listed}");
}

/// (version, seq) of each of `seqs`, versions from 1.
fn versions_at(seqs: &[u64]) -> Vec<(u64, u64)> {
    (1..).zip(seqs.iter().copied()).collect()
}

/// Every event of `STREAM` as (version, seq), read page after page.
async fn read_all(app: &TestApp) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    loop {
        let from = out.last().map_or(1, |(v, _)| v + 1);
        let page = app
            .get_json(&format!(
                "/streams/{}/events?from={from}&limit=37",
                encode(STREAM)
            ))
            .await;
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            return out;
        }
        out.extend(
            events
                .iter()
                .map(|e| (e["version"].as_u64().unwrap(), e["seq"].as_u64().unwrap())),
        );
    }
}

#[tokio::test]
async fn a_folder_with_an_entry_per_event_or_per_request_reads_the_same_and_is_extended() {
    let mut app = spawn_app().await;
    app.seed().await;
    let seqs = three_runs(&app).await;
    let before = every_page(&app).await;
    let listed = app.get_json("/streams?prefix=process/").await;
    app.restart_after(|dir| {
        wait_until_released(dir);
        // As folders were written before runs: one 8-byte entry (the seq) per version, and a
        // head key per stream (`v` name: version, last seq); the first request's five events
        // as one 16-byte run (seq, length), as folders were written before pages.
        let db = open_store(dir);
        let tree = db.open_tree("log").unwrap();
        for (k, _) in stream_index_entries_of(&tree) {
            tree.remove(k).unwrap();
        }
        let key = |version: u64| {
            let mut k = vec![b's'];
            k.extend_from_slice(STREAM.as_bytes());
            k.push(0);
            k.extend_from_slice(&version.to_be_bytes());
            k
        };
        let mut run = seqs[0].to_be_bytes().to_vec();
        run.extend_from_slice(&5u64.to_be_bytes());
        tree.insert(key(1), run).unwrap();
        for (i, seq) in seqs.iter().enumerate().skip(5) {
            tree.insert(key(i as u64 + 1), &seq.to_be_bytes()[..])
                .unwrap();
        }
        let mut head = vec![b'v'];
        head.extend_from_slice(STREAM.as_bytes());
        let mut value = 9u64.to_be_bytes().to_vec();
        value.extend_from_slice(&seqs[8].to_be_bytes());
        tree.insert(head, value).unwrap();
        db.flush().unwrap();
    })
    .await;
    assert_eq!(every_page(&app).await, before);
    assert_eq!(app.get_json("/streams?prefix=process/").await, listed);
    // And the writer goes on from the stream's head.
    let resp = app.append(STREAM, &batch(500, 2)).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["stream_version"], 11);
    let info = app
        .get_json(&format!("/streams/{}/events?from=11", encode(STREAM)))
        .await;
    assert_eq!(info["version"], 11);
    // Its last 8-byte entry became a page holding it and the new run.
    let mut seqs = seqs;
    for e in body["events"].as_array().unwrap() {
        seqs.push(e["seq"].as_u64().unwrap());
    }
    assert_eq!(read_all(&app).await, versions_at(&seqs));
}

#[tokio::test]
async fn streams_are_listed_in_name_order_with_their_heads_from_the_last_run() {
    let app = spawn_app().await;
    app.seed().await;
    let mut n = 0;
    let mut heads = Vec::new();
    // Names that prefix one another, each written as several runs.
    for name in ["p/b", "p/a-b", "p/ab", "p/a", "q/x"] {
        let mut last = (0, 0);
        for size in [3u64, 1, 2] {
            let resp = app.append(name, &batch(n, size)).await;
            assert_eq!(resp.status(), 201);
            let body: Value = resp.json().await.unwrap();
            let events = body["events"].as_array().unwrap();
            last = (
                body["stream_version"].as_u64().unwrap(),
                events.last().unwrap()["seq"].as_u64().unwrap(),
            );
            n += size;
        }
        heads.push((name, last));
    }
    heads.sort();
    let want = |names: &[&str]| -> Value {
        json!(
            heads
                .iter()
                .filter(|(name, _)| names.contains(name))
                .map(|(name, (version, seq))| json!({"name": name, "version": version, "last_seq": seq}))
                .collect::<Vec<_>>()
        )
    };
    let first = app.get_json("/streams?prefix=p/&limit=2").await;
    assert_eq!(first["streams"], want(&["p/a", "p/a-b"]));
    assert_eq!(first["next"], "p/a-b");
    let second = app.get_json("/streams?prefix=p/&limit=2&after=p/a-b").await;
    assert_eq!(second["streams"], want(&["p/ab", "p/b"]));
    let third = app.get_json("/streams?prefix=p/&limit=2&after=p/b").await;
    assert_eq!(third["streams"], json!([]));
    let all = app.get_json("/streams?prefix=").await;
    let names: Vec<&str> = all["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "p/a",
            "p/a-b",
            "p/ab",
            "p/b",
            "q/x",
            "registry/sources",
            "registry/test-actors"
        ]
    );
}

fn stream_index_entries_of(tree: &sled::Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut prefix = vec![b's'];
    prefix.extend_from_slice(STREAM.as_bytes());
    prefix.push(0);
    tree.scan_prefix(&prefix)
        .map(|i| {
            let (k, v) = i.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}
