//! `GET /export?to=SEQ`: the offline export's lines over HTTP. Scope `read`; from seq 1 to `to`
//! (the head by default), each line an envelope whose hashes chain; `to` beyond the head is a
//! 422 problem naming the head, and a malformed `to` a 400.

use serde_json::Value;

use crate::helpers::*;

/// A seeded app (a source and the fixture actors: five records) with `n` statements after it:
/// `n + 5` records.
async fn app_with(n: u64) -> TestApp {
    let app = spawn_app().await;
    app.seed().await;
    for i in 1..=n {
        let resp = app.append("process/p", &statement(i)).await;
        assert_eq!(resp.status(), 201);
    }
    app
}

async fn export(app: &TestApp, query: &str) -> reqwest::Response {
    app.get(&format!("/export{query}")).await
}

/// The lines of a 200 export, parsed.
async fn lines(resp: reqwest::Response) -> (String, Vec<Value>) {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let parsed = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (text, parsed)
}

#[tokio::test]
async fn export_without_to_streams_every_record_up_to_the_head_with_chained_hashes() {
    let app = app_with(596).await;
    let (head, head_hash) = app.head().await;
    assert_eq!(head, 601);
    let (text, records) = lines(export(&app, "").await).await;
    assert!(text.ends_with('\n'));
    assert_eq!(records.len() as u64, head);
    let mut prev: Option<String> = None;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], i as u64 + 1);
        if let Some(p) = &prev {
            assert_eq!(r["prev_hash"].as_str(), Some(p.as_str()), "seq {}", i + 1);
        }
        prev = r["hash"].as_str().map(str::to_string);
    }
    assert_eq!(prev.as_deref(), Some(head_hash.as_str()));
    // Each line is the envelope the log serves for that record, byte for byte.
    let first_line = text.lines().next().unwrap();
    let id = records[0]["id"].as_str().unwrap();
    let served = app
        .get(&format!("/events/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(first_line, served);
}

#[tokio::test]
async fn export_lines_are_the_lines_the_offline_export_writes() {
    let app = app_with(3).await;
    let (online, _) = lines(export(&app, "").await).await;
    let dir = app.stop().await;
    wait_until_released(dir.path());
    let mut offline = Vec::new();
    annals::audit::export::export(
        dir.path(),
        &annals::Config::defaults().unwrap().log,
        &mut offline,
    )
    .unwrap();
    assert_eq!(online.as_bytes(), offline.as_slice());
}

#[tokio::test]
async fn export_to_stops_at_that_seq_however_much_is_appended_later() {
    let app = app_with(5).await;
    let (_, records) = lines(export(&app, "?to=3").await).await;
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let (text, records) = lines(export(&app, "?to=0").await).await;
    assert!(text.is_empty() && records.is_empty());
    let (before, _) = lines(export(&app, "?to=3").await).await;
    for i in 6..=8 {
        assert_eq!(app.append("process/p", &statement(i)).await.status(), 201);
    }
    let (after, _) = lines(export(&app, "?to=3").await).await;
    assert_eq!(before, after);
}

#[tokio::test]
async fn export_to_beyond_the_head_is_a_422_problem_naming_the_head() {
    let app = app_with(2).await;
    let resp = export(&app, "?to=8").await;
    assert_eq!(resp.status(), 422);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["type"], "https://annals.dev/problems/beyond-head");
    assert_eq!(p["head"], 7);
    for bad in ["-1", "x", "1.5", ""] {
        let resp = export(&app, &format!("?to={bad}")).await;
        assert_eq!(resp.status(), 400, "to={bad}");
        let p: Value = resp.json().await.unwrap();
        assert_eq!(p["errors"][0]["pointer"], "?to", "to={bad}");
    }
}

#[tokio::test]
async fn export_needs_the_read_scope() {
    let app = app_with(1).await;
    let resp = app.client.get(app.url("/export")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let resp = app
        .client
        .get(app.url("/export"))
        .bearer_auth(&app.keys.append)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["required_scope"], "read");
    let resp = app
        .client
        .post(app.url("/export"))
        .bearer_auth(&app.keys.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET");
}
