//! A registry no-op inside a mixed batch, through HTTP against the real server: the line that
//! registers a known entry again with what it already says is answered, in the per-event
//! answer, exactly as the same registration alone would be (`duplicate: true`, the existing
//! registration's id and seq), while the batch's new lines are `duplicate: false`.

use serde_json::{Value, json};

use crate::helpers::*;

fn ukraine() -> Value {
    json!({
        "type": "actor.registered",
        "data": {"actor_id": "actor:ukraine", "name": "Ukraine", "kind": "state"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

fn moldova() -> Value {
    json!({
        "type": "actor.registered",
        "data": {"actor_id": "actor:moldova", "name": "Moldova", "kind": "state"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

async fn post(app: &TestApp, body: &Value) -> (u16, Value) {
    let resp = app.append("registry/actors", body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_compatible_re_registration_in_a_mixed_batch_is_reported_as_a_duplicate_of_the_registration()
 {
    let app = spawn_app().await;
    app.seed().await;
    let (status, first) = post(&app, &ukraine()).await;
    assert_eq!(status, 201, "{first}");
    let registration = first["events"][0].clone();

    // Alone, the same registration is a no-op answered with the registration.
    let (status, alone) = post(&app, &ukraine()).await;
    assert_eq!(status, 200, "{alone}");
    assert_eq!(alone["events"][0]["duplicate"], true);
    assert_eq!(alone["events"][0]["id"], registration["id"]);

    // In a batch with a new line: the same answer for that line, and a new record for the other.
    let (head, _) = app.head().await;
    let (status, mixed) = post(&app, &json!({"events": [ukraine(), moldova()]})).await;
    assert_eq!(status, 201, "{mixed}");
    let events = mixed["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{mixed}");
    assert_eq!(events[0]["duplicate"], true, "{mixed}");
    assert_eq!(events[0]["id"], registration["id"], "{mixed}");
    assert_eq!(events[0]["seq"], registration["seq"], "{mixed}");
    assert_eq!(events[1]["duplicate"], false, "{mixed}");
    assert_eq!(events[1]["seq"], head + 1, "{mixed}");
    assert_eq!(app.head().await.0, head + 1, "one new record");

    // A line that re-registers what an earlier line of the same request registered is a no-op
    // too, answered with that line's position.
    let chad = json!({
        "type": "actor.registered",
        "data": {"actor_id": "actor:chad", "name": "Chad", "kind": "state"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    });
    let (status, twice) = post(&app, &json!({"events": [chad.clone(), chad]})).await;
    assert_eq!(status, 201, "{twice}");
    let events = twice["events"].as_array().unwrap();
    assert_eq!(events[0]["duplicate"], false, "{twice}");
    assert_eq!(events[1]["duplicate"], true, "{twice}");
    assert_eq!(events[1]["seq"], events[0]["seq"], "{twice}");
}
