//! Giving the heap's free memory back to the system after the projections freed much of it:
//! loading a save, folding a long tail, swapping a rebuild in, serving views; and, after
//! views, making sled evict the log pages they read down to its configured bound. Those decode,
//! parse and drop millions of small values on several threads; glibc keeps what they freed
//! in its arenas, so the process would go on holding tens of MiB it no longer uses (about
//! 25 MiB after the scale bench's views of a 1M-event log). `malloc_trim` returns every
//! whole free page. A trim or a sweep must never be called on a query's or an append's path (a
//! trim walks the heap under the allocator's locks, a sweep reads sled 16k times; the
//! follower calls them between steps); only [`free_deferred`], a hand-over of one thread's
//! pending frees, runs at the end of each view. Never writes the log (the sweep reads a small
//! tree of its own).

use std::sync::OnceLock;
use std::time::Duration;

use crate::log::Log;

/// Records folded since the last trim after which catching up is worth a trim.
pub(super) const TRIM_AFTER_RECORDS: u64 = 100_000;

/// Least time between two trims while views keep coming.
pub(super) const TRIM_EVERY: Duration = Duration::from_secs(2);

/// How the binary's own allocator returns its free pages at once, when the binary said
/// ([`set_allocator_release`]).
static ALLOCATOR_RELEASE: OnceLock<fn()> = OnceLock::new();

/// Tells the projections how to make the process's allocator return its free pages now: the
/// binary links jemalloc, on which `malloc_trim` does nothing, and whose own decay gives the
/// pages a load freed back only over the next seconds (hundreds of MiB at 10M). Returns false
/// when one was set already (the first stays).
pub fn set_allocator_release(release: fn()) -> bool {
    ALLOCATOR_RELEASE.set(release).is_ok()
}

/// Returns the heap's free pages to the system (glibc's `malloc_trim`, and the allocator's
/// own release when the binary set one); nothing elsewhere.
pub(super) fn give_back_free_memory() {
    if let Some(release) = ALLOCATOR_RELEASE.get() {
        release();
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        // SAFETY: `malloc_trim` takes no pointer and only releases memory the allocator
        // holds free; it is safe to call from any thread at any time.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(
            released,
            micros = started.elapsed().as_micros() as u64,
            "projections: free heap pages given back"
        );
    }
}

/// The small tree [`sweep_store_cache`] reads, beside the log in the data folder.
const SWEEP_TREE: &str = "cache-sweep";
/// Keys of that tree: about 400 leaves of a few hundred bytes, spread over sled's 256 cache
/// shards.
const SWEEP_KEYS: u16 = 4096;
/// Reads of each key per sweep: enough that every shard takes in 64 accesses at least.
const SWEEP_PASSES: usize = 4;

/// Makes sled apply its cache bound now. sled 0.34 takes page accesses into 256 shards, 64 at a
/// time, and evicts only when a shard's 64 are in: after a burst of views, the log pages they
/// read (leaves of about 100 KiB) stay in memory, tens of MiB above `[log]
/// cache_capacity_bytes`, until more accesses come to each shard. Reading a small tree of
/// tiny pages, a few times over, fills every shard's queue, so sled evicts the views' pages
/// down to the bound; the tiny pages it keeps instead cost little. Then this thread's
/// deferred frees are handed over, so the evicted pages are freed. Never writes the log.
pub(super) fn sweep_store_cache(log: &Log) {
    let Ok(tree) = log.aux_tree(SWEEP_TREE) else {
        return;
    };
    let last = (SWEEP_KEYS - 1).to_be_bytes();
    if !matches!(tree.get(last), Ok(Some(_))) {
        // Written once per folder and never synced: a lost tree is written again.
        for k in 0..SWEEP_KEYS {
            if tree.insert(k.to_be_bytes(), &[]).is_err() {
                return;
            }
        }
    }
    for _ in 0..SWEEP_PASSES {
        for k in 0..SWEEP_KEYS {
            let _ = tree.get(k.to_be_bytes());
        }
    }
    free_deferred();
}

/// Hands this thread's deferred frees (pages sled evicted while it read) to the global
/// queue and frees what is due, instead of leaving them until this thread reads sled again.
pub(crate) fn free_deferred() {
    crossbeam_epoch::pin().flush();
}

/// What a removal of save keys calls between its batches (`save::drop_generation`): sled's
/// cache back to its bound every 16 batches (a sweep reads sled 16k times), and the pages it
/// evicted freed.
pub(super) fn freeing(log: &Log) -> impl FnMut() + '_ {
    let mut batches = 0u32;
    move || {
        batches += 1;
        if batches.is_multiple_of(16) {
            sweep_store_cache(log);
        } else {
            free_deferred();
        }
    }
}
