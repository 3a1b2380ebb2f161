//! The append-only log on sled: one writer thread that owns every append (group commit), and
//! readers that never see a record before it is durable. With `[log] backend = "nats"` the
//! durable log is a JetStream stream (`nats`) shared by several nodes, and the sled folder is
//! this node's cache of it. The log knows the envelope and nothing of event types:
//! type-specific rules reach it as generic [`References`]. It must never expose a record
//! beyond the durable head, and never modify a stored record.

mod append;
mod chunk;
pub mod config;
mod encode;
/// Any JSON value, for property tests elsewhere that must agree with serde_json.
#[cfg(test)]
pub(crate) use encode::tests::any_json;
mod id_index;
mod journal;
mod layout;
pub mod merkle;
pub mod nats;
mod proofs;
pub mod raw;
pub mod record;
mod spin;
mod store;
pub mod stream_index;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::metrics::Metrics;
pub use append::{
    Append, AppendError, Appended, Declaration, Entry, EntryChange, EntryRule, ExpectedVersion,
    JsonText, NewEvent, Position, References, Requirement, Restore, Ticket,
};
pub use config::{Backend, Durability, LogConfig, NatsConfig};
pub use record::{GENESIS, Hash, Record, Recorded};
use store::{open_db, wait_until_released};
pub use writer::Declarations;

/// Now as the log writes timestamps (RFC 3339, UTC, six fractional digits).
pub fn now_rfc3339() -> String {
    writer::format_time(time::OffsetDateTime::now_utc())
}

/// The durable head: the last durable record's seq and hash (0 and [`GENESIS`] when empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Last durable seq.
    pub seq: u64,
    /// Its hash.
    pub hash: Hash,
}

/// A storage failure while reading.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// sled failed.
    #[error("storage error: {0}")]
    Storage(sled::Error),
    /// A tree is not in the store (sled was asked for one that has been dropped).
    #[error("the tree `{0}` is missing from the store")]
    MissingTree(String),
    /// A name that is not an auxiliary tree's (the log's own tree is never handed out).
    #[error("`{0}` is not an auxiliary tree: the log's own tree is never handed out")]
    NotAuxiliary(String),
    /// A stored value is not what the layout says (corruption).
    #[error("corrupt record at {0}")]
    Corrupt(String),
    /// Opening the store failed.
    #[error("cannot open the data folder {path}: {source}")]
    Open {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: sled::Error,
    },
    /// A size or position beyond what the log holds.
    #[error("{size} is beyond the log's head ({head}) or out of range")]
    BeyondHead {
        /// What was asked.
        size: u64,
        /// The bound.
        head: u64,
    },
    /// The log was closed (the server is shutting down).
    #[error("the log is closed")]
    Closed,
    /// The writer thread could not be started.
    #[error("cannot start the writer: {0}")]
    Writer(std::io::Error),
    /// Auxiliary writes could not be made durable (the `fdatasync` of the data file failed).
    #[error("cannot make auxiliary writes durable: {0}")]
    Sync(std::io::Error),
    /// The nats backend could not be set up.
    #[error(transparent)]
    Nats(#[from] nats::NatsError),
    /// The journal could not be written, read or applied.
    #[error(transparent)]
    Journal(journal::JournalError),
}

impl From<sled::Error> for LogError {
    fn from(e: sled::Error) -> LogError {
        match e {
            sled::Error::CollectionNotFound(name) => {
                LogError::MissingTree(String::from_utf8_lossy(&name).into_owned())
            }
            other => LogError::Storage(other),
        }
    }
}

/// A stream's name, version and last seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Name.
    pub name: String,
    /// Current (durable) version.
    pub version: u64,
    /// Seq of its last durable event.
    pub last_seq: u64,
}

pub(crate) enum Command {
    Append(
        encode::Queued,
        oneshot::Sender<Result<Appended, AppendError>>,
    ),
    Restore(Vec<Restore>, oneshot::Sender<Result<Head, AppendError>>),
    /// Finish what is queued before it, flush, and stop; later appends get `Unavailable`.
    Close(oneshot::Sender<()>),
    /// Records of the stream, read by the follower (nats backend): applied after what is
    /// queued before them, those the log holds already skipped.
    Follow(Vec<nats::StreamRecord>),
}

struct Shared {
    /// The store; `None` once the log is closed, so that handles outliving the server (a
    /// connection still draining) cannot keep the folder locked.
    store: std::sync::RwLock<Option<(sled::Db, sled::Tree)>>,
    /// The data folder (for fdatasync of auxiliary writes).
    dir: PathBuf,
    head: watch::Receiver<Head>,
    failed: Arc<AtomicBool>,
    /// The writer thread, owned by the log as mini-redis's `DbDropGuard` owns its purge task:
    /// [`Log::close`] joins it. An async lock, held across the join, so that a second close
    /// waits for the first instead of returning while the store is still held.
    writer: tokio::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The follower task of the nats backend, stopped by [`Log::close`].
    follower: Option<tokio::task::AbortHandle>,
}

/// A handle to the log: cheap to clone, shared by every reader; appends go to the writer.
///
/// The log owns its writer thread. [`Log::close`] is the one way to stop it: it returns once
/// the last group is durable and the folder is let go. Dropping every handle without closing
/// also stops the writer (its queue closes, so it flushes and ends), but nobody waits for it.
#[derive(Clone)]
pub struct Log {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Command>,
    /// The appends in flight, shared with the writer: a lone one polls instead of sleeping.
    lone: spin::Lone,
}

impl Log {
    /// Opens (or creates) the log in `dir` and starts its writer thread. `declarations` tells
    /// which ids a record introduces (`event::rules::declarations`): the log never knows event
    /// types, and needs this only to enter the ids of a folder written before ids had kinds.
    pub fn open(
        dir: &Path,
        options: LogConfig,
        metrics: Metrics,
        declarations: Declarations,
    ) -> Result<Log, LogError> {
        Self::open_with(dir, options, metrics, declarations, true)
    }

    /// Opens a log whose writer does NOT maintain the Merkle tree: proofs and roots of such a
    /// folder are wrong. Exists only so the audit benchmark can measure the tree's cost
    /// against a baseline in the same run; never use it for data.
    #[doc(hidden)]
    pub fn open_without_merkle_for_benchmarks(
        dir: &Path,
        options: LogConfig,
        metrics: Metrics,
        declarations: Declarations,
    ) -> Result<Log, LogError> {
        Self::open_with(dir, options, metrics, declarations, false)
    }

    fn open_with(
        dir: &Path,
        options: LogConfig,
        metrics: Metrics,
        declarations: Declarations,
        merkle: bool,
    ) -> Result<Log, LogError> {
        // Before the folder is locked: a bad URL or credentials file is a start-up error.
        let link = match options.backend {
            Backend::Sled => None,
            Backend::Nats => {
                let config = options
                    .nats
                    .as_ref()
                    .ok_or_else(|| nats::NatsError::Connect("log.nats is not configured".into()))?;
                Some(nats::Link::connect(config)?)
            }
        };
        // With the sled backend the checkpoint makes sled durable; sled's own flusher (which
        // also cleans its segments) keeps the same pace instead of its 500 ms.
        let flush_every = match options.backend {
            Backend::Sled => options.checkpoint_ms,
            Backend::Nats => 500,
        };
        let (db, sled_compresses) =
            open_db(dir, sled::Mode::HighThroughput, &options, flush_every)?;
        let tree = db.open_tree("log")?;
        // Before anything reads the head: the groups only the journal holds go into sled.
        let lsn = recover_journal(dir, &db, &tree)?;
        // Chunks are compressed by the writer where sled does not compress pages already.
        let packer = (options.compression && !sled_compresses)
            .then(|| chunk::Packer::new(options.compression_level));
        let head = read_head(&tree)?;
        metrics.head_seq.set(head.seq as i64);
        let (head_tx, head_rx) = watch::channel(head);
        let (tx, rx) = mpsc::channel(options.queue_capacity);
        // The nats backend's stream messages: compressed by the writer, with one context.
        let stream_packer = options
            .nats
            .as_ref()
            .is_some_and(|n| n.compression)
            .then(|| std::cell::RefCell::new(chunk::Packer::new(options.compression_level)));
        let failed = Arc::new(AtomicBool::new(false));
        let lone = spin::Lone::new(options.writer_spin_us);
        let writer = writer::Writer::new(
            db.clone(),
            tree.clone(),
            dir.to_path_buf(),
            options,
            head,
            head_tx,
            failed.clone(),
            metrics,
        );
        let mut writer = writer;
        writer.merkle = merkle;
        writer.packer = packer;
        writer.lsn = lsn;
        writer.poll = spin::WriterPoll::new(lone.clone());
        writer.replication = link.clone().map(|link| writer::Replication {
            link,
            declarations,
            packer: stream_packer,
        });
        writer.load_merkle()?;
        writer.load_clock()?;
        // The one place the log is told which ids a record introduces: through the caller's
        // function, the same rules that compute an append's references.
        writer.load_ids(declarations)?;
        let thread = std::thread::Builder::new()
            .name("annals-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(LogError::Writer)?;
        let follower = link.map(|link| {
            let runtime = link.runtime.clone();
            runtime
                .spawn(nats::follow(link, tx.clone(), head_rx.clone()))
                .abort_handle()
        });
        Ok(Log {
            shared: Arc::new(Shared {
                store: std::sync::RwLock::new(Some((db, tree))),
                dir: dir.to_path_buf(),
                head: head_rx,
                failed,
                writer: tokio::sync::Mutex::new(Some(thread)),
                follower,
            }),
            tx,
            lone,
        })
    }

    /// Appends one request; answers once it is durable (or refused).
    pub async fn append(&self, append: Append) -> Result<Appended, AppendError> {
        let queued = encode::Queued::of(append, self.shared.follower.is_some())?;
        let (reply, mut rx) = oneshot::channel();
        let this = self.lone.enter();
        self.tx
            .try_send(Command::Append(queued, reply))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    AppendError::Unavailable("the append queue is full; retry shortly".into())
                }
                mpsc::error::TrySendError::Closed(_) => {
                    AppendError::Unavailable("the writer has stopped".into())
                }
            })?;
        if let Some(answer) = self.lone.poll_answer(&this, &mut rx).await {
            return answer;
        }
        rx.await
            .map_err(|_| AppendError::Unavailable("the writer stopped before answering".into()))?
    }

    /// Queues an append, waiting for room instead of refusing (bulk import). Requests are
    /// taken by the writer in the order they were queued; the ticket yields the answer.
    pub async fn enqueue(&self, append: Append) -> Result<Ticket, AppendError> {
        let queued = encode::Queued::of(append, self.shared.follower.is_some())?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Append(queued, reply))
            .await
            .map_err(|_| AppendError::Unavailable("the writer has stopped".into()))?;
        Ok(Ticket(rx))
    }

    /// Restores exported records verbatim, in one durable group.
    pub async fn restore(&self, records: Vec<Restore>) -> Result<Head, AppendError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Restore(records, reply))
            .await
            .map_err(|_| AppendError::Unavailable("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| AppendError::Unavailable("the writer stopped before answering".into()))?
    }

    /// Makes the writer finish what is queued, flush and stop, and returns once the writer
    /// thread has ended and the store (with sled's lock on the folder) is let go, even while
    /// other handles (say, a connection that has not closed yet) still exist: appends and
    /// reads through any handle fail from then on. Closing a closed log does nothing.
    pub async fn close(&self) {
        let mut writer = self.shared.writer.lock().await;
        if let Some(follower) = &self.shared.follower {
            follower.abort();
        }
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Close(reply)).await.is_ok() {
            let _ = rx.await;
        }
        let thread = writer.take();
        let store = {
            let mut store = self.shared.store.write().unwrap_or_else(|e| e.into_inner());
            store.take()
        };
        let dir = self.shared.dir.clone();
        // Joining, and dropping the last store handle (sled joins its flusher), both block.
        let released = tokio::task::spawn_blocking(move || {
            if let Some(thread) = thread
                && thread.join().is_err()
            {
                // A panicked writer has nothing left to flush; its panic was already logged.
                tracing::error!("the writer thread panicked");
            }
            drop(store);
            wait_until_released(&dir);
        })
        .await;
        if let Err(e) = released {
            tracing::error!(error = %e, "closing the log did not finish");
        }
    }

    /// A named sled tree beside the log, for state derived from it (projection checkpoints,
    /// webhook cursors). The log's own tree is never handed out.
    pub fn aux_tree(&self, name: &str) -> Result<sled::Tree, LogError> {
        if name == "log" {
            return Err(LogError::NotAuxiliary(name.into()));
        }
        let store = self.shared.store.read().unwrap_or_else(|e| e.into_inner());
        match store.as_ref() {
            Some((db, _)) => Ok(db.open_tree(name)?),
            None => Err(LogError::Closed),
        }
    }

    /// Makes every auxiliary write so far durable: sled flush, then fdatasync of the data
    /// file (as the writer does for appends). Blocking: call from `spawn_blocking` or a
    /// dedicated thread.
    pub fn sync_aux(&self) -> Result<(), LogError> {
        let db = {
            let store = self.shared.store.read().unwrap_or_else(|e| e.into_inner());
            match store.as_ref() {
                Some((db, _)) => db.clone(),
                None => return Err(LogError::Closed),
            }
        };
        db.flush()?;
        std::fs::File::open(self.shared.dir.join("db"))
            .and_then(|f| f.sync_data())
            .map_err(LogError::Sync)?;
        Ok(())
    }

    /// The tree, while the log is open. A `Tree` is a cheap handle (an `Arc`).
    fn tree(&self) -> Result<sled::Tree, LogError> {
        let store = self.shared.store.read().unwrap_or_else(|e| e.into_inner());
        store
            .as_ref()
            .map(|(_, tree)| tree.clone())
            .ok_or(LogError::Closed)
    }

    /// The durable head.
    pub fn head(&self) -> Head {
        *self.shared.head.borrow()
    }

    /// A receiver that changes whenever the durable head moves.
    pub fn subscribe(&self) -> watch::Receiver<Head> {
        self.shared.head.clone()
    }

    /// Waits until the durable head reaches `seq`.
    pub async fn wait_for(&self, seq: u64) -> Head {
        let mut rx = self.subscribe();
        match rx.wait_for(|h| h.seq >= seq).await {
            Ok(h) => *h,
            Err(_) => self.head(),
        }
    }

    /// Whether the writer has failed (the process must restart before appends resume).
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Up to `limit` durable records from `from` (inclusive), in seq order, keeping those
    /// `keep` accepts. Returns the records and the seq after the last one examined.
    pub fn read_range(
        &self,
        from: u64,
        limit: usize,
        keep: impl FnMut(&Recorded) -> bool,
    ) -> Result<(Vec<Recorded>, u64), LogError> {
        self.read_range_within(from, limit, usize::MAX, keep)
    }

    /// As [`Log::read_range`], examining at most `max_examined` records: a filter that
    /// matches rarely answers with what it found so far, and the returned seq says where to
    /// go on.
    pub fn read_range_within(
        &self,
        from: u64,
        limit: usize,
        max_examined: usize,
        mut keep: impl FnMut(&Recorded) -> bool,
    ) -> Result<(Vec<Recorded>, u64), LogError> {
        let head = self.head().seq;
        let from = from.max(1);
        let mut out = Vec::new();
        let mut next = from;
        let mut examined = 0usize;
        if from > head {
            return Ok((out, next));
        }
        for item in chunk::scan(&self.tree()?, from, head) {
            let rec = item?;
            next = rec.seq + 1;
            examined += 1;
            if keep(&rec) {
                out.push(rec);
                if out.len() >= limit {
                    break;
                }
            }
            if examined >= max_examined {
                break;
            }
        }
        Ok((out, next))
    }

    /// The durable record at `seq`.
    pub fn get(&self, seq: u64) -> Result<Option<Recorded>, LogError> {
        if seq == 0 || seq > self.head().seq {
            return Ok(None);
        }
        chunk::get(&self.tree()?, seq)
    }

    /// The durable record with event id `id`.
    pub fn get_by_id(&self, id: &Uuid) -> Result<Option<Recorded>, LogError> {
        match id_index::lookup(&self.tree()?, id, true)? {
            Some(seq) => self.get(seq),
            None => Ok(None),
        }
    }

    /// The kind of a durable introduced id (as the registry stores it, e.g. "an actor"; empty
    /// for an entry from before kinds) and the seq that introduced it.
    pub fn id_kind(&self, id: &str) -> Result<Option<(String, u64)>, LogError> {
        let head = self.head().seq;
        let tree = self.tree()?;
        for namespace in layout::REGISTRY_NAMESPACES {
            let key = layout::registry_key(&format!("{namespace}{id}"));
            if let Some(v) = tree.get(&key)? {
                let (seq, kind) = layout::read_registry_value(&v).ok_or_else(|| corrupt(&key))?;
                // A group being written is not known yet.
                if seq <= head {
                    return Ok(Some((kind, seq)));
                }
            }
        }
        Ok(None)
    }

    /// A registry entry as updated so far by durable events (its registration's seq and its
    /// state), read as the writer judges a re-registration; `rule` folds the registration of a
    /// folder from before entries were kept.
    pub fn entry(
        &self,
        key: &str,
        rule: EntryRule,
    ) -> Result<Option<(u64, serde_json::Value)>, LogError> {
        let head = self.head().seq;
        let tree = self.tree()?;
        let found = writer::read_entry(&tree, key, rule)
            .map_err(|why| LogError::Corrupt(format!("registry entry {key}: {why}")))?;
        // A group being written is not known yet.
        Ok(found.filter(|(seq, _)| *seq <= head))
    }

    /// A stream's durable version and last seq, or `None` if it has no durable event: the
    /// last of its runs in the stream index, cut at the durable head (a run may be in a group
    /// that is not durable yet; at most one group's worth of runs is passed over).
    pub fn stream_info(&self, stream: &str) -> Result<Option<StreamInfo>, LogError> {
        let head = self.head().seq;
        let prefix = layout::stream_prefix(stream);
        for item in self.tree()?.scan_prefix(&prefix).rev() {
            let (k, v) = item?;
            let mut version = layout::read_u64(&k[prefix.len()..]).ok_or_else(|| corrupt(&k))?;
            let mut last = None;
            for run in stream_index::runs(&v).ok_or_else(|| corrupt(&k))? {
                if run.seq <= head {
                    let durable = (head - run.seq).min(run.len - 1);
                    last = Some((version + durable, run.seq + durable));
                }
                version += run.len;
            }
            if let Some((version, last_seq)) = last {
                return Ok(Some(StreamInfo {
                    name: stream.to_string(),
                    version,
                    last_seq,
                }));
            }
        }
        Ok(None)
    }

    /// Up to `limit` durable records of `stream` from version `from`, in version order.
    pub fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Recorded)>, LogError> {
        let head = self.head().seq;
        let from = from.max(1);
        let prefix = layout::stream_prefix(stream);
        let start = layout::stream_key(stream, from);
        let tree = self.tree()?;
        // `from` may sit inside an entry that starts before it: begin at that entry's key.
        let begin = match tree.range(prefix.clone()..=start.clone()).next_back() {
            Some(item) => item?.0.to_vec(),
            None => start,
        };
        let mut out = Vec::new();
        'entries: for item in tree.range(begin..) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let mut first = layout::read_u64(&k[prefix.len()..]).ok_or_else(|| corrupt(&k))?;
            for run in stream_index::runs(&v).ok_or_else(|| corrupt(&k))? {
                for i in from.saturating_sub(first).min(run.len)..run.len {
                    let (version, seq) = (first + i, run.seq + i);
                    if seq > head {
                        break 'entries;
                    }
                    match self.get(seq)? {
                        Some(rec) => out.push((version, rec)),
                        None => {
                            return Err(LogError::Corrupt(format!("stream {stream} v{version}")));
                        }
                    }
                    if out.len() >= limit {
                        break 'entries;
                    }
                }
                first += run.len;
            }
        }
        Ok(out)
    }

    /// Up to `limit` streams whose names start with `prefix` and sort after `after`.
    pub fn streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamInfo>, LogError> {
        // Stream names from the stream index: after each stream, seek past its entries.
        let mut key_prefix = vec![layout::STREAM];
        key_prefix.extend_from_slice(prefix.as_bytes());
        let mut start = match after {
            Some(a) if a >= prefix => layout::stream_after(a),
            _ => key_prefix.clone(),
        };
        let tree = self.tree()?;
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(item) = tree.range(start..).next() else {
                break;
            };
            let (k, _) = item?;
            if !k.starts_with(&key_prefix) || k.len() < 10 {
                break;
            }
            let name = std::str::from_utf8(&k[1..k.len() - 9]).map_err(|_| corrupt(&k))?;
            if let Some(info) = self.stream_info(name)? {
                out.push(info);
            }
            start = layout::stream_after(name);
        }
        Ok(out)
    }
}

impl From<id_index::LookupError> for LogError {
    fn from(e: id_index::LookupError) -> LogError {
        match e {
            id_index::LookupError::Store(e) => LogError::Storage(e),
            id_index::LookupError::Corrupt(c) => corrupt(&c.key),
        }
    }
}

fn corrupt(key: &[u8]) -> LogError {
    LogError::Corrupt(format!("key {}", String::from_utf8_lossy(key)))
}

/// Applies the journal's groups that sled does not hold (`journal::recover`), then makes sled
/// durable; returns the journal LSN of the last group sled holds.
fn recover_journal(dir: &Path, db: &sled::Db, tree: &sled::Tree) -> Result<u64, LogError> {
    journal::recover(dir, tree, || {
        writer::durable::Durable::new(db.clone(), dir.to_path_buf(), true)
            .sync()
            .map_err(LogError::Sync)
    })
}

/// Reads the head key (or the empty head).
fn read_head(tree: &sled::Tree) -> Result<Head, LogError> {
    match tree.get(layout::HEAD)? {
        Some(v) if v.len() == 40 => {
            let seq = layout::read_u64(&v).ok_or_else(|| corrupt(layout::HEAD))?;
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&v[8..]);
            Ok(Head { seq, hash })
        }
        Some(_) => Err(corrupt(layout::HEAD)),
        None => Ok(Head {
            seq: 0,
            hash: GENESIS,
        }),
    }
}

#[cfg(test)]
mod tests;
