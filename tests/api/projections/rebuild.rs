//! A rebuild under concurrent appends and queries: queries keep answering, the swapped-in
//! state equals a fresh fold of the log, and no event is missed at the hand-over.

use annals::log::Durability;
use annals::projection::{self, Knowledge};
use serde_json::{Value, json};

use super::{status, view};
use crate::helpers::*;

#[tokio::test]
async fn a_rebuild_under_concurrent_appends_and_queries_swaps_in_a_complete_state() {
    let app = spawn_app_with(|c| {
        c.with(json!({"log": {"durability": "os"}, "projections": {"batch_events": 16}}))
            .unwrap()
    })
    .await;
    app.seed().await;
    for chunk in 0..4u64 {
        let events: Vec<_> = (chunk * 100..chunk * 100 + 100).map(statement).collect();
        let resp = app
            .append("process/ru-ua-peace", &json!({"events": events}))
            .await;
        assert_eq!(resp.status(), 201);
    }

    // Appends keep coming while the rebuild runs.
    let writer = {
        let client = app.client.clone();
        let url = app.url(&format!(
            "/streams/{}/events",
            encode("process/ru-ua-peace")
        ));
        let key = app.keys.append.clone();
        tokio::spawn(async move {
            for n in 1000..1200u64 {
                let resp = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&statement(n))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
            }
        })
    };
    let resp = app
        .client
        .post(app.url("/projections/actors/rebuild"))
        .bearer_auth(&app.keys.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    // Queries keep answering while it runs, each with the seq it reflects.
    let mut answered = 0;
    let mut rebuilt = false;
    for _ in 0..2000 {
        // The seed's five records, then 400 statements.
        let v = view(&app, "/projections/actors/actor:witkoff?limit=1", 405).await;
        assert!(v["as_of_seq"].as_u64().unwrap() >= 405);
        answered += 1;
        if status(&app, "actors").await["rebuilds"] == 1 {
            rebuilt = true;
            break;
        }
    }
    assert!(rebuilt, "the rebuild finished");
    assert!(answered >= 1);
    writer.await.unwrap();

    let head = app.head().await.0;
    assert_eq!(head, 605);
    let live = view(&app, "/projections/actors/actor:witkoff?limit=10000", head).await;
    assert_eq!(
        live["total_events"], 600,
        "no event missed at the hand-over"
    );
    let mut live_body = live.as_object().unwrap().clone();
    for k in ["projection", "as_of_seq", "known_at", "valid_at"] {
        live_body.remove(k);
    }

    // The swapped-in state equals a fresh fold of the same log.
    let dir = app.stop().await;
    let log = crate::helpers::open_log(dir.path(), Durability::Os);
    let mut k = Knowledge::new();
    let (records, _) = log.read_range(1, usize::MAX, |_| true).unwrap();
    for r in records {
        k.apply(r.seq, &r.bytes).unwrap();
    }
    let q = projection::Query {
        limit: 10000,
        ..projection::Query::default()
    };
    let (_, fresh) = projection::answer(&k, "actors", Some("actor:witkoff"), &q).unwrap();
    assert_eq!(Value::Object(live_body), fresh);
    log.close().await;
}
