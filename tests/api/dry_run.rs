//! `POST /streams/{stream}/events?dry_run=true`: the append checked exactly as a real one,
//! against the log as it is, with nothing written and no seq taken; 200 with what would be
//! appended, or the very problem a real append gets.

use serde_json::{Value, json};

use crate::helpers::*;

/// POSTs `body` to `stream` with `query` (e.g. `dry_run=true`); returns status and body.
pub(crate) async fn post(app: &TestApp, stream: &str, query: &str, body: &Value) -> (u16, Value) {
    let resp = app
        .client
        .post(app.url(&format!("/streams/{}/events?{query}", encode(stream))))
        .bearer_auth(&app.keys.append)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// The seeded source registered again, by another publisher: a contradiction.
fn other_publisher() -> Value {
    let mut source = source_event(SOURCE);
    source["data"]["publisher"] = json!("Another Wire");
    source
}

fn actor(id: &str) -> Value {
    json!({
        "type": "actor.registered",
        "data": {"actor_id": id, "name": "Sergey Lavrov", "kind": "person"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

#[tokio::test]
async fn a_dry_run_of_a_valid_batch_answers_200_with_what_would_be_appended_and_writes_nothing() {
    let app = spawn_app().await;
    app.seed().await;
    let head = app.head().await;
    let mut spoken = statement(1);
    // Refers to the actor the first event of the same request registers.
    spoken["data"]["speaker"] = json!("actor:lavrov");
    let body = json!({"expected_version": "no_stream", "events": [actor("actor:lavrov"), spoken]});

    let (status, answer) = post(&app, "process/p", "dry_run=true", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dry_run"], true);
    assert_eq!(answer["stream"], "process/p");
    assert_eq!(answer["stream_version"], 2);
    let events = answer["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["type"], "actor.registered");
    assert_eq!(events[1]["version"], 2);
    assert_eq!(events[1]["duplicate"], false);
    assert!(events[1].get("seq").is_none(), "a dry run takes no seq");

    assert_eq!(app.head().await, head, "a dry run wrote to the log");
    assert_eq!(
        app.get("/streams/process%2Fp/events").await.status(),
        404,
        "a dry run created the stream"
    );
    // The real append still gets the next seq: none was taken.
    let resp = app.append("process/p", &body).await;
    assert_eq!(resp.status(), 201);
    let real: Value = resp.json().await.unwrap();
    assert_eq!(real["events"][0]["seq"], head.0 + 1);
    assert_eq!(real["stream_version"], answer["stream_version"]);
}

#[tokio::test]
async fn a_dry_run_answers_the_same_problem_as_the_real_append_and_leaves_the_log_alone() {
    let app = spawn_app().await;
    app.seed().await;
    let appended = app.append("process/p", &statement(1)).await;
    assert_eq!(appended.status(), 201);
    let head = app.head().await;

    let mut dangling = statement(3);
    dangling["data"]["speaker"] = json!("issue:land");
    dangling["evidence"][0]["source"] = json!("src:never");
    let mut no_content = statement(4);
    no_content["data"]
        .as_object_mut()
        .unwrap()
        .remove("content");
    let cases = [
        // A reference the log does not have (422, pointer into the batch).
        (
            "process/p",
            json!({"events": [statement(2), dangling.clone()]}),
        ),
        // A single event: pointers without the `/events/i` prefix.
        ("process/p", dangling),
        // A stale expected version (409 with the current version).
        (
            "process/p",
            json!({"expected_version": 0, "events": [statement(5)]}),
        ),
        // A source registered again with other content (409 naming the field).
        ("registry/sources", other_publisher()),
        // The schema.
        ("process/p", no_content),
    ];
    // The same request passes a dry run while it is valid, and is not written by it.
    let (status, passed) = post(&app, "process/p", "dry_run=true", &statement(2)).await;
    assert_eq!(
        (status, &passed["dry_run"]),
        (200, &json!(true)),
        "{passed}"
    );
    assert_eq!(app.head().await, head);
    for (stream, body) in cases {
        let (dry_status, dry) = post(&app, stream, "dry_run=true", &body).await;
        assert_eq!(app.head().await, head, "a refused dry run wrote: {dry}");
        let (status, real) = post(&app, stream, "", &body).await;
        assert!(status == 409 || status == 422, "{status} {real}");
        assert_eq!((dry_status, &dry), (status, &real), "for {body}");
    }
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn a_dry_run_of_events_already_stored_is_a_duplicate_and_of_an_id_reused_a_conflict() {
    let app = spawn_app().await;
    app.seed().await;
    let mut event = statement(1);
    event["id"] = json!("019be826-9000-701f-91c2-d6a7f0a1c8e9");
    assert_eq!(app.append("process/p", &event).await.status(), 201);
    let head = app.head().await;

    let (status, answer) = post(&app, "process/p", "dry_run=true", &event).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dry_run"], true, "{answer}");
    assert_eq!(answer["events"][0]["duplicate"], true);
    assert_eq!(answer["events"][0]["version"], 1);
    assert_eq!(answer["events"][0]["id"], event["id"]);

    event["data"]["content"] = json!("Something else.");
    let (status, dry) = post(&app, "process/p", "dry_run=true", &event).await;
    let (real_status, real) = post(&app, "process/p", "", &event).await;
    assert_eq!(status, 409, "{dry}");
    assert_eq!((status, dry), (real_status, real));
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn a_dry_run_parameter_other_than_true_or_false_is_a_400_naming_it() {
    let app = spawn_app().await;
    app.seed().await;
    let (status, problem) = post(&app, "process/p", "dry_run=yes", &statement(1)).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "?dry_run");
    let (status, _) = post(&app, "process/p", "dry_run=false", &statement(1)).await;
    assert_eq!(status, 201, "dry_run=false is a real append");
}

#[tokio::test]
async fn a_dry_run_judges_a_re_registration_as_the_real_append_does() {
    let app = spawn_app().await;
    app.seed().await;
    let registered = app
        .append(
            "registry/actors",
            &json!({"events": [actor("actor:lavrov")]}),
        )
        .await;
    assert_eq!(registered.status(), 201);
    let head = app.head().await;

    // The same content again: the real append answers it as a no-op, so must the dry run.
    let same = json!({"events": [actor("actor:lavrov")]});
    let (status, answer) = post(&app, "registry/again", "dry_run=true", &same).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dry_run"], true);
    let real = app.append("registry/again", &same).await;
    assert_eq!(real.status(), 200, "the real append of the same content");

    // Other content: both refuse it with 409 naming the field.
    let mut renamed = actor("actor:lavrov");
    renamed["data"]["name"] = json!("Someone Else");
    let other = json!({"events": [renamed]});
    let (status, answer) = post(&app, "registry/other", "dry_run=true", &other).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(
        answer["type"],
        "https://annals.dev/problems/registry-conflict"
    );
    assert!(answer.to_string().contains("/data/name"), "{answer}");
    let real = app.append("registry/other", &other).await;
    assert_eq!(real.status(), 409);
    assert_eq!(app.head().await, head, "nothing was written");
}
