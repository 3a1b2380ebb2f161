//! Bad input of every class: each is refused with the documented status and an RFC 9457
//! problem (type, title, status, detail and, where one field is to blame, a JSON pointer to
//! it), and none of them moves the head of the log.

use serde_json::{Value, json};

use crate::helpers::*;

const PROBLEM_JSON: &str = "application/problem+json";

/// Asserts that `resp` is a problem with `status` and type `.../problems/{slug}`, with a
/// title and a detail; returns its body.
async fn problem(resp: reqwest::Response, status: u16, slug: &str) -> Value {
    let got = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    assert_eq!(content_type.as_deref(), Some(PROBLEM_JSON), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(
        body["type"],
        format!("https://annals.dev/problems/{slug}"),
        "{text}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{text}"
    );
    assert_eq!(body["status"], status, "{text}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{text}"
    );
    body
}

/// A 422 naming `pointer` among its field errors; returns the message at that pointer.
async fn invalid_at(resp: reqwest::Response, pointer: &str) -> String {
    let body = problem(resp, 422, "validation-failed").await;
    message_at(&body, pointer)
}

/// The message of the field error at `pointer`; fails if there is none.
fn message_at(body: &Value, pointer: &str) -> String {
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    errors
        .iter()
        .find(|e| e["pointer"] == pointer)
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no error at {pointer:?}: {body}"))
        .to_string()
}

/// Every pointer of the problem's field errors.
fn pointers(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["pointer"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A server with the fixture source registered, and its head.
async fn seeded() -> (TestApp, (u64, String)) {
    seeded_with(|c| c).await
}

async fn seeded_with(
    adjust: impl FnOnce(annals::Config) -> annals::Config,
) -> (TestApp, (u64, String)) {
    let app = spawn_app_with(adjust).await;
    app.seed().await;
    let head = app.head().await;
    assert_eq!(head.0, 5, "the source and the fixture actors");
    (app, head)
}

fn limits(limits: Value) -> impl FnOnce(annals::Config) -> annals::Config {
    move |c| c.with(json!({ "limits": limits })).unwrap()
}

/// POSTs raw bytes to `/streams/{segment}/events` with the append key.
async fn post_raw(
    app: &TestApp,
    segment: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/streams/{segment}/events")))
        .bearer_auth(&app.keys.append);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.body(body).send().await.unwrap()
}

fn uuid_v7() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A statement citing `source`.
fn citing(n: u64, source: &str) -> Value {
    let mut ev = statement(n);
    ev["evidence"] = json!([{"source": source, "relation": "reports"}]);
    ev
}

// ---------------------------------------------------------------------------------------------
// Transport: JSON syntax, content type, sizes.

#[tokio::test]
async fn malformed_json_is_rejected_with_400_naming_line_and_column_and_the_head_does_not_move() {
    let (app, head) = seeded().await;
    let body = "{\"type\": \"statement.made\",\n  \"data\": }";
    let resp = post_raw(&app, "process%2Fp", Some("application/json"), body).await;
    let p = problem(resp, 400, "malformed-json").await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("line 2"), "{detail}");
    assert!(detail.contains("column"), "{detail}");
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_rejected_with_415_and_the_head_does_not_move() {
    let (app, head) = seeded().await;
    let valid = serde_json::to_vec(&statement(1)).unwrap();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        None,
    ] {
        let resp = post_raw(&app, "process%2Fp", content_type, valid.clone()).await;
        let p = problem(resp, 415, "unsupported-media-type").await;
        assert!(
            p["detail"].as_str().unwrap().contains("application/json"),
            "{p}"
        );
        assert_eq!(app.head().await, head, "{content_type:?}");
    }
    // The same bytes with a JSON type (parameters allowed) are accepted.
    let resp = post_raw(
        &app,
        "process%2Fp",
        Some("application/json; charset=utf-8"),
        valid,
    )
    .await;
    assert_eq!(resp.status(), 201);
}

/// A valid statement whose serialised size is about `size` bytes.
fn statement_of_size(n: u64, size: usize) -> Value {
    let mut ev = statement(n);
    let base = serde_json::to_vec(&ev).unwrap().len();
    let content = "x".repeat(size.saturating_sub(base).max(1));
    ev["data"]["content"] = json!(content);
    ev
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_rejected_with_413_and_the_head_does_not_move() {
    let (app, head) = seeded_with(limits(json!({"max_body_bytes": 2048}))).await;
    let big = serde_json::to_vec(&statement_of_size(1, 3000)).unwrap();
    assert!(big.len() > 2048);
    let resp = post_raw(&app, "process%2Fp", Some("application/json"), big).await;
    let p = problem(resp, 413, "too-large").await;
    assert!(p["detail"].as_str().unwrap().contains("2048"), "{p}");
    assert_eq!(app.head().await, head);
    // Just under the limit is fine.
    let small = serde_json::to_vec(&statement_of_size(2, 2000)).unwrap();
    assert!(small.len() <= 2048);
    let resp = post_raw(&app, "process%2Fp", Some("application/json"), small).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// A body sent chunked (no Content-Length) in pieces of `chunk` bytes.
fn chunked(bytes: Vec<u8>, chunk: usize) -> reqwest::Body {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces))
}

#[tokio::test]
async fn a_chunked_body_over_max_body_bytes_is_rejected_with_413_and_the_head_does_not_move() {
    let (app, head) = seeded_with(limits(json!({"max_body_bytes": 2048}))).await;
    let big = serde_json::to_vec(&statement_of_size(1, 4000)).unwrap();
    let resp = post_raw(
        &app,
        "process%2Fp",
        Some("application/json"),
        chunked(big, 512),
    )
    .await;
    let p = problem(resp, 413, "too-large").await;
    assert!(p["detail"].as_str().unwrap().contains("2048"), "{p}");
    assert_eq!(app.head().await, head);
    // A chunked body within the limit is read whole and accepted.
    let small = serde_json::to_vec(&statement_of_size(2, 1500)).unwrap();
    let resp = post_raw(
        &app,
        "process%2Fp",
        Some("application/json"),
        chunked(small, 100),
    )
    .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn a_batch_over_max_events_per_request_is_rejected_with_413_pointing_at_events() {
    let (app, head) = seeded_with(limits(json!({"max_events_per_request": 5}))).await;
    let events: Vec<Value> = (0..6).map(statement).collect();
    let resp = app.append("process/p", &json!({"events": events})).await;
    let p = problem(resp, 413, "too-large").await;
    assert_eq!(pointers(&p), vec!["/events"]);
    assert!(p["detail"].as_str().unwrap().contains('5'), "{p}");
    assert_eq!(app.head().await, head);
    // Exactly the limit is fine.
    let events: Vec<Value> = (0..5).map(statement).collect();
    let resp = app.append("process/p", &json!({"events": events})).await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn the_default_batch_limit_is_100_events() {
    let (app, head) = seeded().await;
    let events: Vec<Value> = (0..101).map(statement).collect();
    let resp = app.append("process/p", &json!({"events": events})).await;
    let p = problem(resp, 413, "too-large").await;
    assert_eq!(pointers(&p), vec!["/events"]);
    assert_eq!(app.head().await, head);
    let events: Vec<Value> = (0..100).map(statement).collect();
    let resp = app.append("process/p", &json!({"events": events})).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(app.head().await.0, 105);
}

#[tokio::test]
async fn an_event_over_max_event_bytes_is_rejected_with_413_pointing_at_that_event() {
    let (app, head) = seeded_with(limits(json!({"max_event_bytes": 1024}))).await;
    let big = statement_of_size(2, 1500);
    let resp = app
        .append(
            "process/p",
            &json!({"events": [statement(1), big, statement(3)]}),
        )
        .await;
    let p = problem(resp, 413, "too-large").await;
    assert_eq!(pointers(&p), vec!["/events/1"]);
    assert!(p["detail"].as_str().unwrap().contains("1024"), "{p}");
    assert_eq!(app.head().await, head);
    // Under the limit, the same batch shape is accepted.
    let resp = app
        .append(
            "process/p",
            &json!({"events": [statement(1), statement_of_size(2, 900)]}),
        )
        .await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn a_single_event_over_max_event_bytes_is_rejected_with_413_pointing_at_the_whole_body() {
    let (app, head) = seeded_with(limits(json!({"max_event_bytes": 1024}))).await;
    let resp = app.append("process/p", &statement_of_size(1, 1500)).await;
    let p = problem(resp, 413, "too-large").await;
    assert_eq!(pointers(&p), vec![""]);
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn a_string_over_max_string_bytes_is_rejected_with_422_pointing_at_that_string() {
    let (app, head) = seeded_with(limits(json!({"max_string_bytes": 64}))).await;
    let mut single = statement(1);
    single["data"]["content"] = json!("y".repeat(65));
    let resp = app.append("process/p", &single).await;
    let p = problem(resp, 422, "validation-failed").await;
    assert_eq!(pointers(&p), vec!["/data/content"]);
    assert!(message_at(&p, "/data/content").contains("64"), "{p}");
    assert_eq!(app.head().await, head);

    let mut second = statement(2);
    second["evidence"][0]["quote"] = json!("q".repeat(100));
    let resp = app
        .append("process/p", &json!({"events": [statement(1), second]}))
        .await;
    let p = problem(resp, 422, "validation-failed").await;
    assert_eq!(pointers(&p), vec!["/events/1/evidence/0/quote"]);
    assert_eq!(app.head().await, head);

    // Exactly the limit is fine.
    let mut at_limit = statement(3);
    at_limit["data"]["content"] = json!("y".repeat(64));
    assert_eq!(app.append("process/p", &at_limit).await.status(), 201);
}

#[tokio::test]
async fn the_member_name_serde_json_reserves_is_rejected_with_422_at_it_first_or_not() {
    let (app, head) = seeded().await;
    let reserved = "$serde_json::private::RawValue";
    // First in its object, serde_json reads the object as the raw JSON text of its string;
    // anywhere else, a record holding it would not read back. Refused either way, at it.
    for value in [
        format!(r#"{{"{reserved}": "1"}}"#),
        format!(r#"{{"b": 1, "{reserved}": "x"}}"#),
    ] {
        let text = statement(1).to_string().replacen(
            r#""data":{"#,
            &format!(r#""data":{{"z":{value},"#),
            1,
        );
        let body = format!(r#"{{"events": [{}, {text}]}}"#, statement(2));
        let resp = post_raw(&app, "process%2Fp", Some("application/json"), body).await;
        let message = invalid_at(resp, &format!("/events/1/data/z/{reserved}")).await;
        assert!(message.contains("cannot be a member name"), "{message}");
        assert_eq!(app.head().await, head);
    }
}

// ---------------------------------------------------------------------------------------------
// Schema violations: 422 with a pointer.

#[tokio::test]
async fn a_missing_required_data_field_is_rejected_with_422_pointing_at_data() {
    let (app, head) = seeded().await;
    let mut no_speaker = statement(2);
    no_speaker["data"]
        .as_object_mut()
        .unwrap()
        .remove("speaker");

    let message = invalid_at(app.append("process/p", &no_speaker).await, "/data").await;
    assert!(message.contains("speaker"), "{message}");

    let resp = app
        .append("process/p", &json!({"events": [statement(1), no_speaker]}))
        .await;
    let message = invalid_at(resp, "/events/1/data").await;
    assert!(message.contains("speaker"), "{message}");

    // A missing `data` altogether is named too.
    let mut no_data = statement(3);
    no_data.as_object_mut().unwrap().remove("data");
    let message = invalid_at(app.append("process/p", &no_data).await, "").await;
    assert!(message.contains("data"), "{message}");
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn an_unknown_field_is_rejected_with_422_naming_it() {
    let (app, head) = seeded().await;
    // In data.
    let mut ev = statement(1);
    ev["data"]["colour"] = json!("red");
    let message = invalid_at(app.append("process/p", &ev).await, "/data").await;
    assert!(message.contains("colour"), "{message}");
    // At the top of an event of a batch.
    let mut ev = statement(1);
    ev["colour"] = json!("red");
    let resp = app
        .append("process/p", &json!({"events": [statement(2), ev]}))
        .await;
    let message = invalid_at(resp, "/events/1").await;
    assert!(message.contains("colour"), "{message}");
    // In an evidence item.
    let mut ev = statement(1);
    ev["evidence"][0]["colour"] = json!("red");
    let message = invalid_at(app.append("process/p", &ev).await, "/evidence/0").await;
    assert!(message.contains("colour"), "{message}");
    // Next to `events` in the batch form.
    let resp = app
        .append(
            "process/p",
            &json!({"events": [statement(3)], "colour": "red"}),
        )
        .await;
    let message = invalid_at(resp, "/colour").await;
    assert!(message.contains("colour"), "{message}");
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn an_occurred_start_in_the_wrong_format_for_its_precision_is_rejected_with_422() {
    let (app, head) = seeded().await;
    let cases = [
        (
            json!({"start": "2026-01", "precision": "day"}),
            "/occurred/start",
        ),
        (
            json!({"start": "2026-01-22", "precision": "exact"}),
            "/occurred/start",
        ),
        (
            json!({"start": "2026-01-22", "precision": "month"}),
            "/occurred/start",
        ),
        (
            json!({"start": "2026-01", "precision": "year"}),
            "/occurred/start",
        ),
        (
            json!({"start": "22/01/2026", "precision": "day"}),
            "/occurred/start",
        ),
        (
            json!({"start": "2026-13-01", "precision": "day"}),
            "/occurred/start",
        ),
        (
            json!({"start": "2026-01-22T10:00:00", "precision": "exact"}),
            "/occurred/start",
        ),
        (
            json!({"start": "2026-01-22", "precision": "interval"}),
            "/occurred",
        ),
        (
            json!({"start": "2026-01-22", "precision": "sometime"}),
            "/occurred/precision",
        ),
        (json!({"start": "2026-01-22"}), "/occurred"),
    ];
    for (occurred, pointer) in cases {
        let mut ev = statement(1);
        ev["occurred"] = occurred.clone();
        let resp = app.append("process/p", &ev).await;
        let body = problem(resp, 422, "validation-failed").await;
        assert!(
            pointers(&body).iter().any(|p| p == pointer),
            "{occurred} should fail at {pointer}: {body}"
        );
    }
    assert_eq!(app.head().await, head);
    // The right format for each precision is accepted.
    for occurred in [
        json!({"start": "2026-01-22T10:00:00+03:00", "precision": "exact"}),
        json!({"start": "2026-01", "precision": "month"}),
        json!({"start": "2026", "precision": "year"}),
        json!({"start": "2026-01-22", "end": "2026-01-23", "precision": "interval"}),
        json!({"precision": "unknown", "not_before": "2026-01-01"}),
    ] {
        let mut ev = statement(2);
        ev["occurred"] = occurred.clone();
        let resp = app.append("process/p", &ev).await;
        assert_eq!(
            resp.status(),
            201,
            "{occurred}: {}",
            resp.text().await.unwrap()
        );
    }
}

#[tokio::test]
async fn quotes_evidence_without_a_quote_is_rejected_with_422_pointing_at_the_item() {
    let (app, head) = seeded().await;
    let mut ev = statement(1);
    ev["evidence"] = json!([{"source": SOURCE, "relation": "quotes"}]);
    let message = invalid_at(app.append("process/p", &ev).await, "/evidence/0").await;
    assert!(message.contains("quote"), "{message}");
    // A relation outside the enum is named at the relation.
    ev["evidence"] = json!([{"source": SOURCE, "relation": "hints", "quote": "x"}]);
    invalid_at(app.append("process/p", &ev).await, "/evidence/0/relation").await;
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn an_unknown_event_type_is_rejected_with_422_pointing_at_type() {
    let (app, head) = seeded().await;
    for t in [
        json!("meeting.cancelled"),
        json!("Meeting.Held"),
        json!(""),
        json!(7),
    ] {
        let mut ev = statement(1);
        ev["type"] = t.clone();
        let resp = app.append("process/p", &ev).await;
        let body = problem(resp, 422, "validation-failed").await;
        assert!(pointers(&body).iter().any(|p| p == "/type"), "{t}: {body}");
    }
    let mut ev = statement(1);
    ev["type"] = json!("meeting.cancelled");
    let resp = app
        .append("process/p", &json!({"events": [statement(2), ev]}))
        .await;
    invalid_at(resp, "/events/1/type").await;
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn a_schema_version_other_than_1_or_2_is_rejected_with_422_pointing_at_it() {
    let (app, head) = seeded().await;
    for v in [json!(3), json!(0), json!("1"), json!(1.5)] {
        let mut ev = statement(1);
        ev["schema_version"] = v.clone();
        let resp = app.append("process/p", &ev).await;
        let body = problem(resp, 422, "validation-failed").await;
        assert!(
            pointers(&body).iter().any(|p| p == "/schema_version"),
            "{v}: {body}"
        );
    }
    assert_eq!(app.head().await, head);
    let mut ev = statement(2);
    ev["schema_version"] = json!(1);
    assert_eq!(app.append("process/p", &ev).await.status(), 201);
}

#[tokio::test]
async fn an_id_that_is_not_a_lowercase_uuid_v7_is_rejected_with_422_pointing_at_id() {
    let (app, head) = seeded().await;
    let v7 = uuid_v7();
    for id in [
        json!("not-a-uuid"),
        json!("550e8400-e29b-41d4-a716-446655440000"), // v4
        json!("00000000-0000-0000-0000-000000000000"),
        json!(v7.to_uppercase()),
        json!(format!("{{{v7}}}")),
        json!(v7.replace('-', "")),
        json!(42),
    ] {
        let mut ev = statement(1);
        ev["id"] = id.clone();
        let resp = app.append("process/p", &ev).await;
        let body = problem(resp, 422, "validation-failed").await;
        assert!(pointers(&body).iter().any(|p| p == "/id"), "{id}: {body}");
    }
    let mut ev = statement(1);
    ev["id"] = json!("not-a-uuid");
    let resp = app
        .append("process/p", &json!({"events": [statement(2), ev]}))
        .await;
    invalid_at(resp, "/events/1/id").await;
    assert_eq!(app.head().await, head);
    // A lowercase v7 is the event's id.
    let mut ev = statement(3);
    ev["id"] = json!(v7);
    let resp = app.append("process/p", &ev).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["events"][0]["id"], v7);
}

#[tokio::test]
async fn a_bad_stream_name_is_rejected_with_422_and_creates_nothing() {
    let (app, head) = seeded().await;
    let too_long = format!("process%2F{}", "a".repeat(200));
    for segment in [
        "Process%2FX",
        "process%2FRu-Ua",
        "process%2F..%2Fx",
        "process%2F.hidden",
        "process%2F%2Fx",
        "%2Fprocess",
        "process%2Fx%20y",
        "process%2F%C3%A9",
        "-process",
        too_long.as_str(),
    ] {
        let body = serde_json::to_vec(&statement(1)).unwrap();
        let resp = post_raw(&app, segment, Some("application/json"), body).await;
        let p = problem(resp, 422, "validation-failed").await;
        assert!(
            p["detail"].as_str().unwrap().contains("stream"),
            "{segment}: {p}"
        );
        assert_eq!(app.head().await, head, "{segment}");
    }
    let streams = app.get_json("/streams").await;
    // Only the seed's two streams.
    assert_eq!(streams["streams"].as_array().unwrap().len(), 2, "{streams}");
}

#[tokio::test]
async fn a_stream_name_with_an_empty_last_segment_is_rejected_not_renamed() {
    let (app, head) = seeded().await;
    let body = serde_json::to_vec(&statement(1)).unwrap();
    let resp = post_raw(&app, "process%2Fx%2F", Some("application/json"), body).await;
    problem(resp, 422, "validation-failed").await;
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn a_garbage_expected_version_is_rejected_with_422_pointing_at_it() {
    let (app, head) = seeded().await;
    for v in [
        json!("sometimes"),
        json!(-1),
        json!(1.5),
        json!(true),
        json!(null),
        json!({}),
        json!("1e3"),
    ] {
        let resp = app
            .append(
                "process/p",
                &json!({"expected_version": v, "events": [statement(1)]}),
            )
            .await;
        let body = problem(resp, 422, "validation-failed").await;
        assert!(
            pointers(&body).iter().any(|p| p == "/expected_version"),
            "{v}: {body}"
        );
    }
    // In the query string.
    let resp = app
        .client
        .post(app.url("/streams/process%2Fp/events?expected_version=sometimes"))
        .bearer_auth(&app.keys.append)
        .json(&statement(1))
        .send()
        .await
        .unwrap();
    let p = problem(resp, 422, "validation-failed").await;
    assert!(p["detail"].as_str().unwrap().contains("sometimes"), "{p}");
    // Body and query that disagree.
    let resp = app
        .client
        .post(app.url("/streams/process%2Fp/events?expected_version=no_stream"))
        .bearer_auth(&app.keys.append)
        .json(&json!({"expected_version": "exists", "events": [statement(1)]}))
        .send()
        .await
        .unwrap();
    invalid_at(resp, "/expected_version").await;
    assert_eq!(app.head().await, head);
}

// ---------------------------------------------------------------------------------------------
// Rules beyond the schema.

#[tokio::test]
async fn a_fact_event_without_evidence_is_rejected_with_422_pointing_at_evidence() {
    let (app, head) = seeded().await;
    let mut ev = meeting("meeting:m1");
    ev["evidence"] = json!([]);
    let message = invalid_at(app.append("process/p", &ev).await, "/evidence").await;
    assert!(message.contains("evidence"), "{message}");
    let mut no_evidence = statement(2);
    no_evidence["evidence"] = json!([]);
    let resp = app
        .append("process/p", &json!({"events": [statement(1), no_evidence]}))
        .await;
    invalid_at(resp, "/events/1/evidence").await;
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn evidence_citing_an_unregistered_source_is_rejected_with_422_pointing_at_that_source() {
    let (app, head) = seeded().await;
    let resp = app
        .append("process/p", &citing(1, "src:never-registered"))
        .await;
    let message = invalid_at(resp, "/evidence/0/source").await;
    assert!(message.contains("src:never-registered"), "{message}");

    let mut second_item = statement(2);
    second_item["evidence"] = json!([
        {"source": SOURCE, "relation": "reports"},
        {"source": "src:never-registered", "relation": "reports"}
    ]);
    let resp = app
        .append("process/p", &json!({"events": [statement(1), second_item]}))
        .await;
    invalid_at(resp, "/events/1/evidence/1/source").await;
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn a_source_registered_earlier_in_the_same_request_can_be_cited_by_a_later_event() {
    let (app, head) = seeded().await;
    // Cited before it is registered: refused, at the citing event.
    let resp = app
        .append(
            "process/p",
            &json!({"events": [citing(1, "src:fresh"), source_event("src:fresh")]}),
        )
        .await;
    invalid_at(resp, "/events/0/evidence/0/source").await;
    assert_eq!(app.head().await, head);
    // Registered first, then cited: accepted as one batch.
    let resp = app
        .append(
            "process/p",
            &json!({"events": [source_event("src:fresh"), citing(1, "src:fresh")]}),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    assert_eq!(app.head().await.0, head.0 + 2);
}

// Issue 11, item 3: a registry is shared. The same registration again is a no-op (see
// `registries.rs`); one that says something else is a 409 naming the differing field.
#[tokio::test]
async fn registering_a_known_source_again_with_other_content_is_rejected_with_409_pointing_at_the_field()
 {
    let (app, head) = seeded().await;
    let mut other = source_event(SOURCE);
    other["data"]["publisher"] = json!("Other Wire");
    let body = problem(
        app.append("registry/sources", &other).await,
        409,
        "registry-conflict",
    )
    .await;
    assert!(
        message_at(&body, "/data/publisher").contains("source.updated"),
        "{body}"
    );
    assert!(body["detail"].as_str().unwrap().contains(SOURCE), "{body}");
    // Twice in one request.
    let mut twice = source_event("src:twice");
    twice["data"]["publisher"] = json!("Other Wire");
    let resp = app
        .append(
            "registry/sources",
            &json!({"events": [source_event("src:twice"), twice]}),
        )
        .await;
    let body = problem(resp, 409, "registry-conflict").await;
    message_at(&body, "/events/1/data/publisher");
    assert_eq!(app.head().await, head);
}

fn correction(target: &str) -> Value {
    json!({
        "type": "event.corrected",
        "occurred": {"start": "2026-01-23", "precision": "day"},
        "data": {
            "target": target,
            "patch": [{"op": "replace", "path": "/content", "value": "Corrected."}],
            "reason": "The speaker was misquoted."
        },
        "evidence": []
    })
}

fn retraction(target: &str) -> Value {
    json!({
        "type": "event.retracted",
        "occurred": {"start": "2026-01-23", "precision": "day"},
        "data": {"target": target, "reason": "Coded from a hoax."},
        "evidence": []
    })
}

#[tokio::test]
async fn correcting_or_retracting_an_event_that_does_not_exist_is_rejected_with_422_pointing_at_target()
 {
    let (app, head) = seeded().await;
    let ghost = uuid_v7();
    for ev in [correction(&ghost), retraction(&ghost)] {
        let message = invalid_at(app.append("process/p", &ev).await, "/data/target").await;
        assert!(message.contains(&ghost), "{message}");
    }
    for ev in [correction("not-a-uuid"), retraction("not-a-uuid")] {
        invalid_at(app.append("process/p", &ev).await, "/data/target").await;
    }
    let resp = app
        .append(
            "process/p",
            &json!({"events": [statement(1), correction(&ghost)]}),
        )
        .await;
    invalid_at(resp, "/events/1/data/target").await;
    assert_eq!(app.head().await, head);
}

#[tokio::test]
async fn correcting_or_retracting_an_existing_event_is_accepted() {
    let (app, _) = seeded().await;
    let resp = app.append("process/p", &statement(1)).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let target = body["events"][0]["id"].as_str().unwrap().to_string();
    let resp = app.append("process/p", &correction(&target)).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let resp = app.append("process/p", &retraction(&target)).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    // An event earlier in the same request is a valid target too.
    let id = uuid_v7();
    let mut ev = statement(2);
    ev["id"] = json!(id);
    let resp = app
        .append("process/p", &json!({"events": [ev, retraction(&id)]}))
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    assert_eq!(app.head().await.0, 10);
}

// ---------------------------------------------------------------------------------------------
// All or nothing.

#[tokio::test]
async fn a_batch_whose_third_event_breaks_the_schema_writes_none_of_the_batch() {
    let (app, head) = seeded().await;
    let ids = [uuid_v7(), uuid_v7(), uuid_v7()];
    let mut events: Vec<Value> = (0..3).map(statement).collect();
    for (ev, id) in events.iter_mut().zip(&ids) {
        ev["id"] = json!(id);
    }
    events[2]["data"].as_object_mut().unwrap().remove("speaker");
    let resp = app
        .append(
            "process/batch",
            &json!({"expected_version": "no_stream", "events": events}),
        )
        .await;
    let body = problem(resp, 422, "validation-failed").await;
    let ps = pointers(&body);
    assert!(!ps.is_empty());
    assert!(ps.iter().all(|p| p.starts_with("/events/2/")), "{body}");
    assert_eq!(app.head().await, head);
    let absent = app.get("/streams/process%2Fbatch/events").await;
    problem(absent, 404, "not-found").await;
    for id in &ids {
        problem(app.get(&format!("/events/{id}")).await, 404, "not-found").await;
    }
}

#[tokio::test]
async fn a_batch_whose_third_event_breaks_a_rule_writes_none_of_the_batch() {
    let (app, head) = seeded().await;
    let resp = app
        .append(
            "process/batch",
            &json!({"events": [
                source_event("src:new"),
                citing(1, "src:new"),
                citing(2, "src:missing"),
            ]}),
        )
        .await;
    let body = problem(resp, 422, "validation-failed").await;
    assert_eq!(pointers(&body), vec!["/events/2/evidence/0/source"]);
    assert_eq!(app.head().await, head);
    problem(
        app.get("/streams/process%2Fbatch/events").await,
        404,
        "not-found",
    )
    .await;
    // The registration in the refused batch did not happen either.
    let resp = app.append("process/p", &citing(3, "src:new")).await;
    invalid_at(resp, "/evidence/0/source").await;
    assert_eq!(app.head().await, head);
}

// ---------------------------------------------------------------------------------------------
// Reads.

#[tokio::test]
async fn reading_an_unknown_stream_is_a_404_problem() {
    let (app, _) = seeded().await;
    let p = problem(
        app.get("/streams/process%2Fnowhere/events").await,
        404,
        "not-found",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("process/nowhere"),
        "{p}"
    );
}

#[tokio::test]
async fn reading_an_unknown_event_id_is_a_404_problem() {
    let (app, _) = seeded().await;
    for id in [uuid_v7(), "not-a-uuid".to_string()] {
        let p = problem(app.get(&format!("/events/{id}")).await, 404, "not-found").await;
        assert!(p["detail"].as_str().unwrap().contains(&id), "{p}");
    }
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem_not_a_405() {
    let (app, _) = seeded().await;
    use reqwest::Method;
    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::POST, "/nope"),
        (Method::DELETE, "/nope"),
        (Method::PUT, "/events/x/y"),
        (Method::GET, "/events/x/y"),
        (Method::GET, "/log/extra"),
        (Method::GET, "/streams/registry%2Fsources"),
        (Method::GET, "/streams/registry%2Fsources/versions"),
        (Method::GET, "/schemas/meeting.held/extra"),
        (Method::GET, "/web/nope.js"),
    ] {
        let resp = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&app.keys.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method} {path}");
        problem(resp, 404, "not-found").await;
    }
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_a_405_problem() {
    let (app, _) = seeded().await;
    use reqwest::Method;
    let id = app.get_json("/events?limit=1").await["events"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let by_id = format!("/events/{id}");
    for (method, path) in [
        (Method::DELETE, "/log"),
        (Method::POST, "/log"),
        (Method::PUT, "/events"),
        (Method::POST, "/events"),
        (Method::DELETE, by_id.as_str()),
        (Method::POST, "/events/live"),
        (Method::DELETE, "/streams/registry%2Fsources/events"),
        (Method::PUT, "/streams/registry%2Fsources/events"),
        (Method::POST, "/healthz"),
        (Method::POST, "/metrics"),
        (Method::POST, "/openapi.json"),
        (Method::DELETE, "/schemas"),
        (Method::PUT, "/schemas/meeting.held"),
    ] {
        let resp = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&app.keys.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        problem(resp, 405, "method-not-allowed").await;
    }
    // Nothing was deleted or added.
    assert_eq!(app.head().await.0, 5);
}

#[tokio::test]
async fn posting_to_the_stream_list_is_a_405_problem() {
    let (app, _) = seeded().await;
    for key in [Some(app.keys.admin.as_str()), None] {
        let mut req = app
            .client
            .post(app.url("/streams"))
            .header("content-type", "application/json")
            .body("{}");
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        problem(req.send().await.unwrap(), 405, "method-not-allowed").await;
    }
}

#[tokio::test]
async fn a_bad_query_parameter_is_a_400_problem_naming_it() {
    let (app, _) = seeded().await;
    for (path, param) in [
        ("/events?from=abc", "from"),
        ("/events?from=0", "from"),
        ("/events?from=-1", "from"),
        ("/events?limit=abc", "limit"),
        ("/events?limit=0", "limit"),
        ("/streams/registry%2Fsources/events?from=abc", "from"),
        ("/streams/registry%2Fsources/events?limit=x", "limit"),
        ("/streams?limit=none", "limit"),
        ("/events/live?from=abc", "from"),
    ] {
        let p = problem(app.get(path).await, 400, "bad-query").await;
        assert!(p["detail"].as_str().unwrap().contains(param), "{path}: {p}");
    }
}

// ---------------------------------------------------------------------------------------------
// Never a 500.

fn weird_bodies() -> Vec<(String, Vec<u8>)> {
    let nested_arrays = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let nested_objects = format!("{}1{}", "{\"a\":".repeat(5000), "}".repeat(5000));
    let mut deep_data = statement(1).to_string();
    deep_data = deep_data.replacen(
        "\"data\":{",
        &format!("\"data\":{{\"deep\":{nested_arrays},"),
        1,
    );
    let mut huge_version = statement(2);
    huge_version["schema_version"] = json!(1e300);
    let mut huge_credibility = statement(3);
    huge_credibility["evidence"][0]["credibility"] = json!(u64::MAX);
    let text: Vec<(&str, String)> = vec![
        ("null", "null".into()),
        ("empty array", "[]".into()),
        ("string", "\"str\"".into()),
        ("number", "123".into()),
        ("true", "true".into()),
        ("empty object", "{}".into()),
        ("events object", r#"{"events": {}}"#.into()),
        ("events empty", r#"{"events": []}"#.into()),
        ("events null", r#"{"events": null}"#.into()),
        ("events string", r#"{"events": "x"}"#.into()),
        ("events of null", r#"{"events": [null]}"#.into()),
        ("events of arrays", r#"{"events": [[], [1]]}"#.into()),
        ("events of empty", r#"{"events": [{}]}"#.into()),
        ("only expected_version", r#"{"expected_version": "any"}"#.into()),
        ("nested arrays 5000", nested_arrays.clone()),
        ("nested objects 5000", nested_objects),
        ("nested data 5000", deep_data),
        ("events nested", format!("{{\"events\": {nested_arrays}}}")),
        ("huge exponent", r#"{"schema_version": 1e400}"#.into()),
        (
            "huge integer",
            r#"{"events": [], "expected_version": 123456789012345678901234567890}"#.into(),
        ),
        (
            "u64 overflow expected_version",
            format!(
                r#"{{"expected_version": 18446744073709551616, "events": [{}]}}"#,
                statement(4)
            ),
        ),
        ("huge schema_version", huge_version.to_string()),
        ("huge credibility", huge_credibility.to_string()),
        ("negative zero", "-0".into()),
        ("lone surrogate", r#"{"type": "\ud800"}"#.into()),
        ("nul in string", r#"{"type": "statement.made\u0000"}"#.into()),
        ("type number", r#"{"type": 5, "data": 5, "evidence": 5, "occurred": 5}"#.into()),
        (
            "correction of garbage",
            r#"{"type":"event.corrected","occurred":{"precision":"unknown"},"data":{"target":5,"patch":"x"},"evidence":[]}"#
                .into(),
        ),
        ("empty", String::new()),
        ("whitespace", "   \n\t ".into()),
        ("trailing garbage", "{} {}".into()),
        ("truncated", "{\"events\": [".into()),
        ("long string", format!("\"{}\"", "a".repeat(500_000))),
    ];
    let mut bodies: Vec<(String, Vec<u8>)> = text
        .into_iter()
        .map(|(name, s)| (name.to_string(), s.into_bytes()))
        .collect();
    bodies.push((
        "invalid utf-8".into(),
        b"{\"type\": \"\xff\xfe\xfd\"}".to_vec(),
    ));
    bodies.push(("bare invalid utf-8".into(), vec![0xc3, 0x28, 0xa0, 0xa1]));
    bodies.push((
        "bom".into(),
        [&[0xef, 0xbb, 0xbf][..], statement(5).to_string().as_bytes()].concat(),
    ));
    bodies
}

#[tokio::test]
async fn no_weird_body_gets_a_5xx_and_none_moves_the_head() {
    let (app, head) = seeded().await;
    for (name, bytes) in weird_bodies() {
        let resp = post_raw(&app, "process%2Fp", Some("application/json"), bytes).await;
        let status = resp.status();
        let content_type = resp.headers().get("content-type").cloned();
        let text = resp.text().await.unwrap();
        assert!(status.is_client_error(), "{name}: {status} {text}");
        assert_eq!(
            content_type.as_ref().map(|v| v.to_str().unwrap()),
            Some(PROBLEM_JSON),
            "{name}"
        );
        let p: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(p["status"], status.as_u16(), "{name}: {text}");
        assert_eq!(app.head().await, head, "{name}");
    }
    // The server still takes a good append afterwards.
    assert_eq!(app.append("process/p", &statement(9)).await.status(), 201);
}
