//! Acknowledged means durable: every 201 survives a graceful restart and a kill -9 in the
//! middle of appends, the chain stays gap-free and verifiable, and refused appends leave no
//! trace.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where an acknowledged event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack {
    id: String,
    seq: u64,
    hash: String,
}

fn acks_of(body: &Value) -> Vec<Ack> {
    body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {body}"))
        .iter()
        .map(|e| Ack {
            id: e["id"].as_str().unwrap().to_string(),
            seq: e["seq"].as_u64().unwrap(),
            hash: e["hash"].as_str().unwrap().to_string(),
        })
        .collect()
}

/// Appends and insists on 201; returns the acknowledgements.
async fn append_ok(app: &TestApp, stream: &str, body: &Value) -> Vec<Ack> {
    let resp = app.append(stream, body).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    acks_of(&resp.json().await.unwrap())
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

/// Every stream's versions are 1..=k in seq order.
fn assert_streams_gap_free(records: &[Value]) {
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for r in records {
        let v = versions.entry(r["stream"].as_str().unwrap()).or_insert(0);
        *v += 1;
        assert_eq!(r["version"], *v, "stream version gap at seq {}", r["seq"]);
    }
}

/// A mix of single events and batches over several streams; some ids chosen by the client.
async fn append_mix(app: &TestApp) -> Vec<Ack> {
    let mut acks = Vec::new();
    acks.extend(append_ok(app, "registry/sources", &source_event(SOURCE)).await);
    acks.extend(append_ok(app, FIXTURE_STREAM, &fixture_actors()).await);
    let mut m = meeting("meeting:moscow-2026-01-22");
    m["id"] = json!(uuid::Uuid::now_v7().to_string());
    acks.extend(append_ok(app, "process/ru-ua-peace", &m).await);
    for n in 1..=3 {
        acks.extend(append_ok(app, "process/ru-ua-peace", &statement(n)).await);
    }
    let batch: Vec<Value> = (10..14).map(statement).collect();
    acks.extend(
        append_ok(
            app,
            "process/other",
            &json!({"expected_version": "no_stream", "events": batch}),
        )
        .await,
    );
    acks.extend(append_ok(app, "registry/sources", &source_event("src:second")).await);
    let batch: Vec<Value> = (20..23).map(statement).collect();
    acks.extend(
        append_ok(
            app,
            "process/ru-ua-peace",
            &json!({"expected_version": 4, "events": batch}),
        )
        .await,
    );
    acks
}

#[tokio::test]
async fn acknowledged_events_survive_a_restart_and_appends_continue_the_chain() {
    let mut app = spawn_app().await;
    let acks = append_mix(&app).await;
    assert_eq!(acks.len(), 17);
    let before = read_whole_log(&app).await;
    let streams_before = app.get_json("/streams").await;
    let head_before = app.head().await;
    assert_eq!(head_before.0, 17);

    app.restart().await;

    // Everything acknowledged is there, byte for byte as served before.
    assert_eq!(app.head().await, head_before);
    let after = read_whole_log(&app).await;
    assert_eq!(after, before);
    assert_gap_free_chain(&after);
    assert_eq!(app.get_json("/streams").await, streams_before);
    for a in &acks {
        let env = app.get_json(&format!("/events/{}", a.id)).await;
        assert_eq!(env["seq"], a.seq);
        assert_eq!(env["hash"], a.hash.as_str());
    }

    // Appends continue at the next seq, linked to the old head, at the stream's next version.
    let next = append_ok(
        &app,
        "process/ru-ua-peace",
        &json!({"expected_version": 7, "events": [statement(99)]}),
    )
    .await;
    assert_eq!(next[0].seq, head_before.0 + 1);
    let env = app.get_json(&format!("/events/{}", next[0].id)).await;
    assert_eq!(env["prev_hash"], head_before.1.as_str());
    assert_eq!(env["version"], 8);
    assert_eq!(app.head().await, (next[0].seq, next[0].hash.clone()));
    // The indexes survived too: a registered source stays registered (the same registration
    // again is answered with it, another is a conflict), a known id stays known.
    let again = app.append("registry/sources", &source_event(SOURCE)).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["events"][0]["seq"], 1, "{again}");
    let mut other = source_event(SOURCE);
    other["data"]["publisher"] = json!("Other Wire");
    assert_eq!(app.append("registry/sources", &other).await.status(), 409);
    let mut m = meeting("meeting:moscow-2026-01-22");
    m["id"] = before[5]["id"].clone();
    let dup = app.append("process/ru-ua-peace", &m).await;
    assert_eq!(dup.status(), 200);
    let dup: Value = dup.json().await.unwrap();
    assert_eq!(dup["events"][0]["seq"], 6);
    assert_eq!(dup["events"][0]["duplicate"], true);
    assert_gap_free_chain(&read_whole_log(&app).await);
}

#[tokio::test]
async fn verify_accepts_a_log_written_across_restarts() {
    let mut app = spawn_app().await;
    append_mix(&app).await;
    app.restart().await;
    append_ok(&app, "process/after", &statement(1)).await;
    app.restart().await;
    append_ok(
        &app,
        "process/after",
        &json!({"events": [statement(2), statement(3)]}),
    )
    .await;
    let (seq, hash) = app.head().await;
    assert_eq!(seq, 20);
    let dir = app.stop().await;
    wait_until_released(dir.path());

    let (code, out, err) = run_cli(
        &["verify", "--data-dir", dir.path().to_str().unwrap()],
        None,
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.starts_with("ok:"), "{out}");
    assert!(out.contains(&format!("{seq} records verified")), "{out}");
    assert!(
        out.contains(&format!("head seq {seq} hash {hash}")),
        "{out}"
    );
}

#[tokio::test]
async fn refused_appends_leave_the_head_unchanged_across_a_restart() {
    let mut app = spawn_app().await;
    app.seed().await;
    let mut m = meeting("meeting:kept");
    let kept_id = uuid::Uuid::now_v7().to_string();
    m["id"] = json!(kept_id);
    append_ok(
        &app,
        "process/p",
        &json!({"expected_version": "no_stream", "events": [m.clone()]}),
    )
    .await;
    let head = app.head().await;
    assert_eq!(head.0, 6, "the seed's five records and the meeting");

    let with_id = |mut e: Value| {
        e["id"] = json!(uuid::Uuid::now_v7().to_string());
        e
    };
    let mut unknown_source = with_id(statement(1));
    unknown_source["evidence"][0]["source"] = json!("src:never-registered");
    let mut bad_precision = with_id(statement(2));
    bad_precision["occurred"]["precision"] = json!("sometime");
    let stale = with_id(statement(3));
    // A registration that contradicts the registered source (issue 11, item 3).
    let mut conflicting = source_event(SOURCE);
    conflicting["data"]["publisher"] = json!("Other Wire");
    let mut changed = m.clone();
    changed["data"]["location"]["name"] = json!("Abu Dhabi");
    let half_bad = vec![
        with_id(statement(4)),
        with_id(statement(5)),
        unknown_source.clone(),
    ];
    let too_many: Vec<Value> = (100..201).map(|n| with_id(statement(n))).collect();

    let refusals: Vec<(Value, u16, Vec<Value>)> = vec![
        (unknown_source.clone(), 422, vec![unknown_source.clone()]),
        (bad_precision.clone(), 422, vec![bad_precision.clone()]),
        (
            json!({"expected_version": 0, "events": [stale.clone()]}),
            409,
            vec![stale.clone()],
        ),
        (conflicting, 409, vec![]),
        (changed, 409, vec![]),
        (json!({"events": half_bad.clone()}), 422, half_bad),
        (json!({"events": too_many.clone()}), 413, too_many),
    ];
    let mut refused_ids = Vec::new();
    for (body, status, events) in &refusals {
        let resp = app.append("process/p", body).await;
        assert_eq!(resp.status(), *status, "{}", resp.text().await.unwrap());
        assert_eq!(app.head().await, head, "a refused append moved the head");
        refused_ids.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_string()));
    }

    app.restart().await;
    assert_eq!(app.head().await, head);
    let log = read_whole_log(&app).await;
    assert_eq!(log.len(), 6);
    assert_eq!(log[5]["id"], kept_id.as_str());
    assert_eq!(log[5]["data"]["location"]["name"], "Moscow");
    for id in &refused_ids {
        assert_eq!(
            app.get(&format!("/events/{id}")).await.status(),
            404,
            "{id}"
        );
    }
    let s = app.get_json("/streams/process%2Fp/events").await;
    assert_eq!(s["version"], 1);
    // The next good append takes the next seq and links to the unchanged head.
    let next = append_ok(
        &app,
        "process/p",
        &json!({"expected_version": 1, "events": [statement(7)]}),
    )
    .await;
    assert_eq!(next[0].seq, head.0 + 1);
    let env = app.get_json(&format!("/events/{}", next[0].id)).await;
    assert_eq!(env["prev_hash"], head.1.as_str());
}

/// Appends in a loop against a real binary, recording every 201, until the server dies.
async fn hammer(
    client: reqwest::Client,
    base: String,
    key: String,
    task: u64,
    counter: Arc<AtomicU64>,
    acked: Arc<Mutex<Vec<Ack>>>,
) {
    let stream = format!("crash%2Ft{task}");
    for r in 0.. {
        let n = |c: &AtomicU64| c.fetch_add(1, Ordering::Relaxed);
        // Every fifth request is a batch of three; the rest are single events.
        let body = if r % 5 == 4 {
            json!({"events": [statement(n(&counter)), statement(n(&counter)), statement(n(&counter))]})
        } else {
            statement(n(&counter))
        };
        let sent = client
            .post(format!("{base}/streams/{stream}/events"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await;
        let Ok(resp) = sent else {
            return; // The server died with this request in flight: no acknowledgement.
        };
        let status = resp.status().as_u16();
        let Ok(text) = resp.text().await else {
            return; // Died while answering: unacknowledged.
        };
        assert_eq!(status, 201, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        acked.lock().unwrap().extend(acks_of(&body));
    }
}

/// Checks a freshly restarted binary holds every acknowledged event where it was acknowledged.
async fn assert_everything_acknowledged_is_there(
    client: &reqwest::Client,
    base: &str,
    keys: &TestKeys,
    acked: &BTreeMap<u64, Ack>,
    verified_head: u64,
) {
    let log = read_whole_log_at(client, base, &keys.read).await;
    assert_eq!(
        log.len() as u64,
        verified_head,
        "served head != verified head"
    );
    assert_gap_free_chain(&log);
    assert_streams_gap_free(&log);
    assert_streams_read_through_their_index(client, base, &keys.read, &log).await;
    for (seq, a) in acked {
        let r = &log[*seq as usize - 1];
        assert_eq!(
            r["id"],
            a.id.as_str(),
            "acknowledged seq {seq} holds another event"
        );
        assert_eq!(r["hash"], a.hash.as_str(), "seq {seq}");
        let resp = client
            .get(format!("{base}/events/{}", a.id))
            .bearer_auth(&keys.read)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "acknowledged event {} is gone", a.id);
        let env: Value = resp.json().await.unwrap();
        assert_eq!(
            (env["seq"].as_u64(), env["hash"].as_str()),
            (Some(*seq), Some(a.hash.as_str()))
        );
    }
}

/// `annals verify` on a stopped folder: passes; returns the head seq it reports.
fn verify_ok(dir: &std::path::Path) -> u64 {
    let (code, out, err) = run_cli(&["verify", "--data-dir", dir.to_str().unwrap()], None);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.starts_with("ok:"), "{out}");
    let head = out
        .split("head seq ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no head seq in {out:?}"));
    assert!(
        out.contains(&format!("ok: {head} records verified")),
        "{out}"
    );
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_appends_survive_kill_9_in_the_middle_of_appending() {
    const ROUNDS: usize = 3;
    const TASKS: u64 = 8;
    const ACKS_PER_ROUND: usize = 100;
    let keys = TestKeys::new();
    let config_dir = tempfile::tempdir().unwrap();
    let config = write_config(config_dir.path(), &keys);
    let data = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let mut acked: BTreeMap<u64, Ack> = BTreeMap::new();

    let mut server = BinaryServer::start(data.path(), &config);
    let seed = client
        .post(format!("{}/streams/registry%2Fsources/events", server.base))
        .bearer_auth(&keys.append)
        .json(&source_event(SOURCE))
        .send()
        .await
        .unwrap();
    assert_eq!(seed.status(), 201);
    for a in acks_of(&seed.json().await.unwrap()) {
        acked.insert(a.seq, a);
    }
    let actors = client
        .post(format!(
            "{}/streams/{}/events",
            server.base,
            encode(FIXTURE_STREAM)
        ))
        .bearer_auth(&keys.append)
        .json(&fixture_actors())
        .send()
        .await
        .unwrap();
    assert_eq!(actors.status(), 201);
    for a in acks_of(&actors.json().await.unwrap()) {
        acked.insert(a.seq, a);
    }

    for round in 1..=ROUNDS {
        let round_acks = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                tokio::spawn(hammer(
                    client.clone(),
                    server.base.clone(),
                    keys.append.clone(),
                    t,
                    counter.clone(),
                    round_acks.clone(),
                ))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while round_acks.lock().unwrap().len() < ACKS_PER_ROUND {
            assert!(
                tasks.iter().any(|t| !t.is_finished()),
                "every client stopped before the kill"
            );
            assert!(Instant::now() < deadline, "round {round}: too few acks");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Clients are still appending: some requests are in flight as the process dies.
        server.kill9();
        let mut died_in_flight = 0;
        for t in tasks {
            t.await.unwrap();
            died_in_flight += 1;
        }
        assert_eq!(died_in_flight, TASKS);
        let new_acks = std::mem::take(&mut *round_acks.lock().unwrap());
        assert!(new_acks.len() >= ACKS_PER_ROUND);
        for a in new_acks {
            let seq = a.seq;
            let earlier = acked.insert(seq, a);
            assert!(
                earlier.is_none(),
                "seq {seq} acknowledged twice: {earlier:?}"
            );
        }

        // Offline, the chain verifies and holds at least everything acknowledged.
        let verified_head = verify_ok(data.path());
        let max_acked = *acked.keys().next_back().unwrap();
        assert!(
            verified_head >= max_acked,
            "head {verified_head} < acked {max_acked}"
        );

        server = BinaryServer::start(data.path(), &config);
        assert_everything_acknowledged_is_there(
            &client,
            &server.base,
            &keys,
            &acked,
            verified_head,
        )
        .await;
    }
    server.kill9();
    verify_ok(data.path());
    // What survived the kills was written as chunks (one value per group), not a key per record.
    let db = open_store(data.path());
    let tree = db.open_tree("log").unwrap();
    assert_eq!(tree.scan_prefix(b"e").count(), 0, "no record key");
    assert!(tree.scan_prefix(b"c").count() > 0, "no chunk");
}
