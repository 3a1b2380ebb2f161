//! Issue 11, item 6, through HTTP against the real server: an assessor's latest status on an
//! issue is the latest in world time (`occurred`), log order only breaking a tie; an issue is
//! contested only when claims that overlap in world time disagree, never because statuses
//! changed over time; and the same holds as of an earlier point of the log.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::projections::view;

const PROCESS: &str = "status-talks";

fn status(by: &str, status: &str, occurred: Value) -> Value {
    json!({
        "type": "issue.status_changed",
        "occurred": occurred,
        "process": PROCESS,
        "data": {"issue_id": "issue:land", "status": status, "assessed_by": by},
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

fn day(d: &str) -> Value {
    json!({"start": d, "precision": "day"})
}

async fn appended_seq(app: &TestApp, body: &Value) -> u64 {
    let resp = app.append(&format!("process/{PROCESS}"), body).await;
    let status = resp.status().as_u16();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{answer}");
    answer["events"][0]["seq"].as_u64().unwrap()
}

/// The issue's line of the negotiation view, and whether it is listed as contested.
async fn issue_at(app: &TestApp, query: &str, min_seq: u64) -> (Value, bool) {
    let v = view(
        app,
        &format!("/projections/negotiation/{PROCESS}{query}"),
        min_seq,
    )
    .await;
    let issue = v["issues"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["issue_id"] == "issue:land"))
        .cloned()
        .unwrap_or_else(|| panic!("no issue:land in {v}"));
    let contested = v["contested"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["kind"] == "issue_status" && c["issue_id"] == "issue:land");
    (issue, contested)
}

fn status_of<'a>(issue: &'a Value, by: &str) -> &'a Value {
    issue["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["assessed_by"] == by)
        .map(|s| &s["status"])
        .unwrap_or_else(|| panic!("no status by {by} in {issue}"))
}

#[tokio::test]
async fn an_earlier_unresolved_and_a_later_agreed_are_a_change_not_a_contest() {
    let app = spawn_app().await;
    app.seed().await;
    register_all(&app, &["actor:a", "actor:b", "issue:land"]).await;
    let first = appended_seq(&app, &status("actor:a", "unresolved", day("2026-01-10"))).await;
    let last = appended_seq(&app, &status("actor:b", "agreed", day("2026-02-02"))).await;
    let (issue, contested) = issue_at(&app, "", last).await;
    assert_eq!(issue["status"], "agreed", "{issue}");
    assert!(!contested, "{issue}");
    // As of before the later claim, only the earlier one is known.
    let (before, contested) = issue_at(&app, &format!("?known_at={first}"), last).await;
    assert_eq!(before["status"], "unresolved", "{before}");
    assert!(!contested);
}

#[tokio::test]
async fn an_assessors_latest_status_follows_world_time_not_log_order() {
    let app = spawn_app().await;
    app.seed().await;
    register_all(&app, &["actor:a", "actor:b", "issue:land"]).await;
    let newer = appended_seq(&app, &status("actor:a", "narrowed", day("2026-02-01"))).await;
    // Recorded later, but it happened earlier: it does not replace the newer assessment.
    let older = appended_seq(&app, &status("actor:a", "deadlocked", day("2026-01-05"))).await;
    let (issue, contested) = issue_at(&app, "", older).await;
    assert_eq!(status_of(&issue, "actor:a"), "narrowed", "{issue}");
    assert_eq!(issue["status"], "narrowed", "{issue}");
    assert!(!contested);
    let (before, _) = issue_at(&app, &format!("?known_at={newer}"), older).await;
    assert_eq!(status_of(&before, "actor:a"), "narrowed", "{before}");
    // Same world time: log order breaks the tie.
    let tie = appended_seq(&app, &status("actor:a", "agreed", day("2026-02-01"))).await;
    let (issue, _) = issue_at(&app, "", tie).await;
    assert_eq!(status_of(&issue, "actor:a"), "agreed", "{issue}");
}

#[tokio::test]
async fn claims_that_overlap_in_world_time_and_disagree_are_contested() {
    let app = spawn_app().await;
    app.seed().await;
    register_all(&app, &["actor:a", "actor:b", "issue:land"]).await;
    let first = appended_seq(&app, &status("actor:a", "unresolved", day("2026-02-02"))).await;
    // Month precision: February includes the 2nd, so the claims overlap.
    let month = json!({"start": "2026-02", "precision": "month"});
    let last = appended_seq(&app, &status("actor:b", "agreed", month)).await;
    let (issue, contested) = issue_at(&app, "", last).await;
    assert_eq!(issue["status"], "contested", "{issue}");
    assert!(contested, "{issue}");
    let (before, contested) = issue_at(&app, &format!("?known_at={first}"), last).await;
    assert_eq!(before["status"], "unresolved", "{before}");
    assert!(!contested, "{before}");
}
