//! Filters: only matching types, streams and processes arrive, and a filter that refuses a
//! long run of records scans it in bounded steps, moving its cursor past them as it goes.

use std::collections::BTreeSet;

use serde_json::json;

use super::support::*;
use crate::helpers::*;

#[tokio::test]
async fn only_events_matching_the_type_glob_stream_prefix_and_process_arrive() {
    let app = app_with(json!({})).await;
    let by_type = Receiver::ok().await;
    let by_stream = Receiver::ok().await;
    let by_process = Receiver::ok().await;
    let everything = Receiver::ok().await;
    subscribe(
        &app,
        json!({"url": by_type.url(), "filter": {"types": ["meeting.*"]}}),
    )
    .await;
    subscribe(
        &app,
        json!({"url": by_stream.url(), "filter": {"streams": ["registry/"]}}),
    )
    .await;
    subscribe(
        &app,
        json!({"url": by_process.url(), "filter": {"processes": ["other-talks"]}}),
    )
    .await;
    subscribe(&app, json!({"url": everything.url()})).await;

    let st = statements(&app, 1, 2).await;
    let resp = app
        .append("process/ru-ua-peace", &meeting("meeting:m1"))
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let resp = app
        .append("registry/sources", &source_event("src:second-wire"))
        .await;
    assert_eq!(resp.status(), 201);
    let mut other = statement(99);
    other["process"] = json!("other-talks");
    let resp = app.append("process/other-talks", &other).await;
    assert_eq!(resp.status(), 201);

    // Everything arrives at the catch-all; then the others have had their chance.
    wait_until("catch-all got 5", || async {
        everything.accepted().len() == 5
    })
    .await;
    wait_until("filtered receivers settled", || async {
        by_type.accepted().len() == 1
            && by_stream.accepted().len() == 1
            && by_process.accepted().len() == 1
    })
    .await;
    let types = |rx: &Receiver| -> BTreeSet<String> {
        rx.accepted()
            .iter()
            .map(|c| c.json()["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        types(&by_type),
        BTreeSet::from(["meeting.held".to_string()])
    );
    assert_eq!(
        types(&by_stream),
        BTreeSet::from(["source.registered".to_string()])
    );
    assert_eq!(
        by_stream.accepted()[0].json()["data"]["stream"],
        "registry/sources"
    );
    assert_eq!(
        by_process.accepted()[0].json()["data"]["process"],
        "other-talks"
    );
    assert!(everything.accepted().iter().any(|c| c.id == st[0].1));
    // Let any stray delivery land, then check nothing else came.
    wait_until("every subscription at the head", || async {
        admin_get(&app, "/subscriptions").await["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["lag"] == 0)
    })
    .await;
    assert_eq!(by_type.all().len(), 1);
    assert_eq!(by_stream.all().len(), 1);
    assert_eq!(by_process.all().len(), 1);
}

#[tokio::test]
async fn a_rare_filter_gets_its_one_event_after_thousands_of_others_and_its_cursor_moves_past_them_step_by_step()
 {
    // Few records per step, so the scan below takes many steps.
    let app = app_with(json!({"read_batch": 8})).await;
    let mut batch = Vec::new();
    for i in 0..4_000u64 {
        batch.push(statement(i));
        if batch.len() == 100 {
            let resp = app
                .append("process/ru-ua-peace", &json!({"events": batch}))
                .await;
            assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
            batch.clear();
        }
    }
    let resp = app
        .append("process/ru-ua-peace", &meeting("meeting:rare"))
        .await;
    assert_eq!(resp.status(), 201);
    let meeting_seq = resp.json::<serde_json::Value>().await.unwrap()["events"][0]["seq"]
        .as_u64()
        .unwrap();
    let rx = Receiver::ok().await;
    let (id, _) = subscribe(
        &app,
        json!({"url": rx.url(), "from_seq": 1, "filter": {"types": ["meeting.*"]}}),
    )
    .await;
    // Watch the cursor while the scan runs. These requests are served on the same runtime as
    // the delivery task: one scan of the whole log at once would leave them waiting until it
    // ended, so the cursor would only ever be seen at 0 or at the meeting.
    let seen = std::cell::RefCell::new(Vec::new());
    wait_until(
        "the meeting delivered and the cursor at the head",
        || async {
            let cursor = sub(&app, &id).await["cursor"].as_u64().unwrap();
            seen.borrow_mut().push(cursor);
            !rx.accepted().is_empty() && cursor == meeting_seq
        },
    )
    .await;
    let seen = seen.into_inner();
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "the cursor went back: {seen:?}"
    );
    assert!(
        seen.iter().any(|c| *c > 0 && *c < meeting_seq - 1),
        "the cursor never stopped between the first record and the meeting: {seen:?}"
    );
    assert_eq!(sub(&app, &id).await["lag"], 0);
    let all = rx.all();
    assert_eq!(all.len(), 1, "only the meeting matches");
    assert_eq!(all[0].seq(), meeting_seq);
    assert_eq!(all[0].json()["type"], "meeting.held");
}
