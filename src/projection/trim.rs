//! Giving the heap's free memory back to the system after the projections freed much of it:
//! loading a save, folding a long tail, swapping a rebuild in, serving views. Those decode,
//! parse and drop millions of small values on several threads; glibc keeps what they freed
//! in its arenas, so the process would go on holding tens of MiB it no longer uses (about
//! 25 MiB after the scale bench's views of a 1M-event log). `malloc_trim` returns every
//! whole free page. This module must never be called on a query's or an append's path: a
//! trim walks the heap under the allocator's locks; the follower calls it between steps.

use std::time::Duration;

/// Records folded since the last trim after which catching up is worth a trim.
pub(super) const TRIM_AFTER_RECORDS: u64 = 100_000;

/// Least time between two trims while views keep coming.
pub(super) const TRIM_EVERY: Duration = Duration::from_secs(2);

/// Returns the heap's free pages to the system (glibc's `malloc_trim`); nothing elsewhere.
pub(super) fn give_back_free_memory() {
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
