//! Issue 11, item 4 (`schema_version`), through HTTP against the real server: a record written
//! as a version-1 client wrote it (one tone string, a bare PLOVER code, plain-string
//! provisions) is stored and served as written, never rewritten, and every view reads it in
//! the version-2 shape; so does a version-1 record restored from an export.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::projections::{appended, view};

/// An agreement as a version-1 client wrote it: provisions are plain strings.
fn old_agreement() -> Value {
    json!({
        "type": "agreement.reached",
        "schema_version": 1,
        "occurred": {"start": "2026-01-24", "precision": "day"},
        "process": "ru-ua-peace",
        "data": {
            "agreement_id": "agreement:energy-truce",
            "parties": ["actor:russia", "actor:ukraine"],
            "stage": "ceasefire",
            "provisions": ["No strikes on energy infrastructure for 30 days."]
        },
        "evidence": [{"source": SOURCE, "relation": "reports"}],
        "meta": {"codes": {"plover": "AGREE"}}
    })
}

/// A statement as a version-1 client wrote it: one tone, a string.
fn old_statement() -> Value {
    let mut ev = statement(1);
    ev["schema_version"] = json!(1);
    ev["data"]["tone"] = json!("cautious");
    ev["meta"] = json!({"codes": {"plover": "CONSULT"}});
    ev
}

/// The one event of an actor view with this type.
fn event_of<'a>(actor_view: &'a Value, kind: &str) -> &'a Value {
    actor_view["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{actor_view}"))
        .iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {actor_view}"))
}

#[tokio::test]
async fn a_version_1_record_is_stored_as_written_and_every_view_reads_it_in_the_version_2_shape() {
    let app = spawn_app().await;
    app.seed().await;
    register_all(&app, &["actor:ukraine"]).await;
    let (statement_id, _) =
        appended(app.append("process/ru-ua-peace", &old_statement()).await).await;
    let (agreement_id, seq) =
        appended(app.append("process/ru-ua-peace", &old_agreement()).await).await;

    // The log serves what was written: a stored record is never rewritten.
    let stored = app.get_json(&format!("/events/{statement_id}")).await;
    assert_eq!(stored["schema_version"], 1);
    assert_eq!(stored["data"]["tone"], "cautious");
    assert_eq!(stored["meta"]["codes"]["plover"], "CONSULT");
    let stored = app.get_json(&format!("/events/{agreement_id}")).await;
    assert_eq!(
        stored["data"]["provisions"],
        json!(["No strikes on energy infrastructure for 30 days."])
    );

    // The views read it upcast.
    let witkoff = view(&app, "/projections/actors/actor:witkoff", seq).await;
    assert_eq!(
        event_of(&witkoff, "statement.made")["data"]["tone"],
        json!(["cautious"])
    );
    let russia = view(&app, "/projections/actors/actor:russia", seq).await;
    assert_eq!(
        event_of(&russia, "agreement.reached")["data"]["provisions"],
        json!([{"summary": "No strikes on energy infrastructure for 30 days."}])
    );
    let negotiation = view(&app, "/projections/negotiation/ru-ua-peace", seq).await;
    assert_eq!(
        negotiation["agreements"][0]["provisions"],
        json!([{"summary": "No strikes on energy infrastructure for 30 days."}]),
        "{negotiation}"
    );

    // A version-1 correction that writes a single tone back is read as a list too.
    let fix = json!({
        "type": "event.corrected",
        "data": {"target": statement_id,
                 "patch": [{"op": "replace", "path": "/tone", "value": "negative"}],
                 "reason": "misread"},
        "evidence": []
    });
    let (_, fix_seq) = appended(app.append("process/ru-ua-peace", &fix).await).await;
    let witkoff = view(&app, "/projections/actors/actor:witkoff", fix_seq).await;
    assert_eq!(
        event_of(&witkoff, "statement.made")["data"]["tone"],
        json!(["negative"])
    );
}

#[tokio::test]
async fn an_exported_version_1_record_restores_validates_and_reads_in_the_version_2_shape() {
    let app = spawn_app().await;
    app.seed().await;
    register_all(&app, &["actor:ukraine"]).await;
    appended(app.append("process/ru-ua-peace", &old_statement()).await).await;
    let (_, seq) = appended(app.append("process/ru-ua-peace", &old_agreement()).await).await;
    let export = app
        .client
        .get(app.url(&format!("/export?to={seq}")))
        .bearer_auth(&app.keys.read)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    let lines = export.text().await.unwrap();
    assert!(lines.contains("\"schema_version\":1"), "{lines}");
    drop(app.stop().await);

    // A new folder restores the records verbatim (each re-validated as version 1).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("v1.ndjson");
    std::fs::write(&file, &lines).unwrap();
    let (code, _, stderr) = run_cli(
        &[
            "import",
            "--data-dir",
            data.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains(&format!("{seq} restored")), "{stderr}");
    let app = spawn_app_with(|c| c.with(json!({"server": {"data_dir": data}})).unwrap()).await;
    let negotiation = view(&app, "/projections/negotiation/ru-ua-peace", seq).await;
    assert_eq!(
        negotiation["agreements"][0]["provisions"],
        json!([{"summary": "No strikes on energy infrastructure for 30 days."}]),
        "{negotiation}"
    );
    let witkoff = view(&app, "/projections/actors/actor:witkoff", seq).await;
    assert_eq!(
        event_of(&witkoff, "statement.made")["data"]["tone"],
        json!(["cautious"])
    );
}
