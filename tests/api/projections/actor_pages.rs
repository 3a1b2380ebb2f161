//! The actor view pages through an actor's events by when they occurred, with an opaque
//! cursor (issue 13): a page costs what it shows, every event comes once across the pages, and
//! a cursor pins the cut of the first page, so appends in between change nothing in the walk.

use serde_json::{Value, json};

use super::view;
use crate::helpers::*;

const ACTOR: &str = "/projections/actors/actor:witkoff";

/// A statement by `actor:witkoff` that occurred on `day` of March 2025, or in March 2025 at
/// month precision when `day` is 0 (it sorts before every day of the month).
fn statement_on(n: u64, day: u64) -> Value {
    let mut s = statement(n);
    s["occurred"] = if day == 0 {
        json!({"start": "2025-03", "precision": "month"})
    } else {
        json!({"start": format!("2025-03-{day:02}"), "precision": "day"})
    };
    s
}

/// Appends `n` statements (numbered from `from`) whose occurred days are out of seq order.
async fn append_scattered(app: &TestApp, from: u64, n: u64) {
    let events: Vec<Value> = (from..from + n)
        .map(|i| statement_on(i, (i * 7) % 23))
        .collect();
    let resp = app
        .append("process/ru-ua-peace", &json!({"events": events}))
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// Follows `next` from `first` to the last page; answers every page.
async fn walk(app: &TestApp, first: &str) -> Vec<Value> {
    let mut pages = vec![app.get_json(first).await];
    while let Some(next) = pages.last().unwrap().get("next").and_then(Value::as_str) {
        assert!(pages.len() < 100, "the walk ends");
        pages.push(app.get_json(next).await);
    }
    pages
}

/// The events of a walk in the view's order: pages go back in time, each page in order.
fn events_of(pages: &[Value]) -> Vec<Value> {
    pages
        .iter()
        .rev()
        .flat_map(|p| p["events"].as_array().unwrap().clone())
        .collect()
}

#[tokio::test]
async fn paging_through_an_actor_view_returns_every_event_exactly_once_in_order() {
    let app = spawn_app().await;
    app.seed().await;
    append_scattered(&app, 1, 23).await;
    // The seed's five records, then the 23 statements.
    let all = view(&app, &format!("{ACTOR}?limit=10000"), 28).await;
    assert_eq!(all["total_events"], 23);
    assert!(
        all["next_cursor"].is_null() && all.get("next").is_none(),
        "{all}"
    );

    let pages = walk(&app, &format!("{ACTOR}?limit=5")).await;
    assert_eq!(pages.len(), 5, "23 events, 5 a page");
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(page["total_events"], 23);
        assert_eq!(page["as_of_seq"], 28);
        let last = i == pages.len() - 1;
        assert_eq!(page["next_cursor"].is_null(), last, "{page}");
        assert_eq!(
            page["events"].as_array().unwrap().len(),
            if last { 3 } else { 5 }
        );
    }
    let walked = events_of(&pages);
    assert_eq!(walked, all["events"].as_array().unwrap().clone());
    // In the view's order: by when each event occurred (the month first), then seq.
    let keys: Vec<(String, u64)> = walked
        .iter()
        .map(|e| {
            let start = e["when"]["start"].as_str().unwrap().to_string();
            (start, e["seq"].as_u64().unwrap())
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys[0].0, "2025-03");
}

#[tokio::test]
async fn a_cursor_from_before_new_appends_still_walks_the_events_of_its_first_page_cut() {
    let app = spawn_app().await;
    app.seed().await;
    append_scattered(&app, 1, 17).await;
    let before = view(&app, &format!("{ACTOR}?limit=10000"), 22).await;
    let first = view(&app, &format!("{ACTOR}?limit=4"), 22).await;
    let next = first["next"].as_str().unwrap().to_string();

    // New events, some of them earlier than every event walked so far, and one later.
    append_scattered(&app, 100, 12).await;
    let mut later = statement_on(200, 28);
    later["occurred"]["start"] = json!("2025-04-01");
    assert_eq!(
        app.append("process/ru-ua-peace", &later).await.status(),
        201
    );
    view(&app, ACTOR, 35).await;

    let mut pages = vec![first];
    pages.extend(walk(&app, &next).await);
    for page in &pages {
        assert_eq!(
            page["as_of_seq"], 22,
            "every page is at the first page's cut"
        );
        assert_eq!(page["total_events"], 17);
    }
    assert_eq!(
        events_of(&pages),
        before["events"].as_array().unwrap().clone()
    );
    // A fresh walk sees the new events.
    let now = events_of(&walk(&app, &format!("{ACTOR}?limit=4")).await);
    assert_eq!(now.len(), 30);
}

/// Asserts a problem answer: its status, type, and that it names `?cursor`.
async fn cursor_problem(app: &TestApp, path: &str, status: u16, kind: &str) {
    let resp = app.get(path).await;
    assert_eq!(resp.status(), status, "{path}");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(ct, "application/problem+json", "{path}");
    let p: Value = resp.json().await.unwrap();
    assert!(p["type"].as_str().unwrap().ends_with(kind), "{path}: {p}");
    assert!(
        p["detail"].as_str().unwrap().contains("cursor"),
        "{path}: {p}"
    );
    assert_eq!(p["errors"][0]["pointer"], "?cursor", "{path}: {p}");
}

#[tokio::test]
async fn a_cursor_that_is_not_one_is_a_400_and_one_of_another_walk_a_422_problem() {
    let app = spawn_app().await;
    app.seed().await;
    append_scattered(&app, 1, 6).await;
    assert_eq!(
        app.append("process/ru-ua-peace", &meeting("meeting:m1"))
            .await
            .status(),
        201
    );
    let first = view(&app, &format!("{ACTOR}?limit=2"), 8).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();

    let short = &cursor[..31];
    let not_hex = format!("g{}", &cursor[1..]);
    for bad in ["not-a-cursor", "", short, &not_hex, &format!("{cursor}0")] {
        cursor_problem(&app, &format!("{ACTOR}?cursor={bad}"), 400, "bad-query").await;
    }
    // Well-formed, but not a walk of this actor: another actor's cursor (its event is not
    // one of theirs), and a cut beyond the log's head.
    let putin = format!("/projections/actors/actor:putin?cursor={cursor}");
    cursor_problem(&app, &putin, 422, "cursor-mismatch").await;
    let future = format!("{}{}", "00000000000f4240", &cursor[16..]);
    let beyond = format!("{ACTOR}?cursor={future}");
    cursor_problem(&app, &beyond, 422, "cursor-mismatch").await;
    // The cursor itself still works where it belongs.
    let resp = app.get(&format!("{ACTOR}?cursor={cursor}&limit=2")).await;
    assert_eq!(resp.status(), 200);
}
