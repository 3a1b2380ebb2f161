//! `recorded_at` never decreases along the log, whatever the wall clock says: records restored
//! from an export may be stamped later than the local clock, and a restart must not forget
//! the latest stamp. `known_at=<time>` cuts by binary search over `recorded_at`, so a stamp
//! that went backwards would make it answer wrongly.

use annals::event::{Schemas, Validator};
use annals::log::Record;
use annals::log::record::{GENESIS, chain};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

/// A stamp far later than any test machine's clock.
const LATER: &str = "2099-01-01T00:00:00.000000Z";

/// An export (NDJSON) of three records stamped [`LATER`]: the fixture source, its speaker,
/// then statement 1 citing it, chained as `log/record.rs` says (hash = SHA-256(prev ‖ record
/// JSON)).
fn export_stamped_later() -> String {
    let mut lines = String::new();
    let mut prev = GENESIS;
    for (seq, stream, body) in [
        (1, "registry/sources", source_event(SOURCE)),
        (2, FIXTURE_STREAM, fixture_actors()["events"][0].clone()),
        (3, "process/ru-ua-peace", statement(1)),
    ] {
        let record = Record {
            id: Uuid::now_v7(),
            seq,
            stream: stream.into(),
            version: 1,
            event_type: body["type"].as_str().unwrap().into(),
            schema_version: 1,
            recorded_at: LATER.into(),
            recorded_by: "elsewhere".into(),
            occurred: body["occurred"].clone(),
            process: body
                .get("process")
                .and_then(Value::as_str)
                .map(str::to_string),
            data: body["data"].clone(),
            evidence: body["evidence"].clone(),
            meta: None,
            prev_hash: hex::encode(prev),
        };
        let hash = chain(&prev, &record.to_bytes().unwrap());
        let mut line = serde_json::to_value(&record).unwrap();
        line["hash"] = json!(hex::encode(hash));
        lines.push_str(&format!("{line}\n"));
        prev = hash;
    }
    lines
}

/// Appends statement `n` over HTTP; returns its seq and `recorded_at`.
async fn append_statement(app: &TestApp, n: u64) -> (u64, String) {
    let resp = app.append("process/ru-ua-peace", &statement(n)).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let v: Value = resp.json().await.unwrap();
    let seq = v["events"][0]["seq"].as_u64().unwrap();
    let id = v["events"][0]["id"].as_str().unwrap();
    let stored = app.get_json(&format!("/events/{id}")).await;
    (seq, stored["recorded_at"].as_str().unwrap().to_string())
}

/// Witkoff's statements as known at `at` (a `recorded_at`), once the projections reach `seq`.
async fn statements_known_at(app: &TestApp, at: &str, seq: u64) -> Vec<String> {
    let at = at.replace('+', "%2B");
    let path = format!("/projections/actors/actor:witkoff?known_at={at}&min_seq={seq}");
    app.get_json(&path).await["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["content"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_append_after_restoring_later_stamped_records_is_stamped_no_earlier_than_they_are() {
    let app = spawn_app().await;
    let validator = Validator::new(Schemas::load().unwrap(), app.config.limits.clone());
    let summary = annals::audit::import::import(
        app.server().log(),
        &validator,
        export_stamped_later().as_bytes(),
        "restorer",
        None,
        &app.config.import,
    )
    .await
    .unwrap();
    assert_eq!(summary.restored, 3);

    let (seq, recorded_at) = append_statement(&app, 2).await;
    assert_eq!(seq, 4);
    assert!(
        recorded_at.as_str() >= LATER,
        "recorded_at went backwards: {recorded_at} after {LATER}"
    );
    // Known at its own recorded_at, the new statement is there, after the restored one.
    assert_eq!(
        statements_known_at(&app, &recorded_at, seq).await,
        ["Statement number 1.", "Statement number 2."]
    );
}

#[tokio::test]
async fn after_a_restart_appends_are_stamped_no_earlier_than_the_head_record() {
    // Restored offline by the CLI (its own process), then served: the server's writer knows
    // the latest stamp only from the log itself.
    let data = tempfile::tempdir().unwrap();
    let data_arg = data.path().to_str().unwrap().to_string();
    let (code, out, err) = run_cli(
        &["import", "--data-dir", &data_arg, "-"],
        Some(export_stamped_later().as_bytes()),
    );
    assert_eq!(code, 0, "import: {out}{err}");
    wait_until_released(data.path());
    let mut app = spawn_app_with(|c| {
        c.with(json!({"server": {"data_dir": data.path()}}))
            .unwrap()
    })
    .await;

    let (seq, recorded_at) = append_statement(&app, 2).await;
    assert_eq!(seq, 4);
    assert!(
        recorded_at.as_str() >= LATER,
        "recorded_at went backwards: {recorded_at} after {LATER}"
    );
    assert_eq!(
        statements_known_at(&app, &recorded_at, seq).await,
        ["Statement number 1.", "Statement number 2."]
    );

    // And across a restart of the server itself.
    app.restart().await;
    let (seq, again) = append_statement(&app, 3).await;
    assert!(again >= recorded_at, "{again} after {recorded_at}");
    assert_eq!(statements_known_at(&app, &again, seq).await.len(), 3);
}
