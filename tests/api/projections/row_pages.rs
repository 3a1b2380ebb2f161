//! The facts' rows leave the heap once saved (issue 13): every full page of rows is written
//! to the save and the views read a saved row through a cache of decoded pages bounded by
//! `[projections] row_cache_bytes`. With pages of a few rows and a cache of two pages, the
//! engine answers every view, now and as known at any seq, across a restart that loads the
//! save, exactly as a full in-memory fold; the cache never holds more than its bound; a save
//! written without pages (or with another page size) gets them at its next load without
//! folding the log again; a save with the plain pages of the version before compressed pages
//! reads them as they are and adds compressed ones; a save whose pages do not hold its rows is
//! folded again; and a served folder holds its pages compressed and rewrites none of its save
//! when it restarts.

use annals::log::{Log, NewEvent};
use annals::metrics::Metrics;
use annals::projection::knowledge::PAGE;
use annals::projection::save;
use annals::projection::{self, Engine, ProjectionConfig};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::compact::{fill, metric};
use super::engine::{Op, op};
use super::inproc::{append, caught_up, event, full_fold, open};
use super::view;
use crate::helpers::*;

/// Bytes of one row in a page.
const ROW_BYTES: usize = 68;

/// Saves every 3 events in pages of `page_rows` rows, read through a cache of two pages.
fn config(page_rows: u32) -> ProjectionConfig {
    ProjectionConfig {
        checkpoint_every_events: 3,
        checkpoint_every_ms: 60_000,
        batch_events: 4,
        row_page_rows: page_rows,
        row_cache_bytes: 2 * page_rows as usize * ROW_BYTES,
        ..annals::Config::defaults().unwrap().projections
    }
}

fn start(log: &Log, page_rows: u32) -> Engine {
    Engine::start(log.clone(), config(page_rows), &Metrics::new().unwrap())
        .unwrap_or_else(|e| panic!("the engine does not start: {e}"))
}

fn tree(log: &Log) -> sled::Tree {
    log.aux_tree("projections").unwrap()
}

/// The page keys of the save: (generation, rows per page, page number).
fn pages(log: &Log) -> Vec<(u32, u32, u32)> {
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    tree(log)
        .scan_prefix([PAGE])
        .map(|kv| {
            let (k, _) = kv.unwrap();
            assert_eq!(k.len(), 13, "{k:?}");
            (be(&k[1..5]), be(&k[5..9]), be(&k[9..13]))
        })
        .collect()
}

/// The engine's views against a full fold's, now and at each cut; checks the row cache.
fn compare(engine: &Engine, log: &Log, cuts: &[u64]) -> Vec<(String, Value, Value)> {
    let full = full_fold(log);
    let head = log.head().seq;
    engine.read(|k| {
        let mut out = vec![(
            "now".to_string(),
            projection::all_views(k),
            projection::all_views(&full),
        )];
        for cut in cuts {
            let seq = cut % (head + 1);
            out.push((
                format!("known at {seq}"),
                projection::all_views_as_of(k, seq),
                projection::all_views_as_of(&full, seq),
            ));
        }
        let stats = k.row_pages().expect("the engine pages its rows").stats();
        assert!(
            stats.peak_pages <= 2 && stats.pages <= 2 && stats.bound == 2,
            "pages over the bound: {stats:?}"
        );
        if k.facts().paged() > 0 {
            assert!(
                stats.misses > 0,
                "saved rows are read from pages: {stats:?}"
            );
        }
        assert_eq!(k.records().failures(), 0);
        out
    })
}

/// `n` statements that cite nothing, to fold after a save was loaded.
fn said_after(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            event(
                "statement.made",
                json!({"statement_id": format!("statement:after{i}"), "speaker": "actor:a",
                       "content": format!("said after {i}")}),
                json!([]),
            )
        })
        .collect()
}

/// Folds `ops`, restarts (the load reads the rows from the save and drops them from the
/// heap), folds a few more statements after the loaded rows, and compares at each point.
async fn paged_both_ways(
    ops: Vec<Op>,
    cuts: Vec<u64>,
    page_rows: u32,
) -> Vec<(String, Value, Value)> {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let engine = start(&log, page_rows);
    fill(&log, &ops).await;
    caught_up(&engine, &log).await;
    let mut out = compare(&engine, &log, &cuts);
    engine.shutdown().await;
    let engine = start(&log, page_rows);
    assert_eq!(engine.status()[0].replayed_since_start, 0, "the save loads");
    let facts = engine.read(|k| k.facts().len());
    for (_, _, page) in pages(&log) {
        assert!(
            (page as usize + 1) * page_rows as usize <= facts,
            "only full pages"
        );
    }
    out.extend(compare(&engine, &log, &cuts));
    append(&log, "process/p", said_after(5)).await;
    caught_up(&engine, &log).await;
    out.extend(compare(&engine, &log, &cuts));
    engine.shutdown().await;
    log.close().await;
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn rows_read_from_saved_pages_through_a_two_page_cache_answer_every_view_as_a_full_fold(
        ops in prop::collection::vec(op(), 2..24),
        cuts in prop::collection::vec(any::<u64>(), 1..4),
        page_rows in 1u32..4,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        for (when, paged, full) in rt.block_on(paged_both_ways(ops, cuts, page_rows)) {
            prop_assert_eq!(paged, full, "{}", when);
        }
    }
}

/// A folder served with pages of 2 rows, 20 statements in, stopped cleanly.
async fn saved_folder(dir: &std::path::Path) -> (Value, u64) {
    let log = open(dir);
    let engine = start(&log, 2);
    let ops: Vec<Op> = (0..20).map(|i| Op::Statement(i % 3, i)).collect();
    fill(&log, &ops).await;
    caught_up(&engine, &log).await;
    engine.shutdown().await;
    let views = engine.read(projection::all_views);
    let head = log.head().seq;
    let facts = engine.read(|k| k.facts().len()) as u32;
    let generation = save::meta(&tree(&log)).unwrap().generation;
    let want: Vec<(u32, u32, u32)> = (0..facts / 2).map(|p| (generation, 2, p)).collect();
    assert_eq!(pages(&log), want, "every full page, once");
    log.close().await;
    (views, head)
}

#[tokio::test]
async fn a_save_without_pages_gets_them_at_its_next_load_without_folding_the_log_again() {
    let dir = tempfile::tempdir().unwrap();
    let (before, _) = saved_folder(dir.path()).await;
    let log = open(dir.path());
    let written = pages(&log);
    // A layout 6 save of the version before pages: its chunks alone.
    for page in &written {
        tree(&log).remove(page_key(PAGE, *page)).unwrap();
    }
    log.sync_aux().unwrap();
    assert!(pages(&log).is_empty());
    let engine = start(&log, 2);
    assert_eq!(engine.status()[0].replayed_since_start, 0, "the save loads");
    assert_eq!(pages(&log), written, "the pages are written back");
    assert_eq!(engine.read(projection::all_views), before);
    engine.shutdown().await;
    log.close().await;
    drop(engine);

    // Another page size: the pages are written again in it, the others removed.
    let log = open(dir.path());
    let engine = start(&log, 3);
    assert_eq!(engine.status()[0].replayed_since_start, 0);
    let resized = pages(&log);
    assert!(
        !resized.is_empty() && resized.iter().all(|p| p.1 == 3),
        "{resized:?}"
    );
    assert_eq!(engine.read(projection::all_views), before);
    engine.shutdown().await;
    log.close().await;
}

/// The key of page `page` of `generation`, in pages of `rows` rows, under `prefix`.
fn page_key(prefix: u8, (generation, rows, page): (u32, u32, u32)) -> Vec<u8> {
    let mut k = vec![prefix];
    for n in [generation, rows, page] {
        k.extend_from_slice(&n.to_be_bytes());
    }
    k
}

/// The keys and values of `tree` under `prefix`.
fn entries(tree: &sled::Tree, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    tree.scan_prefix(prefix)
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

#[tokio::test]
async fn a_save_whose_page_does_not_hold_its_rows_is_folded_again() {
    let dir = tempfile::tempdir().unwrap();
    let (before, head) = saved_folder(dir.path()).await;
    let log = open(dir.path());
    let (generation, rows, page) = *pages(&log).last().unwrap();
    let key = page_key(PAGE, (generation, rows, page));
    let stored = tree(&log).get(&key).unwrap().unwrap();
    let mut plain = zstd::block::decompress(&stored, rows as usize * ROW_BYTES).unwrap();
    // Another `recorded_at` in the page's first row, in a page that still decompresses.
    plain[20] ^= 1;
    let value = zstd::block::compress(&plain, 1).unwrap();
    tree(&log).insert(key, value).unwrap();
    log.sync_aux().unwrap();
    let engine = start(&log, 2);
    caught_up(&engine, &log).await;
    assert_eq!(
        engine.status()[0].replayed_since_start,
        head,
        "folded from seq 1"
    );
    assert_eq!(engine.read(projection::all_views), before);
    engine.shutdown().await;
    log.close().await;
}

#[tokio::test]
async fn metrics_show_the_row_cache_within_its_configured_bound_over_many_more_rows() {
    let app = spawn_app_with(|mut c| {
        c.projections.checkpoint_every_events = 1;
        c.projections.row_page_rows = 2;
        c.projections.row_cache_bytes = 2 * 2 * ROW_BYTES;
        c
    })
    .await;
    app.seed().await;
    let mut head = 0;
    for n in 0..24 {
        let resp = app.append("process/ru-ua-peace", &statement(n)).await;
        let v: Value = resp.json().await.unwrap();
        head = v["events"][0]["seq"].as_u64().unwrap();
    }
    // Saved, so the rows are on pages: the views read them through the cache.
    saved_up_to(&app, head).await;
    let actor = view(&app, "/projections/actors/actor:witkoff?limit=24", head).await;
    assert_eq!(actor["events"].as_array().unwrap().len(), 24);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(metric(&text, "annals_projection_row_cache_pages") <= 2.0);
    assert!(metric(&text, "annals_projection_row_cache_misses_total") >= 12.0);
    assert!(metric(&text, "annals_projection_row_cache_evictions_total") >= 10.0);
    assert!(metric(&text, "annals_projection_row_cache_hits_total") > 0.0);
    assert!(metric(&text, "annals_projection_bytes{part=\"rows\"}") >= 0.0);
}

/// Every key and value of a stopped folder's saved fold.
fn saved_fold(dir: &std::path::Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    wait_until_released(dir);
    let db = open_store(dir);
    entries(&db.open_tree("projections").unwrap(), &[])
}

/// Waits until the server's save holds every record up to `head`.
async fn saved_up_to(app: &TestApp, head: u64) {
    for _ in 0..500 {
        let p = app.get_json("/projections").await;
        if p["projections"][0]["last_checkpoint_seq"].as_u64() >= Some(head) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the projections did not save up to seq {head}");
}

#[tokio::test]
async fn a_served_folder_holds_its_row_pages_compressed_and_a_restart_rewrites_none_of_its_save() {
    // The shipped page size, so a page compresses as it does in a served folder.
    let mut app = spawn_app().await;
    let per = app.config.projections.row_page_rows as usize;
    app.seed().await;
    let mut head = 0;
    for batch in 0..3u64 {
        let events: Vec<Value> = (0..100).map(|n| statement(batch * 100 + n)).collect();
        let resp = app
            .append("process/ru-ua-peace", &json!({"events": events}))
            .await;
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        head = v["events"][99]["seq"].as_u64().unwrap();
    }
    saved_up_to(&app, head).await;
    let mut served = Vec::new();
    app.restart_after(|dir| served = saved_fold(dir)).await;
    let pages: Vec<_> = served.iter().filter(|(k, _)| k[0] == PAGE).collect();
    assert!(pages.len() >= 2, "{} full pages", pages.len());
    let (rows, stored) = (
        pages.len() * per,
        pages.iter().map(|(_, v)| v.len()).sum::<usize>(),
    );
    // About a third, measured: a row's event id is mostly random bytes.
    assert!(
        stored * 2 < rows * ROW_BYTES,
        "{rows} rows on pages in {stored} bytes, not less than half their {} plain bytes",
        rows * ROW_BYTES
    );
    let resumed = app.get_json("/projections").await;
    assert_eq!(resumed["projections"][0]["replayed_since_start"], 0);
    let dir = app.stop().await;
    assert!(
        saved_fold(dir.path()) == served,
        "a restart with nothing new to fold leaves the save as it was"
    );
}

/// A rebuild writes its new generation a step at a time (16 batches) and pages the rows of
/// each step out, so it never holds every row of the log. With batches of one event (steps of
/// 128) and pages of 3 rows, 600 events take five steps: the online rebuild swaps in, and the
/// offline one is loaded after a restart without folding again, each answering every view, now
/// and as known before, as a full fold, and within the row cache's bound.
#[tokio::test]
async fn rebuilds_written_a_step_at_a_time_answer_every_view_as_a_full_fold() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let config = ProjectionConfig {
        batch_events: 1,
        ..config(3)
    };
    let start = || Engine::start(log.clone(), config.clone(), &Metrics::new().unwrap()).unwrap();
    let engine = start();
    append(&log, "process/p", said_after(600)).await;
    caught_up(&engine, &log).await;
    engine.rebuild("negotiation").unwrap();
    for _ in 0..600 {
        if engine.status()[0].rebuilds == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(engine.status()[0].rebuilds, 1, "the rebuild swapped in");
    let paged = engine.read(|k| k.facts().paged());
    assert!(paged >= 597, "the rebuilt rows left the heap: {paged}");
    let cuts = [1, 128, 129, 300, 599];
    for (when, got, want) in compare(&engine, &log, &cuts) {
        assert_eq!(got, want, "online rebuild, {when}");
    }
    engine.shutdown().await;

    let folded = projection::rebuild_offline(&log, &config, |_| {})
        .await
        .unwrap();
    assert_eq!(folded, 600);
    let generations: std::collections::BTreeSet<u32> = pages(&log).iter().map(|p| p.0).collect();
    assert_eq!(generations.len(), 1, "only the new generation's pages stay");
    let engine = start();
    assert_eq!(engine.status()[0].replayed_since_start, 0, "the save loads");
    for (when, got, want) in compare(&engine, &log, &cuts) {
        assert_eq!(got, want, "offline rebuild, {when}");
    }
    engine.shutdown().await;
    log.close().await;
}
