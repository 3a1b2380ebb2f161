//! The writer's pipeline: the writer thread stages a group and applies its batch to sled,
//! then hands it here; a sync thread makes it durable (its frame appended to the journal and
//! one `fdatasync`; sled's flush is the checkpoint thread's), moves the durable head and
//! answers its requests, while the writer already stages and applies the
//! next group against the tree, which holds the previous one. Groups that land while a sync
//! runs share the next one. A group that lands with the writer's queue empty and nothing
//! handed over still unanswered is made durable on the writer thread itself: there is no
//! next group to overlap, and a single client saves the hop to the sync thread and back;
//! such a group's frame is made durable before it is applied (`write_ahead`), as is a large
//! group's (then handed over already synced, to be answered in its turn).
//! This must never answer a request (success, duplicate or refusal:
//! each may rest on a group before it) before every group landed before it is durable, never
//! move the head past what is durable, and never acknowledge anything after a failed sync.
//! With the nats backend the stream is the durable copy and this folder a cache of it, so the
//! same work runs inline on the writer thread, with no journal and no flush per group: sled's
//! own flusher writes the folder out, and a clean stop flushes it. A panic of the sync thread
//! marks the writer failed.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::watch;

use super::super::journal::{Journal, Sealed};
use super::super::{AppendError, Head};
use super::checkpoint::Checkpoint;
use super::durable::Durable;
use super::{AppendReply, Owed, fail};
use crate::metrics::Metrics;

/// Groups applied and waiting for the sync thread, at most: none. The writer hands a group
/// over only when the sync thread is free, and meanwhile the queue fills, so the next group is
/// as large as in a writer that syncs itself. Each sled batch costs a write of its own (sled
/// seals its I/O buffer around a batch's manifest): a writer racing ahead in small groups
/// wrote and synced more often, and was slower than the writer that syncs itself.
const LANDED: usize = 0;

/// A group applied to sled, waiting to be made durable.
pub(super) struct Landed {
    /// The head after the group, if it wrote anything (a group of duplicates and refusals
    /// writes nothing but is still answered in its turn).
    pub(super) head: Option<Head>,
    /// Its answers.
    pub(super) owed: Vec<Owed>,
    /// Its requests and events, for the metrics.
    pub(super) requests: usize,
    pub(super) events: u64,
    /// When its batch was started.
    pub(super) started: Instant,
    /// Its batch as a journal frame (with the sled backend, when it wrote).
    pub(super) frame: Option<Sealed>,
    /// Whether its frame was already made durable before it was applied (`write_ahead`):
    /// then it needs no sync of its own.
    pub(super) synced: bool,
}

/// Marks the writer failed if the thread holding it panics: nothing after is acknowledged.
pub(super) struct MarkFailedOnPanic(pub(super) Arc<AtomicBool>);

impl Drop for MarkFailedOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("a writer thread panicked; refusing further appends");
            self.0.store(true, Ordering::Release);
        }
    }
}

/// Makes landed groups durable and answers them, in the order they landed.
pub(super) struct Syncer {
    durable: Durable,
    head_tx: watch::Sender<Head>,
    failed: Arc<AtomicBool>,
    metrics: Metrics,
    /// Why a sync failed: nothing landed after it is ever acknowledged.
    broken: Option<String>,
    /// The journal and its checkpoint thread (sled backend): a group is durable once its
    /// frame is; without them, once `durable` synced sled.
    journal: Option<(Journal, Checkpoint)>,
    /// Whether the folder is only a cache of a durable copy elsewhere (the nats backend: the
    /// stream stored the group before it was written here). Then a group is not flushed:
    /// a crash leaves a prefix of the groups in sled (its recovery keeps a prefix of its
    /// log), and the node reads the rest from the stream again, as a node that lags does.
    cache_only: bool,
    /// Test fault: the next settle panics, as a bug in it would.
    #[cfg(test)]
    pub(super) panic_next: bool,
}

impl Syncer {
    pub(super) fn new(
        durable: Durable,
        head_tx: watch::Sender<Head>,
        failed: Arc<AtomicBool>,
        metrics: Metrics,
    ) -> Syncer {
        Syncer {
            durable,
            head_tx,
            failed,
            metrics,
            broken: None,
            journal: None,
            cache_only: false,
            #[cfg(test)]
            panic_next: false,
        }
    }

    /// Whether a sync ends with `fdatasync` (durability `fsync` with the sled backend).
    pub(super) fn fsync(&mut self, on: bool) {
        self.durable.fsync = on;
    }

    /// From now on a group is durable without a sync here: the folder is a cache of the
    /// stream, which stored the group first (see `cache_only`). A clean stop still flushes.
    pub(super) fn cache_only(&mut self) {
        self.durable.fsync = false;
        self.cache_only = true;
    }

    /// From now on a group is durable once its journal frame is, and sled is synced by a
    /// checkpoint thread: every `every`, or once `every_bytes` of frames were written.
    /// `applied` is the writer's last applied LSN, `covered` the checkpoints' (which the
    /// journal reads to reuse segments). If the thread cannot start, groups sync sled as before.
    pub(super) fn use_journal(
        &mut self,
        journal: Journal,
        applied: Arc<AtomicU64>,
        covered: Arc<AtomicU64>,
        every: std::time::Duration,
        every_bytes: u64,
    ) -> bool {
        let started = Checkpoint::start(
            self.durable.twin(),
            applied,
            covered,
            every,
            every_bytes,
            self.failed.clone(),
        );
        match started {
            Ok(checkpoint) => {
                self.journal = Some((journal, checkpoint));
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint thread; each group syncs sled");
                false
            }
        }
    }

    /// Makes the landed groups that wrote durable: their frames in the journal and one sync,
    /// or sled's flush and sync without a journal.
    fn make_durable(&mut self, landed: &[Landed]) -> Result<(), String> {
        let Some((journal, checkpoint)) = &mut self.journal else {
            if self.cache_only {
                return Ok(());
            }
            return self.durable.sync().map_err(|e| e.to_string());
        };
        let mut bytes = 0;
        for frame in landed.iter().filter_map(|l| l.frame.as_ref()) {
            journal.write(frame).map_err(|e| e.to_string())?;
            bytes += frame.len() as u64;
        }
        journal.sync().map_err(|e| e.to_string())?;
        checkpoint.wrote(bytes);
        Ok(())
    }

    /// Writes and syncs `frame` before its group is applied to sled (the writer's quiet path,
    /// see `Pipeline::write_ahead`); a failure stops every later acknowledgement, as in
    /// `settle`.
    fn write_ahead(&mut self, frame: &Sealed) -> Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        let Some((journal, checkpoint)) = &mut self.journal else {
            return Err("no journal".into());
        };
        match journal.write(frame).and_then(|()| journal.sync()) {
            Ok(()) => {
                checkpoint.wrote(frame.len() as u64);
                Ok(())
            }
            Err(e) => Err(self.break_on(&e)),
        }
    }

    /// A sync failed: nothing is acknowledged from here on. Returns why, as requests get it.
    fn break_on(&mut self, e: &dyn std::fmt::Display) -> String {
        tracing::error!(error = %e, "group commit failed; refusing further appends");
        self.failed.store(true, Ordering::Release);
        let why = format!("write failed: {e}");
        self.broken = Some(why.clone());
        why
    }

    /// The last checkpoint, then (if every group made it) the journal removed: a clean stop
    /// leaves sled durable and no journal, which an older binary reads as before.
    fn close(&mut self) {
        let Some((mut journal, mut checkpoint)) = self.journal.take() else {
            if self.cache_only && self.broken.is_none() {
                // Not needed for what was acknowledged (the stream holds it), but a clean
                // stop leaves the cache whole, so the next start reads nothing again.
                if let Err(e) = self.durable.sync() {
                    tracing::warn!(error = %e, "the last flush failed; the next start reads the rest from the stream");
                }
            }
            return;
        };
        let stopped = checkpoint.stop();
        if !stopped || self.broken.is_some() || self.failed.load(Ordering::Acquire) {
            tracing::error!(
                "the log stopped after a failure; its journal is kept for the next open"
            );
            return;
        }
        match self.durable.sync() {
            Ok(()) => {
                if let Err(e) = journal.clear() {
                    tracing::error!(error = %e, "cannot remove the journal; the next open applies it");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the last checkpoint failed; the next open applies the journal")
            }
        }
    }

    /// One sync for every group in `landed` that wrote, then their answers in order.
    fn settle(&mut self, landed: Vec<Landed>) {
        #[cfg(test)]
        if self.panic_next {
            panic!("test fault in the sync thread");
        }
        let writes = landed.iter().any(|l| l.head.is_some() && !l.synced);
        if writes
            && self.broken.is_none()
            && let Err(e) = self.make_durable(&landed)
        {
            self.break_on(&e);
        }
        if let Some(why) = &self.broken {
            for l in landed {
                fail(l.owed, why);
            }
            return;
        }
        let mut durable = None;
        for l in &landed {
            if let Some(head) = l.head {
                let elapsed = l.started.elapsed();
                self.metrics.flush_seconds.observe(elapsed.as_secs_f64());
                self.metrics.group_requests.observe(l.requests as f64);
                self.metrics.group_events.observe(l.events as f64);
                self.metrics.events_appended.inc_by(l.events);
                tracing::debug!(
                    seq = head.seq,
                    events = l.events,
                    requests = l.requests,
                    flush_us = elapsed.as_micros() as u64,
                    "group committed"
                );
                durable = Some(head);
            }
        }
        if let Some(head) = durable {
            self.metrics.head_seq.set(head.seq as i64);
            // Readers see the new records only from here on: after they are durable. Not
            // announced yet: the followers woken by it (projections, webhooks) would be
            // queued on the async workers ahead of the answers, and a client would wait for
            // their steps before its own response is written.
            self.head_tx.send_if_modified(|h| {
                *h = head;
                false
            });
        }
        for l in landed {
            answer(&self.metrics, l.owed);
        }
        if durable.is_some() {
            // Now the followers: every reader already sees this head (above).
            self.head_tx.send_modify(|_| {});
        }
    }
}

/// Where landed groups go: a sync thread, or the writer thread itself.
pub(super) enum Pipeline {
    /// Synced on the writer thread as each group lands (the nats backend; and a writer whose
    /// sync thread could not be started).
    Inline(Box<Syncer>),
    /// Synced on the sync thread, or on the writer thread when nothing is waiting for it.
    Thread {
        tx: SyncSender<Landed>,
        thread: JoinHandle<()>,
        /// Held while a sync runs, by whichever thread runs it.
        syncer: Arc<Mutex<Syncer>>,
        /// Groups handed to the sync thread and not yet answered: only while none is may the
        /// writer sync a group itself, so answers stay in landing order.
        handed: Arc<AtomicUsize>,
    },
    /// Finished: nothing lands any more.
    Stopped,
}

impl Pipeline {
    /// Moves the syncing to its own thread (if it cannot start, it stays inline).
    pub(super) fn start_thread(&mut self) {
        let Pipeline::Inline(_) = self else {
            return;
        };
        let Pipeline::Inline(syncer) = std::mem::replace(self, Pipeline::Stopped) else {
            return;
        };
        let (tx, rx) = mpsc::sync_channel::<Landed>(LANDED);
        let failed = syncer.failed.clone();
        let shared = Arc::new(Mutex::new(*syncer));
        let handed = Arc::new(AtomicUsize::new(0));
        let (thread_syncer, thread_handed) = (shared.clone(), handed.clone());
        let spawned = std::thread::Builder::new()
            .name("annals-sync".into())
            .spawn(move || {
                let _guard = MarkFailedOnPanic(failed);
                // Ends when the writer (the only sender) lets go, after the last group.
                while let Ok(first) = rx.recv() {
                    let mut landed = vec![first];
                    landed.extend(rx.try_iter());
                    let n = landed.len();
                    match thread_syncer.lock() {
                        Ok(mut syncer) => syncer.settle(landed),
                        // The writer panicked while syncing: nothing is durable any more.
                        Err(_) => {
                            for l in landed {
                                fail(l.owed, "the sync thread stopped");
                            }
                        }
                    }
                    // Only once they are answered (the lock let go): the writer then
                    // syncs its next group after them.
                    thread_handed.fetch_sub(n, Ordering::Release);
                }
            });
        *self = match spawned {
            Ok(thread) => Pipeline::Thread {
                tx,
                thread,
                syncer: shared,
                handed,
            },
            Err(e) => {
                tracing::warn!(error = %e, "no sync thread; the writer syncs each group itself");
                // The closure that held the other reference is dropped with the failed spawn.
                match Arc::try_unwrap(shared) {
                    Ok(syncer) => Pipeline::Inline(Box::new(
                        syncer.into_inner().unwrap_or_else(|e| e.into_inner()),
                    )),
                    Err(_) => Pipeline::Stopped,
                }
            }
        };
    }

    /// Hands over a group applied to sled. `quiet`: the writer's queue was empty when the
    /// group was closed, so there is no next group to stage while this one syncs.
    pub(super) fn land(&mut self, landed: Landed, quiet: bool) {
        match self {
            Pipeline::Inline(syncer) => syncer.settle(vec![landed]),
            Pipeline::Thread {
                tx, syncer, handed, ..
            } => {
                // Nothing handed over is unanswered (the writer alone hands over, so none can
                // be on its way): synced here, it is answered after every group before it.
                if quiet && handed.load(Ordering::Acquire) == 0 {
                    match syncer.lock() {
                        Ok(mut syncer) => syncer.settle(vec![landed]),
                        Err(_) => fail(landed.owed, "the sync thread stopped"),
                    }
                    return;
                }
                handed.fetch_add(1, Ordering::AcqRel);
                // Fails only if the sync thread is gone (it panicked): nothing can be made
                // durable any more.
                if let Err(mpsc::SendError(landed)) = tx.send(landed) {
                    handed.fetch_sub(1, Ordering::AcqRel);
                    fail(landed.owed, "the sync thread stopped");
                }
            }
            Pipeline::Stopped => fail(landed.owed, "the log is closed"),
        }
    }

    /// Whether nothing handed over is still unanswered: a group made durable now, by the
    /// writer itself, is then answered after every group before it.
    pub(super) fn idle(&self) -> bool {
        match self {
            Pipeline::Inline(_) => true,
            Pipeline::Thread { handed, .. } => handed.load(Ordering::Acquire) == 0,
            Pipeline::Stopped => false,
        }
    }

    /// Makes a group's journal frame durable on the writer thread, before the group is
    /// applied to sled (only while `idle`, so frames stay in LSN order). A group applied
    /// after its frame is durable may go into sled as plain inserts instead of one atomic
    /// batch: whatever part of it sled keeps after a crash, the journal holds the whole of
    /// it, and the open applies it again (see `Writer::write_group`).
    pub(super) fn write_ahead(&mut self, frame: &Sealed) -> Result<(), String> {
        match self {
            Pipeline::Inline(syncer) => syncer.write_ahead(frame),
            Pipeline::Thread { syncer, .. } => match syncer.lock() {
                Ok(mut syncer) => syncer.write_ahead(frame),
                Err(_) => Err("the sync thread stopped".into()),
            },
            Pipeline::Stopped => Err("the log is closed".into()),
        }
    }

    /// Waits until every landed group is durable and answered, then runs the last
    /// checkpoint; nothing lands after.
    pub(super) fn finish(&mut self) {
        match std::mem::replace(self, Pipeline::Stopped) {
            Pipeline::Thread {
                tx, thread, syncer, ..
            } => {
                drop(tx);
                if thread.join().is_err() {
                    tracing::error!("the sync thread panicked");
                }
                // Poisoned: the sync thread panicked, and the journal stays for the next open.
                if let Ok(mut syncer) = syncer.lock() {
                    syncer.close();
                }
            }
            Pipeline::Inline(mut syncer) => syncer.close(),
            Pipeline::Stopped => {}
        }
    }
}

/// Answers a durable group's requests.
fn answer(metrics: &Metrics, owed: Vec<Owed>) {
    // Counted once per group (a labelled counter is a lookup under a lock), and before any
    // answer, so a client that reads the metrics after its answer sees its append counted.
    let (mut ok, mut duplicate) = (0, 0);
    for o in &owed {
        match o {
            Owed::Append(_, appended, _) if appended.duplicate => duplicate += 1,
            Owed::Append(..) => ok += 1,
            Owed::Restore(..) | Owed::Refused(..) => {}
        }
    }
    for (outcome, n) in [("ok", ok), ("duplicate", duplicate)] {
        if n > 0 {
            metrics
                .append_requests
                .with_label_values(&[outcome])
                .inc_by(n);
        }
    }
    for o in owed {
        match o {
            Owed::Append(reply, appended, _) => {
                // The client may have gone away; the append stands regardless.
                let _ = reply.send(Ok(appended));
            }
            Owed::Restore(reply, head, _) => {
                let _ = reply.send(Ok(head));
            }
            Owed::Refused(refusal) => refusal.answer(metrics),
        }
    }
}

/// A refused request, answered in its group's turn.
pub(super) enum Refusal {
    Append(AppendReply, AppendError),
    Restore(super::RestoreReply, AppendError),
}

impl Refusal {
    /// Answers with the refusal, counting a refused append.
    pub(super) fn answer(self, metrics: &Metrics) {
        match self {
            Refusal::Append(reply, e) => refuse_append(metrics, reply, e),
            Refusal::Restore(reply, e) => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// Answers a refused append, counting it.
pub(super) fn refuse_append(metrics: &Metrics, reply: AppendReply, e: AppendError) {
    let outcome = match e {
        AppendError::WrongExpectedVersion { .. }
        | AppendError::IdConflict { .. }
        | AppendError::PartialDuplicate { .. } => "conflict",
        AppendError::Unavailable(_) => "unavailable",
        _ => "rejected",
    };
    metrics.append_requests.with_label_values(&[outcome]).inc();
    let _ = reply.send(Err(e));
}

#[cfg(test)]
mod tests {
    use super::super::super::{Appended, GENESIS};
    use super::*;
    use tokio::sync::oneshot;

    fn started(dir: &std::path::Path) -> (Pipeline, watch::Receiver<Head>) {
        let db = sled::Config::new().path(dir).open().unwrap(); // ok: test code
        let (head_tx, head_rx) = watch::channel(Head {
            seq: 0,
            hash: GENESIS,
        });
        let durable = Durable::new(db, dir.to_path_buf(), true);
        let failed = Arc::new(AtomicBool::new(false));
        let syncer = Syncer::new(durable, head_tx, failed, Metrics::new().unwrap()); // ok: test code
        let mut pipeline = Pipeline::Inline(Box::new(syncer));
        pipeline.start_thread();
        assert!(matches!(pipeline, Pipeline::Thread { .. }));
        (pipeline, head_rx)
    }

    fn landed(head: Option<Head>, owed: Vec<Owed>) -> Landed {
        Landed {
            head,
            owed,
            requests: 1,
            events: head.map_or(0, |_| 1),
            started: Instant::now(),
            frame: None,
            synced: false,
        }
    }

    #[test]
    fn answers_come_in_landing_order_each_after_the_groups_before_it_are_durable() {
        answers_in_landing_order(false);
    }

    #[test]
    fn a_quiet_group_landing_behind_a_handed_over_one_is_answered_after_it() {
        answers_in_landing_order(true);
    }

    fn answers_in_landing_order(quiet: bool) {
        let dir = tempfile::tempdir().unwrap(); // ok: test code
        let (mut pipeline, head) = started(dir.path());
        let first = Head {
            seq: 1,
            hash: [1; 32],
        };
        let (ok_tx, ok_rx) = oneshot::channel();
        let (no_tx, no_rx) = oneshot::channel();
        let appended = Appended {
            positions: Vec::new(),
            stream_version: 1,
            duplicate: false,
        };
        pipeline.land(
            landed(Some(first), vec![Owed::Append(ok_tx, appended, None)]),
            false,
        );
        // A refusal staged on top of the first group (it may rest on it) writes nothing.
        let refusal = Refusal::Append(no_tx, AppendError::Aborted);
        pipeline.land(landed(None, vec![Owed::Refused(refusal)]), quiet);

        let refused = no_rx.blocking_recv().unwrap(); // ok: test code
        assert!(matches!(refused, Err(AppendError::Aborted)));
        // By the time the later refusal is answered, the group before it is durable and
        // answered.
        assert_eq!(*head.borrow(), first);
        assert!(ok_rx.blocking_recv().unwrap().is_ok()); // ok: test code
        pipeline.finish();
        assert!(matches!(pipeline, Pipeline::Stopped));
    }

    #[test]
    fn a_panic_of_the_sync_thread_marks_the_writer_failed_and_acknowledges_nothing() {
        let dir = tempfile::tempdir().unwrap(); // ok: test code
        let db = sled::Config::new().path(dir.path()).open().unwrap(); // ok: test code
        let (head_tx, head) = watch::channel(Head {
            seq: 0,
            hash: GENESIS,
        });
        let durable = Durable::new(db, dir.path().to_path_buf(), true);
        let failed = Arc::new(AtomicBool::new(false));
        let mut syncer = Syncer::new(durable, head_tx, failed.clone(), Metrics::new().unwrap()); // ok: test code
        syncer.panic_next = true;
        let mut pipeline = Pipeline::Inline(Box::new(syncer));
        pipeline.start_thread();
        let (tx, rx) = oneshot::channel();
        let appended = Appended {
            positions: Vec::new(),
            stream_version: 1,
            duplicate: false,
        };
        let first = Head {
            seq: 1,
            hash: [1; 32],
        };
        // Handed to the sync thread (not quiet), which panics in its sync.
        pipeline.land(
            landed(Some(first), vec![Owed::Append(tx, appended, None)]),
            false,
        );
        assert!(rx.blocking_recv().is_err(), "never acknowledged");
        pipeline.finish();
        assert!(
            failed.load(Ordering::Acquire),
            "the writer refuses appends from now on"
        );
        assert_eq!(head.borrow().seq, 0);
    }

    #[test]
    fn a_group_landed_after_the_pipeline_finished_is_refused_not_dropped() {
        let dir = tempfile::tempdir().unwrap(); // ok: test code
        let (mut pipeline, head) = started(dir.path());
        pipeline.finish();
        let (tx, rx) = oneshot::channel();
        let appended = Appended {
            positions: Vec::new(),
            stream_version: 1,
            duplicate: false,
        };
        let late = Head {
            seq: 1,
            hash: [1; 32],
        };
        pipeline.land(
            landed(Some(late), vec![Owed::Append(tx, appended, None)]),
            true,
        );
        assert!(matches!(
            rx.blocking_recv().unwrap(), // ok: test code
            Err(AppendError::Unavailable(_))
        ));
        assert_eq!(head.borrow().seq, 0);
    }

    #[test]
    fn a_quiet_group_with_the_sync_thread_idle_is_durable_and_answered_before_land_returns() {
        let dir = tempfile::tempdir().unwrap(); // ok: test code
        let (mut pipeline, head) = started(dir.path());
        let (tx, mut rx) = oneshot::channel();
        let appended = Appended {
            positions: Vec::new(),
            stream_version: 1,
            duplicate: false,
        };
        let first = Head {
            seq: 1,
            hash: [1; 32],
        };
        pipeline.land(
            landed(Some(first), vec![Owed::Append(tx, appended, None)]),
            true,
        );
        // No hop to the sync thread: answered, and the head moved, on the writer thread.
        assert!(matches!(rx.try_recv(), Ok(Ok(_))));
        assert_eq!(*head.borrow(), first);
        pipeline.finish();
    }
}
