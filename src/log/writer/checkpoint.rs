//! The checkpoint thread (sled backend): every `checkpoint_ms`, or sooner once
//! `checkpoint_bytes` of journal were written, it makes sled durable (`Durable::sync`) and
//! then reports the journal LSN that sync covered, so the journal may reuse the segments
//! whose frames are all at or below it. It runs beside the writer and the sync thread, so
//! sled's flush never waits in an acknowledgement. It must never report an LSN whose batch
//! had not been applied before its sync started, and a failed sync stops the log's appends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::durable::Durable;
use super::pipeline::MarkFailedOnPanic;

/// The running checkpoint thread and its triggers.
pub(super) struct Checkpoint {
    nudge: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Journal bytes written since the last nudge.
    since: u64,
    every_bytes: u64,
}

impl Checkpoint {
    /// Starts the thread. `applied`: the LSN of the last batch the writer applied to sled;
    /// `covered`: where it reports the LSN each checkpoint made durable.
    pub(super) fn start(
        mut durable: Durable,
        applied: Arc<AtomicU64>,
        covered: Arc<AtomicU64>,
        every: Duration,
        every_bytes: u64,
        failed: Arc<AtomicBool>,
    ) -> std::io::Result<Checkpoint> {
        let (nudge, rx) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("annals-checkpoint".into())
            .spawn(move || {
                let _guard = MarkFailedOnPanic(failed.clone());
                loop {
                    let last = match rx.recv_timeout(every) {
                        Ok(()) | Err(RecvTimeoutError::Timeout) => false,
                        Err(RecvTimeoutError::Disconnected) => true,
                    };
                    // Read before the sync starts: every batch up to it is in the tree.
                    let target = applied.load(Ordering::Acquire);
                    if target > covered.load(Ordering::Acquire) {
                        if let Err(e) = durable.sync() {
                            tracing::error!(error = %e, "checkpoint failed; refusing further appends");
                            failed.store(true, Ordering::Release);
                            return;
                        }
                        covered.store(target, Ordering::Release);
                    }
                    if last {
                        return;
                    }
                }
            })?;
        Ok(Checkpoint {
            nudge: Some(nudge),
            thread: Some(thread),
            since: 0,
            every_bytes,
        })
    }

    /// Counts journal bytes written; nudges the thread once enough were.
    pub(super) fn wrote(&mut self, bytes: u64) {
        self.since += bytes;
        if self.since >= self.every_bytes {
            self.since = 0;
            if let Some(nudge) = &self.nudge {
                // Full: a nudge is already waiting, which is as good.
                let _ = nudge.try_send(());
            }
        }
    }

    /// Stops the thread after a last checkpoint; false if it failed or panicked.
    pub(super) fn stop(&mut self) -> bool {
        self.nudge = None;
        match self.thread.take() {
            Some(thread) => thread.join().is_ok(),
            None => true,
        }
    }
}
