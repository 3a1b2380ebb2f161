//! `GET /projections/processes` (issue 10's process picker): every process known at the cut,
//! by id, with its event count and last activity, as known at any `known_at`, through HTTP.

use serde_json::{Value, json};

use super::{appended, view};
use crate::helpers::*;

fn in_process(mut event: Value, process: &str) -> Value {
    event["process"] = json!(process);
    event
}

/// (process, events, first_seq, last_seq) of each listed process.
fn listed(v: &Value) -> Vec<(String, u64, u64, u64)> {
    v["processes"]
        .as_array()
        .unwrap_or_else(|| panic!("no processes: {v}"))
        .iter()
        .map(|p| {
            (
                p["process"].as_str().unwrap().to_string(),
                p["events"].as_u64().unwrap(),
                p["first_seq"].as_u64().unwrap(),
                p["last_seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_process_list_names_each_process_known_at_the_cut_with_its_count_and_last_activity() {
    let app = spawn_app().await;
    app.seed().await;
    let empty = view(&app, "/projections/processes", 5).await;
    assert_eq!(empty["projection"], "processes");
    assert_eq!(
        empty["processes"],
        json!([]),
        "registrations have no process"
    );

    let (_, a) = appended(app.append("process/ru-ua-peace", &statement(1)).await).await;
    let (_, b) = appended(
        app.append(
            "process/geneva",
            &in_process(meeting("meeting:geneva-1"), "geneva"),
        )
        .await,
    )
    .await;
    let (_, c) = appended(app.append("process/ru-ua-peace", &statement(2)).await).await;

    let now = view(&app, "/projections/processes", c).await;
    assert_eq!(now["as_of_seq"], c);
    assert_eq!(
        listed(&now),
        [
            ("geneva".to_string(), 1, b, b),
            ("ru-ua-peace".to_string(), 2, a, c)
        ]
    );
    let last = &now["processes"][1]["last_recorded_at"];
    let record = app.get_json(&format!("/events?from={c}&limit=1")).await;
    assert_eq!(*last, record["events"][0]["recorded_at"]);

    let then = view(&app, &format!("/projections/processes?known_at={a}"), c).await;
    assert_eq!(then["as_of_seq"], a);
    assert_eq!(listed(&then), [("ru-ua-peace".to_string(), 1, a, a)]);
    app.stop().await;
}
