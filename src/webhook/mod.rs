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
use serde_json::Value;
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
        Ok(())
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
        if let Some(changes) = changes {
            let follower = tokio::spawn(service.clone().follow(changes));
            *service
                .inner
                .follower
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(follower);
        }
        Ok(service)
    }

    /// Applies other nodes' changes to this node's copy, and restarts the delivery of a
    /// subscription whose record changed. After the watch fails it watches again and compares
    /// the whole cluster state with the copy.
    async fn follow(self, mut changes: store::Changes) {
        use futures_util::StreamExt;
        loop {
            while let Some(change) = changes.next().await {
                let change = match change {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "following the cluster's webhook state failed");
                        break;
                    }
                };
                match self.store().apply(&change) {
                    Ok(Some(id)) => self.changed_elsewhere(id).await,
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "cannot apply the cluster's webhook change")
                    }
                }
            }
            if self.inner.closed.load(Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let Some(shared) = self.store().cluster() else {
                return;
            };
            match shared.watch().await {
                Ok(c) => {
                    changes = c;
                    match self.store().resync().await {
                        Ok(ids) => {
                            for id in ids {
                                self.changed_elsewhere(id).await;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot compare with the cluster's webhook state")
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot watch the cluster's webhook state yet")
                }
            }
        }
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

    fn config(&self) -> &WebhookConfig {
        &self.inner.ctx.config
    }

    fn store(&self) -> &Store {
        &self.inner.ctx.store
    }

    /// The outward view of a subscription (never its secrets).
    fn view(&self, sub: &Subscription) -> Result<Value, WebhookError> {
        let cursor = self.store().cursor(&sub.id)?;
        Ok(sub.view(cursor, self.inner.ctx.log.head().seq, now_ms()))
    }

    fn load(&self, id: &str) -> Result<Subscription, WebhookError> {
        let uuid = Uuid::parse_str(id).map_err(|_| WebhookError::NotFound(id.to_string()))?;
        self.store()
            .subscription(&uuid)?
            .ok_or_else(|| WebhookError::NotFound(id.to_string()))
    }

    fn check_in_flight(&self, mode: Mode, n: Option<u32>) -> Result<u32, WebhookError> {
        match (mode, n) {
            (Mode::Ordered, None | Some(1)) => Ok(1),
            (Mode::Ordered, Some(_)) => Err(invalid(
                "/max_in_flight",
                "ordered mode sends one message at a time; use mode parallel for more",
            )),
            (Mode::Parallel, None) => Ok(8.min(self.config().max_in_flight)),
            (Mode::Parallel, Some(n)) if n >= 1 && n <= self.config().max_in_flight => Ok(n),
            (Mode::Parallel, Some(n)) => Err(invalid(
                "/max_in_flight",
                format!(
                    "must be between 1 and {} (webhooks.max_in_flight), got {n}",
                    self.config().max_in_flight
                ),
            )),
        }
    }

    async fn check_url(&self, url: &str) -> Result<(), WebhookError> {
        let parsed = guard::parse(url)?;
        guard::check(&parsed, self.config().allow_private_targets).await?;
        Ok(())
    }

    /// Creates a subscription; answers its view and its secret (shown this once).
    pub async fn create(&self, new: NewSubscription) -> Result<(Value, String), WebhookError> {
        self.check_url(&new.url).await?;
        let max_in_flight = self.check_in_flight(new.mode, new.max_in_flight)?;
        if new.from_seq == Some(0) {
            return Err(invalid("/from_seq", "seqs start at 1"));
        }
        let _guard = self.inner.control.lock().await;
        let now = ms_to_rfc3339(now_ms());
        let secret = signing::new_secret();
        let sub = Subscription {
            id: Uuid::now_v7(),
            url: new.url,
            description: new.description,
            filter: new.filter,
            mode: new.mode,
            max_in_flight,
            rate_limit_per_sec: new.rate_limit_per_sec.filter(|r| *r > 0),
            status: Status::Active,
            status_reason: None,
            created_at: now.clone(),
            updated_at: now,
            failing_since_ms: None,
            secrets: vec![Secret {
                key: secret.clone(),
                expires_at_ms: None,
            }],
        };
        let cursor = match new.from_seq {
            Some(from) => from - 1,
            None => self.inner.ctx.log.head().seq,
        };
        self.store().set_cursor(&sub.id, cursor)?;
        self.store().put_subscription(&sub)?;
        // The caller holds the only copy of the secret once we answer: make it durable first.
        self.sync().await?;
        self.start_worker(&sub);
        tracing::info!(subscription = %sub.id, url = %sub.url, "webhook subscription created");
        Ok((self.view(&sub)?, secret))
    }

    /// Every subscription, oldest first.
    pub fn list(&self) -> Result<Vec<Value>, WebhookError> {
        self.store()
            .subscriptions()?
            .iter()
            .map(|s| self.view(s))
            .collect()
    }

    /// One subscription.
    pub fn get(&self, id: &str) -> Result<Value, WebhookError> {
        self.view(&self.load(id)?)
    }

    /// Stops the task, changes the stored subscription, restarts the task if active.
    async fn change(
        &self,
        id: &str,
        f: impl FnOnce(&mut Subscription) -> Result<(), WebhookError>,
    ) -> Result<Subscription, WebhookError> {
        let _guard = self.inner.control.lock().await;
        let uuid = self.load(id)?.id;
        self.stop_worker(&uuid).await;
        // Reload: the task may have changed it (status, failing_since) before it stopped.
        let mut sub = self.load(id)?;
        let result = f(&mut sub);
        if result.is_ok() {
            sub.updated_at = ms_to_rfc3339(now_ms());
            self.store().put_subscription(&sub)?;
            self.sync().await?;
        }
        self.start_worker(&sub);
        result.map(|()| sub)
    }

    /// Applies a patch.
    pub async fn update(&self, id: &str, patch: SubscriptionPatch) -> Result<Value, WebhookError> {
        if let Some(url) = &patch.url {
            self.check_url(url).await?;
        }
        let current = self.load(id)?;
        let mode = patch.mode.unwrap_or(current.mode);
        let in_flight = match (patch.max_in_flight, patch.mode) {
            (Some(n), _) => Some(self.check_in_flight(mode, Some(n))?),
            (None, Some(_)) => Some(self.check_in_flight(mode, None)?),
            (None, None) => None,
        };
        let sub = self
            .change(id, |sub| {
                if let Some(url) = patch.url {
                    sub.url = url;
                }
                if let Some(d) = patch.description {
                    sub.description = d;
                }
                if let Some(f) = patch.filter {
                    sub.filter = f;
                }
                sub.mode = mode;
                if let Some(n) = in_flight {
                    sub.max_in_flight = n;
                }
                if let Some(r) = patch.rate_limit_per_sec {
                    sub.rate_limit_per_sec = Some(r).filter(|r| *r > 0);
                }
                Ok(())
            })
            .await?;
        self.view(&sub)
    }

    /// Pauses delivery (the cursor stays where it is).
    pub async fn pause(&self, id: &str) -> Result<Value, WebhookError> {
        let sub = self
            .change(id, |sub| {
                sub.status = Status::Paused;
                sub.status_reason = Some("paused by an operator".into());
                Ok(())
            })
            .await?;
        self.view(&sub)
    }

    /// Resumes a paused or disabled subscription from its cursor.
    pub async fn resume(&self, id: &str) -> Result<Value, WebhookError> {
        let sub = self
            .change(id, |sub| {
                if sub.signing_secrets(now_ms()).is_empty() {
                    return Err(WebhookError::NoSecret(sub.id));
                }
                sub.status = Status::Active;
                sub.status_reason = None;
                sub.failing_since_ms = None;
                Ok(())
            })
            .await?;
        self.view(&sub)
    }

    /// Deletes a subscription with its cursor, dead letters and attempts.
    pub async fn delete(&self, id: &str) -> Result<(), WebhookError> {
        let _guard = self.inner.control.lock().await;
        let uuid = self.load(id)?.id;
        self.stop_worker(&uuid).await;
        self.store().delete(&uuid)?;
        let label = uuid.to_string();
        let metrics = &self.inner.ctx.metrics;
        let _ = metrics.lag.remove_label_values(&[&label]);
        let _ = metrics.dead_letters_evicted.remove_label_values(&[&label]);
        self.sync().await?;
        tracing::info!(subscription = %uuid, "webhook subscription deleted");
        Ok(())
    }

    /// Starts a new secret; the previous one keeps signing for `secret_overlap_secs`.
    /// Answers the new secret and when the previous one stops signing.
    pub async fn rotate_secret(&self, id: &str) -> Result<(String, String), WebhookError> {
        let secret = signing::new_secret();
        let now = now_ms();
        let until = now + self.config().secret_overlap_secs * 1000;
        let new = secret.clone();
        self.change(id, move |sub| {
            let mut secrets = vec![Secret {
                key: new,
                expires_at_ms: None,
            }];
            for mut old in sub.secrets.drain(..) {
                if old.expires_at_ms.is_none() {
                    old.expires_at_ms = Some(until);
                }
                if old.expires_at_ms.is_some_and(|t| t > now) {
                    secrets.push(old);
                }
            }
            sub.secrets = secrets;
            Ok(())
        })
        .await?;
        tracing::info!(subscription = %id, "webhook secret rotated");
        Ok((secret, ms_to_rfc3339(until)))
    }

    /// Moves the cursor so delivery starts again at `from_seq`.
    pub async fn replay(&self, id: &str, from_seq: u64) -> Result<Value, WebhookError> {
        if from_seq == 0 {
            return Err(invalid("/from_seq", "seqs start at 1"));
        }
        let head = self.inner.ctx.log.head().seq;
        if from_seq > head + 1 {
            return Err(invalid(
                "/from_seq",
                format!(
                    "the log ends at seq {head}; replay from at most {}",
                    head + 1
                ),
            ));
        }
        let store = self.store().clone();
        let sub = self
            .change(id, move |sub| {
                store.set_cursor(&sub.id, from_seq - 1)?;
                Ok(())
            })
            .await?;
        self.view(&sub)
    }

    /// One page of a subscription's dead letters: up to `limit` with a seq above `after`, by
    /// seq, and the `after` that continues the list (`None` once this page reached its end).
    pub fn dead_letters(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, Option<u64>), WebhookError> {
        let sub = self.load(id)?;
        let limit = limit.max(1);
        // One more than asked tells whether another page exists without a second read.
        let mut page = self
            .store()
            .dead_letters_after(&sub.id, after, limit.saturating_add(1))?;
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|d| d.seq)
        } else {
            None
        };
        Ok((page, next))
    }

    /// Queues dead letters (all, or the one at `seq`) for redelivery; answers how many. They
    /// stay dead letters until delivered, so a crash loses none.
    pub async fn redeliver(&self, id: &str, seq: Option<u64>) -> Result<usize, WebhookError> {
        let store = self.store().clone();
        let mut queued = 0;
        let count = &mut queued;
        self.change(id, move |sub| {
            let letters = store.dead_letters(&sub.id)?;
            if let Some(seq) = seq
                && !letters.iter().any(|d| d.seq == seq)
            {
                return Err(WebhookError::NoDeadLetter { id: sub.id, seq });
            }
            for mut dl in letters {
                if seq.is_none_or(|s| s == dl.seq) {
                    dl.redeliver = true;
                    store.put_dead_letter(&sub.id, &dl)?;
                    *count += 1;
                }
            }
            Ok(())
        })
        .await?;
        Ok(queued)
    }

    /// Recent attempts, newest first.
    pub fn attempts(&self, id: &str, limit: usize) -> Result<Vec<Attempt>, WebhookError> {
        let sub = self.load(id)?;
        let keep = self.config().attempts_kept as u64;
        Ok(self.store().attempts(&sub.id, limit, keep)?)
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
