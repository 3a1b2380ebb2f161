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
