//! Issue 11, item 5, through HTTP against the real server: an agreement provision is
//! `{issue, summary, terms?}` with named values, or a plain string; its issue is a checked
//! reference; a correction can patch one term, and every view that shows agreements shows the
//! value as known at the asked time.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::projections::{appended, view};

fn agreement(provisions: Value) -> Value {
    json!({
        "type": "agreement.reached",
        "schema_version": 2,
        "occurred": {"start": "2026-02-01", "precision": "day"},
        "process": "ru-ua-peace",
        "data": {
            "agreement_id": "agreement:zaporizhzhia-zone",
            "parties": ["actor:russia", "actor:ukraine"],
            "stage": "framework-partial",
            "provisions": provisions
        },
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    })
}

fn structured() -> Value {
    json!([
        {
            "issue": "issue:nuclear-safety",
            "summary": "Forces withdraw from around the plant.",
            "terms": {"withdrawal_km": 15, "deadline": "2026-03-01", "monitor": "IAEA"}
        },
        "Prisoner exchange to continue."
    ])
}

/// The term `withdrawal_km` of the first provision of the agreement in each view that shows
/// agreements, at `query` (`""` or `?known_at=...`).
async fn terms_in_views(app: &TestApp, query: &str, min_seq: u64) -> Vec<Value> {
    let negotiation = view(
        app,
        &format!("/projections/negotiation/ru-ua-peace{query}"),
        min_seq,
    )
    .await;
    let mut found =
        vec![negotiation["agreements"][0]["provisions"][0]["terms"]["withdrawal_km"].clone()];
    for actor in ["actor:russia", "actor:ukraine"] {
        let v = view(app, &format!("/projections/actors/{actor}{query}"), min_seq).await;
        let agreement = v["events"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .find(|e| e["type"] == "agreement.reached")
            .unwrap_or_else(|| panic!("no agreement in {v}"))
            .clone();
        found.push(agreement["data"]["provisions"][0]["terms"]["withdrawal_km"].clone());
    }
    found
}

#[tokio::test]
async fn a_correction_of_one_term_shows_in_every_agreement_view_now_and_not_as_of_before_it() {
    let app = spawn_app().await;
    app.seed().await;
    register_all(&app, &["actor:ukraine", "issue:nuclear-safety"]).await;
    let (id, seq) = appended(
        app.append("process/ru-ua-peace", &agreement(structured()))
            .await,
    )
    .await;
    let negotiation = view(&app, "/projections/negotiation/ru-ua-peace", seq).await;
    assert_eq!(
        negotiation["agreements"][0]["provisions"],
        json!([
            {"issue": "issue:nuclear-safety", "summary": "Forces withdraw from around the plant.",
             "terms": {"withdrawal_km": 15, "deadline": "2026-03-01", "monitor": "IAEA"}},
            {"summary": "Prisoner exchange to continue."}
        ]),
        "{negotiation}"
    );

    let fix = json!({
        "type": "event.corrected",
        "data": {
            "target": id,
            "patch": [
                {"op": "test", "path": "/provisions/0/terms/withdrawal_km", "value": 15},
                {"op": "replace", "path": "/provisions/0/terms/withdrawal_km", "value": 20}
            ],
            "reason": "the source corrected the distance to 20 km"
        },
        "evidence": [{"source": SOURCE, "relation": "reports"}]
    });
    let (_, fix_seq) = appended(app.append("process/ru-ua-peace", &fix).await).await;

    assert_eq!(terms_in_views(&app, "", fix_seq).await, vec![json!(20); 3]);
    assert_eq!(
        terms_in_views(&app, &format!("?known_at={seq}"), fix_seq).await,
        vec![json!(15); 3]
    );
    // The other terms and provisions are as they were.
    let negotiation = view(&app, "/projections/negotiation/ru-ua-peace", fix_seq).await;
    let provisions = &negotiation["agreements"][0]["provisions"];
    assert_eq!(provisions[0]["terms"]["deadline"], "2026-03-01");
    assert_eq!(
        provisions[1],
        json!({"summary": "Prisoner exchange to continue."})
    );
}

#[tokio::test]
async fn a_provision_whose_issue_is_an_id_of_another_kind_is_rejected_with_422_naming_it() {
    let app = spawn_app().await;
    app.seed().await;
    register_all(&app, &["actor:ukraine", "issue:nuclear-safety"]).await;
    appended(
        app.append("process/ru-ua-peace", &meeting("meeting:2026-01-22"))
            .await,
    )
    .await;
    let (head, _) = app.head().await;
    let bad = agreement(json!([{"issue": "meeting:2026-01-22", "summary": "s"}]));
    let resp = app.append("process/ru-ua-peace", &bad).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string().contains("/data/provisions/0/issue"),
        "{body}"
    );
    assert_eq!(app.head().await.0, head);
}

#[tokio::test]
async fn a_provision_without_its_summary_or_with_a_term_that_is_not_a_value_is_rejected_with_422() {
    let app = spawn_app().await;
    app.seed().await;
    register_all(&app, &["actor:ukraine", "issue:nuclear-safety"]).await;
    let (head, _) = app.head().await;
    for provisions in [
        json!([{"issue": "issue:x"}]),
        json!([{"summary": "no issue named"}]),
        json!([{"issue": "issue:x", "summary": "s", "terms": {"km": {"value": 15}}}]),
        json!([{"issue": "issue:x", "summary": "s", "terms": {"Km": 15}}]),
        json!([{"issue": "issue:x", "summary": "s", "terms": {}}]),
    ] {
        let resp = app
            .append("process/ru-ua-peace", &agreement(provisions.clone()))
            .await;
        assert_eq!(resp.status(), 422, "{provisions}");
    }
    // Version 1 keeps plain strings only.
    let mut old = agreement(structured());
    old["schema_version"] = json!(1);
    let resp = app.append("process/ru-ua-peace", &old).await;
    assert_eq!(resp.status(), 422);
    assert_eq!(app.head().await.0, head);
}
