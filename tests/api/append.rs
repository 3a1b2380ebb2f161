//! Appending and reading back through HTTP: every envelope field as documented.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn single_append_returns_its_position_and_reads_back_with_every_envelope_field() {
    let app = spawn_app().await;
    app.seed().await;
    let resp = app
        .append("process/ru-ua-peace", &meeting("meeting:moscow-2026-01-22"))
        .await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["stream"], "process/ru-ua-peace");
    assert_eq!(body["stream_version"], 1);
    let ev = &body["events"][0];
    assert_eq!(ev["seq"], 6, "after the source and the fixture actors");
    assert_eq!(ev["version"], 1);
    assert_eq!(ev["duplicate"], false);
    let id = ev["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);

    let env = app.get_json(&format!("/events/{id}")).await;
    assert_eq!(env["id"], id);
    assert_eq!(env["seq"], 6);
    assert_eq!(env["stream"], "process/ru-ua-peace");
    assert_eq!(env["version"], 1);
    assert_eq!(env["type"], "meeting.held");
    assert_eq!(env["schema_version"], 1);
    assert_eq!(env["recorded_by"], "test-desk");
    assert!(env["recorded_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(env["occurred"]["precision"], "day");
    assert_eq!(env["process"], "ru-ua-peace");
    assert_eq!(env["data"]["location"]["name"], "Moscow");
    assert_eq!(env["evidence"][0]["source"], SOURCE);
    assert_eq!(env["meta"]["notes"], "year inferred");
    assert_eq!(env["hash"], ev["hash"]);
    // The chain: this record's prev_hash is the hash of the record before it (the seed's last).
    let previous = app.get_json("/events?from=5&limit=1").await;
    assert_eq!(env["prev_hash"], previous["events"][0]["hash"]);
    let first = app.get_json("/events?from=1&limit=1").await;
    assert_eq!(
        first["events"][0]["prev_hash"],
        "0000000000000000000000000000000000000000000000000000000000000000"
    );
    // The head is the last record.
    let (seq, hash) = app.head().await;
    assert_eq!((seq, hash.as_str()), (6, env["hash"].as_str().unwrap()));
}

#[tokio::test]
async fn batch_append_is_one_contiguous_run_in_request_order() {
    let app = spawn_app().await;
    app.seed().await;
    let events: Vec<Value> = (0..5).map(statement).collect();
    let resp = app
        .append(
            "process/p",
            &json!({"expected_version": "no_stream", "events": events}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let seqs: Vec<u64> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![6, 7, 8, 9, 10]);
    assert_eq!(body["stream_version"], 5);

    let stream = app.get_json("/streams/process%2Fp/events").await;
    assert_eq!(stream["version"], 5);
    let contents: Vec<&str> = stream["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents[0], "Statement number 0.");
    assert_eq!(contents[4], "Statement number 4.");
    // All of one batch share one recorded_at (one group commit).
    let times: std::collections::HashSet<&str> = stream["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["recorded_at"].as_str().unwrap())
        .collect();
    assert_eq!(times.len(), 1);
}

#[tokio::test]
async fn reads_page_by_position_and_filter_by_type_glob() {
    let app = spawn_app().await;
    app.seed().await;
    for i in 0..3 {
        app.append("process/p", &statement(i)).await;
    }
    app.append("process/p", &meeting("meeting:m1")).await;
    let page = app.get_json("/events?from=1&limit=2").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], 3);
    assert_eq!(page["head"], 9, "the seed's five records, then four");
    let rest = app.get_json("/events?from=3&limit=100").await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 7);
    assert_eq!(rest["next"], Value::Null);
    let meetings = app.get_json("/events?type=meeting.*").await;
    let types: Vec<&str> = meetings["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["meeting.held"]);
    let streams = app.get_json("/streams").await;
    assert_eq!(
        streams["streams"],
        json!([
            {"name": "process/p", "version": 4, "last_seq": 9},
            {"name": "registry/sources", "version": 1, "last_seq": 1},
            {"name": "registry/test-actors", "version": 4, "last_seq": 5}
        ])
    );
    let registry = app.get_json("/streams?prefix=registry/").await;
    assert_eq!(registry["streams"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn stream_name_may_be_given_raw_with_slashes() {
    let app = spawn_app().await;
    app.seed().await;
    let resp = app
        .client
        .post(app.url("/streams/process/raw-name/events"))
        .bearer_auth(&app.keys.append)
        .json(&statement(1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let s = app.get_json("/streams/process/raw-name/events").await;
    assert_eq!(s["stream"], "process/raw-name");
}

#[tokio::test]
async fn expected_version_rules_are_enforced_with_the_current_version_in_the_409() {
    let app = spawn_app().await;
    app.seed().await;
    let ok = |v: Value| json!({"expected_version": v, "events": [statement(rand_n())]});
    assert_eq!(app.append("s/x", &ok(json!("exists"))).await.status(), 409);
    assert_eq!(
        app.append("s/x", &ok(json!("no_stream"))).await.status(),
        201
    );
    assert_eq!(
        app.append("s/x", &ok(json!("no_stream"))).await.status(),
        409
    );
    assert_eq!(app.append("s/x", &ok(json!("exists"))).await.status(), 201);
    assert_eq!(app.append("s/x", &ok(json!(2))).await.status(), 201);
    let stale = app.append("s/x", &ok(json!(1))).await;
    assert_eq!(stale.status(), 409);
    assert_eq!(stale.headers()["content-type"], "application/problem+json");
    let p: Value = stale.json().await.unwrap();
    assert_eq!(p["current_version"], 3);
    assert_eq!(
        p["type"],
        "https://annals.dev/problems/wrong-expected-version"
    );
    // The query parameter works too.
    let q = app
        .client
        .post(app.url("/streams/s%2Fx/events?expected_version=3"))
        .bearer_auth(&app.keys.append)
        .json(&statement(rand_n()))
        .send()
        .await
        .unwrap();
    assert_eq!(q.status(), 201);
}

fn rand_n() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1000);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The value of an unlabelled (or exactly labelled) sample in Prometheus text.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{text}"))
}

#[tokio::test]
async fn metrics_count_appends_group_commits_flush_latency_and_http_statuses() {
    let app = spawn_app().await;
    app.seed().await;
    let events: Vec<Value> = (0..4).map(statement).collect();
    assert_eq!(
        app.append("process/p", &json!({"events": events}))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.append("process/p", &json!({"events": []}))
            .await
            .status(),
        422
    );
    // The seed is two requests (the source, then the four fixture actors): 1 + 4 + 4 events
    // in three requests, each its own group.
    let text = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(sample(&text, "annals_events_appended_total"), 9.0);
    assert_eq!(sample(&text, "annals_log_head_seq"), 9.0);
    assert_eq!(sample(&text, "annals_group_commit_events_sum"), 9.0);
    assert_eq!(sample(&text, "annals_group_commit_events_count"), 3.0);
    assert_eq!(
        sample(&text, "annals_group_commit_flush_seconds_count"),
        3.0
    );
    assert!(sample(&text, "annals_group_commit_flush_seconds_sum") > 0.0);
    assert_eq!(
        sample(&text, "annals_append_requests_total{outcome=\"ok\"}"),
        3.0
    );
    assert_eq!(
        sample(&text, "annals_http_responses_total{status=\"201\"}"),
        3.0
    );
    assert_eq!(
        sample(&text, "annals_http_responses_total{status=\"422\"}"),
        1.0
    );
    // Every accepted body was read by the fast path; the refused one by the Value path,
    // which words the refusal.
    assert_eq!(
        sample(&text, "annals_append_bodies_total{path=\"fast\"}"),
        3.0
    );
    assert_eq!(
        sample(&text, "annals_append_bodies_total{path=\"value\"}"),
        1.0
    );
}

#[tokio::test]
async fn a_filtered_read_examines_at_most_the_search_window_and_says_where_to_go_on() {
    let app = spawn_app_with(|mut c| {
        c.limits.max_scan_per_read = 10;
        c
    })
    .await;
    app.seed().await; // 1..=5
    for i in 0..30 {
        app.append("process/p", &statement(i)).await; // 6..=35
    }
    app.append("process/p", &meeting("meeting:m1")).await; // 36

    // Each read examines ten records: the first three find nothing and say where to go on.
    let mut from = 1;
    let mut pages = Vec::new();
    let found = loop {
        let page = app
            .get_json(&format!("/events?type=meeting.*&from={from}"))
            .await;
        pages.push(from);
        let events = page["events"].as_array().unwrap().clone();
        if !events.is_empty() {
            assert_eq!(page["next"], Value::Null, "the meeting is the last record");
            break events;
        }
        from = page["next"]
            .as_u64()
            .expect("an empty page says where to go on");
    };
    assert_eq!(pages, [1, 11, 21, 31]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["seq"], 36);

    // An unfiltered read is bounded by `limit` as before.
    let all = app.get_json("/events?from=1&limit=20").await;
    assert_eq!(all["events"].as_array().unwrap().len(), 20);
}
