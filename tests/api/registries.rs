//! Issue 11, item 3, through HTTP against the real server: registries are shared and can
//! change. Registering a known actor, issue or source again with what its entry (as updated
//! so far) already says is a no-op answered like an idempotent repeat; a contradiction is a
//! 409 naming each differing field and the update event to use; `actor.updated`,
//! `issue.updated` and `source.updated` change an entry from their time on, and the views show
//! it as known at the asked time; two data sets that register the same state load into one log.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::projections::view;

fn actor(data: Value) -> Value {
    json!({
        "type": "actor.registered",
        "data": data,
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

fn ukraine() -> Value {
    actor(
        json!({"actor_id": "actor:ukraine", "name": "Ukraine", "kind": "state",
        "aliases": ["UA", "Ukrayina"], "description": "The state of Ukraine."}),
    )
}

/// Appends and returns the status and the answer.
async fn append(app: &TestApp, stream: &str, body: &Value) -> (u16, Value) {
    let resp = app.append(stream, body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn registered(app: &TestApp, body: &Value) -> (String, u64) {
    let (status, answer) = append(app, "registry/actors", body).await;
    assert_eq!(status, 201, "{answer}");
    let e = &answer["events"][0];
    (
        e["id"].as_str().unwrap().to_string(),
        e["seq"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn registering_a_known_actor_again_with_the_same_content_is_a_no_op_answered_with_the_registration()
 {
    let app = spawn_app().await;
    app.seed().await;
    let (id, seq) = registered(&app, &ukraine()).await;
    let head = app.head().await;
    let (status, answer) = append(&app, "registry/other-data-set", &ukraine()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["events"][0]["duplicate"], true, "{answer}");
    assert_eq!(answer["events"][0]["id"], id.as_str(), "{answer}");
    assert_eq!(answer["events"][0]["seq"], seq, "{answer}");
    assert_eq!(app.head().await, head, "no new record");
}

#[tokio::test]
async fn a_registration_that_leaves_fields_out_and_names_a_subset_of_the_aliases_is_compatible() {
    let app = spawn_app().await;
    app.seed().await;
    let (_, seq) = registered(&app, &ukraine()).await;
    let head = app.head().await;
    let fewer = actor(
        json!({"actor_id": "actor:ukraine", "name": "Ukraine", "kind": "state",
        "aliases": ["UA"]}),
    );
    let (status, answer) = append(&app, "registry/actors", &fewer).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["events"][0]["seq"], seq, "{answer}");
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn a_registration_that_contradicts_the_entry_is_a_409_naming_each_differing_field_and_the_update_event()
 {
    let app = spawn_app().await;
    app.seed().await;
    let (_, seq) = registered(&app, &ukraine()).await;
    let head = app.head().await;
    let other = actor(
        json!({"actor_id": "actor:ukraine", "name": "Ukraina", "kind": "organisation",
        "aliases": ["UA", "UKR"]}),
    );
    let (status, problem) = append(&app, "registry/actors", &other).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem["type"], "https://annals.dev/problems/registry-conflict",
        "{problem}"
    );
    let mut pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        ["/data/aliases", "/data/kind", "/data/name"],
        "{problem}"
    );
    assert_eq!(problem["update_event"], "actor.updated", "{problem}");
    assert_eq!(problem["seq"], seq, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("actor.updated"),
        "{problem}"
    );
    assert_eq!(app.head().await, head, "nothing written");
}

#[tokio::test]
async fn an_update_changes_the_name_in_views_now_but_not_as_of_before_it() {
    let app = spawn_app().await;
    app.seed().await;
    let (_, reg_seq) = registered(&app, &ukraine()).await;
    let update = json!({
        "type": "actor.updated",
        "data": {"actor_id": "actor:ukraine", "name": "Ukraina", "aliases": ["UA", "Ukraine"]},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    });
    let (status, answer) = append(&app, "registry/actors", &update).await;
    assert_eq!(status, 201, "{answer}");
    let upd_seq = answer["events"][0]["seq"].as_u64().unwrap();

    let now = view(&app, "/projections/actors/actor:ukraine", upd_seq).await;
    assert_eq!(now["name"], "Ukraina", "{now}");
    assert_eq!(
        now["kind"], "state",
        "an update keeps what it leaves out: {now}"
    );
    assert_eq!(
        now["total_events"], 0,
        "an update is not something the actor did: {now}"
    );
    let before = view(
        &app,
        &format!("/projections/actors/actor:ukraine?known_at={reg_seq}"),
        upd_seq,
    )
    .await;
    assert_eq!(before["name"], "Ukraine", "{before}");
    let list = view(&app, "/projections/actors", upd_seq).await;
    let listed = list["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["actor_id"] == "actor:ukraine")
        .cloned()
        .unwrap();
    assert_eq!(listed["name"], "Ukraina", "{list}");

    // A re-registration is judged against the entry as updated: the old name now differs,
    // the new one (with a known alias) is a no-op.
    let (status, problem) = append(&app, "registry/actors", &ukraine()).await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["pointer"] == "/data/name"),
        "{problem}"
    );
    let renamed = actor(
        json!({"actor_id": "actor:ukraine", "name": "Ukraina", "kind": "state",
        "aliases": ["Ukraine"]}),
    );
    let (status, answer) = append(&app, "registry/actors", &renamed).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["events"][0]["seq"], reg_seq, "{answer}");
}

#[tokio::test]
async fn an_update_of_an_entry_never_registered_is_a_422_at_its_id() {
    let app = spawn_app().await;
    app.seed().await;
    let update = json!({
        "type": "actor.updated",
        "data": {"actor_id": "actor:nobody", "name": "Nobody"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    });
    let (status, problem) = append(&app, "registry/actors", &update).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["errors"][0]["pointer"], "/data/actor_id",
        "{problem}"
    );
}

#[tokio::test]
async fn source_and_issue_updates_show_in_their_views_now_but_not_as_of_before_them() {
    let app = spawn_app().await;
    app.seed().await;
    let update = json!({
        "type": "source.updated",
        "data": {"source_id": SOURCE, "publisher": "Test Wire International", "title": "T"},
        "evidence": []
    });
    let (status, answer) = append(&app, "registry/sources", &update).await;
    assert_eq!(status, 201, "{answer}");
    let seq = answer["events"][0]["seq"].as_u64().unwrap();
    let now = view(&app, &format!("/projections/sources/{SOURCE}"), seq).await;
    assert_eq!(now["publisher"], "Test Wire International", "{now}");
    assert_eq!(now["kind"], "wire", "{now}");
    assert_eq!(now["withdrawn"], false, "an update is no withdrawal: {now}");
    let before = view(
        &app,
        &format!("/projections/sources/{SOURCE}?known_at={}", seq - 1),
        seq,
    )
    .await;
    assert_eq!(before["publisher"], "Test Wire", "{before}");
    // The source registered again as first known is now a contradiction.
    let (status, problem) = append(&app, "registry/sources", &source_event(SOURCE)).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["update_event"], "source.updated", "{problem}");

    let issue = |kind: &str, label: &str| {
        json!({"type": kind, "data": {"issue_id": "issue:land", "label": label},
            "evidence": [{"source": SOURCE, "relation": "reports"}]})
    };
    let (status, _) = append(&app, "registry/issues", &issue("issue.defined", "Land")).await;
    assert_eq!(status, 201);
    // A position on the issue, so the negotiation view names it.
    let position = json!({
        "type": "position.stated",
        "occurred": {"start": "2026-01-20", "precision": "day"},
        "process": "reg-talks",
        "data": {"position_id": "position:land-1", "holder": "actor:russia",
                 "issue": "issue:land", "stance": "demand", "object": "the whole region"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    });
    let (status, answer) = append(&app, "positions/russia", &position).await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = append(
        &app,
        "registry/issues",
        &issue("issue.updated", "Territory"),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let label_seq = answer["events"][0]["seq"].as_u64().unwrap();
    let labels = |v: &Value| -> Vec<Value> {
        let mut out: Vec<Value> = v["issues"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["issue_id"] == "issue:land")
            .map(|i| i["label"].clone())
            .collect();
        out.extend(
            v["positions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["issue"] == "issue:land")
                .map(|p| p["issue_label"].clone()),
        );
        out
    };
    let now = view(&app, "/projections/negotiation/reg-talks", label_seq).await;
    let now_labels = labels(&now);
    assert!(!now_labels.is_empty(), "the view names the issue: {now}");
    assert!(now_labels.iter().all(|l| l == "Territory"), "{now}");
    let before = view(
        &app,
        &format!(
            "/projections/negotiation/reg-talks?known_at={}",
            label_seq - 1
        ),
        label_seq,
    )
    .await;
    let before_labels = labels(&before);
    assert!(!before_labels.is_empty(), "{before}");
    assert!(before_labels.iter().all(|l| l == "Land"), "{before}");
    let (status, problem) = append(&app, "registry/issues", &issue("issue.defined", "Land")).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["update_event"], "issue.updated", "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/data/label", "{problem}");
}

#[tokio::test]
async fn a_later_line_of_a_batch_may_register_again_what_an_earlier_line_registered() {
    let app = spawn_app().await;
    app.seed().await;
    let again = actor(json!({"actor_id": "actor:ukraine", "name": "Ukraine", "kind": "state"}));
    // Its speaker is the actor the batch registers.
    let mut said = statement(1);
    said["data"]["speaker"] = json!("actor:ukraine");
    let body = json!({"events": [ukraine(), again, said]});
    let (status, answer) = append(&app, "registry/actors", &body).await;
    assert_eq!(status, 201, "{answer}");
    let events = answer["events"].as_array().unwrap();
    assert_eq!(events[1]["seq"], events[0]["seq"], "{answer}");
    assert_eq!(events[1]["id"], events[0]["id"], "{answer}");
    assert_eq!(
        events[2]["seq"].as_u64().unwrap(),
        events[0]["seq"].as_u64().unwrap() + 1,
        "no seq for the no-op: {answer}"
    );
    assert_eq!(answer["stream_version"], 2, "{answer}");
    // A contradiction later in the same batch refuses the whole batch.
    let other = actor(json!({"actor_id": "actor:russia", "name": "Russia", "kind": "state"}));
    let clash = actor(json!({"actor_id": "actor:russia", "name": "Rossiya", "kind": "state"}));
    let head = app.head().await;
    let (status, problem) =
        append(&app, "registry/actors", &json!({"events": [other, clash]})).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem["errors"][0]["pointer"], "/events/1/data/name",
        "{problem}"
    );
    assert_eq!(app.head().await, head);
}

/// A data set: its own source, a shared state, and one statement by that state.
fn data_set(source: &str, state: Value, process: &str, said: &str) -> Value {
    json!({"events": [
        {"type": "source.registered",
         "data": {"source_id": source, "kind": "wire", "publisher": source},
         "evidence": [{"source": source, "relation": "primary"}]},
        {"type": "actor.registered", "data": state,
         "evidence": [{"source": source, "relation": "reports"}]},
        {"type": "statement.made", "process": process,
         "occurred": {"start": "2026-01-22", "precision": "day"},
         "data": {"statement_id": format!("stm:{process}"), "speaker": "actor:ukraine",
                  "content": said},
         "evidence": [{"source": source, "relation": "reports"}]}
    ]})
}

#[tokio::test]
async fn two_data_sets_that_each_register_the_same_state_both_load_into_one_log() {
    let app = spawn_app().await;
    let first = data_set(
        "src:first",
        json!({"actor_id": "actor:ukraine", "name": "Ukraine", "kind": "state", "aliases": ["UA"]}),
        "first-talks",
        "We are ready to talk.",
    );
    let second = data_set(
        "src:second",
        json!({"actor_id": "actor:ukraine", "name": "Ukraine", "kind": "state"}),
        "second-talks",
        "We will not cede land.",
    );
    let (status, answer) = append(&app, "data/first", &first).await;
    assert_eq!(status, 201, "{answer}");
    let reg_seq = answer["events"][1]["seq"].clone();
    let (status, answer) = append(&app, "data/second", &second).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["events"][1]["seq"], reg_seq, "{answer}");
    let last = answer["events"][2]["seq"].as_u64().unwrap();
    let ukraine = view(&app, "/projections/actors/actor:ukraine", last).await;
    assert_eq!(ukraine["total_events"], 2, "{ukraine}");
    assert_eq!(
        ukraine["registration"]["aliases"],
        json!(["UA"]),
        "{ukraine}"
    );
}
