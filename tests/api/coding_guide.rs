//! Issue 11, item 9: the coding guide's examples are specifications. Every ` ```json ` block
//! of `schemas/README.md` is a whole event that the real validator accepts, the blocks cover
//! every event type, and appended in order to the real server they are all accepted (their
//! references resolve) and read as the guide says.

use annals::config::Config;
use annals::event::{EventKind, Schemas, Validator};
use serde_json::Value;

use crate::helpers::*;
use crate::projections::view;

const GUIDE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/README.md"));

/// Every ` ```json ` block of the guide with the line it starts on (1-based).
fn examples() -> Vec<(usize, Value)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in GUIDE.lines().enumerate() {
        match open.take() {
            None if line.trim_end() == "```json" => open = Some((i + 1, String::new())),
            None => {}
            Some((start, body)) if line.trim_end() == "```" => {
                let value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("the example at line {start} is not JSON: {e}"));
                out.push((start, value));
            }
            Some((start, mut body)) => {
                body.push_str(line);
                body.push('\n');
                open = Some((start, body));
            }
        }
    }
    assert!(open.is_none(), "an example block is never closed");
    out
}

/// The stream an example goes to: registrations to their registry, the rest to the process.
fn stream_of(event: &Value) -> String {
    let kind = event["type"].as_str().unwrap_or_default();
    match kind.split_once('.').map(|(k, _)| k) {
        Some("source") => "registry/sources".into(),
        Some("actor") => "registry/actors".into(),
        _ if kind == "issue.defined" => "registry/issues".into(),
        _ => "process/example-geneva-talks".into(),
    }
}

#[test]
fn every_json_example_of_the_coding_guide_is_an_event_the_validator_accepts() {
    let limits = Config::defaults().unwrap().limits;
    let validator = Validator::new(Schemas::load().unwrap(), limits);
    let examples = examples();
    for (line, event) in &examples {
        if let Err(e) = validator.event(event, "") {
            panic!("the example at line {line} is refused: {e:?}");
        }
    }
    for kind in EventKind::ALL {
        assert!(
            examples.iter().any(|(_, e)| e["type"] == kind.name()),
            "the guide has no example of {kind}"
        );
    }
}

#[tokio::test]
async fn the_coding_guide_examples_append_in_order_and_read_as_the_guide_says() {
    let app = spawn_app().await;
    let mut last = 0;
    let mut states_known = false;
    for (line, event) in examples() {
        // The states the guide assumes known (it says so), registered as a data set would
        // have, once its first source is.
        if event["type"] == "actor.registered" && !states_known {
            for state in ["actor:russia", "actor:ukraine", "actor:usa"] {
                let registration = serde_json::json!({
                    "type": "actor.registered",
                    "data": {"actor_id": state, "name": state, "kind": "state"},
                    "evidence": [{"source": "src:example-wire-2026-02-10", "relation": "reports"}]
                });
                let resp = app.append("registry/actors", &registration).await;
                assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
            }
            states_known = true;
        }
        let resp = app.append(&stream_of(&event), &event).await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 201, "the example at line {line}: {body}");
        last = body["events"][0]["seq"].as_u64().unwrap();
    }
    // The correction of one term is read in the agreement; the statement's tones are a list.
    let negotiation = view(&app, "/projections/negotiation/example-geneva-talks", last).await;
    let agreement = &negotiation["agreements"][0];
    assert_eq!(
        agreement["provisions"][0]["terms"]["withdrawal_km"], 20,
        "{negotiation}"
    );
    assert_eq!(
        agreement["provisions"][1]["summary"], "Talks continue in March.",
        "{negotiation}"
    );
}
