//! A restart resumes from the save: it replays only the tail, never the whole log.

use serde_json::json;

use super::{status, view};
use crate::helpers::*;

async fn append_statements(app: &TestApp, from: u64, n: u64) {
    let events: Vec<_> = (from..from + n).map(statement).collect();
    let resp = app
        .append("process/ru-ua-peace", &json!({"events": events}))
        .await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn a_graceful_restart_resumes_from_the_final_save_and_replays_nothing() {
    let mut app = spawn_app_with(|c| {
        c.with(json!({"projections": {"checkpoint_every_events": 5}}))
            .unwrap()
    })
    .await;
    app.seed().await;
    append_statements(&app, 1, 8).await; // with the seed's five records: 13
    let before = view(&app, "/projections/actors/actor:witkoff", 13).await;
    assert_eq!(status(&app, "actors").await["replayed_since_start"], 13);

    app.restart().await;
    let s = status(&app, "actors").await;
    assert_eq!(s["seq"], 13, "{s}");
    assert_eq!(s["last_checkpoint_seq"], 13, "{s}");
    assert_eq!(s["replayed_since_start"], 0, "{s}");
    let after = view(&app, "/projections/actors/actor:witkoff", 13).await;
    assert_eq!(after, before);

    append_statements(&app, 100, 3).await;
    view(&app, "/projections/actors/actor:witkoff", 16).await;
    assert_eq!(status(&app, "actors").await["replayed_since_start"], 3);
}

#[tokio::test]
async fn after_a_crash_a_restart_replays_exactly_the_events_after_the_last_save() {
    let data = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let keys = TestKeys::new();
    let path = write_config(conf.path(), &keys);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text = format!(
        "[projections]\ncheckpoint_every_events = 10\ncheckpoint_every_ms = 600000\n\n{text}"
    );
    std::fs::write(&path, text).unwrap();

    let process = format!("/streams/{}/events", encode("process/ru-ua-peace"));
    let sources = format!("/streams/{}/events", encode("registry/sources"));
    let server = BinaryServer::start(data.path(), &path);
    let (base, read, append) = (server.base.clone(), &keys.read, &keys.append);
    assert_eq!(
        post_json(&base, append, &sources, source_event(SOURCE)).await,
        201
    );
    let actors = format!("/streams/{}/events", encode("registry/actors"));
    let speaker = fixture_actors()["events"][0].clone();
    assert_eq!(post_json(&base, append, &actors, speaker).await, 201);
    let events: Vec<_> = (1..=23).map(statement).collect();
    assert_eq!(
        post_json(&base, append, &process, json!({"events": events})).await,
        201
    );
    // Wait (bounded) for the save that covers the first 25 events.
    let mut saved = 0;
    for _ in 0..200 {
        let v = get_json(&base, read, "/projections").await;
        saved = v["projections"][0]["last_checkpoint_seq"].as_u64().unwrap();
        if saved == 25 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(saved, 25);
    for n in 100..103 {
        assert_eq!(post_json(&base, append, &process, statement(n)).await, 201);
    }
    let v = get_json(&base, read, "/projections/audit?min_seq=28").await;
    assert_eq!(v["as_of_seq"], 28);
    server.kill9();

    let server = BinaryServer::start(data.path(), &path);
    let base = server.base.clone();
    let v = get_json(&base, read, "/projections/audit?min_seq=28").await;
    assert_eq!(v["as_of_seq"], 28);
    let s = get_json(&base, read, "/projections").await;
    let line = &s["projections"][0];
    assert_eq!(line["last_checkpoint_seq"], 25, "{line}");
    assert_eq!(line["replayed_since_start"], 3, "{line}");
    server.kill9();
}

/// GETs `path` from a running binary; it must answer 200 with JSON.
async fn get_json(base: &str, key: &str, path: &str) -> serde_json::Value {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// POSTs `body` to `path` on a running binary; answers the status.
async fn post_json(base: &str, key: &str, path: &str, body: serde_json::Value) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_kill_9_during_a_rebuild_leaves_a_state_that_answers_as_before() {
    let data = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let keys = TestKeys::new();
    let path = write_config(conf.path(), &keys);
    let server = BinaryServer::start(data.path(), &path);
    let sources = format!("/streams/{}/events", encode("registry/sources"));
    let process = format!("/streams/{}/events", encode("process/ru-ua-peace"));
    let status = post_json(&server.base, &keys.append, &sources, source_event(SOURCE)).await;
    assert_eq!(status, 201);
    let actors = format!("/streams/{}/events", encode("registry/actors"));
    let speaker = fixture_actors()["events"][0].clone();
    assert_eq!(
        post_json(&server.base, &keys.append, &actors, speaker).await,
        201
    );
    // Enough events that the rebuild's fold and generation write take a moment.
    for batch in 0..30u64 {
        let events: Vec<_> = (batch * 100..batch * 100 + 100).map(statement).collect();
        let status = post_json(
            &server.base,
            &keys.append,
            &process,
            json!({"events": events}),
        )
        .await;
        assert_eq!(status, 201);
    }
    let paths = [
        "/projections/negotiation/ru-ua-peace?min_seq=3002",
        "/projections/actors/actor:witkoff?limit=10000&min_seq=3002",
    ];
    let mut before = Vec::new();
    for p in paths {
        before.push(get_json(&server.base, &keys.read, p).await);
    }
    let status = post_json(
        &server.base,
        &keys.admin,
        "/projections/actors/rebuild",
        json!({}),
    )
    .await;
    assert_eq!(status, 202);
    server.kill9();

    // Whether the kill landed before, during or after the swap, the restarted server answers
    // exactly as before: from the old save or the new one, never a mix.
    let server = BinaryServer::start(data.path(), &path);
    for (p, expected) in paths.iter().zip(&before) {
        assert_eq!(
            &get_json(&server.base, &keys.read, p).await,
            expected,
            "{p}"
        );
    }
    server.kill9();
}
