//! A restart resumes from the checkpoint: it replays only the tail, never the whole log.

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
async fn a_graceful_restart_resumes_from_the_final_checkpoint_and_replays_nothing() {
    let mut app = spawn_app_with(|c| {
        c.with(json!({"projections": {"checkpoint_every_events": 5}}))
            .unwrap()
    })
    .await;
    app.seed().await;
    append_statements(&app, 1, 12).await;
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
async fn after_a_crash_a_restart_replays_exactly_the_events_after_the_last_checkpoint() {
    let data = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let keys = TestKeys::new();
    let path = write_config(conf.path(), &keys);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text = format!(
        "[projections]\ncheckpoint_every_events = 10\ncheckpoint_every_ms = 600000\n\n{text}"
    );
    std::fs::write(&path, text).unwrap();

    let client = reqwest::Client::new();
    let get = |base: String, path: &'static str| {
        let client = client.clone();
        let key = keys.read.clone();
        async move {
            let resp = client
                .get(format!("{base}{path}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            resp.json::<serde_json::Value>().await.unwrap()
        }
    };
    let post = |base: String, body: serde_json::Value, stream: &'static str| {
        let client = client.clone();
        let key = keys.append.clone();
        async move {
            let resp = client
                .post(format!("{base}/streams/{}/events", encode(stream)))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
        }
    };

    let server = BinaryServer::start(data.path(), &path);
    post(
        server.base.clone(),
        source_event(SOURCE),
        "registry/sources",
    )
    .await;
    let events: Vec<_> = (1..=24).map(statement).collect();
    post(
        server.base.clone(),
        json!({"events": events}),
        "process/ru-ua-peace",
    )
    .await;
    // Wait (bounded) for the checkpoint that covers the first 25 events.
    let mut checkpointed = 0;
    for _ in 0..200 {
        let v = get(server.base.clone(), "/projections").await;
        checkpointed = v["projections"][0]["last_checkpoint_seq"].as_u64().unwrap();
        if checkpointed == 25 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(checkpointed, 25);
    for n in 100..103 {
        post(server.base.clone(), statement(n), "process/ru-ua-peace").await;
    }
    let v = get(server.base.clone(), "/projections/audit?min_seq=28").await;
    assert_eq!(v["as_of_seq"], 28);
    server.kill9();

    let server = BinaryServer::start(data.path(), &path);
    let v = get(server.base.clone(), "/projections/audit?min_seq=28").await;
    assert_eq!(v["as_of_seq"], 28);
    let s = get(server.base.clone(), "/projections").await;
    let line = &s["projections"][0];
    assert_eq!(line["last_checkpoint_seq"], 25, "{line}");
    assert_eq!(line["replayed_since_start"], 3, "{line}");
    server.kill9();
}
