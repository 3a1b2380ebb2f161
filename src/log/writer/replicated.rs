//! The writer with the nats backend: a group is durable once the stream has stored it. The
//! group is staged as with sled (seqs, the chain, stream versions, the id index), published
//! right after this node's head (`nats::Link::publish`), and written to the local folder, the
//! node's cache of the stream, only once the stream has taken it. When the stream did not
//! take it (another node appended first, or the ack was lost), the writer catches up from the
//! stream, checking the chain, and stages the group again on the fresh state: so a stale
//! expected version is still refused, and a request whose records did land answers as the
//! duplicate of itself. A refusal (an expected version, a reference, an id) is answered only
//! once the stream is known to end at this node's head, so a node that lags never refuses
//! what the log already allows. Records other nodes appended arrive through the follower
//! (`follow`).
//! This must never write a record locally before the stream holds it at the same seq, and
//! never apply a stream record that does not continue the local chain.

use foldhash::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::super::chunk::Packer;
use super::super::merkle::Frontier;
use super::super::nats::{Link, NatsError, Outgoing, StreamRecord};
use super::super::record::{Hash, Record};
use super::super::{AppendError, Command, References, Restore};
use super::heads::StreamHead;
use super::ids::Declarations;
use super::stage::{Overlay, Stamp};
use super::{Owed, Writer, fail};

/// How long a group is retried while the stream cannot take it (no quorum, a leader
/// election: about 5 s) before its requests get 503.
const RETRY_FOR: Duration = Duration::from_secs(20);
/// The most stream records applied locally in one sled batch while catching up.
const CATCH_UP_CHUNK: u64 = 1024;

/// The stream and what the writer needs to apply records it did not stage itself.
pub(in crate::log) struct Replication {
    /// The stream.
    pub(in crate::log) link: Link,
    /// Which ids a record introduces (`event::rules::declarations`), for records of other
    /// nodes: their references were checked by the node that appended them.
    pub(in crate::log) declarations: Declarations,
    /// The stream messages' compression (`[log.nats] compression`): one zstd context for
    /// every message, used on the writer thread only.
    pub(in crate::log) packer: Option<std::cell::RefCell<Packer>>,
}

/// A group's publish, under way on the runtime.
type Publishing = JoinHandle<Result<(), NatsError>>;

/// A group staged on top of the one being published: its requests, and where it starts in
/// the overlay they share.
struct Next {
    split: Split,
    owed: Vec<Owed>,
    requests: usize,
    refused: Vec<(Command, AppendError)>,
}

/// Where the group being published ends in an overlay that goes on with the next group: what
/// writing it alone needs.
struct Split {
    records: usize,
    writes: usize,
    next_seq: u64,
    head_hash: Hash,
    frontier: Frontier,
    streams: HashMap<String, StreamHead>,
    stamp: Stamp,
}

impl Split {
    /// Marks where the group staged so far ends; its id buckets are staged as writes first,
    /// so the first group's writes hold them as it leaves them, without the next group's ids.
    fn of(overlay: &mut Overlay) -> Split {
        overlay.seal_id_buckets();
        Split {
            records: overlay.records.len(),
            writes: overlay.writes.len(),
            next_seq: overlay.next_seq,
            head_hash: overlay.head_hash,
            frontier: overlay.frontier.clone(),
            streams: overlay.streams.clone(),
            stamp: overlay.stamp.clone(),
        }
    }

    /// The first group, as an overlay of its own, taken out of the shared one, which keeps
    /// the next group. Each request's writes went in whole and in order, so the first
    /// group's are a prefix. The caller writes the first group before the next lookup, so the
    /// shared overlay also lets go of what the first group staged (ids, names, entries,
    /// stream heads, id spans it left unchanged since): lookups find them in the store. Under
    /// a steady load every group is staged meanwhile and the shared overlay is never renewed,
    /// so without this it would hold every event, id and stream of the whole run.
    fn take_first(self, overlay: &mut Overlay) -> Overlay {
        let end = self.next_seq - 1;
        overlay.ids.retain(|_, (_, p)| p.seq > end);
        overlay.names.retain(|_, (_, at)| *at > end);
        overlay.entries.retain(|_, (_, _, at)| *at > end);
        // A head the next group moved is higher than the first group's.
        overlay.streams.retain(|name, head| {
            self.streams
                .get(name)
                .is_none_or(|h| h.version() != head.version())
        });
        overlay.forget_unchanged_spans();
        Overlay {
            records: overlay.records.drain(..self.records).collect(),
            writes: overlay.writes.drain(..self.writes).collect(),
            next_seq: self.next_seq,
            head_hash: self.head_hash,
            frontier: self.frontier,
            streams: self.streams,
            stamp: self.stamp,
            ..Overlay::default()
        }
    }
}

impl Writer {
    /// Stages the group, has the stream store it, then writes it locally and answers; on a
    /// refusal, catches up and stages the same requests again. While the stream takes a
    /// group, the requests that arrive are staged on top of it (`stage_meanwhile`): the next
    /// group, published as soon as the stream has taken this one, before this one is written
    /// here. Returns a Close or Follow that arrived meanwhile, for `run` to handle next.
    pub(super) fn commit_replicated(
        &mut self,
        group: Vec<Command>,
        mut rx: Option<&mut mpsc::Receiver<Command>>,
    ) -> Option<Command> {
        let mut carry = None;
        let mut started = Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut refused = Vec::new();
        let mut overlay = self.overlay();
        let (mut owed, mut requests) = self.stage_group(group, &mut overlay, Some(&mut refused));
        // The next group's publish, when it was started before the group before it was
        // written here.
        let mut sent: Option<Result<Publishing, NatsError>> = None;
        loop {
            let flight = match sent.take() {
                Some(early) => early.map(Some),
                None => self.publish_front(&overlay, &mut refused),
            };
            let mut next = None;
            let published = match flight {
                Ok(Some(publishing)) => {
                    let receiving = if matches!(carry, Some(Command::Close(_))) {
                        None
                    } else {
                        rx.as_deref_mut()
                    };
                    let (published, staged) =
                        self.stage_meanwhile(publishing, &mut overlay, receiving, &mut carry);
                    next = staged;
                    published
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            let why = match (published, next) {
                (Ok(()), None) => {
                    self.write_group(overlay, owed, requests);
                    return carry;
                }
                (Ok(()), Some(next)) => {
                    self.metrics
                        .groups_staged_meanwhile
                        .with_label_values(&["kept"])
                        .inc();
                    let first = next.split.take_first(&mut overlay);
                    // The stream took the first group: its seqs are this node's, written next.
                    keep_following(&mut carry, Vec::new(), first.next_seq - 1);
                    // The stream holds the first group: the next one goes out at once, and
                    // is on its way while the first is written here. Not when it has
                    // refusals: they are judged once the stream is seen to end at the head.
                    let staged = !overlay.records.is_empty() || !overlay.writes.is_empty();
                    if next.refused.is_empty() && staged {
                        sent = self.send(first.next_seq - 1, &overlay.records).transpose();
                    }
                    self.write_group(first, owed, requests);
                    if self.failed.load(Ordering::Acquire) {
                        let why = "the local write failed; the append may still be stored: retry with the same event ids";
                        give_up(next.owed, next.refused, why);
                        return carry;
                    }
                    (owed, requests, refused) = (next.owed, next.requests, next.refused);
                    started = Instant::now();
                    pause = Duration::from_millis(50);
                    continue;
                }
                (Err(e), next) => {
                    // What was staged on top of this group goes back with it, after it.
                    if let Some(next) = next {
                        self.metrics
                            .groups_staged_meanwhile
                            .with_label_values(&["restaged"])
                            .inc();
                        owed.extend(next.owed);
                        refused.extend(next.refused);
                    }
                    e
                }
            };
            tracing::debug!(error = %why, "the stream did not take the group; catching up");
            let moved = match self.catch_up() {
                Ok(moved) => moved,
                Err(CatchUp::Stream(e)) => {
                    tracing::warn!(error = %e, "cannot read the stream");
                    false
                }
                Err(CatchUp::Broken(e)) => {
                    tracing::error!(error = %e, "the stream does not continue this node's log; refusing appends");
                    self.failed.store(true, Ordering::Release);
                    let why = format!("the stream does not continue this node's log: {e}");
                    give_up(owed, refused, &why);
                    return carry;
                }
            };
            if !moved {
                if started.elapsed() > RETRY_FOR {
                    tracing::warn!(error = %why, "the stream has not taken a group for 20 s");
                    // Like a lost response: the stream may still store the group once it
                    // can, so a client's retry must carry the same event ids.
                    let why = format!(
                        "the log's stream did not confirm the append ({why}); it may still be stored: retry with the same event ids"
                    );
                    give_up(owed, refused, &why);
                    return carry;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            let runtime = self.replication.as_ref().map(|r| r.link.runtime.clone());
            let mut group: Vec<Command> = owed
                .into_iter()
                .filter_map(|o| o.into_retry(runtime.as_ref()))
                .collect();
            group.extend(refused.drain(..).map(|(cmd, _)| cmd));
            overlay = self.overlay();
            (owed, requests) = self.stage_group(group, &mut overlay, Some(&mut refused));
            // What was kept to follow and the catch-up applied is dropped here.
            keep_following(&mut carry, Vec::new(), self.head.seq);
        }
    }

    /// Waits for the publish under way. Meanwhile, the requests that arrive on `rx` (up to a
    /// group's worth) are staged on the overlay after the group being published: the next
    /// group, returned with where it starts. A Close stops that and is kept in `carry`: it goes
    /// after both groups; so do a Follow's records past the head (`keep_following`).
    fn stage_meanwhile(
        &mut self,
        mut publishing: Publishing,
        overlay: &mut Overlay,
        mut rx: Option<&mut mpsc::Receiver<Command>>,
        carry: &mut Option<Command>,
    ) -> (Result<(), NatsError>, Option<Next>) {
        let Some(runtime) = self.replication.as_ref().map(|r| r.link.runtime.clone()) else {
            return (Ok(()), None);
        };
        let mut next: Option<Next> = None;
        let mut events = 0;
        loop {
            let arrived = runtime.block_on(async {
                match rx.as_deref_mut() {
                    // The publish first: its requests wait for it.
                    Some(rx) => tokio::select! {
                        biased;
                        done = &mut publishing => Err(done),
                        cmd = rx.recv() => Ok(cmd),
                    },
                    None => Err((&mut publishing).await),
                }
            });
            let cmd = match arrived {
                Err(done) => {
                    let done = done.unwrap_or_else(|e| {
                        Err(NatsError::Publish(format!("the publish task ended: {e}")))
                    });
                    return (done, next);
                }
                Ok(Some(Command::Follow(records))) => {
                    // Most often this node's own group, echoed by the follower before its ack
                    // came back: it must not cut the next group short, so staging goes on.
                    keep_following(carry, records, self.head.seq);
                    continue;
                }
                Ok(Some(cmd @ Command::Close(_))) => {
                    // Closing: a Follow kept so far is dropped (the stream holds its records;
                    // the follower reads them again when the log is next opened).
                    *carry = Some(cmd);
                    rx = None;
                    continue;
                }
                Ok(None) => {
                    rx = None;
                    continue;
                }
                Ok(Some(cmd)) => cmd,
            };
            events += super::command_events(&cmd);
            let next = next.get_or_insert_with(|| {
                let split = Split::of(overlay);
                // Stamped when staged, as a group of its own would be.
                overlay.stamp.raise(OffsetDateTime::now_utc());
                Next {
                    split,
                    owed: Vec::new(),
                    requests: 0,
                    refused: Vec::new(),
                }
            });
            let (owed, requests) = self.stage_group(vec![cmd], overlay, Some(&mut next.refused));
            next.owed.extend(owed);
            next.requests += requests;
            if events >= self.options.max_group_events {
                rx = None;
            }
        }
    }

    /// Answers the group's refusals once the stream is seen to end at the head they were
    /// judged against, then starts publishing what it staged (None: nothing to publish).
    fn publish_front(
        &self,
        overlay: &Overlay,
        refused: &mut Vec<(Command, AppendError)>,
    ) -> Result<Option<Publishing>, NatsError> {
        if !refused.is_empty() {
            self.at_stream_end()?;
        }
        for (cmd, e) in refused.drain(..) {
            match cmd {
                Command::Append(_, reply) => self.refuse_append(reply, e),
                Command::Restore(_, reply) => {
                    let _ = reply.send(Err(e));
                }
                Command::Close(_) | Command::Follow(_) => {}
            }
        }
        if overlay.records.is_empty() && overlay.writes.is_empty() {
            return Ok(None);
        }
        self.send(self.head.seq, &overlay.records)
    }

    /// Whether the stream ends at this node's head (else the node is behind, or the stream
    /// cannot be asked).
    fn at_stream_end(&self) -> Result<(), NatsError> {
        let Some(replication) = &self.replication else {
            return Ok(());
        };
        let link = &replication.link;
        let last = link.runtime.block_on(link.last_seq())?;
        if last == self.head.seq {
            Ok(())
        } else {
            Err(NatsError::Publish(format!(
                "this node is at {} and the stream at {last}",
                self.head.seq
            )))
        }
    }

    /// Starts publishing the staged records right after seq `last`, on the runtime (None
    /// without a stream).
    fn send(
        &self,
        last: u64,
        records: &[(Hash, Vec<u8>)],
    ) -> Result<Option<Publishing>, NatsError> {
        let Some(replication) = &self.replication else {
            return Ok(None);
        };
        let mut packer = replication.packer.as_ref().map(|p| p.borrow_mut());
        let outgoing = Outgoing::new(last, records, packer.as_deref_mut())?;
        drop(packer);
        let link = replication.link.clone();
        let took = self.metrics.stream_publish_seconds.clone();
        // From here: the writer waits for the ack, the task's start on the runtime included.
        let started = Instant::now();
        Ok(Some(replication.link.runtime.spawn(async move {
            let published = link.publish(outgoing).await;
            if published.is_ok() {
                took.observe(started.elapsed().as_secs_f64());
            }
            published
        })))
    }

    /// Applies every stream record past the head, in chunks; whether there was any.
    fn catch_up(&mut self) -> Result<bool, CatchUp> {
        let Some(replication) = &self.replication else {
            return Ok(false);
        };
        let link = replication.link.clone();
        let last = link
            .runtime
            .block_on(link.last_seq())
            .map_err(CatchUp::Stream)?;
        if last <= self.head.seq {
            return Ok(false);
        }
        while self.head.seq < last {
            let from = self.head.seq + 1;
            let to = last.min(from + CATCH_UP_CHUNK - 1);
            let records = link
                .runtime
                .block_on(link.read(from, to))
                .map_err(CatchUp::Stream)?;
            self.apply(records)?;
        }
        Ok(true)
    }

    /// Records the follower read: those past the head are applied, after catching up on any
    /// the follower skipped.
    pub(super) fn follow(&mut self, records: Vec<StreamRecord>) {
        if self.failed.load(Ordering::Acquire) || self.replication.is_none() {
            return;
        }
        let head = self.head.seq;
        let records: Vec<StreamRecord> = records.into_iter().filter(|r| r.seq > head).collect();
        let Some(first) = records.first() else {
            return;
        };
        let applied = if first.seq == head + 1 {
            self.apply(records)
        } else {
            self.catch_up().map(|_| ())
        };
        match applied {
            Ok(()) => {}
            Err(CatchUp::Stream(e)) => tracing::warn!(error = %e, "cannot read the stream"),
            Err(CatchUp::Broken(e)) => {
                tracing::error!(error = %e, "the stream does not continue this node's log; refusing appends");
                self.failed.store(true, Ordering::Release);
            }
        }
    }

    /// Writes stream records that start right after the head, as a restore would: each must
    /// continue the chain (its `prev_hash`, and its content hashing to the hash it was
    /// published with), its stream version and the registry; their ids are entered.
    fn apply(&mut self, records: Vec<StreamRecord>) -> Result<(), CatchUp> {
        let Some(replication) = &self.replication else {
            return Ok(());
        };
        let declarations = replication.declarations;
        let head = self.head.seq;
        let mut restores = Vec::with_capacity(records.len());
        for r in records.into_iter().filter(|r| r.seq > head) {
            let record: Record = serde_json::from_slice(&r.bytes)
                .map_err(|e| CatchUp::Broken(format!("stream message {}: {e}", r.seq)))?;
            if record.seq != r.seq {
                return Err(CatchUp::Broken(format!(
                    "stream message {} holds the record of seq {}",
                    r.seq, record.seq
                )));
            }
            let declares = declarations(&record.event_type, &record.data, "");
            restores.push(Restore {
                record,
                hash: r.hash,
                refs: References {
                    declares,
                    requires: Vec::new(),
                },
            });
        }
        if restores.is_empty() {
            return Ok(());
        }
        let mut overlay = self.overlay();
        self.stage_restore(restores, &mut overlay)
            .map_err(|e| CatchUp::Broken(e.to_string()))?;
        self.write_group(overlay, Vec::new(), 0);
        if self.failed.load(Ordering::Acquire) {
            return Err(CatchUp::Broken("the local write failed".into()));
        }
        Ok(())
    }
}

/// Keeps, in `carry`, the followed `records` past `held`, after any kept before, and drops
/// those kept before that `held` now covers (`records` empty: only that). `held` is
/// the last seq this node holds or is sure to write (its head; or the end of a group the
/// stream took, about to be written). Records up to it need no following. The others are
/// kept, even those in the range of a group still on its way: that group may be refused, or
/// the writer may give up on it, and then they are what `run`'s follow applies, from memory.
/// So what is kept is at most about the groups on their way, pruned as each is taken and
/// after each catch-up.
fn keep_following(carry: &mut Option<Command>, mut records: Vec<StreamRecord>, held: u64) {
    records.retain(|r| r.seq > held);
    match carry {
        Some(Command::Follow(kept)) => {
            kept.retain(|r| r.seq > held);
            kept.extend(records);
            if kept.is_empty() {
                *carry = None;
            }
        }
        Some(_) => {}
        None if records.is_empty() => {}
        None => *carry = Some(Command::Follow(records)),
    }
}

/// Answers every request of a group that cannot be made durable with 503's error.
fn give_up(owed: Vec<Owed>, refused: Vec<(Command, AppendError)>, why: &str) {
    fail(owed, why);
    for (cmd, _) in refused {
        super::refuse(cmd, why);
    }
}

/// Why catching up stopped.
enum CatchUp {
    /// The stream could not be read (retryable).
    Stream(NatsError),
    /// The stream holds something that does not continue the local log.
    Broken(String),
}

impl From<AppendError> for CatchUp {
    fn from(e: AppendError) -> CatchUp {
        CatchUp::Broken(e.to_string())
    }
}

impl Owed {
    /// The request again, to be staged on fresh state; its events may now be in the log
    /// (the stream took them though the ack was lost), so their ids are looked up even where
    /// the server minted them. Found there as this attempt staged them, they are this
    /// request's own landing, not a repeat: see [`own_landing`].
    fn into_retry(self, runtime: Option<&tokio::runtime::Handle>) -> Option<Command> {
        match self {
            Owed::Append(reply, staged, Some(mut queued)) => {
                let append = &mut queued.append;
                let minted = append.events.iter().any(|e| !e.client_id);
                for event in &mut append.events {
                    event.client_id = true;
                }
                let reply = match runtime {
                    Some(runtime) => own_landing(runtime, reply, staged, minted),
                    None => reply,
                };
                Some(Command::Append(queued, reply))
            }
            Owed::Restore(reply, _, Some(records)) => Some(Command::Restore(records, reply)),
            // Not made by the nats backend's staging, which keeps its refusals apart.
            Owed::Refused(super::Refusal::Append(reply, e)) => {
                let _ = reply.send(Err(e));
                None
            }
            Owed::Refused(super::Refusal::Restore(reply, e)) => {
                let _ = reply.send(Err(e));
                None
            }
            Owed::Append(reply, ..) => {
                let _ = reply.send(Err(AppendError::Unavailable("not kept to retry".into())));
                None
            }
            Owed::Restore(reply, ..) => {
                let _ = reply.send(Err(AppendError::Unavailable("not kept to retry".into())));
                None
            }
        }
    }
}

/// The reply of a retried request whose events were staged at `staged`'s positions by an
/// attempt whose publish may have landed. A retry answered as a duplicate of exactly those
/// events is the request's own success, answered as created (201) at the positions it landed
/// at, never as a repeat (200 `duplicate`) of an append the client made once:
/// - when every event is found at the seq and with the hash that attempt staged it with (the
///   hash covers the chain before it and the recorded time, so only that publish stored it);
/// - or when the server minted the ids: such an id can be in the log only through this
///   request's own publish.
///
/// Each attempt wraps the reply once, so a landing of any earlier attempt is recognised.
fn own_landing(
    runtime: &tokio::runtime::Handle,
    reply: super::AppendReply,
    staged: super::super::Appended,
    minted: bool,
) -> super::AppendReply {
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<super::super::Appended, AppendError>>();
    runtime.spawn(async move {
        let Ok(mut answer) = rx.await else {
            return;
        };
        // An attempt that found the events already stored staged no landing of its own.
        if let Ok(appended) = &mut answer
            && appended.duplicate
            && !staged.duplicate
            && appended.positions.len() == staged.positions.len()
        {
            let pairs = || appended.positions.iter().zip(&staged.positions);
            let same_ids = pairs().all(|(found, ours)| found.id == ours.id);
            let as_staged =
                pairs().all(|(found, ours)| found.seq == ours.seq && found.hash == ours.hash);
            if same_ids && (minted || as_staged) {
                appended.duplicate = false;
                // A duplicate answer names the stream's version now, which appends from other
                // nodes may have moved past this request's own last event.
                // A no-op's position is its registration's, in the registry's stream.
                let own = appended.positions.iter().filter(|p| !p.repeat);
                if let Some(last) = own.map(|p| p.version).max() {
                    appended.stream_version = last;
                }
            }
        }
        let _ = reply.send(answer);
    });
    tx
}

#[cfg(test)]
mod tests;
