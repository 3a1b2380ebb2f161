//! Webhooks: subscriptions, durable cursors over the log (the log is the outbox), signed
//! delivery per Standard Webhooks, retries, dead letters, and the target guard. The service
//! owns one delivery task per active subscription; a change to a subscription stops its task,
//! changes the store, and starts a new one, so the task never races an operator. This module
//! must never block or write to the log, and never log or return a stored secret (only the
//! create and rotate answers carry the new one). Secrets are stored sealed under the key in
//! `webhooks.secret_key_file` (`sealing`); the service starts only once every stored secret
//! opens with it.
//!
//! With the nats backend the subscriptions, cursors and dead letters are the cluster's
//! (`store::Shared`): the service follows other nodes' changes (restarting the delivery of a
//! subscription changed elsewhere), and each subscription is delivered by the one node that
//! holds its lease (`lease`). Every node needs the same secret key file.

mod dispatcher;
pub mod guard;
mod lease;
mod metrics;
mod operations;
pub mod retry;
pub mod sealing;
pub mod signing;
pub mod store;
pub mod subscription;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::log::{Log, LogError};
use crate::metrics::Metrics;
use dispatcher::Ctx;
use lease::Runner;
pub use store::{Shared, Unreadable};
use store::{Store, StoreError, SyncError};
pub use subscription::{
    Attempt, DeadLetter, Filter, Mode, NewSubscription, Status, Subscription, SubscriptionPatch,
};
use subscription::{Secret, ms_to_rfc3339, now_ms};

/// Webhook settings (`[webhooks]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Allow targets on loopback, private, link-local and other non-global addresses.
    pub allow_private_targets: bool,
    /// Delay before each attempt, in ms; the first entry is the first try.
    pub retry_schedule_ms: Vec<u64>,
    /// Random spread of each delay, in percent either way.
    pub jitter_percent: u32,
    /// Longest `Retry-After` honoured, in seconds.
    pub retry_after_max_secs: u64,
    /// Whole-attempt timeout (connect, send, response), in ms.
    pub timeout_ms: u64,
    /// Connect timeout, in ms.
    pub connect_timeout_ms: u64,
    /// Largest request body sent; larger messages go straight to the dead letters.
    pub max_request_bytes: usize,
    /// Most response bytes read before the connection is dropped.
    pub max_response_bytes: usize,
    /// Response bytes kept in the attempts ring.
    pub response_preview_bytes: usize,
    /// Attempts kept per subscription.
    pub attempts_kept: usize,
    /// How long the previous secret keeps signing after a rotation, in seconds.
    pub secret_overlap_secs: u64,
    /// Upper bound of `max_in_flight` for parallel subscriptions.
    pub max_in_flight: u32,
    /// A subscription whose attempts have all failed for this long is disabled, in seconds.
    pub disable_after_failing_secs: u64,
    /// How often moved cursors and retry states are made durable (sled flush + fdatasync), in
    /// ms. A retry waits for the sync that covers the failed attempt before it.
    pub cursor_sync_ms: u64,
    /// Log records a delivery task examines per step (matching or not) before it yields, so a
    /// rare filter over a long log never holds a worker thread for long.
    pub read_batch: usize,
    /// Records kept prepared (parsed, their body built) for every subscription to share, so
    /// N subscriptions cost one parse and one body per record, not N.
    pub message_cache_entries: usize,
    /// Dead letters kept per subscription; when full, the one with the lowest seq (the oldest
    /// message) is evicted to make room.
    pub max_dead_letters_per_subscription: usize,
    /// The file of the 32-byte key (64 hex digits) that encrypts signing secrets at rest.
    /// Empty: `webhooks.key` in the data folder, created on first start.
    pub secret_key_file: PathBuf,
    /// A stored secret that does not decrypt with the key stops the start (`refuse`), or
    /// disables its subscription until the secret is rotated (`disable`).
    pub unreadable_secrets: Unreadable,
    /// Threads that deliver (each a current-thread runtime); 0: one per core, at most 4.
    pub delivery_threads: usize,
    /// Whether this node delivers webhooks. `false`: with the nats backend it serves the API
    /// and follows the cluster's webhook state but never takes a delivery lease (other nodes
    /// deliver); with sled nothing delivers.
    pub deliver: bool,
    /// With the nats backend: how long a delivery lease lives after its last renewal, in ms
    /// (the cluster's lease bucket expires it then; every node must agree).
    pub lease_ttl_ms: u64,
    /// How often the lease holder renews its lease, in ms; also how often a node without it
    /// tries to take it.
    pub lease_renew_ms: u64,
    /// The longest one renewal may take before it counts as failed, in ms.
    pub lease_renew_timeout_ms: u64,
    /// The holder stops delivering once no renewal has succeeded for this long (counted from
    /// when the last good one was sent), in ms: well before the lease can expire.
    pub lease_give_up_ms: u64,
}

impl WebhookConfig {
    /// Rules the types cannot express (checked when the configuration loads, and again when
    /// the service starts from a configuration built in code).
    pub(crate) fn check(&self) -> Result<(), WebhookError> {
        let bad = |key: &str, why: &str| Err(WebhookError::Config(format!("webhooks.{key} {why}")));
        if self.retry_schedule_ms.is_empty() {
            return bad("retry_schedule_ms", "needs at least one entry");
        }
        if self.jitter_percent > 100 {
            return bad("jitter_percent", "must be at most 100");
        }
        if self.delivery_threads > 64 {
            return bad("delivery_threads", "must be at most 64");
        }
        for (key, v) in [
            ("timeout_ms", self.timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("max_request_bytes", self.max_request_bytes as u64),
            ("max_response_bytes", self.max_response_bytes as u64),
            ("attempts_kept", self.attempts_kept as u64),
            ("max_in_flight", u64::from(self.max_in_flight)),
            ("cursor_sync_ms", self.cursor_sync_ms),
            ("read_batch", self.read_batch as u64),
            ("message_cache_entries", self.message_cache_entries as u64),
            // Zero would mean "keep none": a dead letter evicted as it is stored is a silent
            // loss. Unbounded is not offered either: storage must stay bounded.
            (
                "max_dead_letters_per_subscription",
                self.max_dead_letters_per_subscription as u64,
            ),
        ] {
            if v == 0 {
                return bad(key, "must be positive");
            }
        }
        self.check_lease()
    }

    /// The lease timings: a renewal ends before the next is due, at least one renewal is
    /// tried before the holder gives up, and a holder that gives up has stopped (at its
    /// next check, at most one renewal interval and one renewal later) before the lease
    /// can expire and another node take it.
    fn check_lease(&self) -> Result<(), WebhookError> {
        let bad =
            |key: &str, why: String| Err(WebhookError::Config(format!("webhooks.{key} {why}")));
        for (key, v) in [
            ("lease_ttl_ms", self.lease_ttl_ms),
            ("lease_renew_ms", self.lease_renew_ms),
            ("lease_renew_timeout_ms", self.lease_renew_timeout_ms),
            ("lease_give_up_ms", self.lease_give_up_ms),
        ] {
            if v == 0 {
                return bad(key, "must be positive".into());
            }
        }
        if self.lease_renew_timeout_ms >= self.lease_renew_ms {
            return bad(
                "lease_renew_timeout_ms",
                format!(
                    "({}) must be below webhooks.lease_renew_ms ({}): a renewal must end before the next is due",
                    self.lease_renew_timeout_ms, self.lease_renew_ms
                ),
            );
        }
        if self.lease_renew_ms >= self.lease_give_up_ms {
            return bad(
                "lease_renew_ms",
                format!(
                    "({}) must be below webhooks.lease_give_up_ms ({}): the holder must try a renewal before it gives up",
                    self.lease_renew_ms, self.lease_give_up_ms
                ),
            );
        }
        let stopped_by = self.lease_give_up_ms + self.lease_renew_ms + self.lease_renew_timeout_ms;
        if stopped_by >= self.lease_ttl_ms {
            return bad(
                "lease_ttl_ms",
                format!(
                    "({}) must be above webhooks.lease_give_up_ms + lease_renew_ms + lease_renew_timeout_ms ({stopped_by}): a holder that lost touch with the cluster must have stopped delivering before its lease expires",
                    self.lease_ttl_ms
                ),
            );
        }
        Ok(())
    }

    /// The lease timings as durations.
    pub(crate) fn lease(&self) -> lease::Timings {
        use std::time::Duration;
        lease::Timings {
            ttl: Duration::from_millis(self.lease_ttl_ms),
            renew_every: Duration::from_millis(self.lease_renew_ms),
            renew_within: Duration::from_millis(self.lease_renew_timeout_ms),
            give_up_after: Duration::from_millis(self.lease_give_up_ms),
        }
    }
}

/// What went wrong with a webhook operation.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No subscription has this id.
    #[error("subscription `{0}` does not exist")]
    NotFound(String),
    /// The subscription has no dead letter for this seq.
    #[error("subscription `{id}` has no dead letter for seq {seq}")]
    NoDeadLetter {
        /// Subscription.
        id: Uuid,
        /// The seq asked for.
        seq: u64,
    },
    /// A field of the request is not acceptable.
    #[error("{pointer}: {message}")]
    Invalid {
        /// JSON pointer of the field.
        pointer: String,
        /// What is wrong.
        message: String,
    },
    /// The target URL is refused by the guard.
    #[error(transparent)]
    Target(#[from] guard::GuardError),
    /// The webhook store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key that encrypts secrets at rest cannot be read, created or used.
    #[error(transparent)]
    Key(#[from] sealing::KeyError),
    /// The subscription has no secret to sign with (its unreadable one was dropped).
    #[error(
        "subscription `{0}` has no signing secret; rotate its secret (POST \
         /subscriptions/{0}/rotate-secret) before resuming it"
    )]
    NoSecret(Uuid),
    /// The log failed (closed, storage).
    #[error(transparent)]
    Log(#[from] LogError),
    /// The configuration is unusable, or the service could not start.
    #[error("{0}")]
    Config(String),
}

impl WebhookError {
    /// Whether this is the operator's to fix in the configuration (`annals serve` exits 2):
    /// the secret key file is unusable, or is not the one that encrypted the stored secrets.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            WebhookError::Key(_) | WebhookError::Store(StoreError::Undecryptable { .. })
        )
    }
}

/// The task in `slot`, taken out of it.
fn take(slot: &std::sync::Mutex<Option<JoinHandle<()>>>) -> Option<JoinHandle<()>> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

fn invalid(pointer: &str, message: impl Into<String>) -> WebhookError {
    WebhookError::Invalid {
        pointer: pointer.into(),
        message: message.into(),
    }
}

/// The webhook service: subscriptions and their delivery tasks. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<Ctx>,
    /// Running delivery tasks (or lease keepers) by subscription. A std mutex: only inserted
    /// into and taken from, never held across an await.
    workers: std::sync::Mutex<HashMap<Uuid, Runner>>,
    /// Serialises changes (stop task, change store, start task) so two operators on one
    /// subscription cannot interleave.
    control: tokio::sync::Mutex<()>,
    /// Tells the cursor syncer to stop.
    stop_sync: watch::Sender<bool>,
    /// The cursor syncer task (taken at shutdown).
    syncer: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Set once shutdown began: no task is started after it.
    closed: AtomicBool,
    /// The task following other nodes' changes (nats backend; aborted at shutdown).
    follower: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Service {
    /// Loads the secret key (creating it in `data_dir` on first start), seals any secret an
    /// earlier version stored in the clear, checks that every stored secret decrypts, then
    /// loads subscriptions and starts their delivery tasks (and the cursor syncer). With a
    /// cluster (`shared`), the node's copy is first replaced by the cluster's, and the service
    /// follows the cluster's changes from then on.
    pub async fn start(
        log: Log,
        config: WebhookConfig,
        data_dir: &Path,
        metrics: &Metrics,
        shared: Option<Shared>,
    ) -> Result<Service, WebhookError> {
        config.check()?;
        if !config.deliver && shared.is_none() {
            tracing::warn!(
                "webhooks.deliver = false on the sled backend: no webhook is delivered (it keeps a node of a cluster out of delivery)"
            );
        }
        let shared = shared.map(Arc::new);
        let mut changes = None;
        let mut seeding = false;
        if let Some(shared) = &shared {
            // A cluster just started (or busy) may time out the first requests: tried for 30 s.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                // Watching first: nothing written between the copy and the watch is missed.
                let copied = async {
                    let watch = shared.watch().await.map_err(StoreError::from)?;
                    Ok::<_, StoreError>((watch, shared.pull_all(&log).await?))
                };
                match copied.await {
                    Ok((watch, seeds)) => {
                        changes = Some(watch);
                        seeding = seeds;
                        break;
                    }
                    Err(e) if tokio::time::Instant::now() < deadline => {
                        tracing::debug!(error = %e, "the cluster's webhook state is not reachable yet");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let sealer = open_sealer(&log, &config, data_dir)?;
        let store = Store::new(log.clone(), sealer, shared)?;
        let sealing = store.seal_plaintext_secrets(config.unreadable_secrets)?;
        if sealing.sealed > 0 {
            tracing::info!(
                secrets = sealing.sealed,
                "webhook secrets stored in the clear by an earlier version are now encrypted"
            );
        }
        if sealing.disabled > 0 {
            tracing::warn!(
                subscriptions = sealing.disabled,
                "webhook subscriptions disabled: their secrets do not decrypt with the key; rotate their secrets, then resume them"
            );
        }
        // Only once sealed: a secret never reaches the cluster in the clear.
        if seeding {
            store.sync().await.map_err(|e| match e {
                SyncError::Cluster(e) => WebhookError::Store(e),
                other => WebhookError::Config(format!("cannot share the webhook state: {other}")),
            })?;
            tracing::info!(
                "this node's webhook subscriptions now seed the cluster's (it had none)"
            );
        }
        let metrics = metrics::WebhookMetrics::register(metrics)
            .map_err(|e| WebhookError::Config(format!("metrics: {e}")))?;
        let ctx = Arc::new(Ctx {
            log: log.clone(),
            store,
            messages: dispatcher::MessageCache::new(config.message_cache_entries),
            config,
            metrics,
        });
        let (stop_sync, stop_rx) = watch::channel(false);
        let syncer = tokio::spawn(dispatcher::sync_loop(ctx.clone(), stop_rx));
        let mut workers = HashMap::new();
        for sub in ctx.store.subscriptions()? {
            if sub.status == Status::Active {
                workers.insert(sub.id, Runner::start(ctx.clone(), sub));
            }
        }
        tracing::info!(active = workers.len(), "webhook delivery started");
        let service = Service {
            inner: Arc::new(Inner {
                ctx,
                workers: std::sync::Mutex::new(workers),
                control: tokio::sync::Mutex::new(()),
                stop_sync,
                syncer: std::sync::Mutex::new(Some(syncer)),
                closed: AtomicBool::new(false),
                follower: std::sync::Mutex::new(None),
            }),
        };
        if let (Some(changes), Some(shared)) = (changes, service.store().cluster()) {
            let follower = tokio::spawn(shared.follow(changes, Following(service.clone())));
            *service
                .inner
                .follower
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(follower);
        }
        Ok(service)
    }

    /// Another node created, changed or deleted a subscription: its delivery here stops
    /// (taking the cluster's cursor and dead letters), and starts again as it now is.
    async fn changed_elsewhere(&self, id: Uuid) {
        let _guard = self.inner.control.lock().await;
        let runner = self
            .inner
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(r) = runner {
            r.stop_adopting().await;
        }
        match self.store().subscription(&id) {
            Ok(Some(sub)) => self.start_worker(&sub),
            Ok(None) => {
                if let Err(e) = self.store().forget(&id) {
                    tracing::error!(subscription = %id, error = %e, "cannot forget a deleted subscription");
                }
                let label = id.to_string();
                let metrics = &self.inner.ctx.metrics;
                let _ = metrics.lag.remove_label_values(&[&label]);
                let _ = metrics.dead_letters_evicted.remove_label_values(&[&label]);
            }
            Err(e) => {
                tracing::error!(subscription = %id, error = %e, "cannot read a subscription changed elsewhere")
            }
        }
    }

    /// Stops every delivery task, then makes the cursors durable. Idempotent.
    pub async fn shutdown(&self) {
        let _guard = self.inner.control.lock().await;
        self.inner.closed.store(true, Ordering::Release);
        if let Some(f) = take(&self.inner.follower) {
            f.abort();
        }
        let workers: Vec<Runner> = {
            let mut map = self.inner.workers.lock().unwrap_or_else(|e| e.into_inner());
            map.drain().map(|(_, w)| w).collect()
        };
        for w in workers {
            w.stop().await;
        }
        let _ = self.inner.stop_sync.send(true);
        if let Some(h) = take(&self.inner.syncer) {
            let _ = h.await;
        }
        if let Err(e) = self.sync().await {
            tracing::error!(error = %e, "cannot make webhook cursors durable at shutdown");
        }
    }

    /// Makes every webhook write so far durable.
    async fn sync(&self) -> Result<(), WebhookError> {
        self.inner.ctx.store.sync().await.map_err(|e| match e {
            SyncError::Log(e) => WebhookError::Log(e),
            SyncError::Task(e) => WebhookError::Config(format!("sync task failed: {e}")),
            SyncError::Cluster(e) => WebhookError::Store(e),
        })
    }

    async fn stop_worker(&self, id: &Uuid) {
        let worker = self
            .inner
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(w) = worker {
            w.stop().await;
        }
    }

    fn start_worker(&self, sub: &Subscription) {
        if sub.status != Status::Active || self.inner.closed.load(Ordering::Acquire) {
            return;
        }
        let worker = Runner::start(self.inner.ctx.clone(), sub.clone());
        self.inner
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sub.id, worker);
    }
}

/// Applies other nodes' changes to this node's copy, and restarts the delivery of a
/// subscription whose record changed; after a lost or stalled watch, compares the whole
/// cluster state with the copy (`Shared::follow`).
struct Following(Service);

impl crate::log::nats::Follower for Following {
    type Error = StoreError;
    const WHAT: &'static str = "webhook state";

    async fn change(&mut self, change: crate::log::nats::Change) {
        match self.0.store().apply(&change) {
            Ok(Some(id)) => self.0.changed_elsewhere(id).await,
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot apply the cluster's webhook change"),
        }
    }

    async fn reread(&mut self) -> Result<(), StoreError> {
        // Under `control`, as an operator's create, change or delete: that writes this node's
        // copy, then pushes to the cluster. A resync between the two would find the new
        // subscription missing from the cluster, forget it here, and then the push of its
        // cursor or its delete of the forgotten one would undo an answered 201.
        let changed = {
            let _guard = self.0.inner.control.lock().await;
            self.0.store().resync().await?
        };
        for id in changed {
            self.0.changed_elsewhere(id).await;
        }
        Ok(())
    }

    fn closed(&self) -> bool {
        self.0.inner.closed.load(Ordering::Acquire)
    }
}

/// The key that seals secrets: the configured file, or `webhooks.key` in the data folder,
/// created when missing, unless secrets sealed under some key are already stored (a new key
/// could never open them: the old one is lost or misplaced, and saying so beats failing later).
fn open_sealer(
    log: &Log,
    config: &WebhookConfig,
    data_dir: &Path,
) -> Result<sealing::Sealer, WebhookError> {
    let path = sealing::key_path(&config.secret_key_file, data_dir);
    if !sealing::key_exists(&path)? {
        if let Some(id) = Store::first_sealed(log)?
            && config.unreadable_secrets == Unreadable::Refuse
        {
            return Err(sealing::KeyError {
                path,
                message: format!(
                    "does not exist, but subscription {id} holds a secret encrypted with a \
                     key: restore the key file that encrypted it (it belongs with the data \
                     folder's backup), or if it is lost set webhooks.unreadable_secrets = \
                     \"disable\" to disable such subscriptions until their secrets are rotated"
                ),
            }
            .into());
        }
        sealing::create_key_file(&path)?;
        tracing::info!(path = %path.display(), "created the key that encrypts webhook secrets; back it up with the data folder");
    }
    Ok(sealing::Sealer::load(&path)?)
}
