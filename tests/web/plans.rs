//! Issue 10's remaining views in the browser: each plan's versions with what changed between
//! them, an agreement beside the one it supersedes with its provisions added, and the process
//! picker filled from the process list (`/projections/processes`), not from a scan of records.

use serde_json::{Value, json};

use super::{Site, WAIT, assert_no_console_errors, text};
use crate::cdp::screenshot_dir;

const SOURCE: &str = "src:moscow-peace-negotiations-article";

/// The strings of a JSON array the page answered.
fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

#[tokio::test]
async fn a_revised_plan_shows_its_versions_and_what_changed_and_an_agreement_what_it_supersedes() {
    let site = Site::demo().await;
    site.append(json!([
        {
            "type": "plan.revised",
            "schema_version": 2,
            "occurred": {"start": "2026-01-24", "precision": "day"},
            "process": "ru-ua-peace",
            "data": {"plan_id": "plan:27-point", "title": "27-point peace plan", "version": 2,
                     "parent_version": 1, "points": 20, "open_issues": ["issue:territory"],
                     "changes": [{"point": 3, "summary": "Drops the point on elections"}]},
            "evidence": [{"source": SOURCE, "relation": "reports"}]
        },
        {
            "type": "agreement.reached",
            "schema_version": 2,
            "occurred": {"start": "2026-01-24", "precision": "day"},
            "process": "ru-ua-peace",
            "data": {"agreement_id": "agreement:abu-dhabi-framework", "title": "Abu Dhabi framework",
                     "parties": ["actor:russia", "actor:usa"], "stage": "framework-partial",
                     "supersedes": "agreement:2025-08-alaska-framework",
                     "provisions": [{"issue": "issue:territory", "summary": "Lines frozen where they are",
                                     "terms": {"buffer_km": 10}}]},
            "evidence": [{"source": SOURCE, "relation": "reports"}]
        }
    ]))
    .await;
    let page = site.open().await;
    let v2 = "#plans .versions[data-plan='plan:27-point'] li[data-version='2']";
    page.wait_for(&format!("document.querySelector(\"{v2}\")"), WAIT)
        .await;
    let changed = text(&page, &format!("{v2} .change.changed")).await;
    assert!(changed.contains("points: 27 → 20"), "{changed}");
    let removed = text(&page, &format!("{v2} .change.removed")).await;
    assert!(removed.contains("leaves open"), "{removed}");
    let stated = text(&page, &format!("{v2} .change.stated")).await;
    assert!(
        stated.contains("point 3: Drops the point on elections"),
        "{stated}"
    );
    let first = text(
        &page,
        "#plans .versions[data-plan='plan:27-point'] li[data-version='1']",
    )
    .await;
    assert!(first.contains("First version"), "{first}");

    let agreement = "#plans .supersedes[data-supersedes='agreement:2025-08-alaska-framework']";
    let added = text(&page, &format!("{agreement} .change.added")).await;
    assert!(
        added.contains("Lines frozen where they are") && added.contains("buffer_km = 10"),
        "{added}"
    );

    // The version is a fact like any other: reached with Tab, its evidence opened with Enter.
    let button = format!("{v2} button.fact");
    page.eval("document.activeElement.blur(); window.scrollTo(0, 0)")
        .await;
    let mut reached = false;
    for _ in 0..200 {
        page.press("Tab", false).await;
        let on = page
            .eval(&format!(
                "document.activeElement === document.querySelector(\"{button}\")"
            ))
            .await;
        if on.as_bool() == Some(true) {
            reached = true;
            break;
        }
    }
    assert!(reached, "the version's button is not reachable with Tab");
    page.press("Enter", false).await;
    page.wait_for("!document.getElementById('evidence').hidden", WAIT)
        .await;
    page.press("Escape", false).await;
    page.eval("document.getElementById('plans-panel').scrollIntoView()")
        .await;
    page.screenshot(&screenshot_dir().join("plans.png")).await;
    assert_no_console_errors(&page);
}

#[tokio::test]
async fn the_picker_lists_every_process_from_the_process_list_and_opens_on_the_latest_active() {
    let site = Site::demo().await;
    let resp = reqwest::Client::new()
        .post(site.url("/streams/process%2Fyalta-track/events"))
        .bearer_auth(&site.key)
        .json(&json!({
            "type": "statement.made",
            "occurred": {"start": "2026-01-25", "precision": "day"},
            "process": "yalta-track",
            "data": {"statement_id": "statement:yalta-1", "speaker": "actor:putin",
                     "content": "Talks in Yalta go on."},
            "evidence": [{"source": SOURCE, "relation": "reports"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let page = site.open().await;
    let options = page
        .eval("[...document.querySelectorAll('#process option')].map((o) => o.value)")
        .await;
    assert_eq!(strings(&options), ["ru-ua-peace", "yalta-track"]);
    assert_eq!(
        page.eval("document.getElementById('process').value").await,
        "yalta-track",
        "the most recently active process"
    );
    let reads = page
        .eval(
            "performance.getEntriesByType('resource').map((r) => new URL(r.name).pathname)
               .filter((p) => p.startsWith('/projections'))",
        )
        .await;
    let reads = strings(&reads);
    assert!(reads.contains(&"/projections/processes"), "{reads:?}");
    assert!(
        !reads.contains(&"/projections/negotiation"),
        "no view of every process: {reads:?}"
    );
    assert_no_console_errors(&page);
}
