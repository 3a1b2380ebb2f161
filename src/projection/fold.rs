//! The fold as a rebuild runs it: records read from the log in batches, parsed in parallel on
//! the rayon pool (the costly, pure half), and inserted in seq order on the calling thread, as
//! three overlapping stages. Blocking. It must never write to the log, and never hold more than
//! a few batches in its channels.

use rayon::prelude::*;

use super::ProjectionError;
use super::fact::Fact;
use super::knowledge::Knowledge;
use crate::log::{Log, Recorded};

/// Below this many records a batch is parsed on the calling thread (the pool's hand-off would
/// cost more than it saves).
const PARALLEL_FROM: usize = 256;

/// Folds a batch of consecutive records into `k`: the records are parsed in parallel (the
/// costly, pure half of the fold), then inserted in seq order on this thread. Blocking.
fn fold_batch(k: &mut Knowledge, records: Vec<Recorded>) -> Result<(), ProjectionError> {
    for (seq, fact, record) in parse_batch(records) {
        k.apply_read(seq, fact, record)?;
    }
    Ok(())
}

/// Parses records into facts, in parallel when the batch is big enough; order is kept. Each
/// record comes back with its fact, for knowledge that keeps its records (the engine's drops
/// it once its fact is folded).
pub(super) fn parse_batch(records: Vec<Recorded>) -> Vec<(u64, Option<Fact>, sled::IVec)> {
    let parse = |r: Recorded| (r.seq, Fact::parse(r.seq, &r.bytes), r.bytes);
    if records.len() < PARALLEL_FROM {
        records.into_iter().map(parse).collect()
    } else {
        records.into_par_iter().map(parse).collect()
    }
}

/// Folds every durable record after `k.seq` into `k`, the way a rebuild does (batches of
/// `batch`, parsed in parallel), calling `progress` with the seq reached after each batch.
/// Returns how many records were folded. Blocking.
pub fn fold_log(
    log: &Log,
    k: &mut Knowledge,
    batch: usize,
    progress: impl FnMut(u64),
) -> Result<u64, ProjectionError> {
    fold_until_head(log, k, batch, u64::MAX, progress)
}

/// Folds records after `k.seq` into `k` until the head (or `limit` records), calling
/// `progress` after each batch. Blocking.
pub(super) fn fold_until_head(
    log: &Log,
    k: &mut Knowledge,
    batch: usize,
    limit: u64,
    mut progress: impl FnMut(u64),
) -> Result<u64, ProjectionError> {
    let batch = batch.max(1);
    let coming = log.head().seq.saturating_sub(k.seq).min(limit);
    if coming <= batch as u64 {
        // A short tail: one batch, no pipeline to set up.
        let (records, _) = log.read_range(k.seq + 1, batch, |_| true)?;
        let n = records.len() as u64;
        if n > 0 {
            fold_batch(k, records)?;
            progress(k.seq);
        }
        return Ok(n);
    }
    k.reserve(usize::try_from(coming).unwrap_or(0));
    // Three stages, each on its own thread, so that reading batch N+2, parsing batch N+1 (on
    // the pool) and inserting batch N overlap. The channels are short, so memory stays
    // bounded by a few batches; a failed or stopped stage closes its channel and the others
    // stop after their current batch.
    let from = k.seq + 1;
    let total = std::thread::scope(|scope| {
        let (read_tx, read_rx) = std::sync::mpsc::sync_channel::<Vec<Recorded>>(2);
        let (parsed_tx, parsed_rx) = std::sync::mpsc::sync_channel(2);
        let reader = scope.spawn(move || -> Result<(), ProjectionError> {
            let (mut next, mut total) = (from, 0u64);
            while total < limit {
                let want = usize::try_from(limit - total)
                    .unwrap_or(usize::MAX)
                    .min(batch);
                let (records, _) = log.read_range(next, want, |_| true)?;
                let Some(last) = records.last() else { break };
                next = last.seq + 1;
                total += records.len() as u64;
                if read_tx.send(records).is_err() {
                    break;
                }
            }
            Ok(())
        });
        scope.spawn(move || {
            for records in read_rx {
                if parsed_tx.send(parse_batch(records)).is_err() {
                    break;
                }
            }
        });
        let mut total = 0u64;
        for parsed in parsed_rx {
            total += parsed.len() as u64;
            for (seq, fact, record) in parsed {
                k.apply_read(seq, fact, record)?;
            }
            progress(k.seq);
        }
        reader
            .join()
            .map_err(|_| ProjectionError::Task("the log reader panicked".into()))??;
        Ok::<_, ProjectionError>(total)
    })?;
    // The index lists grew by doubling: give back what they will not use soon.
    k.shrink_to_fit();
    Ok(total)
}
