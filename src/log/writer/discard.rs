//! Freeing on another thread: a committed group's staging (its records, each with its parsed
//! payload, and their JSON) is thousands of small frees, which the writer thread would
//! otherwise do before it takes the next group. Values go to one helper thread, at most
//! [`PENDING`] groups behind, so the memory waiting to be freed stays bounded: when the helper
//! is that far behind the writer waits for it. This must never be handed anything that is
//! still in use, or anything whose drop has an effect beyond freeing memory (a reply channel,
//! a file, the store).

use std::sync::mpsc::{self, SyncSender};

/// Groups' staging handed over and not yet freed, at most.
const PENDING: usize = 2;

/// Something to free.
type Spent = Box<dyn Send>;

/// The writer's handle on the freeing thread, started on first use.
#[derive(Default)]
pub(super) struct Discard {
    tx: Option<SyncSender<Spent>>,
    /// The thread could not be started: free in place from then on.
    inline: bool,
}

impl Discard {
    /// Frees `spent` on the helper thread (in place if there is none).
    pub(super) fn drop_later(&mut self, spent: Spent) {
        if self.inline {
            return;
        }
        if self.tx.is_none() {
            let (tx, rx) = mpsc::sync_channel::<Spent>(PENDING);
            let started = std::thread::Builder::new()
                .name("annals-discard".into())
                // Ends when the writer (the only sender) is gone.
                .spawn(move || while rx.recv().is_ok() {});
            match started {
                Ok(_) => self.tx = Some(tx),
                Err(e) => {
                    tracing::warn!(error = %e, "no thread to free on; the writer frees in place");
                    self.inline = true;
                    return;
                }
            }
        }
        if let Some(tx) = &self.tx {
            // A send fails only if the helper is gone, which hands `spent` back: freed here.
            let _ = tx.send(spent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn what_is_handed_over_is_freed() {
        let mut discard = Discard::default();
        let held = Arc::new(vec![0u8; 1024]);
        for _ in 0..10 {
            discard.drop_later(Box::new(held.clone()));
        }
        // The helper frees in order; a last handover proves the earlier ones were taken.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&held) > 1 {
            assert!(std::time::Instant::now() < deadline, "never freed");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
