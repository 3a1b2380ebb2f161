//! As-of cuts, corrections, retractions, and the problems a bad projection query gets.

use serde_json::{Value, json};

use super::{appended, view};
use crate::helpers::*;

fn correction(target: &str, content: &str) -> Value {
    json!({
        "type": "event.corrected",
        "occurred": {"start": "2026-01-23", "precision": "day"},
        "data": {
            "target": target,
            "patch": [{"op": "replace", "path": "/content", "value": content}],
            "reason": "mis-transcribed"
        },
        "evidence": []
    })
}

fn retraction(target: &str) -> Value {
    json!({
        "type": "event.retracted",
        "occurred": {"start": "2026-01-23", "precision": "day"},
        "data": {"target": target, "reason": "the statement was never made"},
        "evidence": []
    })
}

fn contents(actor_view: &Value) -> Vec<String> {
    actor_view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["content"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_correction_changes_the_current_view_but_not_a_view_as_of_before_it() {
    let app = spawn_app().await;
    app.seed().await;
    let (id, seq) = appended(app.append("process/ru-ua-peace", &statement(1)).await).await;
    let stored = app.get_json(&format!("/events/{id}")).await;
    let (_, fix_seq) = appended(
        app.append(
            "process/ru-ua-peace",
            &correction(&id, "Corrected wording."),
        )
        .await,
    )
    .await;

    let now = view(&app, "/projections/actors/actor:witkoff", fix_seq).await;
    assert_eq!(contents(&now), ["Corrected wording."]);
    assert_eq!(now["as_of_seq"], fix_seq);

    let by_seq = view(
        &app,
        &format!("/projections/actors/actor:witkoff?known_at={seq}"),
        fix_seq,
    )
    .await;
    assert_eq!(contents(&by_seq), ["Statement number 1."]);
    assert_eq!(by_seq["as_of_seq"], seq);

    // The same cut by timestamp: the recorded_at of the statement itself.
    let at = stored["recorded_at"].as_str().unwrap().replace('+', "%2B");
    let by_time = view(
        &app,
        &format!("/projections/actors/actor:witkoff?known_at={at}"),
        fix_seq,
    )
    .await;
    assert_eq!(contents(&by_time), ["Statement number 1."]);

    let history = view(&app, "/projections/audit", fix_seq).await;
    let change = &history["changes"][0];
    assert_eq!(change["change"], "correction");
    assert_eq!(change["target"], id.as_str());
    assert_eq!(change["before"]["content"], "Statement number 1.");
    assert_eq!(change["after"]["content"], "Corrected wording.");
    assert_eq!(change["recorded_by"], "test-desk");
}

#[tokio::test]
async fn a_retraction_hides_the_event_from_the_default_view_and_shows_it_in_the_history() {
    let app = spawn_app().await;
    app.seed().await;
    appended(app.append("process/ru-ua-peace", &statement(1)).await).await;
    let (id2, seq2) = appended(app.append("process/ru-ua-peace", &statement(2)).await).await;
    let (_, r_seq) = appended(app.append("process/ru-ua-peace", &retraction(&id2)).await).await;

    let now = view(&app, "/projections/actors/actor:witkoff", r_seq).await;
    assert_eq!(contents(&now), ["Statement number 1."]);

    let before = view(
        &app,
        &format!("/projections/actors/actor:witkoff?known_at={seq2}"),
        r_seq,
    )
    .await;
    assert_eq!(
        contents(&before),
        ["Statement number 1.", "Statement number 2."]
    );

    let history = view(&app, "/projections/audit", r_seq).await;
    let change = &history["changes"][0];
    assert_eq!(change["change"], "retraction");
    assert_eq!(change["target"], id2.as_str());
    assert_eq!(change["target_type"], "statement.made");
    assert_eq!(change["reason"], "the statement was never made");
    assert_eq!(change["before"]["content"], "Statement number 2.");
}

#[tokio::test]
async fn bad_projection_queries_get_problems_naming_what_is_wrong() {
    let app = spawn_app_with(|c| {
        c.with(json!({"projections": {"min_seq_wait_ms": 100}}))
            .unwrap()
    })
    .await;
    app.seed().await;

    let resp = app.get("/projections/audit?known_at=yesterday").await;
    assert_eq!(resp.status(), 400);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["errors"][0]["pointer"], "?known_at");

    let resp = app.get("/projections/calendar?valid_at=soon").await;
    assert_eq!(resp.status(), 400);

    let resp = app.get("/projections/nothing").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    let resp = app.get("/projections/actors/actor:nobody").await;
    assert_eq!(resp.status(), 404);

    // A seq the log has not reached is the client's mistake, not a lag (see contract.rs).
    let resp = app.get("/projections/audit?min_seq=999999").await;
    assert_eq!(resp.status(), 422);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["errors"][0]["pointer"], "?min_seq");

    let resp = app
        .client
        .get(app.url("/projections/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let resp = app
        .client
        .post(app.url("/projections/audit/rebuild"))
        .bearer_auth(&app.keys.read)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    let resp = app
        .client
        .delete(app.url("/projections/audit"))
        .bearer_auth(&app.keys.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn a_process_named_rebuild_is_read_with_get_and_post_on_the_same_path_still_rebuilds() {
    let app = spawn_app().await;
    app.seed().await;
    let mut m = meeting("meeting:rebuild-1");
    m["process"] = json!("rebuild");
    let (_, seq) = appended(app.append("process/rebuild", &m).await).await;

    let process = view(&app, "/projections/negotiation/rebuild", seq).await;
    assert_eq!(process["process"], "rebuild");
    assert_eq!(process["last_meeting"]["meeting_id"], "meeting:rebuild-1");

    let resp = app
        .client
        .post(app.url("/projections/negotiation/rebuild"))
        .bearer_auth(&app.keys.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    // On a read model without per-entity routes, `rebuild` is only the action.
    let resp = app.get("/projections/audit/rebuild").await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
}
