//! Webhook state in the auxiliary sled tree `webhooks`: subscriptions, cursors (last delivered
//! seq), dead letters (bounded per subscription by the dispatcher), the attempts ring, and the
//! retry state of messages still being tried. Writes here are cheap sled inserts; durability
//! comes from `Log::sync_aux`, which the service batches. The two writes every delivery makes
//! (its cursor and its attempt) are held in memory instead ([`Behind`]) and written by the next
//! sync, just before its flush: each sled write costs a compressed log entry, and a cursor that
//! moves a thousand times a second needs only its last value to be durable. They were never
//! durable before that sync anyway, so a crash loses nothing it did not lose before. Reads see
//! them at once. Every write counts itself as not yet
//! durable ([`Store::sync`] covers it, [`Store::is_dirty`] tells the syncer), so no caller has
//! to remember to. Signing secrets are sealed
//! (`sealing`) on their way in and opened on their way out; a store written before secrets
//! were sealed is sealed in place at start ([`Store::seal_plaintext_secrets`]). This module
//! must never touch the log's own tree, never write a secret unsealed, never write without
//! counting the write, and never hand a secret to anything but the dispatcher and the API's
//! create/rotate answers.
//!
//! With the nats backend the tree is this node's working copy of the cluster's webhook state
//! (`cluster`): the shared kinds are pushed by each sync and other nodes' writes applied.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use super::sealing::{SealError, Sealer};
mod cluster;
mod secrets;

pub use cluster::Shared;

pub use secrets::{Sealing, Unreadable};

use super::subscription::{Attempt, DeadLetter, Subscription};

const SUB: u8 = b's';
const CURSOR: u8 = b'c';
const DEAD: u8 = b'd';
const ATTEMPT: u8 = b'a';
const RETRY: u8 = b'f';
const REDELIVERY: u8 = b'r';

/// Which delivery a retry state belongs to. A dead letter being redelivered and the cursor's
/// delivery of the same seq (after a replay) are tried separately, so they are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryKind {
    /// A message after the cursor.
    Cursor,
    /// A dead letter queued for redelivery.
    Redelivery,
}

impl RetryKind {
    fn prefix(self) -> u8 {
        match self {
            RetryKind::Cursor => RETRY,
            RetryKind::Redelivery => REDELIVERY,
        }
    }
}

/// Where a message that has failed stands in its retry schedule, kept until it settles so a
/// restarted task (or process) goes on with the same count instead of starting over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryState {
    /// Attempts made for this message so far, across restarts and rounds.
    pub attempts: u32,
    /// `attempts` when the current round of the schedule began (a resume after an ordered
    /// pause, a 410 or a redelivery starts a new round; the count goes on).
    pub round_start: u32,
    /// Unix ms before which the next attempt must not start (0: as the schedule says).
    pub next_at_ms: u64,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("webhook store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value does not decode.
    #[error("webhook store: corrupt value under {key}: {reason}")]
    Corrupt {
        /// The key, lossy.
        key: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// Encoding failed (a defect).
    #[error("webhook store: cannot encode: {0}")]
    Encode(#[from] serde_json::Error),
    /// The log (and so this store) is closed or failed.
    #[error("webhook store: {0}")]
    Log(#[from] crate::log::LogError),
    /// A stored secret does not open with the key: another key sealed it, or it was altered
    /// or copied from another subscription. Nothing is signed with it.
    #[error(
        "the webhook secret of subscription {subscription} cannot be decrypted with the key in {} \
         (webhooks.secret_key_file): {reason}; start with the key file that encrypted it (if it \
         is lost, webhooks.unreadable_secrets = \"disable\" disables such subscriptions until \
         their secrets are rotated)",
        key_file.display()
    )]
    Undecryptable {
        /// The subscription whose secret does not open.
        subscription: Uuid,
        /// The key file tried.
        key_file: PathBuf,
        /// Why (never the secret).
        reason: SealError,
    },
    /// The cluster's copy of the webhook state could not be read or written.
    #[error("webhook store: the cluster: {0}")]
    Cluster(String),
    /// A secret could not be sealed (no random nonce); nothing was written.
    #[error("webhook store: cannot encrypt a secret: {0}")]
    Seal(SealError),
}

/// Why making the webhook store durable failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The log (and so the store) failed or is closed.
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    /// The blocking task running the sync failed.
    #[error("the sync task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The writes could not be pushed to the cluster (they are pushed by the next sync).
    #[error(transparent)]
    Cluster(#[from] StoreError),
}

/// A write of the store, to wait for with [`Store::durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[must_use = "a ticket is only useful to wait until its write is durable"]
pub struct Ticket(u64);

/// The store's writes that must become durable, counted, and the count the latest completed
/// sync covered. Shared by every clone of the store.
struct Writes {
    /// A sync that read this count before it flushed made that many writes durable.
    made: AtomicU64,
    /// The count the latest completed sync covered; the syncer runs while `made` is ahead of
    /// it, and waiters for a ticket watch it.
    synced: watch::Sender<u64>,
}

/// The writes made in memory since the last sync: the cursors moved and the attempts recorded,
/// per subscription. Bounded: one cursor, and at most `keep` attempts (the ring's size; older
/// ones would leave the ring anyway), per subscription.
#[derive(Default)]
struct Behind {
    cursors: HashMap<Uuid, u64>,
    attempts: HashMap<Uuid, Run>,
}

/// The attempts of one subscription recorded since the last write-out, oldest first, each
/// with its number, and the ring's size when the last was recorded.
#[derive(Default)]
struct Run {
    keep: u64,
    items: VecDeque<(u64, Attempt)>,
}

/// The held writes and the lock that orders their write-out. The hot path (a delivery) takes
/// only `held`, for a map insert; a sync takes `writing` for as long as it writes them out to
/// sled, and so does whatever reads them or deletes a subscription, so a reader never sees a
/// value half way between memory and sled, and a delete is never undone by a write-out.
#[derive(Default)]
struct Held {
    held: Mutex<Behind>,
    writing: Mutex<()>,
}

impl Held {
    fn held(&self) -> MutexGuard<'_, Behind> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn writing(&self) -> MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A stored value of the attempts ring: one attempt (written by versions before attempts were
/// held until the sync; its number is the key's), or the run of attempts one sync wrote out,
/// each with its number (the key holds the last one).
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredAttempts {
    Run(Vec<(u64, Attempt)>),
    One(Box<Attempt>),
}

/// The `webhooks` tree, opened per use through the log: holding a `sled::Tree` would keep the
/// whole store open (and its folder locked) for as long as any clone of this lives.
#[derive(Clone)]
pub struct Store {
    log: crate::log::Log,
    /// Seals secrets before they reach sled, and opens them when a subscription is read.
    sealer: Arc<Sealer>,
    /// Every write is counted here as it is made, so durability never depends on a caller.
    writes: Arc<Writes>,
    /// Cursors and attempts not yet written to sled (the next sync writes them).
    behind: Arc<Held>,
    /// The cluster's copy, with the nats backend.
    shared: Option<Arc<Shared>>,
}

fn key(kind: u8, id: &Uuid) -> Vec<u8> {
    let mut k = Vec::with_capacity(25);
    k.push(kind);
    k.extend_from_slice(id.as_bytes());
    k
}

fn key_n(kind: u8, id: &Uuid, n: u64) -> Vec<u8> {
    let mut k = key(kind, id);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

fn decode<T: DeserializeOwned>(k: &[u8], v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        reason: e.to_string(),
    })
}

fn tail_u64(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if k.len() >= 8 {
        b.copy_from_slice(&k[k.len() - 8..]);
    }
    u64::from_be_bytes(b)
}

impl Store {
    /// Opens the store beside `log` (checking once that the tree opens), sealing secrets
    /// with `sealer`; `shared` is the cluster's copy with the nats backend.
    pub fn new(
        log: crate::log::Log,
        sealer: Sealer,
        shared: Option<Arc<Shared>>,
    ) -> Result<Store, StoreError> {
        log.aux_tree("webhooks")?;
        Ok(Store {
            log,
            sealer: Arc::new(sealer),
            writes: Arc::new(Writes {
                made: AtomicU64::new(0),
                synced: watch::channel(0).0,
            }),
            behind: Arc::new(Held::default()),
            shared,
        })
    }

    /// Counts a write just made (to be covered by the next sync); answers its ticket.
    fn wrote(&self) -> Ticket {
        Ticket(self.writes.made.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Whether some write is not yet known to be durable.
    pub fn is_dirty(&self) -> bool {
        self.writes.made.load(Ordering::SeqCst) > *self.writes.synced.borrow()
    }

    /// Waits until a sync has covered the write behind `ticket` (the syncer's, one flush +
    /// fdatasync per `cursor_sync_ms` for every waiter). Only a closed log keeps it waiting,
    /// and then the task waiting is being stopped.
    pub async fn durable(&self, ticket: Ticket) {
        let mut rx = self.writes.synced.subscribe();
        // The sender lives in `self`: this cannot fail while we hold it.
        let _ = rx.wait_for(|done| *done >= ticket.0).await;
    }

    /// Makes every write so far durable (the held cursors and attempts written out, then sled
    /// flush + fdatasync) and tells waiters.
    pub async fn sync(&self) -> Result<(), SyncError> {
        // Read before the write-out and the flush: every write counted so far was made (in
        // sled, or held) before them.
        let covered = self.writes.made.load(Ordering::SeqCst);
        let store = self.clone();
        tokio::task::spawn_blocking(move || -> Result<(), crate::log::LogError> {
            if let Err(e) = store.write_behind() {
                // A held write that cannot be written out is lost to durability, not to
                // delivery: the cursor stays behind (at least once) and the ring misses it.
                tracing::error!(error = %e, "cannot write webhook cursors and attempts");
            }
            store.log.sync_aux()
        })
        .await??;
        // In the cluster only once durable here: a node never shares what it may lose.
        self.push().await?;
        // Syncs may finish out of order (the syncer and an operator's change): keep the highest.
        self.writes.synced.send_if_modified(|done| {
            let newer = covered > *done;
            if newer {
                *done = covered;
            }
            newer
        });
        Ok(())
    }

    /// Writes the held cursors and attempts to sled (not yet durable: the caller flushes).
    /// Each subscription's attempts since the last write-out become one value, and the runs
    /// that have left the ring whole are removed.
    fn write_behind(&self) -> Result<(), StoreError> {
        let _writing = self.behind.writing();
        let Behind { cursors, attempts } = std::mem::take(&mut *self.behind.held());
        if cursors.is_empty() && attempts.is_empty() {
            return Ok(());
        }
        let tree = self.tree()?;
        for (id, seq) in cursors {
            tree.insert(key(CURSOR, &id), &seq.to_be_bytes())?;
        }
        for (id, run) in attempts {
            let Some((last, _)) = run.items.back() else {
                continue;
            };
            let last = *last;
            tree.insert(key_n(ATTEMPT, &id, last), serde_json::to_vec(&run.items)?)?;
            // A stored value is keyed by its newest attempt: one at or below `last - keep`
            // holds only attempts that have left the ring.
            if let Some(out) = last.checked_sub(run.keep) {
                for item in tree.range(key_n(ATTEMPT, &id, 0)..=key_n(ATTEMPT, &id, out)) {
                    tree.remove(item?.0)?;
                }
            }
        }
        Ok(())
    }

    fn tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.log.aux_tree("webhooks")?)
    }

    fn put<T: Serialize>(&self, k: Vec<u8>, v: &T) -> Result<Ticket, StoreError> {
        // Marked once written: a push between the two would send the value before it and use
        // up the mark.
        self.tree()?.insert(k.as_slice(), serde_json::to_vec(v)?)?;
        self.touch(&k);
        Ok(self.wrote())
    }

    /// Every stored subscription.
    pub fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        self.tree()?
            .scan_prefix([SUB])
            .map(|item| {
                let (k, v) = item?;
                self.decode_subscription(&k, &v)
            })
            .collect()
    }

    /// One subscription.
    pub fn subscription(&self, id: &Uuid) -> Result<Option<Subscription>, StoreError> {
        let k = key(SUB, id);
        match self.tree()?.get(&k)? {
            Some(v) => Ok(Some(self.decode_subscription(&k, &v)?)),
            None => Ok(None),
        }
    }

    /// Inserts or replaces a subscription (its secrets sealed).
    pub fn put_subscription(&self, sub: &Subscription) -> Result<(), StoreError> {
        self.tree()?
            .insert(key(SUB, &sub.id), self.encode_subscription(sub)?)?;
        self.touch(&key(SUB, &sub.id));
        let _ = self.wrote();
        Ok(())
    }

    /// Removes a subscription with its cursor, dead letters and attempts.
    pub fn delete(&self, id: &Uuid) -> Result<(), StoreError> {
        // Held across the delete, so a write-out cannot bring back what it removes.
        let _writing = self.behind.writing();
        {
            let mut held = self.behind.held();
            held.cursors.remove(id);
            held.attempts.remove(id);
        }
        let mut batch = sled::Batch::default();
        for kind in [SUB, CURSOR, DEAD, ATTEMPT, RETRY, REDELIVERY] {
            for item in self.tree()?.scan_prefix(key(kind, id)) {
                let (k, _) = item?;
                self.touch(&k);
                batch.remove(k);
            }
        }
        self.tree()?.apply_batch(batch)?;
        let _ = self.wrote();
        Ok(())
    }

    /// The last delivered seq (0: nothing yet).
    pub fn cursor(&self, id: &Uuid) -> Result<u64, StoreError> {
        let _writing = self.behind.writing();
        if let Some(seq) = self.behind.held().cursors.get(id) {
            return Ok(*seq);
        }
        Ok(self
            .tree()?
            .get(key(CURSOR, id))?
            .map(|v| tail_u64(&v))
            .unwrap_or(0))
    }

    /// Moves the cursor (held in memory; written and made durable by the next sync).
    pub fn set_cursor(&self, id: &Uuid, seq: u64) -> Result<(), StoreError> {
        self.behind.held().cursors.insert(*id, seq);
        self.touch(&key(CURSOR, id));
        let _ = self.wrote();
        Ok(())
    }

    /// Stores (or replaces) a dead letter; answers whether it is new (not a replacement), so
    /// the caller can keep its count without scanning.
    pub fn put_dead_letter(&self, id: &Uuid, dl: &DeadLetter) -> Result<bool, StoreError> {
        let previous = self
            .tree()?
            .insert(key_n(DEAD, id, dl.seq), serde_json::to_vec(dl)?)?;
        self.touch(&key_n(DEAD, id, dl.seq));
        let _ = self.wrote();
        Ok(previous.is_none())
    }

    /// Removes a dead letter; answers whether there was one.
    pub fn remove_dead_letter(&self, id: &Uuid, seq: u64) -> Result<bool, StoreError> {
        let removed = self.tree()?.remove(key_n(DEAD, id, seq))?.is_some();
        if removed {
            self.touch(&key_n(DEAD, id, seq));
            let _ = self.wrote();
        }
        Ok(removed)
    }

    /// Removes the `n` dead letters with the lowest seqs (the oldest messages) in one batch;
    /// answers their seqs.
    pub fn evict_oldest_dead_letters(&self, id: &Uuid, n: usize) -> Result<Vec<u64>, StoreError> {
        let tree = self.tree()?;
        let mut batch = sled::Batch::default();
        let mut seqs = Vec::with_capacity(n);
        let mut removed = Vec::with_capacity(n);
        for item in tree.scan_prefix(key(DEAD, id)).take(n) {
            let (k, _) = item?;
            seqs.push(tail_u64(&k));
            batch.remove(k.clone());
            removed.push(k);
        }
        tree.apply_batch(batch)?;
        // Marked once removed, as `put` marks once written.
        for k in &removed {
            self.touch(k);
        }
        let _ = self.wrote();
        Ok(seqs)
    }

    /// Up to `limit` dead letters with a seq above `after`, by seq.
    pub fn dead_letters_after(
        &self,
        id: &Uuid,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        self.tree()?
            .range(key_n(DEAD, id, first)..=key_n(DEAD, id, u64::MAX))
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                decode(&k, &v)
            })
            .collect()
    }

    /// Every dead letter of a subscription, by seq.
    pub fn dead_letters(&self, id: &Uuid) -> Result<Vec<DeadLetter>, StoreError> {
        self.tree()?
            .scan_prefix(key(DEAD, id))
            .map(|item| {
                let (k, v) = item?;
                decode(&k, &v)
            })
            .collect()
    }

    /// The retry state of a message that has failed and not yet settled.
    pub fn retry_state(
        &self,
        kind: RetryKind,
        id: &Uuid,
        seq: u64,
    ) -> Result<Option<RetryState>, StoreError> {
        let k = key_n(kind.prefix(), id, seq);
        match self.tree()?.get(&k)? {
            Some(v) => Ok(Some(decode(&k, &v)?)),
            None => Ok(None),
        }
    }

    /// Stores a message's retry state (a sled insert; made durable by the next sync): answers
    /// the ticket to wait for before the attempt it announces.
    pub fn put_retry_state(
        &self,
        kind: RetryKind,
        id: &Uuid,
        seq: u64,
        state: &RetryState,
    ) -> Result<Ticket, StoreError> {
        self.put(key_n(kind.prefix(), id, seq), state)
    }

    /// Forgets a message's retry state (it settled).
    pub fn remove_retry_state(
        &self,
        kind: RetryKind,
        id: &Uuid,
        seq: u64,
    ) -> Result<(), StoreError> {
        self.tree()?.remove(key_n(kind.prefix(), id, seq))?;
        let _ = self.wrote();
        Ok(())
    }

    /// The seqs that have a retry state of this kind, ascending.
    pub fn retry_seqs(&self, kind: RetryKind, id: &Uuid) -> Result<Vec<u64>, StoreError> {
        self.tree()?
            .scan_prefix(key(kind.prefix(), id))
            .map(|item| Ok(tail_u64(&item?.0)))
            .collect()
    }

    /// The number of the last recorded attempt (0: none).
    pub fn last_attempt_number(&self, id: &Uuid) -> Result<u64, StoreError> {
        let _writing = self.behind.writing();
        if let Some((n, _)) = self
            .behind
            .held()
            .attempts
            .get(id)
            .and_then(|run| run.items.back())
        {
            return Ok(*n);
        }
        Ok(
            match self.tree()?.scan_prefix(key(ATTEMPT, id)).next_back() {
                Some(item) => tail_u64(&item?.0),
                None => 0,
            },
        )
    }

    /// Records attempt number `n` in a ring of `keep` (held in memory; written by the next
    /// sync).
    pub fn push_attempt(
        &self,
        id: &Uuid,
        n: u64,
        attempt: Attempt,
        keep: u64,
    ) -> Result<(), StoreError> {
        {
            let mut held = self.behind.held();
            let run = held.attempts.entry(*id).or_default();
            run.keep = keep;
            run.items.push_back((n, attempt));
            while run.items.len() as u64 > keep {
                run.items.pop_front();
            }
        }
        let _ = self.wrote();
        Ok(())
    }

    /// The most recent attempts of a ring of `keep`, newest first.
    pub fn attempts(&self, id: &Uuid, limit: usize, keep: u64) -> Result<Vec<Attempt>, StoreError> {
        let _writing = self.behind.writing();
        let mut newest_first: Vec<(u64, Attempt)> = self
            .behind
            .held()
            .attempts
            .get(id)
            .map(|run| run.items.iter().rev().cloned().collect())
            .unwrap_or_default();
        // Stored values newest first; one value is one attempt or a run of them.
        for item in self.tree()?.scan_prefix(key(ATTEMPT, id)).rev() {
            if newest_first.len() >= limit {
                break;
            }
            let (k, v) = item?;
            match decode::<StoredAttempts>(&k, &v)? {
                StoredAttempts::One(a) => newest_first.push((tail_u64(&k), *a)),
                StoredAttempts::Run(run) => newest_first.extend(run.into_iter().rev()),
            }
        }
        // The ring's bound: a run written out may hold attempts older than it.
        let newest = newest_first.first().map(|(n, _)| *n).unwrap_or(0);
        Ok(newest_first
            .into_iter()
            .take_while(|(n, _)| n + keep > newest)
            .take(limit)
            .map(|(_, a)| a)
            .collect())
    }
}
