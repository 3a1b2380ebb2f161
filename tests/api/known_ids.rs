//! The writer remembers the registry lookups the store answered (`src/log/writer/known.rs`),
//! through HTTP against the real server: an id named again, once remembered, still answers
//! with the kind it was registered with, so a field that needs another kind is still a 422
//! at its pointer, and the remembered ids keep being accepted where they fit, also after the
//! memory has been emptied and refilled.

use serde_json::{Value, json};

use crate::helpers::*;

/// POSTs `body` to the test's process stream.
async fn post(app: &TestApp, body: &Value) -> (u16, Value) {
    crate::dry_run::post(app, "process/k", "", body).await
}

fn position(n: u64, holder: &str, issue: &str) -> Value {
    json!({
        "type": "position.stated",
        "occurred": {"start": "2026-01-22", "precision": "day"},
        "process": "k",
        "data": {"position_id": format!("position:known-{n}"), "holder": holder,
                 "issue": issue, "stance": "demand", "object": "o"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

#[tokio::test]
async fn an_id_the_writer_remembers_keeps_its_kind_and_a_field_of_another_kind_is_still_a_422() {
    let app = spawn_app().await;
    app.seed().await;
    register_all(&app, &["actor:remembered", "issue:remembered"]).await;

    // Looked up in the store, and remembered, by an accepted position.
    let (status, body) = post(&app, &position(1, "actor:remembered", "issue:remembered")).await;
    assert_eq!(status, 201, "{body}");

    // Named again in the wrong places: each refused at its pointer, with the registered kind.
    let head = app.head().await;
    let (status, body) = post(&app, &position(2, "issue:remembered", "issue:remembered")).await;
    let message = field_error(status, &body, "/data/holder");
    assert!(
        message.contains("`issue:remembered` is an issue, not an actor"),
        "{message}"
    );
    let (status, body) = post(&app, &position(3, "actor:remembered", "actor:remembered")).await;
    let message = field_error(status, &body, "/data/issue");
    assert!(
        message.contains("`actor:remembered` is an actor, not an issue"),
        "{message}"
    );
    assert_eq!(app.head().await, head, "nothing written");

    // More ids named than the writer remembers (4096): the memory empties and refills, and
    // every id still answers as registered.
    let many: Vec<String> = (0..4200).map(|i| format!("actor:many-{i}")).collect();
    for (c, ids) in many.chunks(90).enumerate() {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        register_all(&app, &ids).await;
        let events: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, holder)| position((100 * c + i) as u64 + 10, holder, "issue:remembered"))
            .collect();
        let (status, body) = post(&app, &json!({ "events": events })).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = post(&app, &position(4, "actor:many-0", "issue:remembered")).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(&app, &position(5, "issue:remembered", "actor:many-4199")).await;
    field_error(status, &body, "/data/holder");
    let (status, body) = post(&app, &position(6, "actor:many-4199", "actor:many-0")).await;
    let message = field_error(status, &body, "/data/issue");
    assert!(
        message.contains("`actor:many-0` is an actor, not an issue"),
        "{message}"
    );
}
