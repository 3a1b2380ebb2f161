//! Issue 11, items 1 and 2, through HTTP against the real server: facts need a world time and
//! knowledge events do not; a source registration may cite itself; an empty attribution is
//! none; ids are opaque `prefix:slug` values whose kind comes from the event that introduced
//! them; a reference to an id of the wrong kind, or to an unknown meeting, talks, position...,
//! is a 422 naming its field that moves nothing; a folder written before ids had kinds gets
//! them on open.

use serde_json::{Value, json};

use crate::helpers::*;

/// The field error at `pointer` of a 422 validation problem.
async fn refused_at(resp: reqwest::Response, pointer: &str) -> String {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    field_error(status, &body, pointer)
}

/// Appends and asserts 201; returns the first event's id.
async fn accepted(app: &TestApp, stream: &str, body: &Value) -> String {
    let resp = app.append(stream, body).await;
    let status = resp.status().as_u16();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{answer}");
    answer["events"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_string()
}

fn registered_actor(id: &str) -> Value {
    json!({
        "type": "actor.registered",
        "data": {"actor_id": id, "name": id, "kind": "state"},
        "evidence": [{"source": SOURCE, "relation": "reports", "attribution": []}]
    })
}

fn defined_issue(id: &str) -> Value {
    json!({
        "type": "issue.defined",
        "data": {"issue_id": id, "label": id},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

fn fact(kind: &str, data: Value) -> Value {
    json!({
        "type": kind,
        "occurred": {"start": "2026-01-22", "precision": "day"},
        "process": "ru-ua-peace",
        "data": data,
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

/// A seeded app with a state `st:ru` and an issue `topic:land`, registered under prefixes
/// the service never heard of.
async fn with_registry() -> TestApp {
    let app = spawn_app().await;
    app.seed().await;
    let body = json!({"events": [registered_actor("st:ru"), defined_issue("topic:land")]});
    accepted(&app, "registry/misc", &body).await;
    app
}

#[tokio::test]
async fn knowledge_events_without_occurred_are_accepted_and_read_back_without_it() {
    let app = spawn_app().await;
    // The first source cites itself, as its own primary record, with no world time.
    let source = json!({
        "type": "source.registered",
        "data": {"source_id": "src:first", "kind": "document", "publisher": "P"},
        "evidence": [{"source": "src:first", "relation": "primary", "attribution": []}]
    });
    let id = accepted(&app, "registry/sources", &source).await;
    let env = app.get_json(&format!("/events/{id}")).await;
    assert!(env.get("occurred").is_none(), "{env}");
    assert_eq!(env["evidence"][0]["source"], "src:first", "{env}");

    for knowledge in [
        registered_actor("actor:x"),
        defined_issue("issue:x"),
        json!({"type": "source.assessed",
               "data": {"source_id": "src:first", "grade": "B", "basis": "checked"},
               "evidence": []}),
        json!({"type": "event.retracted", "data": {"target": id, "reason": "test"},
               "evidence": []}),
    ] {
        let mut knowledge = knowledge;
        if knowledge["evidence"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
        {
            knowledge["evidence"] = json!([{"source": "src:first", "relation": "reports"}]);
        }
        let id = accepted(&app, "registry/misc", &knowledge).await;
        let env = app.get_json(&format!("/events/{id}")).await;
        assert!(env.get("occurred").is_none(), "{env}");
    }
    // The projections fold knowledge events without a world time.
    let sources = app.get_json("/projections/sources").await;
    assert!(sources.to_string().contains("src:first"), "{sources}");
}

#[tokio::test]
async fn a_fact_without_occurred_is_rejected_with_422_at_occurred() {
    let app = with_registry().await;
    let head = app.head().await;
    let mut meeting = fact(
        "meeting.held",
        json!({"meeting_id": "mtg:1", "participants": [], "location": null}),
    );
    meeting.as_object_mut().unwrap().remove("occurred");
    let message = refused_at(app.append("process/p", &meeting).await, "/occurred").await;
    assert!(message.contains("fact"), "{message}");
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn a_source_registration_citing_itself_other_than_as_primary_is_rejected() {
    let app = spawn_app().await;
    let source = json!({
        "type": "source.registered",
        "data": {"source_id": "src:first", "kind": "document", "publisher": "P"},
        "evidence": [{"source": "src:first", "relation": "reports"}]
    });
    let resp = app.append("registry/sources", &source).await;
    refused_at(resp, "/evidence/0/relation").await;
    assert_eq!(app.head().await.0, 0);
}

#[tokio::test]
async fn opaque_prefixes_and_prefixed_process_ids_are_accepted_and_checked_by_kind() {
    let app = with_registry().await;
    let talks = fact(
        "talks.scheduled",
        json!({"talks_id": "tlk:uae", "parties": ["st:ru", "actor:usa"],
               "planned": {"start": "2026-01-23"}}),
    );
    let meeting = fact(
        "meeting.held",
        json!({"meeting_id": "mtg:uae-1", "location": {"name": "Abu Dhabi"},
               "participants": [{"actor": "st:ru", "side": "st:ru"}],
               "issues": ["topic:land"], "fulfils": "tlk:uae"}),
    );
    let mut statement = fact(
        "statement.made",
        json!({"statement_id": "stm:1", "speaker": "st:ru", "content": "c",
               "about": {"meeting": "mtg:uae-1", "issues": ["topic:land"]}}),
    );
    statement["process"] = json!("process:ru-ua-peace");
    let body = json!({"events": [talks, meeting, statement]});
    let id = accepted(&app, "process/p", &body).await;
    assert_eq!(
        app.get_json(&format!("/events/{id}")).await["data"]["talks_id"],
        "tlk:uae"
    );
}

#[tokio::test]
async fn a_reference_to_an_id_of_another_kind_is_rejected_with_422_naming_both_kinds() {
    let app = with_registry().await;
    let head = app.head().await;
    let statement = fact(
        "statement.made",
        json!({"statement_id": "stm:1", "speaker": "topic:land", "content": "c"}),
    );
    let message = refused_at(app.append("process/p", &statement).await, "/data/speaker").await;
    assert_eq!(message, "`topic:land` is an issue, not an actor");

    let mut cited = fact(
        "statement.made",
        json!({"statement_id": "stm:1", "speaker": "st:ru", "content": "c"}),
    );
    cited["evidence"] = json!([{"source": SOURCE, "relation": "reports",
                                "attribution": ["topic:land"]}]);
    let message = refused_at(
        app.append("process/p", &json!({"events": [cited]})).await,
        "/events/0/evidence/0/attribution/0",
    )
    .await;
    assert!(message.contains("is an issue, not an actor"), "{message}");
    let evidence_names_an_actor = json!({"events": [{
        "type": "statement.made", "occurred": {"precision": "unknown"},
        "data": {"statement_id": "stm:2", "speaker": "st:ru", "content": "c"},
        "evidence": [{"source": "st:ru", "relation": "reports"}]}]});
    let message = refused_at(
        app.append("process/p", &evidence_names_an_actor).await,
        "/events/0/evidence/0/source",
    )
    .await;
    assert_eq!(message, "`st:ru` is an actor, not a source");
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn dangling_references_to_talks_positions_statements_and_meetings_are_rejected_with_422() {
    let app = with_registry().await;
    let head = app.head().await;
    let cases = [
        (
            fact(
                "meeting.held",
                json!({"meeting_id": "mtg:1", "participants": [],
                                         "location": null, "fulfils": "tlk:never"}),
            ),
            "/data/fulfils",
            "`tlk:never` is not registered",
        ),
        (
            fact(
                "position.stated",
                json!({"position_id": "pos:1", "holder": "st:ru",
                  "issue": "topic:land", "stance": "reject", "object": "o",
                  "responds_to": "pos:never"}),
            ),
            "/data/responds_to",
            "`pos:never` is not registered",
        ),
        (
            fact(
                "issue.status_changed",
                json!({"issue_id": "topic:land", "status": "open",
                  "assessed_by": "st:ru", "derived_from": "stm:never"}),
            ),
            "/data/derived_from",
            "`stm:never` is not registered",
        ),
        (
            fact(
                "talks.status_changed",
                json!({"talks_id": "tlk:never", "status": "postponed"}),
            ),
            "/data/talks_id",
            "`tlk:never` is not registered",
        ),
        (
            fact(
                "plan.proposed",
                json!({"plan_id": "pln:1", "title": "t", "version": 1,
                                         "origin_meeting": "mtg:never"}),
            ),
            "/data/origin_meeting",
            "`mtg:never` is not registered",
        ),
    ];
    for (event, pointer, says) in cases {
        let message = refused_at(app.append("process/p", &event).await, pointer).await;
        assert!(message.starts_with(says), "{pointer}: {message}");
    }
    assert_eq!(app.head().await, head);

    // Once the talks are known, the same meeting is accepted.
    let talks = fact(
        "talks.scheduled",
        json!({"talks_id": "tlk:never", "parties": ["st:ru", "actor:usa"],
               "planned": {"start": "2026-02"}}),
    );
    accepted(&app, "process/p", &talks).await;
    let meeting = fact(
        "meeting.held",
        json!({"meeting_id": "mtg:1", "participants": [],
                                               "location": null, "fulfils": "tlk:never"}),
    );
    accepted(&app, "process/p", &meeting).await;
}

#[tokio::test]
async fn a_fulfils_naming_a_meeting_or_a_responds_to_naming_a_statement_is_rejected_with_422() {
    let app = with_registry().await;
    let meeting = fact(
        "meeting.held",
        json!({"meeting_id": "mtg:known", "participants": [], "location": null}),
    );
    accepted(&app, "process/p", &meeting).await;
    let statement = fact(
        "statement.made",
        json!({"statement_id": "stm:known", "speaker": "st:ru", "content": "c"}),
    );
    accepted(&app, "process/p", &statement).await;
    let head = app.head().await;

    let fulfils_a_meeting = fact(
        "meeting.held",
        json!({"meeting_id": "mtg:2", "participants": [],
               "location": null, "fulfils": "mtg:known"}),
    );
    let message = refused_at(
        app.append("process/p", &fulfils_a_meeting).await,
        "/data/fulfils",
    )
    .await;
    assert_eq!(message, "`mtg:known` is a meeting, not talks");
    let answers_a_statement = fact(
        "position.stated",
        json!({"position_id": "pos:2", "holder": "st:ru", "issue": "topic:land",
               "stance": "reject", "object": "o", "responds_to": "stm:known"}),
    );
    let message = refused_at(
        app.append("process/p", &answers_a_statement).await,
        "/data/responds_to",
    )
    .await;
    assert_eq!(message, "`stm:known` is a statement, not a position");
    assert_eq!(app.head().await, head, "nothing was appended");
}

#[tokio::test]
async fn an_id_keeps_the_kind_it_was_introduced_with() {
    let app = with_registry().await;
    let head = app.head().await;
    let meeting = fact(
        "meeting.held",
        json!({"meeting_id": "topic:land", "participants": [], "location": null}),
    );
    let message = refused_at(app.append("process/p", &meeting).await, "/data/meeting_id").await;
    assert!(message.starts_with("`topic:land` is an issue"), "{message}");
    let actor = registered_actor("topic:land");
    let message = refused_at(app.append("registry/x", &actor).await, "/data/actor_id").await;
    assert!(message.starts_with("`topic:land` is an issue"), "{message}");
    assert_eq!(app.head().await, head);

    // Two claims about one meeting are both kept (they may be contested), in one request too.
    let m = fact(
        "meeting.held",
        json!({"meeting_id": "mtg:2", "participants": [],
                                         "location": null}),
    );
    accepted(
        &app,
        "process/p",
        &json!({"events": [m.clone(), m.clone()]}),
    )
    .await;
    accepted(&app, "process/p", &m).await;
}

#[tokio::test]
async fn a_folder_from_before_ids_had_kinds_gets_them_on_open() {
    let mut app = with_registry().await;
    let talks = fact(
        "talks.scheduled",
        json!({"talks_id": "talks:old", "parties": ["st:ru", "actor:usa"],
               "planned": {"start": "2026-02"}}),
    );
    accepted(&app, "process/p", &talks).await;
    // Make the folder look as an older build left it: no fact ids, no kinds, no marker.
    app.restart_after(|dir| {
        let db = crate::helpers::open_store(dir);
        let tree = db.open_tree("log").unwrap();
        let mut talks_removed = 0;
        for item in tree.scan_prefix(b"r") {
            let (k, v) = item.unwrap();
            if k.as_ref() == b"r\x00ids" {
                tree.remove(&k).unwrap();
            } else if k.starts_with(b"rentity:talks:") {
                tree.remove(&k).unwrap();
                talks_removed += 1;
            } else {
                tree.insert(&k, &v[..8]).unwrap();
            }
        }
        assert_eq!(talks_removed, 1);
        db.flush().unwrap();
    })
    .await;
    let meeting = fact(
        "meeting.held",
        json!({"meeting_id": "mtg:1", "participants": [],
                                               "location": null, "fulfils": "talks:old"}),
    );
    accepted(&app, "process/p", &meeting).await;
    let statement = fact(
        "statement.made",
        json!({"statement_id": "stm:1", "speaker": "topic:land", "content": "c"}),
    );
    let message = refused_at(app.append("process/p", &statement).await, "/data/speaker").await;
    assert_eq!(message, "`topic:land` is an issue, not an actor");
}

#[tokio::test]
async fn the_demo_loads_with_its_ids_checked_by_kind() {
    let app = spawn_app().await;
    let demo = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/moscow-talks.ndjson"
    ))
    .unwrap();
    for (n, line) in demo.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let mut event: Value = serde_json::from_str(line).unwrap();
        let stream = event["stream"].as_str().unwrap().to_string();
        event.as_object_mut().unwrap().remove("stream");
        let resp = app.append(&stream, &event).await;
        assert_eq!(
            resp.status(),
            201,
            "line {}: {}",
            n + 1,
            resp.text().await.unwrap()
        );
    }
}

#[tokio::test]
async fn an_actor_registered_under_an_opaque_prefix_has_its_facts_in_the_actor_view() {
    let app = with_registry().await;
    let statement = fact(
        "statement.made",
        json!({"statement_id": "stm:opaque", "speaker": "st:ru", "content": "We are ready."}),
    );
    let resp = app.append("process/p", &statement).await;
    assert_eq!(resp.status(), 201);
    let seq = resp.json::<Value>().await.unwrap()["events"][0]["seq"]
        .as_u64()
        .unwrap();

    let view = app
        .get_json(&format!("/projections/actors/st:ru?min_seq={seq}"))
        .await;
    let events = view["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{view}"));
    assert!(
        events.iter().any(|e| e.to_string().contains("stm:opaque")),
        "the statement of `st:ru` is missing from its view: {view}"
    );
}
