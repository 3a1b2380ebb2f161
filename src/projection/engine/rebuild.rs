//! Rebuilding the fold from seq 1: online (beside the follower, then swapped in) and offline
//! (`annals rebuild`). Each writes a new save generation a step at a time and pages its rows
//! out as it goes, and removes the generation it replaced a batch of keys at a time, so a
//! rebuild's memory does not grow with the log. It must never write to a generation the save's
//! meta names or the follower saves to, and never swap in a state that has not caught up.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::super::fold::fold_until_head;
use super::super::knowledge::Knowledge;
use super::super::records::{CacheBound, Records};
use super::super::trim;
use super::super::{ProjectionConfig, ProjectionError, save};
use super::{Inner, blocking};
use crate::log::Log;

/// Folds from seq 1 into fresh knowledge while the old state keeps answering, writes it as a
/// new save generation, then pauses the follower, folds the last records, flips the save
/// and swaps the state in. Returns the seq swapped in.
pub(super) async fn rebuild(inner: &Arc<Inner>) -> Result<u64, ProjectionError> {
    let batch = inner.config.batch_events.max(1) * 8;
    // Only one rebuild runs at a time, and the follower saves to the generation in use: this
    // rebuild writes the next one (`prepare_generation`).
    let in_use = inner.cursor.lock().await.generation;
    let tree = inner.tree()?;
    let (t, log) = (tree.clone(), inner.log.clone());
    let generation = blocking(move || prepare_generation(&t, &log, in_use)).await?;
    // Phase 1: the bulk, with the follower running, written to the new generation a step at
    // a time (its rows then leave the heap: a rebuild does not hold every row of the log).
    let mut fresh = Knowledge::over(inner.records.clone());
    save::attach_pages(&inner.log, generation, &inner.pages, &mut fresh)?;
    loop {
        if *inner.stop.borrow() {
            return Err(ProjectionError::Task("stopped by shutdown".into()));
        }
        let (log, tree) = (inner.log.clone(), tree.clone());
        let metrics = inner.metrics.clone();
        let (k, n) = blocking(move || {
            let from = fresh.seq;
            let n = fold_until_head(&log, &mut fresh, batch, rebuild_step(batch), |_| {})?;
            metrics.applied.inc_by(n);
            save::write_step(&tree, generation, &mut fresh, from)?;
            trim::sweep_store_cache(&log);
            trim::give_back_free_memory();
            Ok((fresh, n))
        })
        .await?;
        fresh = k;
        if n == 0 {
            break;
        }
    }
    let written = fresh.seq;
    // Phase 2: the hand-over, with the follower paused.
    let mut cursor = inner.cursor.lock().await;
    let i2 = inner.clone();
    let (fresh, meta) = blocking(move || {
        let mut k = fresh;
        fold_until_head(&i2.log, &mut k, batch, u64::MAX, |_| {})?;
        let tree = i2.tree()?;
        save::write_generation(&tree, generation, &k, written)?;
        let meta = save::append(&tree, &i2.log, generation, &k, k.seq)?;
        i2.log.sync_aux()?;
        let saved = k.facts().count_upto(meta.seq);
        k.page_out_current(saved)
            .map_err(|e| save::SaveError::Damaged("pages".into(), e.to_string()))?;
        Ok((k, meta))
    })
    .await?;
    let old_generation = cursor.generation;
    let seq = fresh.seq;
    // Swap under the lock; free the old state after it, off the async workers: dropping a
    // million facts takes a moment that queries must not wait for.
    let old = std::mem::replace(&mut *inner.write(), fresh);
    inner.applied.send_replace(seq);
    cursor.generation = meta.generation;
    cursor.saved_seq = meta.seq;
    cursor.since_save = 0;
    cursor.last_save = Instant::now();
    inner.saved_seq.store(meta.seq, Ordering::Relaxed);
    inner.metrics.seq.set(seq as i64);
    drop(cursor);
    let tree = inner.tree()?;
    let log = inner.log.clone();
    blocking(move || {
        drop(old);
        trim::give_back_free_memory();
        save::drop_generation(&tree, old_generation, trim::freeing(&log))?;
        trim::give_back_free_memory();
        Ok(())
    })
    .await?;
    Ok(seq)
}

/// The save generation a rebuild writes, given the one the follower saves to (`in_use`):
/// the next after both it and the one the save's meta names (they differ only after a rebuild
/// that flipped the meta and then failed). Removes first what a rebuild stopped midway left of
/// it, and what a removal stopped midway left of the one before them; never a generation the
/// meta names or the follower saves to.
fn prepare_generation(tree: &sled::Tree, log: &Log, in_use: u32) -> Result<u32, ProjectionError> {
    let named = save::meta(tree)?.generation;
    let next = in_use.max(named) + 1;
    let before = in_use.min(named).checked_sub(1);
    for generation in [Some(next), before].into_iter().flatten() {
        if generation != in_use && generation != named {
            save::drop_generation(tree, generation, trim::freeing(log))?;
        }
    }
    Ok(next)
}

/// Records a rebuild folds between two writes of its new generation (16 batches: 131,072
/// records with the shipped `batch_events`): their rows (68 bytes each) are what it holds
/// beside the indexes.
fn rebuild_step(batch: usize) -> u64 {
    batch as u64 * 16
}

/// The offline rebuild (`annals rebuild`): folds the whole log of an open (idle) data folder
/// from seq 1, writes it as a new save generation and makes it current. `progress` gets
/// the seq reached after each batch. Returns how many records were folded.
pub async fn rebuild_offline(
    log: &Log,
    config: &ProjectionConfig,
    mut progress: impl FnMut(u64) + Send + 'static,
) -> Result<u64, ProjectionError> {
    let log = log.clone();
    let batch = config.batch_events.max(1) * 8;
    let pages = config.row_pages(None);
    blocking(move || {
        let tree = log.aux_tree("projections")?;
        let old = save::meta(&tree)?;
        // Nothing reads a view of this fold: the smallest cache will do.
        let bound = CacheBound {
            entries: 1,
            bytes: 1,
        };
        let mut k = Knowledge::over(Records::log(log.clone(), bound, None));
        let generation = prepare_generation(&tree, &log, old.generation)?;
        save::attach_pages(&log, generation, &pages, &mut k)?;
        // A step at a time, each written and its rows paged out, as the online rebuild does.
        let mut n = 0;
        loop {
            let from = k.seq;
            let step = fold_until_head(&log, &mut k, batch, rebuild_step(batch), &mut progress)?;
            save::write_step(&tree, generation, &mut k, from)?;
            // The step's reads left sled's cache above its bound and their pages freed late,
            // as a follower's catch-up does (see `trim`).
            trim::sweep_store_cache(&log);
            trim::give_back_free_memory();
            n += step;
            if step == 0 {
                break;
            }
        }
        save::append(&tree, &log, generation, &k, k.seq)?;
        log.sync_aux()?;
        save::drop_generation(&tree, old.generation, trim::freeing(&log))?;
        log.sync_aux()?;
        trim::give_back_free_memory();
        tracing::info!(seq = k.seq, records = n, "projections rebuilt offline");
        Ok(n)
    })
    .await
}
