//! A dry run answers a registry no-op (a known entry registered again with what it already
//! says) as the real append does: `duplicate: true`, with the registration's id and version,
//! alone or beside new lines, whose versions then count without the no-op. Issue 11's dry run
//! must agree with the writer line by line.

use serde_json::{Value, json};

use crate::helpers::*;

fn state(id: &str, name: &str) -> Value {
    json!({
        "type": "actor.registered",
        "data": {"actor_id": id, "name": name, "kind": "state"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

/// POSTs `body` to `registry/actors`, as a dry run or for real.
async fn post(app: &TestApp, dry_run: bool, body: &Value) -> (u16, Value) {
    let query = if dry_run { "dry_run=true" } else { "" };
    crate::dry_run::post(app, "registry/actors", query, body).await
}

/// Each line's (id, version, duplicate) in an append's answer.
fn lines(answer: &Value) -> Vec<(Value, Value, Value)> {
    answer["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events: {answer}"))
        .iter()
        .map(|e| {
            (
                e["id"].clone(),
                e["version"].clone(),
                e["duplicate"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_dry_run_answers_a_registry_no_op_as_the_real_append_does_alone_and_in_a_batch() {
    let app = spawn_app().await;
    app.seed().await;
    let (status, first) = post(&app, false, &state("actor:ukraine", "Ukraine")).await;
    assert_eq!(status, 201, "{first}");
    let registration = first["events"][0].clone();

    let alone = state("actor:ukraine", "Ukraine");
    let head = app.head().await;
    let (_, dry) = post(&app, true, &alone).await;
    assert_eq!(app.head().await, head, "a dry run writes nothing");
    assert_eq!(dry["events"][0]["duplicate"], true, "{dry}");
    assert_eq!(dry["events"][0]["id"], registration["id"], "{dry}");
    let (status, real) = post(&app, false, &alone).await;
    assert_eq!(status, 200, "{real}");
    assert_eq!(lines(&dry), lines(&real), "{dry} vs {real}");
    assert_eq!(dry["stream_version"], real["stream_version"]);

    let mixed = json!({"events": [
        state("actor:ukraine", "Ukraine"),
        state("actor:moldova", "Moldova"),
        state("actor:moldova", "Moldova"),
    ]});
    let (_, dry) = post(&app, true, &mixed).await;
    assert_eq!(app.head().await, head, "a dry run writes nothing");
    let (status, real) = post(&app, false, &mixed).await;
    assert_eq!(status, 201, "{real}");
    assert_eq!(
        lines(&real).iter().map(|l| l.2.clone()).collect::<Vec<_>>(),
        [true, false, true]
    );
    // The new line's id is the one submitted, which a dry run without client ids cannot
    // know: the rest of each line must agree.
    let (dry, real) = (lines(&dry), lines(&real));
    assert_eq!(dry[0], real[0]);
    assert_eq!((&dry[1].1, &dry[1].2), (&real[1].1, &real[1].2));
    assert_eq!((&dry[2].1, &dry[2].2), (&real[2].1, &real[2].2));
    assert_eq!(
        dry[2].0, dry[1].0,
        "the repeat is answered with the earlier line"
    );
    app.stop().await;
}

/// `event` with the client's own id.
fn with_id(mut event: Value, id: &str) -> Value {
    event["id"] = json!(id);
    event
}

#[tokio::test]
async fn a_resend_of_a_batch_that_mixed_a_registry_no_op_with_new_lines_is_a_200_duplicate_with_the_first_answer()
 {
    let app = spawn_app().await;
    app.seed().await;
    let (status, first) = post(&app, false, &state("actor:ukraine", "Ukraine")).await;
    assert_eq!(status, 201, "{first}");

    // The no-op line was answered with the registration and never stored: a resend finds only
    // the new lines in the log, and must not take that for a partial duplicate.
    let mixed = json!({"events": [
        with_id(state("actor:moldova", "Moldova"), "0190a000-0000-7000-8000-000000000001"),
        with_id(state("actor:ukraine", "Ukraine"), "0190a000-0000-7000-8000-000000000002"),
        with_id(state("actor:chad", "Chad"), "0190a000-0000-7000-8000-000000000003"),
    ]});
    let (status, sent) = post(&app, false, &mixed).await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(
        lines(&sent).iter().map(|l| l.2.clone()).collect::<Vec<_>>(),
        [false, true, false],
        "{sent}"
    );
    let head = app.head().await;

    let (_, dry) = post(&app, true, &mixed).await;
    let (status, resent) = post(&app, false, &mixed).await;
    assert_eq!(status, 200, "{resent}");
    assert_eq!(app.head().await, head, "a resend writes nothing");
    let answered = |answer: &Value| -> Vec<(Value, Value, Value)> {
        answer["events"]
            .as_array()
            .unwrap_or_else(|| panic!("no events: {answer}"))
            .iter()
            .map(|e| (e["id"].clone(), e["seq"].clone(), e["version"].clone()))
            .collect()
    };
    assert_eq!(answered(&resent), answered(&sent), "{resent} vs {sent}");
    assert!(
        lines(&resent).iter().all(|l| l.2 == true),
        "every line a duplicate: {resent}"
    );
    assert_eq!(resent["stream_version"], sent["stream_version"]);
    assert_eq!(lines(&dry), lines(&resent), "{dry} vs {resent}");

    // A resend whose no-op line now contradicts its entry is still refused, whole.
    let renamed = json!({"type": "actor.updated", "data": {"actor_id": "actor:ukraine", "name": "Ukraina"},
        "evidence": [{"source": SOURCE, "relation": "reports"}]});
    let (status, body) = post(&app, false, &renamed).await;
    assert_eq!(status, 201, "{body}");
    let head = app.head().await;
    let (status, refused) = post(&app, false, &mixed).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(
        refused["type"]
            .as_str()
            .map(|t| t.ends_with("partial-duplicate")),
        Some(true),
        "{refused}"
    );
    assert_eq!(app.head().await, head, "a refusal writes nothing");
    app.stop().await;
}
