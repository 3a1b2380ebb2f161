//! Idempotent appends: an event id chosen by the client makes a retry safe. The same id with
//! the same content is answered with the original position (200, "duplicate": true), forever;
//! the same id with other content is a conflict; nothing is ever written twice.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

const PROBLEMS: &str = "https://annals.dev/problems/";

/// `event` with the client-chosen `id`.
fn with_id(mut event: Value, id: Uuid) -> Value {
    event["id"] = json!(id.to_string());
    event
}

/// The `events` array of an append answer.
fn positions(body: &Value) -> &Vec<Value> {
    body["events"].as_array().expect("events array")
}

/// Asserts a problem answer: status, problem type and the pointer of its first field error.
async fn assert_problem(resp: reqwest::Response, status: u16, slug: &str, pointer: &str) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["type"], format!("{PROBLEMS}{slug}"), "{p}");
    assert_eq!(p["status"], status, "{p}");
    assert_eq!(p["errors"][0]["pointer"], pointer, "{p}");
    p
}

#[tokio::test]
async fn same_id_and_content_twice_is_stored_once_and_answered_with_the_original_position() {
    let app = spawn_app().await;
    app.seed().await;
    let id = Uuid::now_v7();
    let event = with_id(statement(1), id);

    let first = app.append("process/p", &event).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let head = app.head().await;

    let again = app.append("process/p", &event).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["stream"], "process/p");
    assert_eq!(again["stream_version"], 1);
    let (orig, dup) = (&positions(&first)[0], &positions(&again)[0]);
    assert_eq!(dup["id"], id.to_string());
    for field in ["id", "seq", "version", "hash", "recorded_at"] {
        assert_eq!(dup[field], orig[field], "{field}");
    }
    assert_eq!(orig["duplicate"], false);
    assert_eq!(dup["duplicate"], true);

    // Nothing was written: same head, one record in the stream.
    assert_eq!(app.head().await, head);
    let stream = app.get_json("/streams/process%2Fp/events").await;
    assert_eq!(stream["version"], 1);
    assert_eq!(stream["events"].as_array().unwrap().len(), 1);
    let stored = app.get_json(&format!("/events/{id}")).await;
    assert_eq!(stored["seq"], orig["seq"]);
}

#[tokio::test]
async fn a_duplicate_is_still_recognised_after_a_restart_and_later_appends() {
    let mut app = spawn_app().await;
    app.seed().await;
    let id = Uuid::now_v7();
    let event = with_id(statement(1), id);
    let first = app.append("process/p", &event).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();

    app.restart().await;
    // The stream and the log move on; the id is remembered regardless.
    for n in 2..5 {
        assert_eq!(app.append("process/p", &statement(n)).await.status(), 201);
    }
    app.restart().await;
    let head = app.head().await;
    assert_eq!(head.0, 9, "the seed's five records, then four statements");

    let again = app.append("process/p", &event).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    let (orig, dup) = (&positions(&first)[0], &positions(&again)[0]);
    for field in ["id", "seq", "version", "hash", "recorded_at"] {
        assert_eq!(dup[field], orig[field], "{field}");
    }
    assert_eq!(dup["duplicate"], true);
    assert_eq!(again["stream_version"], 4, "the stream's current version");
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn an_event_without_an_id_gets_a_fresh_one_so_sending_it_twice_stores_it_twice() {
    let app = spawn_app().await;
    app.seed().await;
    let a = app.append("process/p", &statement(1)).await;
    let b = app.append("process/p", &statement(1)).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (201, 201));
    let a: Value = a.json().await.unwrap();
    let b: Value = b.json().await.unwrap();
    assert_ne!(positions(&a)[0]["id"], positions(&b)[0]["id"]);
    assert_eq!(positions(&b)[0]["seq"], 7);
}

#[tokio::test]
async fn a_retried_source_registration_is_a_duplicate_not_an_already_registered_error() {
    let app = spawn_app().await;
    let id = Uuid::now_v7();
    let event = with_id(source_event("src:retry"), id);
    let first = app.append("registry/sources", &event).await;
    assert_eq!(first.status(), 201);
    let again = app.append("registry/sources", &event).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(positions(&again)[0]["seq"], 1);
    assert_eq!(positions(&again)[0]["duplicate"], true);
    // A second registration under a new id is answered with the first (issue 11, item 3);
    // one that says something else is refused.
    let resp = app
        .append("registry/sources", &source_event("src:retry"))
        .await;
    assert_eq!(resp.status(), 200);
    let resp: Value = resp.json().await.unwrap();
    assert_eq!(positions(&resp)[0]["seq"], 1);
    assert_eq!(positions(&resp)[0]["id"], id.to_string());
    let mut other = source_event("src:retry");
    other["data"]["publisher"] = json!("Other Wire");
    let resp = app.append("registry/sources", &other).await;
    assert_problem(resp, 409, "registry-conflict", "/data/publisher").await;
    assert_eq!(app.head().await.0, 1);
}

#[tokio::test]
async fn key_order_does_not_change_content_so_a_reordered_retry_is_a_duplicate() {
    let app = spawn_app().await;
    app.seed().await;
    let id = Uuid::now_v7();
    let event = with_id(meeting("meeting:m1"), id);
    assert_eq!(app.append("process/p", &event).await.status(), 201);
    // The same event written by hand with every object's members in another order.
    let reordered = format!(
        r#"{{"meta": {{"notes": "year inferred", "inferred": ["/occurred/start"]}},
            "evidence": [{{"credibility": 2, "relation": "reports", "source": "{SOURCE}"}}],
            "data": {{"duration_approx": true, "duration": "PT3H", "location": {{"name": "Moscow"}},
                "participants": [
                    {{"role": "host", "side": "actor:russia", "actor": "actor:putin"}},
                    {{"role": "visitor", "side": "actor:usa", "actor": "actor:witkoff"}}
                ],
                "meeting_id": "meeting:m1"}},
            "process": "ru-ua-peace",
            "occurred": {{"precision": "day", "start": "2026-01-22"}},
            "type": "meeting.held",
            "id": "{id}"}}"#
    );
    let resp = app
        .client
        .post(app.url("/streams/process%2Fp/events"))
        .bearer_auth(&app.keys.append)
        .header("content-type", "application/json")
        .body(reordered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(positions(&body)[0]["duplicate"], true);
    assert_eq!(positions(&body)[0]["seq"], 6);
    assert_eq!(app.head().await.0, 6);
}

#[tokio::test]
async fn same_id_with_different_data_is_an_id_conflict_at_the_id_and_writes_nothing() {
    let app = spawn_app().await;
    app.seed().await;
    let id = Uuid::now_v7();
    assert_eq!(
        app.append("process/p", &with_id(statement(1), id))
            .await
            .status(),
        201
    );
    let head = app.head().await;

    let single = app.append("process/p", &with_id(statement(2), id)).await;
    let p = assert_problem(single, 409, "id-conflict", "/id").await;
    assert_eq!(p["seq"], 6, "names the record that holds the id: {p}");

    // In a batch the pointer names the event; the new event before it is not written either.
    let fresh = Uuid::now_v7();
    let batch = json!({"events": [with_id(statement(3), fresh), with_id(statement(2), id)]});
    let resp = app.append("process/p", &batch).await;
    assert_problem(resp, 409, "id-conflict", "/events/1/id").await;

    assert_eq!(app.head().await, head);
    let stored = app.get_json(&format!("/events/{id}")).await;
    assert_eq!(stored["data"]["content"], "Statement number 1.");
    assert_eq!(app.get(&format!("/events/{fresh}")).await.status(), 404);
}

#[tokio::test]
async fn same_id_and_data_sent_to_another_stream_is_an_id_conflict() {
    let app = spawn_app().await;
    app.seed().await;
    let id = Uuid::now_v7();
    let event = with_id(statement(1), id);
    assert_eq!(app.append("process/p", &event).await.status(), 201);
    let head = app.head().await;

    let resp = app.append("process/q", &event).await;
    assert_problem(resp, 409, "id-conflict", "/id").await;
    assert_eq!(app.head().await, head);
    assert_eq!(app.get("/streams/process%2Fq/events").await.status(), 404);
    let stored = app.get_json(&format!("/events/{id}")).await;
    assert_eq!(stored["stream"], "process/p");
}

#[tokio::test]
async fn a_batch_sent_again_whole_is_a_duplicate_with_every_original_position() {
    let app = spawn_app().await;
    app.seed().await;
    let batch = json!({
        "expected_version": "no_stream",
        "events": (1..=3).map(|n| with_id(statement(n), Uuid::now_v7())).collect::<Vec<_>>()
    });
    let first = app.append("process/p", &batch).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let head = app.head().await;

    // Even with "no_stream", which the stream no longer matches.
    let again = app.append("process/p", &batch).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["stream_version"], 3);
    assert_eq!(positions(&again).len(), 3);
    for (orig, dup) in positions(&first).iter().zip(positions(&again)) {
        for field in ["id", "seq", "version", "hash", "recorded_at"] {
            assert_eq!(dup[field], orig[field], "{field}");
        }
        assert_eq!(dup["duplicate"], true);
    }
    let seqs: Vec<u64> = positions(&again)
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![6, 7, 8]);
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn a_batch_mixing_stored_and_new_events_is_refused_whole_as_a_partial_duplicate() {
    let app = spawn_app().await;
    app.seed().await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let stored = json!({"events": [with_id(statement(1), a), with_id(statement(2), b)]});
    assert_eq!(app.append("process/p", &stored).await.status(), 201);
    let head = app.head().await;

    let fresh = Uuid::now_v7();
    let mixed = json!({"events": [
        with_id(statement(3), fresh),
        with_id(statement(2), b),
        with_id(statement(1), a),
    ]});
    let resp = app.append("process/p", &mixed).await;
    // The pointer names the first event that is already stored.
    assert_problem(resp, 409, "partial-duplicate", "/events/1/id").await;

    assert_eq!(app.head().await, head);
    assert_eq!(app.get(&format!("/events/{fresh}")).await.status(), 404);
    let stream = app.get_json("/streams/process%2Fp/events").await;
    assert_eq!(stream["version"], 2);
}

#[tokio::test]
async fn the_same_id_twice_in_one_request_is_a_422_at_the_second_occurrence() {
    let app = spawn_app().await;
    app.seed().await;
    let id = Uuid::now_v7();
    let head = app.head().await;

    let different = json!({"events": [with_id(statement(1), id), with_id(statement(2), id)]});
    let resp = app.append("process/p", &different).await;
    assert_problem(resp, 422, "validation-failed", "/events/1/id").await;

    // Identical content twice is no better: one request, one id per event.
    let identical = json!({"events": [with_id(statement(1), id), with_id(statement(1), id)]});
    let resp = app.append("process/p", &identical).await;
    assert_problem(resp, 422, "validation-failed", "/events/1/id").await;

    assert_eq!(app.head().await, head);
    assert_eq!(app.get(&format!("/events/{id}")).await.status(), 404);
}

#[tokio::test]
async fn concurrent_identical_retries_store_one_record_and_all_answers_carry_its_seq() {
    let app = spawn_app().await;
    app.seed().await;
    let (before, _) = app.head().await;
    let event = with_id(statement(1), Uuid::now_v7());
    let url = app.url("/streams/process%2Fp/events");

    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, key, event) = (
                app.client.clone(),
                url.clone(),
                app.keys.append.clone(),
                event.clone(),
            );
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .bearer_auth(key)
                    .json(&event)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap();
                (status, body)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }

    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let duplicates = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, duplicates), (1, 7), "{answers:?}");
    let seqs: std::collections::HashSet<u64> = answers
        .iter()
        .map(|(_, b)| positions(b)[0]["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 1, "{answers:?}");
    assert_eq!(seqs.into_iter().next(), Some(before + 1));
    assert_eq!(app.head().await.0, before + 1);
    let stream = app.get_json("/streams/process%2Fp/events").await;
    assert_eq!(stream["events"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_retry_is_a_duplicate_even_when_its_expected_version_no_longer_matches() {
    let app = spawn_app().await;
    app.seed().await;
    let id = Uuid::now_v7();
    let request = json!({"expected_version": "no_stream", "events": [with_id(statement(1), id)]});
    let first = app.append("process/p", &request).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    for n in 2..4 {
        assert_eq!(app.append("process/p", &statement(n)).await.status(), 201);
    }
    let head = app.head().await;

    // The same request again: idempotency is checked before the expected version.
    let again = app.append("process/p", &request).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(positions(&again)[0]["seq"], positions(&first)[0]["seq"]);
    assert_eq!(positions(&again)[0]["version"], 1);
    assert_eq!(positions(&again)[0]["duplicate"], true);
    assert_eq!(again["stream_version"], 3);

    // An exact version that is stale now, given as a query parameter, too.
    let resp = app
        .client
        .post(app.url("/streams/process%2Fp/events?expected_version=0"))
        .bearer_auth(&app.keys.append)
        .json(&with_id(statement(1), id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A new event with the same stale expectation is refused: the version check is real.
    let fresh = json!({"expected_version": "no_stream", "events": [statement(9)]});
    let resp = app.append("process/p", &fresh).await;
    assert_eq!(resp.status(), 409);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["type"], format!("{PROBLEMS}wrong-expected-version"));
    assert_eq!(p["current_version"], 3);
    assert_eq!(app.head().await, head);
}
