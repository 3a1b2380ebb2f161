//! The fate of announced talks (issue 10's first view): the calendar and the negotiation view
//! find the meetings that fulfil talks and the status changes about them through an index by
//! talks id, so a process's view reads the records it shows, not every meeting of the log;
//! and the index honours corrections and retractions as of the asked cut.

use serde_json::{Value, json};

use super::compact::metric;
use super::{appended, view};
use crate::helpers::*;

const TALKS: &str = "talks:small";

fn talks(process: &str, id: &str) -> Value {
    json!({
        "type": "talks.scheduled",
        "occurred": {"start": "2026-01-20", "precision": "day"},
        "process": process,
        "data": {"talks_id": id, "title": "Small talks",
                 "parties": ["actor:russia", "actor:usa"],
                 "planned": {"start": "2026-02-01"}},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

/// A meeting of `process`, fulfilling `fulfils` when given.
fn meeting_of(process: &str, id: &str, fulfils: Option<&str>) -> Value {
    let mut m = meeting(id);
    m["process"] = json!(process);
    if let Some(t) = fulfils {
        m["data"]["fulfils"] = json!(t);
    }
    m
}

fn status(talks_id: &str, status: &str) -> Value {
    json!({
        "type": "talks.status_changed",
        "occurred": {"start": "2026-01-21", "precision": "day"},
        "process": "p-other",
        "data": {"talks_id": talks_id, "status": status},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

fn correction(target: &str, path: &str, value: &str) -> Value {
    json!({
        "type": "event.corrected",
        "data": {"target": target, "reason": "misread",
                 "patch": [{"op": "add", "path": path, "value": value}]},
        "evidence": []
    })
}

fn retraction(target: &str) -> Value {
    json!({
        "type": "event.retracted",
        "data": {"target": target, "reason": "never happened"},
        "evidence": []
    })
}

/// Records read by the views so far (record cache hits and misses).
async fn reads(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    metric(&text, "annals_projection_record_cache_hits_total")
        + metric(&text, "annals_projection_record_cache_misses_total")
}

/// The one talks entry of `process`'s calendar at `query` (`known_at=…` or empty).
async fn the_talks(app: &TestApp, process: &str, query: &str, head: u64) -> Value {
    let cal = view(
        app,
        &format!("/projections/calendar?process={process}{query}"),
        head,
    )
    .await;
    let list = cal["talks"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{cal}");
    list[0].clone()
}

/// A server with the fixture actors and the talks [`TALKS`] of process `p-small`.
async fn with_small_talks() -> TestApp {
    let app = spawn_app().await;
    app.seed().await;
    appended(
        app.append("process/p-small", &talks("p-small", TALKS))
            .await,
    )
    .await;
    app
}

#[tokio::test]
async fn a_process_calendar_reads_the_records_of_its_own_talks_not_every_meeting_of_the_log() {
    let app = with_small_talks().await;
    let others: Vec<Value> = (0..100)
        .map(|n| meeting_of("p-other", &format!("meeting:other-{n}"), None))
        .collect();
    let resp = app
        .append("process/p-other", &json!({ "events": others }))
        .await;
    assert_eq!(resp.status(), 201);
    let (_, head) = appended(
        app.append(
            "process/p-small",
            &meeting_of("p-small", "meeting:small", Some(TALKS)),
        )
        .await,
    )
    .await;
    // Caught up, and every record of the small process read once, before counting.
    let first = the_talks(&app, "p-small", "", head).await;
    assert_eq!(first["fate"], "held");
    let before = reads(&app).await;
    let again = the_talks(&app, "p-small", "", head).await;
    let read = reads(&app).await - before;
    assert_eq!(again["held_by"], "meeting:small");
    // The talks and their one meeting (payload and evidence of each, and the source): a
    // handful of reads, where a walk of every meeting of the log reads a hundred more.
    assert!(read <= 20.0, "{read} records read for one talks entry");
    app.stop().await;
}

#[tokio::test]
async fn a_meeting_corrected_to_fulfil_talks_holds_them_from_the_corrections_seq_until_its_retraction()
 {
    let app = with_small_talks().await;
    let (meeting_id, before) = appended(
        app.append(
            "process/p-other",
            &meeting_of("p-other", "meeting:elsewhere", None),
        )
        .await,
    )
    .await;
    let (fix, fixed) = appended(
        app.append(
            "process/p-other",
            &correction(&meeting_id, "/fulfils", TALKS),
        )
        .await,
    )
    .await;
    let (_, retracted) = appended(app.append("process/p-other", &retraction(&fix)).await).await;

    let at = |seq: u64| format!("&known_at={seq}");
    let then = the_talks(&app, "p-small", &at(before), retracted).await;
    assert_eq!(then["fate"], "overdue", "{then}");
    assert_eq!(then["held_by"], Value::Null);
    let held = the_talks(&app, "p-small", &at(fixed), retracted).await;
    assert_eq!(held["fate"], "held", "{held}");
    assert_eq!(held["held_by"], "meeting:elsewhere");
    let now = the_talks(&app, "p-small", "", retracted).await;
    assert_eq!(now["held_by"], Value::Null, "{now}");
    app.stop().await;
}

#[tokio::test]
async fn a_status_change_corrected_to_other_talks_moves_its_history_to_them_as_of_the_correction() {
    let app = with_small_talks().await;
    appended(
        app.append("process/p-big", &talks("p-big", "talks:big"))
            .await,
    )
    .await;
    let (change, before) = appended(
        app.append("process/p-other", &status("talks:big", "cancelled"))
            .await,
    )
    .await;
    let (_, fixed) = appended(
        app.append(
            "process/p-other",
            &json!({
                "type": "event.corrected",
                "data": {"target": change, "reason": "wrong talks",
                         "patch": [{"op": "replace", "path": "/talks_id", "value": TALKS}]},
                "evidence": []
            }),
        )
        .await,
    )
    .await;

    let small_then = the_talks(&app, "p-small", &format!("&known_at={before}"), fixed).await;
    assert_eq!(small_then["status_history"], json!([]));
    let big_then = the_talks(&app, "p-big", &format!("&known_at={before}"), fixed).await;
    assert_eq!(big_then["fate"], "cancelled", "{big_then}");
    let small = the_talks(&app, "p-small", "", fixed).await;
    assert_eq!(small["fate"], "cancelled", "{small}");
    assert_eq!(small["status_history"][0]["status"], "cancelled");
    let big = the_talks(&app, "p-big", "", fixed).await;
    assert_eq!(big["status_history"], json!([]), "{big}");
    app.stop().await;
}
