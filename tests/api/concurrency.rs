//! Many clients at once: optimistic concurrency on one stream, group commit across streams,
//! and the once-only rules (registrations, event ids) when requests race.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::helpers::*;

const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One append as a client saw it.
#[derive(Debug, Clone)]
struct Ack {
    id: String,
    seq: u64,
    version: u64,
    hash: String,
}

fn acks_of(body: &Value) -> Vec<Ack> {
    body["events"]
        .as_array()
        .expect("events in a 201")
        .iter()
        .map(|e| Ack {
            id: e["id"].as_str().unwrap().to_string(),
            seq: e["seq"].as_u64().unwrap(),
            version: e["version"].as_u64().unwrap(),
            hash: e["hash"].as_str().unwrap().to_string(),
        })
        .collect()
}

/// Seqs are 1..=N in order without gaps, and each record's prev_hash is the hash before it.
fn assert_gap_free_chain(records: &[Value]) {
    let mut prev = ZERO_HASH.to_string();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r["seq"].as_u64().unwrap(),
            i as u64 + 1,
            "seq gap or reorder"
        );
        assert_eq!(
            r["prev_hash"],
            prev.as_str(),
            "chain broken at seq {}",
            i + 1
        );
        prev = r["hash"].as_str().unwrap().to_string();
    }
}

/// The stream's current version as a reader sees it (0 when it does not exist yet).
async fn current_version(app: &TestApp, stream: &str) -> u64 {
    let resp = app
        .get(&format!("/streams/{}/events?limit=1", encode(stream)))
        .await;
    match resp.status().as_u16() {
        404 => 0,
        200 => resp.json::<Value>().await.unwrap()["version"]
            .as_u64()
            .unwrap(),
        other => panic!("reading {stream}: unexpected status {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_appends_with_exact_expected_versions_win_each_version_exactly_once() {
    const CLIENTS: u64 = 16;
    const ATTEMPTS: u64 = 20;
    const STREAM: &str = "process/contested";
    let app = Arc::new(spawn_app().await);
    app.seed().await;
    // Every client reads version 0 before anyone writes, so the first round is a real race.
    let start = Arc::new(Barrier::new(CLIENTS as usize));

    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let app = app.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let mut wins: Vec<Ack> = Vec::new();
            let mut losses: Vec<(u64, u64)> = Vec::new(); // (expected, current_version)
            let mut known = current_version(&app, STREAM).await;
            start.wait().await;
            for attempt in 0..ATTEMPTS {
                // Half the time trust what the last answer said, half the time ask a reader.
                if attempt > 0 && attempt % 2 == 0 {
                    known = current_version(&app, STREAM).await;
                }
                let n = client * 1000 + attempt;
                let body = json!({"expected_version": known, "events": [statement(n)]});
                let resp = app.append(STREAM, &body).await;
                match resp.status().as_u16() {
                    201 => {
                        let b: Value = resp.json().await.unwrap();
                        assert_eq!(b["stream_version"], known + 1);
                        let ack = acks_of(&b).remove(0);
                        assert_eq!(ack.version, known + 1);
                        known = ack.version;
                        wins.push(ack);
                    }
                    409 => {
                        assert_eq!(resp.headers()["content-type"], "application/problem+json");
                        let p: Value = resp.json().await.unwrap();
                        assert_eq!(
                            p["type"],
                            "https://annals.dev/problems/wrong-expected-version"
                        );
                        let current = p["current_version"]
                            .as_u64()
                            .unwrap_or_else(|| panic!("409 without current_version: {p}"));
                        losses.push((known, current));
                        known = current;
                    }
                    other => panic!("unexpected status {other}: {}", resp.text().await.unwrap()),
                }
            }
            (wins, losses)
        }));
    }
    let mut wins: Vec<Ack> = Vec::new();
    let mut losses: Vec<(u64, u64)> = Vec::new();
    for t in tasks {
        let (w, l) = t.await.unwrap();
        wins.extend(w);
        losses.extend(l);
    }

    // Each version was won exactly once: 1..=N, no duplicates, no gaps.
    let n = wins.len() as u64;
    assert!(n >= 1);
    let mut versions: Vec<u64> = wins.iter().map(|w| w.version).collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=n).collect::<Vec<_>>());
    assert_eq!(n + losses.len() as u64, CLIENTS * ATTEMPTS);
    // The first round was a race for version 1 among all clients: all but one lost it.
    assert!(
        losses.len() as u64 >= CLIENTS - 1,
        "{} losses",
        losses.len()
    );
    // A loser is told where the stream really is, which is past what it expected.
    for (expected, current) in &losses {
        assert!(
            current > expected && *current <= n,
            "expected {expected}, told {current}"
        );
    }

    // The stream reads back as versions 1..=N in order, each the winner's event.
    let stream = app
        .get_json(&format!("/streams/{}/events?limit=1000", encode(STREAM)))
        .await;
    assert_eq!(stream["version"], n);
    assert_eq!(stream["next"], Value::Null);
    let by_version: BTreeMap<u64, &Ack> = wins.iter().map(|w| (w.version, w)).collect();
    let events = stream["events"].as_array().unwrap();
    assert_eq!(events.len() as u64, n);
    let mut last_seq = 0;
    for (i, e) in events.iter().enumerate() {
        let v = i as u64 + 1;
        assert_eq!(e["version"], v);
        let w = by_version[&v];
        assert_eq!(e["id"], w.id.as_str());
        assert_eq!(e["seq"], w.seq);
        assert_eq!(e["hash"], w.hash.as_str());
        assert!(e["seq"].as_u64().unwrap() > last_seq);
        last_seq = e["seq"].as_u64().unwrap();
    }

    // Globally: the seed's five records, then exactly the N winners, seq 1..=N+5, chained.
    let log = read_whole_log(&app).await;
    assert_eq!(log.len() as u64, n + 5);
    assert_gap_free_chain(&log);
    assert_eq!(app.head().await.0, n + 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_to_different_streams_all_succeed_on_a_gap_free_log() {
    const CLIENTS: u64 = 16;
    const REQUESTS: u64 = 10;
    let app = Arc::new(spawn_app().await);
    app.seed().await;
    let start = Arc::new(Barrier::new(CLIENTS as usize));

    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let app = app.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("process/client-{client}");
            let mut version = 0;
            let mut acks: Vec<Vec<Ack>> = Vec::new();
            start.wait().await;
            for r in 0..REQUESTS {
                // Every fourth request is a batch of three; the rest are single events.
                let size = if r % 4 == 3 { 3 } else { 1 };
                let events: Vec<Value> = (0..size)
                    .map(|i| statement(client * 10_000 + r * 10 + i))
                    .collect();
                let resp = app
                    .append(
                        &stream,
                        &json!({"expected_version": version, "events": events}),
                    )
                    .await;
                assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
                let body: Value = resp.json().await.unwrap();
                let batch = acks_of(&body);
                assert_eq!(batch.len() as u64, size);
                // A batch is one contiguous run of seqs and versions.
                for (i, a) in batch.iter().enumerate() {
                    assert_eq!(a.seq, batch[0].seq + i as u64);
                    assert_eq!(a.version, version + 1 + i as u64);
                }
                version += size;
                assert_eq!(body["stream_version"], version);
                acks.push(batch);
            }
            (stream, version, acks)
        }));
    }
    let mut acked: BTreeMap<u64, Ack> = BTreeMap::new();
    let mut streams = Vec::new();
    for t in tasks {
        let (stream, version, batches) = t.await.unwrap();
        for a in batches.into_iter().flatten() {
            let seq = a.seq;
            assert!(acked.insert(seq, a).is_none(), "seq {seq} handed out twice");
        }
        streams.push((stream, version));
    }

    // The log is the seed's five records plus every acknowledged event: no gaps, chained.
    let log = read_whole_log(&app).await;
    let total = acked.len() as u64 + 5;
    assert_eq!(log.len() as u64, total);
    assert_gap_free_chain(&log);
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (6..=total).collect::<Vec<_>>()
    );
    for (seq, a) in &acked {
        let r = &log[*seq as usize - 1];
        assert_eq!(r["id"], a.id.as_str());
        assert_eq!(r["hash"], a.hash.as_str());
        assert_eq!(r["version"], a.version);
    }
    // Each stream has versions 1..=k in seq order.
    for (stream, version) in streams {
        let s = app
            .get_json(&format!("/streams/{}/events?limit=1000", encode(&stream)))
            .await;
        assert_eq!(s["version"], version);
        let evs = s["events"].as_array().unwrap();
        let versions: Vec<u64> = evs.iter().map(|e| e["version"].as_u64().unwrap()).collect();
        assert_eq!(versions, (1..=version).collect::<Vec<_>>());
        let seqs: Vec<u64> = evs.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{stream}: {seqs:?}");
    }
    assert_eq!(app.head().await.0, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_registrations_of_one_source_let_exactly_one_through() {
    const CLIENTS: usize = 16;
    let app = Arc::new(spawn_app().await);
    let start = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let app = app.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let resp = app
                .append("registry/sources", &source_event("src:contested"))
                .await;
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => created += 1,
            // Issue 11, item 3: the same registration again is answered with the one that won.
            200 => {
                assert_eq!(body["events"][0]["duplicate"], true, "{body}");
                assert_eq!(body["events"][0]["seq"], 1, "{body}");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!(created, 1);
    let log = read_whole_log(&app).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["data"]["source_id"], "src:contested");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_submissions_of_one_event_id_store_it_once_and_all_get_its_position() {
    const CLIENTS: usize = 16;
    let app = Arc::new(spawn_app().await);
    app.seed().await;
    let mut event = meeting("meeting:raced");
    event["id"] = json!(uuid::Uuid::now_v7().to_string());
    let start = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let app = app.clone();
        let start = start.clone();
        let event = event.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let resp = app.append("process/ru-ua-peace", &event).await;
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }));
    }
    let mut statuses = Vec::new();
    let mut positions = HashSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(body["events"][0]["id"], event["id"], "{body}");
        assert_eq!(body["events"][0]["duplicate"], status == 200, "{body}");
        positions.insert((
            body["events"][0]["seq"].as_u64().unwrap(),
            body["events"][0]["hash"].as_str().unwrap().to_string(),
        ));
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), CLIENTS - 1);
    // Everyone was told the same position: the one record in the log.
    assert_eq!(positions.len(), 1);
    let log = read_whole_log(&app).await;
    assert_eq!(log.len(), 6, "the seed's five records and the one event");
    let (seq, hash) = positions.into_iter().next().unwrap();
    assert_eq!((seq, hash.as_str()), (6, log[5]["hash"].as_str().unwrap()));
    assert_eq!(log[5]["id"], event["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ids_the_server_mints_ascend_with_the_seq_however_many_requests_race() {
    const CLIENTS: u64 = 32;
    const REQUESTS: u64 = 20;
    let app = Arc::new(spawn_app().await);
    app.seed().await;
    let start = Arc::new(Barrier::new(CLIENTS as usize));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (app, start) = (app.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut ids = Vec::new();
                for r in 0..REQUESTS {
                    let resp = app
                        .append(
                            &format!("process/client-{client}"),
                            &statement(client * 1000 + r),
                        )
                        .await;
                    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
                    let body: Value = resp.json().await.unwrap();
                    ids.push((
                        body["events"][0]["seq"].as_u64().unwrap(),
                        body["events"][0]["id"].clone(),
                    ));
                }
                ids
            })
        })
        .collect();
    let mut answered = Vec::new();
    for t in tasks {
        answered.extend(t.await.unwrap());
    }
    let log = read_whole_log(&app).await;
    assert_eq!(log.len() as u64, 5 + CLIENTS * REQUESTS);
    // Each answer names the id stored at its seq.
    for (seq, id) in &answered {
        assert_eq!(&log[*seq as usize - 1]["id"], id);
    }
    let ids: Vec<u128> = log[5..]
        .iter()
        .map(|r| {
            uuid::Uuid::parse_str(r["id"].as_str().unwrap())
                .unwrap()
                .as_u128()
        })
        .collect();
    let out_of_order = ids.windows(2).filter(|w| w[0] >= w[1]).count();
    assert_eq!(out_of_order, 0, "ids out of seq order");
}
