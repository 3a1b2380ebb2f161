//! The single writer: a dedicated thread that owns every append. Its group loop (here) drains
//! what is queued, has each request checked and staged against the log and against the
//! requests before it in the same group (`stage`), applies the whole group in one atomic sled
//! batch and hands it to the sync thread (`pipeline`) with the same batch as a journal frame;
//! the sync thread makes it durable (the frame in the journal, `journal.rs`; sled itself is
//! synced by the `checkpoint` thread through `durable`) and only then answers and moves the
//! durable head, while the writer stages the next group
//! against the tree, which holds the previous one (readers stop at the durable head). A
//! group nothing waits behind, or a large one, is written ahead instead: its frame synced
//! first, then plain sled inserts (no atomic batch, whose I/O-buffer seals cost disk waits;
//! a large group's in key order). With
//! the nats backend a group is durable once the stream has stored it (`replicated`), and the
//! writer also applies what other nodes appended. It must never answer success before the
//! group is durable, and never write part of a request.

mod checkpoint;
mod discard;
pub(in crate::log) mod durable;
mod entries;
mod heads;
mod id_spans;
mod ids;
mod known;
mod pipeline;
pub(crate) use entries::read_entry;
pub use ids::Declarations;
mod replicated;
mod stage;
pub(super) use replicated::Replication;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{mpsc, oneshot, watch};

use super::journal::{Frame, Journal};
use super::merkle::{self, Frontier};
use super::{AppendError, Appended, Command, Head, LogConfig, LogError};
use super::{chunk, layout};
use crate::metrics::Metrics;
use pipeline::{Landed, Pipeline, Refusal, Syncer};
use stage::{Overlay, Stamp};

type AppendReply = oneshot::Sender<Result<Appended, AppendError>>;
type RestoreReply = oneshot::Sender<Result<Head, AppendError>>;

/// Answers owed once the group is durable, with the request itself when it may have to be
/// staged again (the nats backend, after another node appended first).
enum Owed {
    Append(AppendReply, Appended, Option<super::encode::Queued>),
    Restore(RestoreReply, Head, Option<Vec<super::Restore>>),
    /// A refusal, answered in the group's turn: it may rest on a group not yet durable.
    Refused(Refusal),
}

pub(super) struct Writer {
    db: sled::Db,
    tree: sled::Tree,
    options: LogConfig,
    /// The head of what is applied to sled: durable, or on its way (see `pipeline`).
    head: Head,
    failed: Arc<AtomicBool>,
    metrics: Metrics,
    /// Stream heads already looked up or written; the writer is the only one who changes
    /// them. At most `[log] stream_heads`.
    streams: heads::StreamHeads,
    /// Makes applied groups durable, moves the durable head, answers.
    pipeline: Pipeline,
    /// Whether the queue was empty when the group being committed was closed: then nothing
    /// waits to be staged while it syncs, and the writer may sync it itself (`pipeline`).
    quiet: bool,
    /// `recorded_at` never goes backwards, even if the wall clock does: seeded from the head
    /// record on open (`load_clock`), raised by every group, never lowered.
    last_recorded_at: OffsetDateTime,
    /// The Merkle right edge of the durable log.
    frontier: Frontier,
    /// Whether the Merkle tree is maintained (always, except in the audit benchmark's
    /// baseline run).
    pub(super) merkle: bool,
    /// Compresses chunks, in a folder whose pages sled does not compress.
    pub(super) packer: Option<chunk::Packer>,
    /// Registry lookups already answered by the store.
    known: known::KnownIds,
    /// Frees a committed group's staging on another thread.
    discard: discard::Discard,
    /// The stream a group must reach before it is durable (`[log] backend = "nats"`).
    pub(super) replication: Option<Replication>,
    /// The data folder (the journal's).
    dir: PathBuf,
    /// The journal LSN of the last group applied to sled (from `journal::recover` on open).
    pub(super) lsn: u64,
    /// The same, for the checkpoint thread: it covers what was applied before it syncs.
    applied: Arc<AtomicU64>,
    /// Whether groups go through the journal (the sled backend).
    journaled: bool,
    /// Whether the id index may hold single `i` keys (a folder from before buckets, or a
    /// full bucket's overflow): then an id missing from its bucket is looked up there too.
    pub(super) singles: bool,
    /// How the writer waits for its next command: polling while at most one append is in
    /// flight and polling pays (`spin.rs`), else asleep.
    pub(super) poll: super::spin::WriterPoll,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        db: sled::Db,
        tree: sled::Tree,
        dir: PathBuf,
        options: LogConfig,
        head: Head,
        head_tx: watch::Sender<Head>,
        failed: Arc<AtomicBool>,
        metrics: Metrics,
    ) -> Writer {
        let known = known::KnownIds::new(options.known_ids, metrics.writer_known_ids.clone());
        let streams =
            heads::StreamHeads::new(options.stream_heads, metrics.writer_stream_heads.clone());
        // fdatasync is decided in `run`, once the backend is known.
        let durable = durable::Durable::new(db.clone(), dir.clone(), false);
        let syncer = Syncer::new(durable, head_tx, failed.clone(), metrics.clone());
        // A store that cannot say is treated as one that may hold them: a lookup too many,
        // never an id missed.
        let singles = super::id_index::has_singles(&tree).unwrap_or(true);
        Writer {
            db,
            tree,
            options,
            head,
            failed,
            metrics,
            streams,
            pipeline: Pipeline::Inline(Box::new(syncer)),
            quiet: false,
            last_recorded_at: OffsetDateTime::UNIX_EPOCH,
            frontier: Frontier::default(),
            merkle: true,
            packer: None,
            known,
            discard: discard::Discard::default(),
            poll: super::spin::WriterPoll::default(),
            replication: None,
            dir,
            lsn: 0,
            applied: Arc::new(AtomicU64::new(0)),
            journaled: false,
            singles,
        }
    }

    /// Loads the Merkle frontier for the durable head, building the tree from the records
    /// first if the store predates it (or lost nodes).
    pub(super) fn load_merkle(&mut self) -> Result<(), LogError> {
        if !self.merkle {
            return Ok(());
        }
        let tree = self.tree.clone();
        let node = |l: u8, i: u64| super::Log::merkle_node(&tree, l, i);
        if let Some(f) = Frontier::load(self.head.seq, node) {
            self.frontier = f;
            return Ok(());
        }
        tracing::warn!(
            records = self.head.seq,
            "building the Merkle tree from the records"
        );
        let mut frontier = Frontier::default();
        let mut batch = sled::Batch::default();
        for item in chunk::scan(&self.tree, 1, self.head.seq) {
            let rec = item?;
            for (level, index, h) in frontier.push(merkle::leaf_hash(&rec.bytes)) {
                if level >= merkle::STORED_FROM_LEVEL {
                    batch.insert(&layout::merkle_key(level, index)[..], &h[..]);
                }
            }
        }
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        self.frontier = frontier;
        Ok(())
    }

    /// Seeds `last_recorded_at` from the head record, so that neither a restart with a clock
    /// that stepped back nor one after restoring later-stamped records stamps a new record
    /// earlier than the head.
    pub(super) fn load_clock(&mut self) -> Result<(), LogError> {
        if self.head.seq == 0 {
            return Ok(());
        }
        let what = || LogError::Corrupt(format!("head record {}", self.head.seq));
        let record = chunk::get(&self.tree, self.head.seq)?
            .ok_or_else(what)?
            .record()
            .map_err(|_| what())?;
        // A restore keeps a stamp that does not parse (as it does for the clock), so such a
        // head only leaves the clock where it is; it must not keep the log from opening.
        match OffsetDateTime::parse(&record.recorded_at, &Rfc3339) {
            Ok(at) => self.last_recorded_at = self.last_recorded_at.max(at),
            Err(e) => tracing::warn!(
                seq = self.head.seq,
                recorded_at = %record.recorded_at,
                error = %e,
                "the head record's recorded_at does not parse"
            ),
        }
        Ok(())
    }

    /// Runs until every sender is gone, one group at a time.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        // With the nats backend the stream is the durable copy and the folder its cache
        // (`replicated`): groups are settled inline, unflushed (`Syncer::cache_only`).
        if self.replication.is_some() {
            if let Pipeline::Inline(syncer) = &mut self.pipeline {
                syncer.cache_only();
            }
        } else {
            let fsync = self.options.durability == super::Durability::Fsync;
            if let Pipeline::Inline(syncer) = &mut self.pipeline {
                syncer.fsync(fsync);
                self.applied.store(self.lsn, Ordering::Release);
                let covered = Arc::new(AtomicU64::new(self.lsn));
                let journal = Journal::new(
                    &self.dir,
                    fsync,
                    self.options.journal_segment_bytes,
                    covered.clone(),
                );
                self.journaled = syncer.use_journal(
                    journal,
                    self.applied.clone(),
                    covered,
                    std::time::Duration::from_millis(self.options.checkpoint_ms),
                    self.options.checkpoint_bytes,
                );
            }
            self.pipeline.start_thread();
        }
        let mut closed = None;
        // A Close or Follow the nats backend received while a group was on its way: it goes
        // after that group, before anything later.
        let mut carry = None;
        'outer: while let Some(first) = carry.take().or_else(|| self.poll.next(&mut rx)) {
            let mut group = Vec::new();
            let mut events = 0;
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Close(reply) => {
                        self.commit_group(group, None);
                        closed = Some(reply);
                        break 'outer;
                    }
                    // This node's own records, echoed by the follower before their ack came
                    // back: nothing to do, and no reason to cut the group short.
                    Command::Follow(records) if records.iter().all(|r| r.seq <= self.head.seq) => {}
                    // Another node's records go in at their place: after what is queued before.
                    Command::Follow(records) => {
                        self.commit_group(std::mem::take(&mut group), None);
                        events = 0;
                        self.follow(records);
                    }
                    cmd => {
                        events += command_events(&cmd);
                        group.push(cmd);
                    }
                }
                self.quiet = false;
                if events < self.options.max_group_events {
                    next = rx.try_recv().ok();
                    self.quiet = next.is_none();
                }
            }
            carry = self.commit_group(group, Some(&mut rx));
        }
        // Every landed group durable and answered before the log says it is closed.
        self.pipeline.finish();
        // Refuse whatever is still queued or arrives later: the receiver goes away below.
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            refuse(cmd, "the log is closed");
        }
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
        tracing::debug!("writer stopped");
        if let Some(reply) = closed {
            let _ = reply.send(());
        }
    }

    /// Commits a group. With the nats backend and `rx`, the requests that arrive while the
    /// stream takes it are staged meanwhile (`replicated`); a Close or Follow among them is
    /// returned, to be handled next.
    fn commit_group(
        &mut self,
        group: Vec<Command>,
        rx: Option<&mut mpsc::Receiver<Command>>,
    ) -> Option<Command> {
        if group.is_empty() {
            return None;
        }
        if self.failed.load(Ordering::Acquire) {
            for cmd in group {
                refuse(cmd, "an earlier write failed; restart the server");
            }
            return None;
        }
        if self.replication.is_some() {
            return self.commit_replicated(group, rx);
        }
        let mut overlay = self.overlay();
        let (owed, requests) = self.stage_group(group, &mut overlay, None);
        self.write_group(overlay, owed, requests);
        None
    }

    /// An empty overlay over the durable head.
    fn overlay(&self) -> Overlay {
        Overlay {
            next_seq: self.head.seq + 1,
            head_hash: self.head.hash,
            frontier: self.frontier.clone(),
            stamp: Stamp::new(OffsetDateTime::now_utc().max(self.last_recorded_at)),
            ..Overlay::default()
        }
    }

    /// Stages every request of the group on `overlay`; returns the answers owed once it is
    /// durable and the number of requests. Refusals are answered at once, unless `refused`
    /// is given (the nats backend): then each refused request is kept there with its
    /// refusal, and every staged one is kept in its answer, so that they can be staged again
    /// should the local state prove behind the stream.
    fn stage_group(
        &mut self,
        group: Vec<Command>,
        overlay: &mut Overlay,
        mut refused: Option<&mut Vec<(Command, AppendError)>>,
    ) -> (Vec<Owed>, usize) {
        let keep = refused.is_some();
        let mut owed = Vec::with_capacity(group.len());
        let requests = group.len();
        for cmd in group {
            match cmd {
                Command::Append(queued, reply) => {
                    let super::encode::Queued {
                        mut append,
                        encoded,
                        mut retry,
                    } = queued;
                    mint_ids(&mut append, retry.as_mut());
                    let aborted = append
                        .abort_on_refusal
                        .as_ref()
                        .is_some_and(|f| f.load(Ordering::Acquire));
                    let abort_flag = append.abort_on_refusal.clone();
                    let kept = keep.then(|| super::encode::Queued {
                        append: retry.unwrap_or_else(|| append.clone()),
                        encoded: encoded.clone(),
                        retry: None,
                    });
                    let staged = if aborted {
                        Err(AppendError::Aborted)
                    } else {
                        let recorded_at = overlay.stamp.text.clone();
                        self.stage_append(append, &encoded, &recorded_at, overlay)
                    };
                    if staged.is_err()
                        && let Some(flag) = &abort_flag
                    {
                        flag.store(true, Ordering::Release);
                    }
                    match (staged, kept, refused.as_deref_mut()) {
                        (Ok(appended), kept, _) => owed.push(Owed::Append(reply, appended, kept)),
                        (Err(e), Some(queued), Some(refused))
                            if !matches!(e, AppendError::Aborted) =>
                        {
                            refused.push((Command::Append(queued, reply), e));
                        }
                        // Answered in the group's turn: a refusal may rest on a group
                        // before it that is not durable yet.
                        (Err(e), ..) if !keep => {
                            owed.push(Owed::Refused(Refusal::Append(reply, e)));
                        }
                        // The nats backend keeps its refusals apart: only an abort comes
                        // here, and it rests on no record.
                        (Err(e), ..) => self.refuse_append(reply, e),
                    }
                }
                Command::Close(reply) => {
                    // `run` takes Close out of every group; answering is all that is left.
                    let _ = reply.send(());
                }
                // `run` takes these out of every group too. Applying them here would move the
                // head under the overlay; dropped, they are read again from the stream.
                Command::Follow(_) => {}
                Command::Restore(records, reply) => {
                    let kept = keep.then(|| records.clone());
                    match (self.stage_restore(records, overlay), kept) {
                        (Ok(head), kept) => owed.push(Owed::Restore(reply, head, kept)),
                        (Err(e), Some(records)) if let Some(refused) = refused.as_deref_mut() => {
                            refused.push((Command::Restore(records, reply), e));
                        }
                        (Err(e), _) if !keep => {
                            owed.push(Owed::Refused(Refusal::Restore(reply, e)));
                        }
                        (Err(e), _) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
            }
        }
        (owed, requests)
    }

    /// Answers a refused append, counting it.
    fn refuse_append(&self, reply: AppendReply, e: AppendError) {
        pipeline::refuse_append(&self.metrics, reply, e);
    }

    /// Applies a staged group to sled in one batch and hands it to the pipeline, which makes
    /// it durable, moves the durable head and answers what is owed; the next group is staged
    /// against the tree meanwhile.
    fn write_group(&mut self, mut overlay: Overlay, owed: Vec<Owed>, requests: usize) {
        let started = Instant::now();
        overlay.seal_id_buckets();
        if overlay.records.is_empty() && overlay.writes.is_empty() {
            // Only duplicates (or refusals): nothing to write, but a duplicate's original may
            // sit in a group still on its way, so they are answered in their turn.
            self.pipeline.land(
                Landed {
                    head: None,
                    owed,
                    requests,
                    events: 0,
                    started,
                    frame: None,
                    synced: false,
                },
                self.quiet,
            );
            return;
        }
        let new_head = Head {
            seq: overlay.next_seq - 1,
            hash: overlay.head_hash,
        };
        let event_count = new_head.seq - self.head.seq;
        // Ahead: nothing waits to be staged and nothing handed over is unanswered, so the
        // writer makes this group durable itself anyway. Then its frame is synced first and
        // the group goes into sled as plain inserts. An atomic batch makes sled seal its I/O
        // buffer before and after it (`pin_log`), and each seal is a write with a
        // `sync_file_range` that waits for the disk: two disk waits beside the journal's one
        // per request. Plain inserts stay in sled's buffer until it fills or the checkpoint.
        // A crash may leave any prefix of them in sled, but never more than the journal holds
        // (its frame was durable before the first insert; sled recovers a prefix of its log,
        // and the journal LSN key goes in last), and the open applies the frame again.
        // A large group goes ahead too, busy or not: its staging takes far longer than one
        // sync, so syncing it here costs little of the overlap with the next group, and its
        // inserts go in key order (sled's batch applies them in hash order, leaf after
        // random leaf).
        let ahead =
            self.journaled && (self.quiet || event_count >= AHEAD_EVENTS) && self.pipeline.idle();
        let mut batch = sled::Batch::default();
        let mut inserts: Vec<(sled::IVec, sled::IVec)> = Vec::new();
        // The same ops, as the group's journal frame (sled backend).
        let mut frame = self.journaled.then(Frame::default);
        let lsn = self.lsn + 1;
        let mut put = |k: &[u8], v: &[u8]| {
            if let Some(frame) = &mut frame {
                frame.insert(k, v);
            }
            if ahead {
                inserts.push((k.into(), v.into()));
            } else {
                batch.insert(k, v);
            }
        };
        // The group's records as a few chunk values: one sled key per chunk, not per record.
        let staged = chunk::chunks(self.head.seq + 1, &overlay.records, self.packer.as_mut())
            .map(|chunks| {
                for (k, v) in chunks {
                    put(k.as_ref(), v.as_ref());
                }
                last_write_per_key(&mut overlay.writes);
                for (k, v) in overlay.writes.drain(..) {
                    put(&k, &v);
                }
                let head = layout::head_value(new_head.seq, &new_head.hash);
                put(layout::HEAD, &head);
                // Last: a sled that kept this key after a crash kept the whole group.
                if self.journaled {
                    put(layout::JOURNAL_LSN, &lsn.to_be_bytes());
                }
            })
            .map_err(|e| e.to_string());
        let mut frame = frame.map(|f| f.seal(lsn));
        let written = staged.and_then(|()| {
            if !ahead {
                return self
                    .tree
                    .apply_batch(batch)
                    .map_err(|e| durable::sled_io(e).to_string());
            }
            if let Some(sealed) = frame.take() {
                self.pipeline.write_ahead(&sealed)?;
            }
            // In key order (stable: of two writes to one key the later must win), but the
            // head and the journal LSN key stay last (the LSN key says the whole group is
            // in sled).
            let tail = inserts.len().saturating_sub(2);
            inserts[..tail].sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in inserts {
                self.tree
                    .insert(k, v)
                    .map_err(|e| durable::sled_io(e).to_string())?;
            }
            Ok(())
        });
        if let Err(e) = written {
            tracing::error!(error = %e, "group commit failed; refusing further appends");
            self.failed.store(true, Ordering::Release);
            fail(owed, &format!("write failed: {e}"));
            return;
        }
        if self.journaled {
            self.lsn = lsn;
            self.applied.store(lsn, Ordering::Release);
        }
        // Never lowered: the stamp started from it and only rose.
        self.last_recorded_at = overlay.stamp.at;
        // The group's staged records hold every event's parsed payload: freeing them is many
        // small frees, which need not delay the next group. The tree holds the group now, so
        // the next one finds it there.
        let spent = (
            std::mem::take(&mut overlay.ids),
            std::mem::take(&mut overlay.records),
        );
        for (name, head) in std::mem::take(&mut overlay.streams) {
            self.streams.remember(&name, head);
        }
        self.frontier = overlay.frontier;
        self.head = new_head;
        self.pipeline.land(
            Landed {
                head: Some(new_head),
                owed,
                requests,
                events: event_count,
                started,
                frame,
                synced: ahead,
            },
            self.quiet,
        );
        self.discard.drop_later(Box::new(spent));
    }
}

/// Events from which a group is written ahead of sled even while appends wait (see
/// `write_group`): at about 50 µs of staging per event, such a group takes tens of times
/// longer to stage than its one sync.
const AHEAD_EVENTS: u64 = 128;

/// Drops every staged write that a later one to the same key overrides. Each append request
/// rewrites its stream's last index page, so a group of many requests to one stream (an
/// import's groups span every stream several times over) would write the page, and journal
/// it, once per request; sled's atomic batch keeps the last write of a key anyway, the plain
/// inserts of a group gone ahead did not.
fn last_write_per_key(writes: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    let mut seen = foldhash::HashSet::with_capacity_and_hasher(writes.len(), Default::default());
    let keep: Vec<bool> = writes
        .iter()
        .rev()
        .map(|(k, _)| seen.insert(k.as_slice()))
        .collect();
    let mut keep = keep.into_iter().rev();
    writes.retain(|_| keep.next().unwrap_or(true));
}

/// Gives the events the server names (no id of the client's) their ids, in the order the
/// writer stages them, in `append` and in its copy for a retry alike. So they ascend with
/// the seq: minted on the HTTP workers, they raced each other to the queue and arrived out of
/// order (12 of 640 with 4 workers), and the projections keep an id out of order in a map,
/// about 60 bytes each, where ascending ones cost a few bytes a run
/// (`projection/knowledge/ids.rs`). A retry of a request staged before keeps its ids: the
/// nats writer marks them the client's (`Owed::into_retry`).
fn mint_ids(append: &mut super::Append, mut retry: Option<&mut super::Append>) {
    for (i, event) in append.events.iter_mut().enumerate() {
        if event.client_id {
            continue;
        }
        event.id = uuid::Uuid::now_v7();
        if let Some(copy) = retry.as_deref_mut().and_then(|r| r.events.get_mut(i)) {
            copy.id = event.id;
        }
    }
}

/// Answers every owed request with 503's error (a refusal with its own).
fn fail(owed: Vec<Owed>, why: &str) {
    for o in owed {
        match o {
            Owed::Refused(Refusal::Append(reply, e)) => {
                let _ = reply.send(Err(e));
            }
            Owed::Refused(Refusal::Restore(reply, e)) => {
                let _ = reply.send(Err(e));
            }
            Owed::Append(reply, ..) => {
                let _ = reply.send(Err(AppendError::Unavailable(why.into())));
            }
            Owed::Restore(reply, ..) => {
                let _ = reply.send(Err(AppendError::Unavailable(why.into())));
            }
        }
    }
}

fn command_events(cmd: &Command) -> usize {
    match cmd {
        Command::Append(q, _) => q.append.events.len(),
        Command::Restore(r, _) => r.len(),
        Command::Close(_) | Command::Follow(_) => 0,
    }
}

fn refuse(cmd: Command, why: &str) {
    match cmd {
        Command::Append(_, reply) => {
            let _ = reply.send(Err(AppendError::Unavailable(why.into())));
        }
        Command::Restore(_, reply) => {
            let _ = reply.send(Err(AppendError::Unavailable(why.into())));
        }
        Command::Close(reply) => {
            let _ = reply.send(());
        }
        Command::Follow(_) => {}
    }
}

/// `2026-01-23T10:00:00.123456Z`: RFC 3339, UTC, always six fractional digits so that
/// timestamps sort as strings.
pub(crate) fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::last_write_per_key;

    #[test]
    fn of_several_writes_to_one_key_only_the_last_is_kept_and_the_rest_keep_their_order() {
        let w = |k: &str, v: u8| (k.as_bytes().to_vec(), vec![v]);
        let mut writes = vec![w("a", 1), w("b", 1), w("a", 2), w("c", 1), w("b", 2)];
        last_write_per_key(&mut writes);
        assert_eq!(writes, [w("a", 2), w("c", 1), w("b", 2)]);
        let mut none: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        last_write_per_key(&mut none);
        assert!(none.is_empty());
    }
}
