//! The save layout in the `projections` aux tree, in-process: `meta` is JSON
//! `{generation, seq, skipped, format, head_hash}` and each chunk, under `c` + generation (u32 BE) + first
//! seq (u64 BE), holds the compact facts folded since the previous save in their in-memory
//! form, zstd-compressed with a checksum (layout 7: a segment of the rows). A save the engine
//! cannot trust (an older layout, another history) is discarded and the log folded again from
//! seq 1 into the next generation, and so is one with a chunk that does not parse: the log is
//! the truth; a save only spares a fold from seq 1.

use annals::log::Log;
use annals::metrics::Metrics;
use annals::projection::save::{self, Meta};
use annals::projection::{self, Engine, ProjectionConfig};
use serde_json::{Value, json};

use super::inproc::{append, caught_up, event, full_fold, is_chunk_of, open};

/// The save layout this version writes.
const LAYOUT: u32 = 7;

/// Saves every 4 events, so a log of a dozen holds several chunks.
fn config() -> ProjectionConfig {
    ProjectionConfig {
        checkpoint_every_events: 4,
        checkpoint_every_ms: 60_000,
        batch_events: 4,
        ..annals::Config::defaults().unwrap().projections
    }
}

fn start(log: &Log) -> Engine {
    Engine::start(log.clone(), config(), &Metrics::new().unwrap())
        .unwrap_or_else(|e| panic!("the engine does not start: {e}"))
}

/// Lets the engine reach the head, then stops it gracefully (the follower writes its final
/// save). Returns how many records it folded and its views, read after the stop.
async fn run_to_head(engine: Engine, log: &Log) -> (u64, Value) {
    caught_up(&engine, log).await;
    engine.shutdown().await;
    (
        engine.status()[0].replayed_since_start,
        engine.read(projection::all_views),
    )
}

/// Registers a source, then appends `n` statements by `speaker` saying `says` (numbered).
/// Returns the head.
async fn tell(log: &Log, speaker: &str, says: &str, n: u64) -> u64 {
    append(
        log,
        "registry/sources",
        vec![event(
            "source.registered",
            json!({"source_id": "src:one", "kind": "wire", "publisher": "One",
                   "reliability": {"grade": "C", "basis": "unknown"}}),
            json!([]),
        )],
    )
    .await;
    for i in 0..n {
        append(
            log,
            "process/p",
            vec![event(
                "statement.made",
                json!({"statement_id": format!("statement:s{i}"), "speaker": speaker,
                       "content": format!("{says} {i}")}),
                json!([{"source": "src:one", "relation": "reports"}]),
            )],
        )
        .await;
    }
    log.head().seq
}

/// Every view, as a fresh fold of the whole log answers it.
fn fresh_views(log: &Log) -> Value {
    projection::all_views(&full_fold(log))
}

fn tree(log: &Log) -> sled::Tree {
    log.aux_tree("projections").unwrap()
}

fn meta(log: &Log) -> Meta {
    save::meta(&tree(log)).unwrap()
}

/// Every key and value of the save tree.
fn entries(log: &Log) -> Vec<(Vec<u8>, Vec<u8>)> {
    tree(log)
        .iter()
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// Asserts the tree holds `meta` and chunks of `generation` only.
fn assert_only_generation(log: &Log, generation: u32) {
    let keys: Vec<Vec<u8>> = entries(log).into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.iter().any(|k| is_chunk_of(k, generation)),
        "no chunk of generation {generation} in {keys:?}"
    );
    for k in &keys {
        assert!(
            k.as_slice() == b"meta" || is_chunk_of(k, generation),
            "stale key {k:?} beside generation {generation}"
        );
    }
}

/// Rewrites the save's meta as `old` in layout `format` (the chunks stay as they are).
fn mark_layout(log: &Log, old: &Meta, format: u32) {
    tree(log)
        .insert(
            b"meta",
            serde_json::to_vec(&Meta {
                format,
                ..old.clone()
            })
            .unwrap(),
        )
        .unwrap();
}

/// Starts the engine over a folder whose save (`old`, up to `head`) it must not load: it
/// folds the log from seq 1 to the views it answered `before`, saves them in the current
/// layout in the next generation with nothing else left, and a restart trusts that save.
async fn assert_folded_again(dir: &std::path::Path, head: u64, old: &Meta, before: &Value) {
    let log = open(dir);
    let (replayed, views) = run_to_head(start(&log), &log).await;
    assert_eq!(replayed, head, "folded from seq 1");
    assert_eq!(&views, before);
    let m = meta(&log);
    assert_eq!(
        (m.generation, m.seq, m.format),
        (old.generation + 1, head, LAYOUT)
    );
    assert_only_generation(&log, m.generation);
    log.close().await;

    let log = open(dir);
    assert_eq!(
        run_to_head(start(&log), &log).await,
        (0, before.clone()),
        "the new save is trusted"
    );
    log.close().await;
}

/// Folds `says` into a fresh folder and saves it at a graceful stop; returns the
/// folder, its views and its whole save tree.
async fn saved_folder(says: &str, n: u64) -> (tempfile::TempDir, Value, Vec<(Vec<u8>, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let head = tell(&log, "actor:a", says, n).await;
    let (_, views) = run_to_head(start(&log), &log).await;
    let m = meta(&log);
    assert_eq!((m.seq, m.format), (head, LAYOUT), "{m:?}");
    assert_only_generation(&log, m.generation);
    let stored = entries(&log);
    log.close().await;
    (dir, views, stored)
}

#[tokio::test]
async fn a_save_in_the_old_layout_is_discarded_and_the_log_folded_again() {
    let (dir, before, _) = saved_folder("said", 12).await;
    let log = open(dir.path());
    let head = log.head().seq;
    let old = meta(&log);

    // Format 1: a meta without `format`, and keys of a layout this version never writes.
    let junk: Vec<u8> = [&b"f\0\0\0\x01"[..], &1u64.to_be_bytes()].concat();
    {
        let t = tree(&log);
        t.insert(
            b"meta",
            serde_json::to_vec(&json!({"generation": old.generation, "seq": head})).unwrap(),
        )
        .unwrap();
        t.insert(&junk, &b"a copy of record 1"[..]).unwrap();
    }
    log.sync_aux().unwrap();
    assert_eq!(
        meta(&log).format,
        1,
        "a meta without `format` reads as format 1"
    );
    log.close().await;

    // The old layout is not loaded: every record is folded again, to the same views.
    let log = open(dir.path());
    let engine = start(&log);
    assert!(
        tree(&log).get(&junk).unwrap().is_none(),
        "loading removed the old layout's keys"
    );
    let (replayed, views) = run_to_head(engine, &log).await;
    assert_eq!(replayed, head);
    assert_eq!(views, before);

    // Written again in the current layout, in the next generation, with nothing else left.
    let m = meta(&log);
    let head_hash = hex::encode(log.get(head).unwrap().unwrap().hash);
    assert_eq!(
        m,
        Meta {
            generation: old.generation + 1,
            seq: head,
            skipped: 0,
            format: LAYOUT,
            head_hash: Some(head_hash),
        }
    );
    assert_only_generation(&log, m.generation);
    log.close().await;

    // And that save is trusted: a restart replays nothing.
    let log = open(dir.path());
    assert_eq!(run_to_head(start(&log), &log).await, (0, before));
    assert!(tree(&log).get(&junk).unwrap().is_none());
    log.close().await;
}

/// A saved folder whose meta says `format`: the engine must fold it again, whatever its
/// chunks and pages hold.
async fn a_save_marked_in_layout_is_folded_again(format: u32) {
    let (dir, before, _) = saved_folder("said", 12).await;
    let log = open(dir.path());
    let head = log.head().seq;
    let old = meta(&log);
    mark_layout(&log, &old, format);
    // A chunk an unfinished rebuild in that layout left under the next generation, which the
    // fold again is written to: it goes too, or the next start would load it.
    let mut leftover = vec![b'c'];
    leftover.extend_from_slice(&(old.generation + 1).to_be_bytes());
    leftover.extend_from_slice(&9999u64.to_be_bytes());
    tree(&log)
        .insert(leftover, &b"a chunk of the older layout"[..])
        .unwrap();
    log.sync_aux().unwrap();
    log.close().await;
    assert_folded_again(dir.path(), head, &old, &before).await;
}

#[tokio::test]
async fn a_save_in_layout_2_which_joined_spans_with_the_records_is_folded_again() {
    a_save_marked_in_layout_is_folded_again(2).await;
}

#[tokio::test]
async fn a_save_in_layout_3_whose_chunks_sled_compressed_is_folded_again() {
    a_save_marked_in_layout_is_folded_again(3).await;
}

#[tokio::test]
async fn a_save_in_layout_6_whose_rows_held_each_exact_time_as_a_name_is_folded_again() {
    // Layout 6's rows were 52 bytes, with `occurred` a name each: its meta says so, and its
    // chunks and pages are never read as rows of this layout.
    a_save_marked_in_layout_is_folded_again(6).await;
}

#[tokio::test]
async fn a_save_in_layout_5_which_stored_each_fact_as_text_is_folded_again_into_the_current_layout()
{
    let (dir, before, _) = saved_folder("said", 12).await;
    let log = open(dir.path());
    let head = log.head().seq;
    let old = meta(&log);
    // Layout 5 stored each fact as a postcard `StoredFact` (its texts, spans and references):
    // such a chunk is not a segment of rows, and its meta says so.
    mark_layout(&log, &old, 5);
    let chunks: Vec<Vec<u8>> = entries(&log)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k[0] == b'c')
        .collect();
    for k in chunks {
        let stored_fact_like =
            zstd::stream::encode_all(&b"\x01\x9e\x03a fact as text"[..], 3).unwrap();
        tree(&log).insert(k, stored_fact_like).unwrap();
    }
    log.sync_aux().unwrap();
    log.close().await;
    assert_folded_again(dir.path(), head, &old, &before).await;
}

#[tokio::test]
async fn every_saved_chunk_is_held_zstd_compressed_so_sleds_cache_counts_it_at_its_size_in_memory()
{
    // sled bounds its cache by the size of a page on disk; a chunk sled compressed itself
    // would take several times that in memory once read.
    let (_dir, _, stored) = saved_folder("said the same thing again and again", 12).await;
    let chunks: Vec<&Vec<u8>> = stored
        .iter()
        .filter(|(k, _)| k[0] == b'c')
        .map(|(_, v)| v)
        .collect();
    assert!(chunks.len() > 1, "{}", chunks.len());
    for value in chunks {
        assert_eq!(value[..4], [0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    }
}

/// Copies a save tree into the folder of another log, starts the engine there, and
/// checks that it folded that log from seq 1 into the generation after the copied one.
async fn assert_transplant_discarded(
    stored: Vec<(Vec<u8>, Vec<u8>)>,
    other_views: &Value,
    speaker: &str,
    says: &str,
    n: u64,
) {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let head = tell(&log, speaker, says, n).await;
    {
        let t = tree(&log);
        for (k, v) in &stored {
            t.insert(k.as_slice(), v.as_slice()).unwrap();
        }
    }
    log.sync_aux().unwrap();
    let copied = meta(&log);
    assert_eq!(copied.format, LAYOUT);

    let (replayed, views) = run_to_head(start(&log), &log).await;
    assert_eq!(replayed, head, "folded from seq 1");
    assert_eq!(views, fresh_views(&log), "the views are this log's");
    assert_ne!(&views, other_views, "nothing of the other history");
    assert!(
        views.get(format!("actors/{speaker}")).is_some(),
        "{speaker} is known: {views}"
    );
    let m = meta(&log);
    assert_eq!(
        (m.generation, m.seq, m.format),
        (copied.generation + 1, head, LAYOUT)
    );
    assert_only_generation(&log, m.generation);
    log.close().await;

    let log = open(dir.path());
    assert_eq!(
        run_to_head(start(&log), &log).await,
        (0, views),
        "the new save is trusted"
    );
    log.close().await;
}

#[tokio::test]
async fn a_save_that_does_not_match_the_log_is_discarded() {
    let (_a, a_views, stored) = saved_folder("said", 12).await;
    // The same number of records, saying other things (at other lengths).
    assert_transplant_discarded(
        stored,
        &a_views,
        "actor:b",
        "told quite another story, at greater length",
        12,
    )
    .await;
}

#[tokio::test]
async fn a_save_of_another_history_with_records_of_the_same_lengths_is_discarded() {
    let (_a, a_views, stored) = saved_folder("said", 12).await;
    // Every record has the length of its counterpart: only the chain hash tells them apart.
    assert_transplant_discarded(stored, &a_views, "actor:c", "said", 12).await;
}

#[tokio::test]
async fn a_crash_right_after_a_save_was_discarded_still_folds_every_record() {
    let (_a, _, stored) = saved_folder("said", 12).await;
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    tell(&log, "actor:b", "told another story", 20).await;
    {
        let t = tree(&log);
        for (k, v) in &stored {
            t.insert(k.as_slice(), v.as_slice()).unwrap();
        }
    }
    log.sync_aux().unwrap();
    // Start (the copied save is discarded) and stop at once as a crash would, most
    // likely before the first save of the new generation.
    start(&log).halt().await;
    log.close().await;

    let log = open(dir.path());
    let (_, views) = run_to_head(start(&log), &log).await;
    assert_eq!(
        views,
        fresh_views(&log),
        "no record was lost across the crash"
    );
    log.close().await;
}

#[tokio::test]
async fn a_save_ahead_of_the_log_is_discarded() {
    let (_a, a_views, stored) = saved_folder("said", 12).await;
    // A shorter log: the save covers seqs it does not hold.
    assert_transplant_discarded(stored, &a_views, "actor:b", "said", 5).await;
}

#[tokio::test]
async fn a_corrupt_save_chunk_is_discarded_and_the_log_folded_again() {
    let (dir, _, stored) = saved_folder("said", 12).await;
    let log = open(dir.path());
    let (key, _) = stored.iter().find(|(k, _)| k[0] == b'c').cloned().unwrap();
    tree(&log).insert(key.as_slice(), &[0xffu8; 4][..]).unwrap();
    log.sync_aux().unwrap();
    let head = log.head().seq;
    let generation = meta(&log).generation;

    // A save is derived data: the engine starts, folds the log from seq 1 and answers
    // what a fresh fold answers; the corrupt chunk is gone.
    let fresh = fresh_views(&log);
    assert_eq!(run_to_head(start(&log), &log).await, (head, fresh.clone()));
    assert!(tree(&log).get(&key).unwrap().is_none());
    assert_eq!(meta(&log).generation, generation + 1);
    assert_eq!(run_to_head(start(&log), &log).await, (0, fresh));
    log.close().await;
}

#[tokio::test]
async fn a_chunk_that_decompresses_but_does_not_follow_the_chunk_before_it_is_discarded() {
    let (dir, _, stored) = saved_folder("said", 12).await;
    let log = open(dir.path());
    let chunks: Vec<&(Vec<u8>, Vec<u8>)> = stored.iter().filter(|(k, _)| k[0] == b'c').collect();
    assert!(chunks.len() > 2, "{}", chunks.len());
    // The second chunk, well compressed, claiming to start one row later than it does.
    let (key, value) = chunks[1];
    let mut plain = zstd::stream::decode_all(value.as_slice()).unwrap();
    let first_row = u32::from_le_bytes(plain[..4].try_into().unwrap());
    plain[..4].copy_from_slice(&(first_row + 1).to_le_bytes());
    tree(&log)
        .insert(
            key.as_slice(),
            zstd::stream::encode_all(plain.as_slice(), 3).unwrap(),
        )
        .unwrap();
    log.sync_aux().unwrap();
    let head = log.head().seq;
    let generation = meta(&log).generation;

    let fresh = fresh_views(&log);
    assert_eq!(run_to_head(start(&log), &log).await, (head, fresh.clone()));
    assert_eq!(meta(&log).generation, generation + 1);
    assert_eq!(run_to_head(start(&log), &log).await, (0, fresh));
    log.close().await;
}

#[tokio::test]
async fn a_crash_after_a_rebuild_wrote_its_generation_but_before_the_flip_keeps_the_old_save() {
    let (dir, before, _) = saved_folder("said", 12).await;
    let log = open(dir.path());
    let old = meta(&log);
    // What a rebuild writes before it flips `meta`: the whole next generation.
    let fresh = full_fold(&log);
    save::write_generation(&tree(&log), old.generation + 1, &fresh, 0).unwrap();
    log.sync_aux().unwrap();
    assert!(
        entries(&log)
            .iter()
            .any(|(k, _)| is_chunk_of(k, old.generation + 1)),
        "the unfinished generation is on disk"
    );
    // The crash: nothing flipped. A restart resumes from the old save, replays nothing,
    // and removes the unfinished generation.
    log.close().await;
    let log = open(dir.path());
    assert_eq!(run_to_head(start(&log), &log).await, (0, before));
    assert_eq!(meta(&log), old);
    assert_only_generation(&log, old.generation);
    log.close().await;
}
