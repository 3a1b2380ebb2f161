//! The webhook store's cluster side (`[log] backend = "nats"`): subscriptions (their secrets
//! sealed, exactly the bytes sled holds), cursors and dead letters live in the cluster's
//! key-value bucket `<stream>_webhooks`, so every node lists, changes and reads them; the
//! node's sled tree stays its working copy (the delivery task reads and writes it as with the
//! sled backend). Each write of those kinds marks its key; [`Store::sync`] pushes the marked
//! keys after the local flush, so what an operator was answered is in the cluster, and a
//! moved cursor reaches it every `cursor_sync_ms`. The watcher applies other nodes' writes to
//! the working copy. Attempts and retry states stay per node (a node that takes over a
//! subscription starts its retry schedule over: at least once still holds).
//!
//! This must never write a secret unsealed (it copies the sealed bytes), never apply another
//! node's cursor or dead letters to a subscription this node delivers (its own are newer;
//! [`Store::adopt`] takes the cluster's when asked), never push a key it did not mark, and
//! never use up a mark by pushing what sled holds while a newer cursor is still held in memory.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use super::{CURSOR, DEAD, SUB, Store, StoreError, key};
use crate::log::nats::{Bucket, Change, Follower, Link, NatsError, Watch};

/// How long start-up waits for the cluster's buckets (a cluster just started elects its
/// leaders first).
const READY_WITHIN: Duration = Duration::from_secs(30);

/// How long a push tries a write again while the cluster cannot take it (a request timed
/// out at 2 s: a busy cluster, or the bucket's leader lost and another being elected, which
/// takes about 5 s). An operator's change waits for its push: within this it is answered as
/// done rather than with a 503 for a write the cluster takes a moment later.
const PUSH_RETRIED_FOR: Duration = Duration::from_secs(12);

/// Runs a bucket write until it succeeds or `deadline` passes (the last error then). A put or
/// delete of one key's current value is idempotent: written twice, it leaves the same value.
async fn retried<T, F: Future<Output = Result<T, NatsError>>>(
    deadline: tokio::time::Instant,
    mut write: impl FnMut() -> F,
) -> Result<T, NatsError> {
    let mut pause = Duration::from_millis(100);
    loop {
        match write().await {
            Err(e) if tokio::time::Instant::now() + pause < deadline => {
                tracing::debug!(error = %e, "a webhook state write to the cluster failed; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            done => return done,
        }
    }
}

/// The cluster's webhook state and this node's bookkeeping of it. One per node.
pub struct Shared {
    state: Bucket,
    /// The delivery leases (`<stream>_webhook_leases`, values expire: see `webhook::lease`).
    pub(crate) leases: Bucket,
    /// This node's name in the leases it holds (unique per process).
    pub(crate) node: String,
    /// Sled keys written since the last push.
    dirty: Mutex<BTreeSet<Vec<u8>>>,
    /// The last revision this node wrote per bucket key: the watcher's echo of it (or of an
    /// older one) is not another node's change.
    own: Mutex<HashMap<String, u64>>,
    /// Subscriptions this node delivers (holds the lease of).
    held: Mutex<HashSet<Uuid>>,
    /// One push at a time: two pushes of one key (the syncer's and an operator's) could
    /// otherwise land in the cluster in the other order, the older value last.
    pushing: tokio::sync::Mutex<()>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl From<NatsError> for StoreError {
    fn from(e: NatsError) -> StoreError {
        StoreError::Cluster(e.to_string())
    }
}

/// The bucket key of a sled key of a shared kind (`None`: kept per node).
fn kv_key(k: &[u8]) -> Option<String> {
    let id = Uuid::from_slice(k.get(1..17)?).ok()?;
    match (k.first()?, k.len()) {
        (&SUB, 17) => Some(format!("sub.{id}")),
        (&CURSOR, 17) => Some(format!("cursor.{id}")),
        (&DEAD, 25) => Some(format!("dead.{id}.{}", super::tail_u64(k))),
        _ => None,
    }
}

/// The sled key and subscription of a bucket key.
fn sled_key(k: &str) -> Option<(Vec<u8>, Uuid)> {
    let mut parts = k.split('.');
    let kind = parts.next()?;
    let id = Uuid::parse_str(parts.next()?).ok()?;
    let out = match (kind, parts.next()) {
        ("sub", None) => key(SUB, &id),
        ("cursor", None) => key(CURSOR, &id),
        ("dead", Some(seq)) => super::key_n(DEAD, &id, seq.parse().ok()?),
        _ => return None,
    };
    parts.next().is_none().then_some((out, id))
}

/// Whether a sled key is one of the kinds the cluster holds.
fn is_shared(k: &[u8]) -> bool {
    matches!(k.first(), Some(&SUB) | Some(&CURSOR) | Some(&DEAD))
}

impl Shared {
    /// Opens (creating on first use) the webhook buckets of the cluster behind `link`.
    pub(crate) async fn connect(link: &Link, lease_ttl: Duration) -> Result<Shared, NatsError> {
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        let (state, leases) = loop {
            let made = async {
                Ok::<_, NatsError>((
                    link.bucket("webhooks", None).await?,
                    link.bucket("webhook_leases", Some(lease_ttl)).await?,
                ))
            };
            match made.await {
                Ok(b) => break b,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "webhook buckets not ready yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        // A lease lives as long as the bucket keeps a value: every node must agree on it, or
        // one would count on a lease living longer than the bucket keeps it.
        if leases.max_age() != lease_ttl {
            return Err(NatsError::Kv {
                bucket: leases.name().to_string(),
                why: format!(
                    "its leases expire after {} ms, but this node's webhooks.lease_ttl_ms is {}: \
                     every node must use the same (to change it, stop every node and delete \
                     the bucket; it holds only leases)",
                    leases.max_age().as_millis(),
                    lease_ttl.as_millis()
                ),
            });
        }
        Ok(Shared {
            state,
            leases,
            // The process id first: an operator (or a test) can tell which process delivers.
            node: format!("{}-{}", std::process::id(), Uuid::now_v7()),
            dirty: Mutex::default(),
            own: Mutex::default(),
            held: Mutex::default(),
            pushing: tokio::sync::Mutex::default(),
        })
    }

    /// Marks a sled key written (pushed by the next sync) if the cluster holds its kind.
    pub(super) fn touch(&self, k: &[u8]) {
        if is_shared(k) {
            locked(&self.dirty).insert(k.to_vec());
        }
    }

    /// Notes that this node delivers (or no longer delivers) a subscription.
    pub(crate) fn hold(&self, id: Uuid, held: bool) {
        let mut set = locked(&self.held);
        if held {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }

    /// The changes other nodes make from now on (and echoes of this node's, which
    /// [`Store::apply`] skips).
    pub(crate) async fn watch(&self) -> Result<Watch, NatsError> {
        self.state.watch().await
    }

    /// Follows the webhook state from `watch` for ever with `follower`: a watch that fails,
    /// or stalls without an error, is set up again and the whole state compared with the
    /// working copy ([`crate::log::nats::follow_bucket`]). Without that, a node whose watch stalled
    /// would never deliver a subscription created elsewhere, and would go on delivering one
    /// paused, deleted or given a new secret elsewhere.
    pub(crate) fn follow<F: Follower + 'static>(
        &self,
        watch: Watch,
        follower: F,
    ) -> impl Future<Output = ()> + Send + use<F> {
        crate::log::nats::follow_bucket(self.state.clone(), watch, follower)
    }

    /// Every shared value of the cluster as changes (bucket key, value, revision); `only`
    /// keeps one subscription's. Read from the bucket's leader: a lagging replica's copy
    /// could miss a cursor or hold an older one, and adopting that would deliver again what
    /// was delivered (or, missing a cursor, everything from seq 1).
    async fn snapshot(&self, only: Option<Uuid>) -> Result<Vec<Change>, NatsError> {
        let values = match only {
            None => self.state.values(">").await?,
            Some(id) => {
                let mut v = self.state.values(&format!("*.{id}")).await?;
                v.extend(self.state.values(&format!("dead.{id}.*")).await?);
                v
            }
        };
        Ok(values
            .into_iter()
            .filter(|c| sled_key(&c.key).is_some_and(|(_, id)| only.is_none_or(|o| o == id)))
            .collect())
    }

    /// Replaces the shared kinds of `log`'s webhook tree by the cluster's (at start, before
    /// anything reads it: the node's copy may be stale). Only a cluster without any webhook
    /// state keeps the node's subscriptions (a node moved from the sled backend): they are
    /// marked for the first push, and the answer says so.
    pub(crate) async fn pull_all(&self, log: &crate::log::Log) -> Result<bool, StoreError> {
        let values = self.snapshot(None).await?;
        let tree = log.aux_tree("webhooks")?;
        if values.is_empty() && tree.scan_prefix([SUB]).next().is_some() {
            let mut dirty = locked(&self.dirty);
            for kind in [SUB, CURSOR, DEAD] {
                for item in tree.scan_prefix([kind]) {
                    dirty.insert(item?.0.to_vec());
                }
            }
            return Ok(true);
        }
        replace(&tree, &[vec![SUB], vec![CURSOR], vec![DEAD]], values)?;
        Ok(false)
    }
}

/// Removes every key under `prefixes` and writes `values` (the cluster's), in one batch.
fn replace(tree: &sled::Tree, prefixes: &[Vec<u8>], values: Vec<Change>) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    for prefix in prefixes {
        for item in tree.scan_prefix(prefix) {
            batch.remove(item?.0);
        }
    }
    for change in values {
        if let (Some((k, _)), Some(v)) = (sled_key(&change.key), change.value) {
            batch.insert(k, v.to_vec());
        }
    }
    tree.apply_batch(batch)?;
    Ok(())
}

impl Store {
    fn shared(&self) -> Option<&Shared> {
        self.shared.as_deref()
    }

    /// Marks a written sled key for the next push (no-op with the sled backend).
    pub(super) fn touch(&self, k: &[u8]) {
        if let Some(s) = self.shared() {
            s.touch(k);
        }
    }

    /// Pushes every marked key's current value (or its absence) to the cluster, in key
    /// order: cursors and dead letters before the subscription, so a node that sees an
    /// operator's change finds the cursor it came with. What fails stays marked.
    pub(super) async fn push(&self) -> Result<(), StoreError> {
        let Some(shared) = self.shared() else {
            return Ok(());
        };
        let _one = shared.pushing.lock().await;
        let deadline = tokio::time::Instant::now() + PUSH_RETRIED_FOR;
        let keys = std::mem::take(&mut *locked(&shared.dirty));
        let tree = self.tree()?;
        let mut keys = keys.into_iter();
        while let Some(k) = keys.next() {
            let pushed = async {
                let Some(name) = kv_key(&k) else {
                    return Ok(());
                };
                let Some(value) = self.written(&tree, &k)? else {
                    // Still held in memory: the sync that writes it out pushes it. Pushing
                    // what sled holds now would send an older cursor and use up the mark.
                    locked(&shared.dirty).insert(k.clone());
                    return Ok(());
                };
                match value {
                    Some(v) => {
                        let v = Bytes::from(v.to_vec());
                        let revision =
                            retried(deadline, || shared.state.put(&name, v.clone())).await?;
                        locked(&shared.own).insert(name, revision);
                    }
                    None => {
                        retried(deadline, || shared.state.delete(&name)).await?;
                        locked(&shared.own).remove(&name);
                    }
                }
                Ok::<(), StoreError>(())
            };
            if let Err(e) = pushed.await {
                let mut dirty = locked(&shared.dirty);
                dirty.insert(k);
                dirty.extend(keys);
                return Err(e);
            }
        }
        Ok(())
    }

    /// A marked key's value as sled holds it, read under the write-out lock so it is never
    /// read half way between memory and sled; `None` while a newer cursor is still held in
    /// memory (it is not in sled yet).
    fn written(
        &self,
        tree: &sled::Tree,
        k: &[u8],
    ) -> Result<Option<Option<sled::IVec>>, StoreError> {
        let _writing = self.behind.writing();
        if k.first() == Some(&CURSOR)
            && let Some(id) = k.get(1..17).and_then(|b| Uuid::from_slice(b).ok())
            && self.behind.held().cursors.contains_key(&id)
        {
            return Ok(None);
        }
        Ok(Some(tree.get(k)?))
    }

    /// Applies another node's change to the working copy; answers the subscription when its
    /// own record changed (the service then restarts its delivery). Echoes of this node's
    /// writes, values already held, and another node's cursor or dead letters of a
    /// subscription this node delivers are skipped.
    pub(crate) fn apply(&self, change: &Change) -> Result<Option<Uuid>, StoreError> {
        let Some(shared) = self.shared() else {
            return Ok(None);
        };
        let Some((k, id)) = sled_key(&change.key) else {
            return Ok(None);
        };
        if locked(&shared.own)
            .get(&change.key)
            .is_some_and(|own| change.revision <= *own)
        {
            return Ok(None);
        }
        let is_sub = k.first() == Some(&SUB);
        if !is_sub && locked(&shared.held).contains(&id) {
            return Ok(None);
        }
        let _writing = self.behind.writing();
        let tree = self.tree()?;
        let current = tree.get(&k)?;
        if current.as_deref() == change.value.as_deref() {
            return Ok(None);
        }
        match &change.value {
            Some(v) => {
                tree.insert(&k, v.to_vec())?;
            }
            None => {
                tree.remove(&k)?;
            }
        }
        if k.first() == Some(&CURSOR) {
            self.behind.held().cursors.remove(&id);
        }
        Ok(is_sub.then_some(id))
    }

    /// Takes the cluster's state of one subscription as this node's (before it starts to
    /// deliver it, and after another node changed it): this node's cursor not yet pushed is
    /// dropped (another node may have moved it: a replay), its other writes are pushed first,
    /// then the subscription, its cursor and dead letters are read from the cluster.
    pub(crate) async fn adopt(&self, id: &Uuid) -> Result<(), StoreError> {
        let Some(shared) = self.shared() else {
            return Ok(());
        };
        if self.tree()?.get(key(SUB, id))?.is_none() {
            // Deleted elsewhere (the watcher removed it): nothing of it is pushed back.
            return self.forget(id);
        }
        let cursor = key(CURSOR, id);
        self.behind.held().cursors.remove(id);
        locked(&shared.dirty).remove(&cursor);
        self.push().await?;
        let values = shared.snapshot(Some(*id)).await?;
        let _writing = self.behind.writing();
        // The record itself only replaced, never removed: a replica that lags may answer
        // without it just after it was created (a delete reaches this node by the watcher).
        replace(&self.tree()?, &[key(CURSOR, id), key(DEAD, id)], values)
    }

    /// Compares the whole cluster state with the working copy after the watch was lost or
    /// stalled, applying what differs as [`Store::apply`] does (a subscription missing from
    /// the cluster was deleted meanwhile); answers the subscriptions whose record changed.
    pub(crate) async fn resync(&self) -> Result<Vec<Uuid>, StoreError> {
        let Some(shared) = self.shared() else {
            return Ok(Vec::new());
        };
        let values = shared.snapshot(None).await?;
        let mut changed = Vec::new();
        let mut present = HashSet::new();
        for change in &values {
            if let Some((k, id)) = sled_key(&change.key)
                && k.first() == Some(&SUB)
            {
                present.insert(id);
            }
            if let Some(id) = self.apply(change)? {
                changed.push(id);
            }
        }
        for item in self.tree()?.scan_prefix([SUB]) {
            let (k, _) = item?;
            if let Ok(id) = Uuid::from_slice(&k[1..])
                && !present.contains(&id)
            {
                changed.push(id);
                self.forget(&id)?;
            }
        }
        Ok(changed)
    }

    /// Removes a subscription another node deleted from the working copy (nothing pushed).
    pub(crate) fn forget(&self, id: &Uuid) -> Result<(), StoreError> {
        let _writing = self.behind.writing();
        {
            let mut held = self.behind.held();
            held.cursors.remove(id);
            held.attempts.remove(id);
        }
        let kinds = [
            SUB,
            CURSOR,
            DEAD,
            super::ATTEMPT,
            super::RETRY,
            super::REDELIVERY,
        ];
        let prefixes: Vec<Vec<u8>> = kinds.iter().map(|k| key(*k, id)).collect();
        replace(&self.tree()?, &prefixes, Vec::new())?;
        if let Some(s) = self.shared() {
            locked(&s.dirty).retain(|k| k.get(1..17) != Some(id.as_bytes().as_slice()));
        }
        Ok(())
    }

    /// The cluster side, if the log is on a cluster.
    pub(crate) fn cluster(&self) -> Option<&Shared> {
        self.shared()
    }
}
