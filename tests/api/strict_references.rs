//! Issue 11, item 2, through HTTP against the real server: actor and issue references are
//! strict. A `speaker`, `holder`, `assessed_by` or `attribution` naming an actor the log has
//! never registered, or an `issue` naming an unknown issue, is a dangling reference: a 422
//! naming its pointer and the id, that writes nothing, and the dry run says the same. An
//! earlier line of the same request that registers it makes it known.

use serde_json::{Value, json};

use crate::helpers::*;

/// POSTs `body` to `process/p` (with `?query` when not empty); returns status and body.
async fn post(app: &TestApp, query: &str, body: &Value) -> (u16, Value) {
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let resp = app
        .client
        .post(app.url(&format!("/streams/process%2Fp/events{q}")))
        .bearer_auth(&app.keys.append)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn statement(speaker: &str) -> Value {
    json!({
        "type": "statement.made",
        "occurred": {"start": "2026-01-22", "precision": "day"},
        "process": "p",
        "data": {"statement_id": "statement:strict-1", "speaker": speaker, "content": "c"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

fn position(holder: &str, issue: &str) -> Value {
    json!({
        "type": "position.stated",
        "occurred": {"start": "2026-01-22", "precision": "day"},
        "process": "p",
        "data": {"position_id": "position:strict-1", "holder": holder, "issue": issue,
                 "stance": "demand", "object": "o"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

#[tokio::test]
async fn a_statement_whose_speaker_is_an_unregistered_actor_is_rejected_with_422_naming_the_pointer()
 {
    let app = spawn_app().await;
    app.seed().await;
    let head = app.head().await;
    let (status, body) = post(&app, "", &statement("actor:nobody")).await;
    let message = field_error(status, &body, "/data/speaker");
    assert!(
        message.starts_with("`actor:nobody` is not registered"),
        "{message}"
    );
    assert_eq!(app.head().await, head, "nothing written");

    // The dry run says the same, in the same words.
    let (status, dry) = post(&app, "dry_run=true", &statement("actor:nobody")).await;
    assert_eq!(field_error(status, &dry, "/data/speaker"), message);

    // Registered, the same statement is accepted.
    register_all(&app, &["actor:nobody"]).await;
    let (status, body) = post(&app, "", &statement("actor:nobody")).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_position_on_an_unknown_issue_is_rejected_with_422_naming_the_pointer() {
    let app = spawn_app().await;
    app.seed().await;
    let head = app.head().await;
    let (status, body) = post(&app, "", &position("actor:russia", "issue:nowhere")).await;
    let message = field_error(status, &body, "/data/issue");
    assert!(
        message.starts_with("`issue:nowhere` is not registered"),
        "{message}"
    );
    assert_eq!(app.head().await, head, "nothing written");
    let (status, dry) = post(
        &app,
        "dry_run=true",
        &position("actor:russia", "issue:nowhere"),
    )
    .await;
    assert_eq!(field_error(status, &dry, "/data/issue"), message);

    // An unregistered holder, and an unregistered actor in an attribution chain, are named
    // at their pointers too.
    let (status, body) = post(&app, "", &position("actor:ghost", "issue:nowhere")).await;
    let message = field_error(status, &body, "/data/holder");
    assert!(
        message.starts_with("`actor:ghost` is not registered"),
        "{message}"
    );
    register_all(&app, &["issue:somewhere"]).await;
    let mut attributed = position("actor:russia", "issue:somewhere");
    attributed["evidence"][0]["attribution"] = json!(["actor:unnamed-officials"]);
    let (status, body) = post(&app, "", &attributed).await;
    let message = field_error(status, &body, "/evidence/0/attribution/0");
    assert!(
        message.starts_with("`actor:unnamed-officials` is not registered"),
        "{message}"
    );
    assert_eq!(app.head().await.0, head.0 + 1, "only the issue was written");
}

#[tokio::test]
async fn an_actor_and_issue_registered_earlier_in_the_same_request_are_known_to_later_lines() {
    let app = spawn_app().await;
    app.seed().await;
    let batch = json!({"events": [
        {"type": "actor.registered",
         "data": {"actor_id": "actor:newcomer", "name": "Newcomer", "kind": "state"},
         "evidence": [{"source": SOURCE, "relation": "reports"}]},
        {"type": "issue.defined",
         "data": {"issue_id": "issue:fresh", "label": "Fresh"},
         "evidence": [{"source": SOURCE, "relation": "reports"}]},
        position("actor:newcomer", "issue:fresh")
    ]});
    let (status, body) = post(&app, "", &batch).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["events"].as_array().unwrap().len(), 3);
}
