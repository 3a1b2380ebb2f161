//! The projections keep compact facts, never the records (issue 13): a view that shows a
//! payload reads the record from the log through a bounded cache. For random valid event
//! sequences, the engine's compact facts with on-demand reads through a cache far smaller
//! than the log answer every view exactly as a full in-memory fold that keeps every record,
//! now and as known at any seq; and the cache never holds more than its configured bound.

use annals::log::Log;
use annals::metrics::Metrics;
use annals::projection::{self, Engine, ProjectionConfig, Query};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::engine::{Op, SOURCES, events_of, op};
use super::inproc::{append, caught_up, event, full_fold, open};
use super::view;
use crate::helpers::*;

/// A record cache of a few entries: most reads of a view miss it and go to the log.
fn config(entries: usize, bytes: usize) -> ProjectionConfig {
    ProjectionConfig {
        checkpoint_every_events: 5,
        checkpoint_every_ms: 60_000,
        batch_events: 4,
        record_cache_entries: entries,
        record_cache_bytes: bytes,
        ..annals::Config::defaults().unwrap().projections
    }
}

/// Appends the sources, then the events of `ops`.
pub(super) async fn fill(log: &Log, ops: &[Op]) {
    let sources = SOURCES
        .iter()
        .map(|s| {
            event(
                "source.registered",
                json!({"source_id": s, "kind": "wire", "publisher": s,
                       "reliability": {"grade": "C", "basis": "unknown"}}),
                json!([]),
            )
        })
        .collect();
    append(log, "registry/sources", sources).await;
    let mut facts = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let events = events_of(op, &mut facts, i);
        if !events.is_empty() {
            append(log, "process/p", events).await;
        }
    }
}

/// The engine's views and the reference fold's, now and as of each of `cuts` (taken
/// modulo the head, plus one).
async fn both_ways(ops: Vec<Op>, cuts: Vec<u64>) -> Vec<(String, Value, Value)> {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let engine = Engine::start(log.clone(), config(3, 1 << 20), &Metrics::new().unwrap()).unwrap();
    fill(&log, &ops).await;
    caught_up(&engine, &log).await;
    // The reference: every record kept in memory by the fold itself.
    let full = full_fold(&log);
    assert!(full.records().keeps_records());
    let head = log.head().seq;
    let mut out = Vec::new();
    engine.read(|k| {
        assert!(!k.records().keeps_records(), "the engine keeps no record");
        out.push((
            "now".to_string(),
            projection::all_views(k),
            projection::all_views(&full),
        ));
        for cut in &cuts {
            let seq = cut % (head + 1);
            out.push((
                format!("known at {seq}"),
                projection::all_views_as_of(k, seq),
                projection::all_views_as_of(&full, seq),
            ));
        }
        let stats = k.records().stats();
        assert!(stats.peak_entries <= 3, "{stats:?}");
        assert!(
            stats.misses > 0,
            "the views read records from the log: {stats:?}"
        );
        assert_eq!(k.records().failures(), 0);
    });
    engine.shutdown().await;
    log.close().await;
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn compact_facts_with_reads_through_a_small_cache_answer_every_view_as_a_full_fold(
        ops in prop::collection::vec(op(), 1..24),
        cuts in prop::collection::vec(any::<u64>(), 1..4),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        for (when, compact, full) in rt.block_on(both_ways(ops, cuts)) {
            prop_assert_eq!(compact, full, "{}", when);
        }
    }
}

#[tokio::test]
async fn the_record_cache_never_holds_more_than_its_bound_while_a_view_reads_more_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let bytes = 2_000;
    let engine = Engine::start(log.clone(), config(4, bytes), &Metrics::new().unwrap()).unwrap();
    let said = (0..40)
        .map(|i| {
            event(
                "statement.made",
                json!({"statement_id": format!("statement:s{i}"), "speaker": "actor:a",
                       "content": format!("said {i}")}),
                json!([]),
            )
        })
        .collect();
    append(&log, "process/p", said).await;
    caught_up(&engine, &log).await;
    let q = Query {
        limit: 40,
        ..Query::default()
    };
    for _ in 0..2 {
        let listed = engine.read(|k| {
            projection::answer(k, "actors", Some("actor:a"), &q)
                .unwrap()
                .1["events"]
                .as_array()
                .unwrap()
                .len()
        });
        assert_eq!(listed, 40);
    }
    let stats = engine.read(|k| k.records().stats());
    assert!(
        stats.peak_entries <= 4 && stats.entries <= 4,
        "entries over the bound: {stats:?}"
    );
    assert!(
        stats.peak_bytes <= bytes && stats.bytes <= bytes,
        "bytes over the bound: {stats:?}"
    );
    assert!(
        stats.misses >= 80,
        "each listing read its 40 records: {stats:?}"
    );
    engine.shutdown().await;
    log.close().await;
}

/// A metric's value in a Prometheus text exposition.
pub(crate) fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[tokio::test]
async fn metrics_show_the_record_cache_within_its_configured_bound() {
    let app = spawn_app_with(|mut c| {
        c.projections.record_cache_entries = 3;
        c.projections.record_cache_bytes = 1 << 20;
        c
    })
    .await;
    app.seed().await;
    let mut head = 0;
    for n in 0..12 {
        let resp = app.append("process/ru-ua-peace", &statement(n)).await;
        let v: Value = resp.json().await.unwrap();
        head = v["events"][0]["seq"].as_u64().unwrap();
    }
    let actor = view(&app, "/projections/actors/actor:witkoff?limit=12", head).await;
    assert_eq!(actor["events"].as_array().unwrap().len(), 12);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(metric(&text, "annals_projection_record_cache_misses_total") >= 12.0);
    assert!(metric(&text, "annals_projection_record_cache_entries") <= 3.0);
    assert!(metric(&text, "annals_projection_record_cache_bytes") > 0.0);
    metric(&text, "annals_projection_record_cache_hits_total");
}
