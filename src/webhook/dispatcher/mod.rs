//! Delivery: one task per active subscription reads the log after its cursor, in steps of at
//! most `read_batch` records, skips what its filter refuses, POSTs what it accepts (signed,
//! through the target guard, paced by the rate limit, retried on the schedule) and moves the
//! cursor only past records that are settled (examined and refused by the filter, delivered,
//! or dead-lettered in parallel mode). The log is the outbox: nothing is queued anywhere else,
//! so a restart resumes from the cursor; a message that has failed keeps its attempt count
//! and next due time in the store, so a restart goes on with its schedule instead of starting
//! it over. Dead letters are capped per subscription, the oldest evicted first. This module
//! must never write to the log, never wait on another subscription, never examine an
//! unbounded run of records without yielding, and never log a secret or a body.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use prometheus::{IntCounter, IntGauge};
use reqwest::Url;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::WebhookConfig;
use super::guard::{self, Checked};
use super::metrics::WebhookMetrics;
use super::retry;
use super::signing;
use super::store::{RetryKind, RetryState, Store, StoreError};
use super::subscription::{Attempt, DeadLetter, Mode, Status, Subscription, ms_to_rfc3339, now_ms};
use crate::log::{Log, LogError, Record, Recorded};

/// What every delivery task shares.
pub(crate) struct Ctx {
    /// The log (read only).
    pub log: Log,
    /// The `webhooks` tree.
    pub store: Store,
    /// Settings.
    pub config: WebhookConfig,
    /// Instruments.
    pub metrics: WebhookMetrics,
    /// Store writes that must become durable, counted (a cursor moved, a dead letter or a
    /// retry state stored). A sync that read this count before it flushed made that many
    /// writes durable.
    pub writes: AtomicU64,
    /// The write count the latest completed sync covered; the syncer runs while `writes` is
    /// ahead of it.
    pub synced: watch::Sender<u64>,
    /// The client for targets given as IP literals (nothing to resolve, so nothing to pin);
    /// shared so connections are kept alive across subscriptions.
    pub ip_client: reqwest::Client,
}

/// Why making the webhook store durable failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncError {
    /// The log (and so the store) failed or is closed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The blocking task running the sync failed.
    #[error("the sync task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Ctx {
    /// Notes a store write that must become durable; answers a ticket for [`Ctx::durable`].
    pub(crate) fn mark_dirty(&self) -> u64 {
        self.writes.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Whether some write is not yet known to be durable.
    pub(crate) fn is_dirty(&self) -> bool {
        self.writes.load(Ordering::SeqCst) > *self.synced.borrow()
    }

    /// Waits until a sync has covered the write behind `ticket` (the syncer's, one flush +
    /// fdatasync per `cursor_sync_ms` for every waiter). Only a closed log keeps it waiting,
    /// and then the task is being stopped.
    async fn durable(&self, ticket: u64) {
        let mut rx = self.synced.subscribe();
        // The sender lives in `self`: this cannot fail while we hold it.
        let _ = rx.wait_for(|done| *done >= ticket).await;
    }

    /// Makes every webhook write so far durable (sled flush + fdatasync) and tells waiters.
    pub(crate) async fn sync(&self) -> Result<(), SyncError> {
        // Read before the flush: every write counted so far was made before it.
        let covered = self.writes.load(Ordering::SeqCst);
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.sync_aux()).await??;
        // Syncs may finish out of order (the syncer and an operator's change): keep the highest.
        self.synced.send_if_modified(|done| {
            let newer = covered > *done;
            if newer {
                *done = covered;
            }
            newer
        });
        Ok(())
    }
}

/// Why a delivery task stopped on its own.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A running delivery task and the switch that stops it.
pub(crate) struct Worker {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Worker {
    /// Stops the task and waits until it is gone. In-flight requests are dropped; their
    /// messages stay after the cursor and are sent again by the next run (same webhook-id).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.handle.await
            && e.is_panic()
        {
            tracing::error!("a webhook delivery task panicked");
        }
    }
}

/// Starts the delivery task of an active subscription.
pub(crate) fn spawn(ctx: Arc<Ctx>, sub: Subscription) -> Worker {
    let (stop, mut stop_rx) = watch::channel(false);
    let id = sub.id;
    let handle = tokio::spawn(async move {
        tokio::select! {
            result = run(ctx, sub) => if let Err(e) = result {
                tracing::error!(subscription = %id, error = %e, "webhook delivery task stopped");
            },
            _ = stop_rx.wait_for(|s| *s) => {}
        }
    });
    Worker { stop, handle }
}

/// A message ready to send.
#[derive(Clone)]
struct Msg {
    seq: u64,
    event_id: String,
    event_type: String,
    /// `{"type","timestamp","data"}`: built once, signed and sent as is on every attempt.
    body: Bytes,
}

impl Msg {
    fn new(rec: &Record, recorded: &Recorded) -> Result<Msg, serde_json::Error> {
        let body = format!(
            "{{\"type\":{},\"timestamp\":{},\"data\":{}}}",
            serde_json::to_string(&rec.event_type)?,
            serde_json::to_string(&rec.recorded_at)?,
            recorded.envelope_json()
        );
        Ok(Msg {
            seq: recorded.seq,
            event_id: rec.id.to_string(),
            event_type: rec.event_type.clone(),
            body: Bytes::from(body),
        })
    }
}

/// How a message settled.
enum Outcome {
    /// A 2xx came back.
    Delivered,
    /// Stored in the dead letters; delivery goes on.
    DeadLettered,
    /// The subscription must stop (410, ordered exhaustion, failing too long).
    Stop(Status, String),
}

/// What to do when the schedule runs out.
#[derive(Clone, Copy)]
enum Exhaust {
    /// Ordered mode pauses; parallel mode dead-letters.
    ByMode,
    /// A redelivery goes back to the dead letters, with `prior` attempts already made.
    DeadLetter { prior: u32 },
}

impl Exhaust {
    /// Where this delivery keeps its retry state, and the state of a message not tried yet
    /// in this kind of delivery.
    fn retry(self) -> (RetryKind, RetryState) {
        match self {
            Exhaust::ByMode => (RetryKind::Cursor, RetryState::default()),
            Exhaust::DeadLetter { prior } => (
                RetryKind::Redelivery,
                RetryState {
                    attempts: prior,
                    round_start: prior,
                    next_at_ms: 0,
                },
            ),
        }
    }
}

/// One message's place in its retry schedule. Written to the store only once the message has
/// failed (a message delivered at its first try costs no write), and forgotten when it
/// settles.
struct Retry {
    kind: RetryKind,
    state: RetryState,
    /// Whether the store holds a state for this message.
    stored: bool,
    /// A write not yet known to be durable: the ticket to wait for before the next attempt.
    unsynced: Option<u64>,
}

impl Retry {
    /// The stored state of this message, or a fresh one.
    fn load(ctx: &Ctx, s: &SubCtx, id: &uuid::Uuid, seq: u64, exhaust: Exhaust) -> Retry {
        let (kind, fresh) = exhaust.retry();
        // Only this task writes retry states, so the cursor's messages that have one are
        // known from its start: the others (nearly all) cost no read.
        let look = kind == RetryKind::Redelivery
            || s.restored
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&seq);
        let stored = if look {
            ctx.store.retry_state(kind, id, seq).unwrap_or_else(|e| {
                tracing::error!(subscription = %id, seq, error = %e, "cannot read a retry state; its schedule starts over");
                None
            })
        } else {
            None
        };
        Retry {
            kind,
            stored: stored.is_some(),
            state: stored.unwrap_or(fresh),
            unsynced: None,
        }
    }

    /// Stores the state; the next attempt waits until it is durable, so an attempt numbered
    /// N + 1 is never sent while a crash could still forget attempt N.
    fn save(&mut self, ctx: &Ctx, id: &uuid::Uuid, seq: u64) {
        match ctx.store.put_retry_state(self.kind, id, seq, &self.state) {
            Ok(()) => {
                self.stored = true;
                self.unsynced = Some(ctx.mark_dirty());
            }
            Err(e) => {
                tracing::error!(subscription = %id, seq, error = %e, "cannot store a retry state")
            }
        }
    }

    /// After the message settled: forgotten once delivered or dead-lettered; kept as the
    /// start of a new round when the subscription stopped on it, so the count goes on after a
    /// resume.
    fn finish(&mut self, ctx: &Ctx, id: &uuid::Uuid, seq: u64, outcome: &Outcome) {
        match outcome {
            Outcome::Delivered | Outcome::DeadLettered => {
                if self.stored {
                    match ctx.store.remove_retry_state(self.kind, id, seq) {
                        Ok(()) => {
                            ctx.mark_dirty();
                        }
                        Err(e) => {
                            tracing::error!(subscription = %id, seq, error = %e, "cannot forget a retry state")
                        }
                    }
                }
            }
            Outcome::Stop(..) => {
                if self.state.attempts > 0 || self.stored {
                    self.state.round_start = self.state.attempts;
                    self.state.next_at_ms = 0;
                    self.save(ctx, id, seq);
                }
            }
        }
    }
}

/// One attempt's verdict.
enum Verdict {
    Success,
    Gone,
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// Paces attempts to the subscription's rate limit (a virtual clock: no burst).
struct Pacer {
    interval: Option<Duration>,
    /// The earliest start of the next attempt. A std mutex: held for two instructions, never
    /// across an await.
    next: std::sync::Mutex<tokio::time::Instant>,
}

impl Pacer {
    async fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let at = (*next).max(tokio::time::Instant::now());
            *next = at + interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// Per-subscription state shared by its in-flight deliveries (all inside one task).
struct SubCtx {
    url: Url,
    mode: Mode,
    /// The stored record; deliveries update `failing_since_ms` and the status through it. A
    /// std mutex: never held across an await.
    sub: std::sync::Mutex<Subscription>,
    pacer: Pacer,
    attempt_no: AtomicU64,
    /// Dead letters stored for this subscription. Counted once when the task starts; every
    /// later change to them is made by this task (an operator's change stops it first).
    dead_count: AtomicU64,
    /// This subscription's `webhook_dead_letters_evicted_total`.
    evicted: IntCounter,
    /// Seqs after the cursor whose retry state was stored when the task started (taken as
    /// their messages are read again). A std mutex: never held across an await.
    restored: std::sync::Mutex<BTreeSet<u64>>,
    /// The client pinned to the last checked addresses of a named host (reused while the
    /// host resolves to the same set, so connections stay alive).
    client: std::sync::Mutex<Option<(Checked, reqwest::Client)>>,
    lag: IntGauge,
}

impl SubCtx {
    fn id(&self) -> uuid::Uuid {
        self.sub.lock().unwrap_or_else(|e| e.into_inner()).id
    }

    fn keys(&self) -> Vec<Vec<u8>> {
        let sub = self.sub.lock().unwrap_or_else(|e| e.into_inner());
        sub.signing_secrets(now_ms())
            .into_iter()
            .filter_map(|s| signing::decode_secret(s).ok())
            .collect()
    }

    /// A client that connects only to addresses the guard has just checked.
    async fn client(&self, ctx: &Ctx) -> Result<reqwest::Client, String> {
        let checked = guard::check(&self.url, ctx.config.allow_private_targets)
            .await
            .map_err(|e| format!("target refused: {e}"))?;
        let Some(host) = checked.host.clone() else {
            return Ok(ctx.ip_client.clone());
        };
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, client)) = slot.as_ref()
            && c.addrs == checked.addrs
        {
            return Ok(client.clone());
        }
        let client = client_builder(&ctx.config)
            .resolve_to_addrs(&host, &checked.addrs)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        *slot = Some((checked, client.clone()));
        Ok(client)
    }

    fn save(&self, ctx: &Ctx, change: impl FnOnce(&mut Subscription)) -> Result<(), StoreError> {
        let mut sub = self.sub.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut sub);
        ctx.store.put_subscription(&sub)?;
        ctx.mark_dirty();
        Ok(())
    }

    /// Evicts the oldest dead letters (lowest seqs) beyond
    /// `webhooks.max_dead_letters_per_subscription`, so the store stays bounded.
    fn trim_dead_letters(&self, ctx: &Ctx) -> Result<(), StoreError> {
        let cap = ctx.config.max_dead_letters_per_subscription as u64;
        let count = self.dead_count.load(Ordering::Acquire);
        if count <= cap {
            return Ok(());
        }
        let id = self.id();
        let evicted = ctx
            .store
            .evict_oldest_dead_letters(&id, (count - cap) as usize)?;
        let n = evicted.len() as u64;
        self.dead_count.fetch_sub(n, Ordering::AcqRel);
        ctx.mark_dirty();
        self.evicted.inc_by(n);
        tracing::warn!(
            subscription = %id,
            evicted = n,
            lowest_seq = evicted.first().copied().unwrap_or(0),
            highest_seq = evicted.last().copied().unwrap_or(0),
            max = cap,
            "oldest webhook dead letters evicted (webhooks.max_dead_letters_per_subscription reached)"
        );
        Ok(())
    }

    fn mark_healthy(&self, ctx: &Ctx) {
        let failing = self
            .sub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failing_since_ms
            .is_some();
        if failing && let Err(e) = self.save(ctx, |s| s.failing_since_ms = None) {
            tracing::error!(error = %e, "cannot record a healthy subscription");
        }
    }

    /// Notes a failure; returns the reason to disable once it has only failed for too long.
    fn mark_failing(&self, ctx: &Ctx) -> Option<String> {
        let now = now_ms();
        let since = self
            .sub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failing_since_ms;
        match since {
            None => {
                if let Err(e) = self.save(ctx, |s| s.failing_since_ms = Some(now)) {
                    tracing::error!(error = %e, "cannot record a failing subscription");
                }
                None
            }
            Some(t) if now.saturating_sub(t) >= ctx.config.disable_after_failing_secs * 1000 => {
                Some(format!(
                    "every attempt has failed since {} (webhooks.disable_after_failing_secs = {})",
                    ms_to_rfc3339(t),
                    ctx.config.disable_after_failing_secs
                ))
            }
            Some(_) => None,
        }
    }
}

/// The HTTP client settings every target gets: no redirects, no proxy (a proxy would connect
/// to addresses the guard never saw), timeouts.
pub(crate) fn client_builder(config: &WebhookConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_millis(config.timeout_ms))
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .tcp_nodelay(true)
        .user_agent(concat!("Annals-Webhooks/", env!("CARGO_PKG_VERSION")))
}

type Pending = Pin<Box<dyn Future<Output = (bool, u64, Outcome)> + Send>>;

/// The delivery loop of one subscription.
async fn run(ctx: Arc<Ctx>, sub: Subscription) -> Result<(), RunError> {
    let id = sub.id;
    let url = match guard::parse(&sub.url) {
        Ok(u) => u,
        Err(e) => {
            // Stored URLs were checked at creation; one that no longer parses cannot deliver.
            let mut sub = sub;
            sub.status = Status::Disabled;
            sub.status_reason = Some(e.to_string());
            ctx.store.put_subscription(&sub)?;
            return Ok(());
        }
    };
    let k = match sub.mode {
        Mode::Ordered => 1,
        Mode::Parallel => sub.max_in_flight.clamp(1, ctx.config.max_in_flight) as usize,
    };
    let lag = ctx.metrics.lag.with_label_values(&[&id.to_string()]);
    let evicted = ctx
        .metrics
        .dead_letters_evicted
        .with_label_values(&[&id.to_string()]);
    let letters = ctx.store.dead_letters(&id)?;
    let s = Arc::new(SubCtx {
        url,
        mode: sub.mode,
        pacer: Pacer {
            interval: sub
                .rate_limit_per_sec
                .filter(|r| *r > 0)
                .map(|r| Duration::from_secs_f64(1.0 / f64::from(r))),
            next: std::sync::Mutex::new(tokio::time::Instant::now()),
        },
        attempt_no: AtomicU64::new(ctx.store.last_attempt_number(&id)?),
        dead_count: AtomicU64::new(letters.len() as u64),
        evicted,
        restored: std::sync::Mutex::new(BTreeSet::new()),
        client: std::sync::Mutex::new(None),
        lag,
        sub: std::sync::Mutex::new(sub),
    });
    let mut cursor = ctx.store.cursor(&id)?;
    let mut next = cursor + 1;
    let mut buffer: VecDeque<Msg> = VecDeque::new();
    let mut in_flight: BTreeSet<u64> = BTreeSet::new();
    let mut pending: FuturesUnordered<Pending> = FuturesUnordered::new();

    // Retry states of messages the cursor has passed (a replay moved it) are stale, and so
    // are those of redeliveries no longer queued.
    let mut restored = BTreeSet::new();
    for seq in ctx.store.retry_seqs(RetryKind::Cursor, &id)? {
        if seq <= cursor {
            ctx.store.remove_retry_state(RetryKind::Cursor, &id, seq)?;
        } else {
            restored.insert(seq);
        }
    }
    *s.restored.lock().unwrap_or_else(|e| e.into_inner()) = restored;
    let queued: BTreeSet<u64> = letters
        .iter()
        .filter(|d| d.redeliver)
        .map(|d| d.seq)
        .collect();
    for seq in ctx.store.retry_seqs(RetryKind::Redelivery, &id)? {
        if !queued.contains(&seq) {
            ctx.store
                .remove_retry_state(RetryKind::Redelivery, &id, seq)?;
        }
    }
    // Dead letters queued for redelivery run beside the cursor; they never move it. They are
    // started at most `k` at a time, like the cursor's own messages, so "redeliver all" never
    // opens thousands of requests to one target at once.
    let mut redo: VecDeque<DeadLetter> = letters.into_iter().filter(|d| d.redeliver).collect();
    let mut redo_in_flight = 0usize;
    // The cap may have been lowered since the last run. Failing that, the next dead letter
    // tries again; delivery need not wait for it.
    if let Err(e) = s.trim_dead_letters(&ctx) {
        tracing::error!(subscription = %id, error = %e, "cannot evict old dead letters");
    }

    let mut head_rx = ctx.log.subscribe();
    loop {
        while redo_in_flight < k {
            let Some(dl) = redo.pop_front() else { break };
            match ctx.log.get(dl.seq)? {
                Some(recorded) => match recorded.record().map(|r| Msg::new(&r, &recorded)) {
                    Ok(Ok(msg)) => {
                        redo_in_flight += 1;
                        pending.push(Box::pin(settle(
                            ctx.clone(),
                            s.clone(),
                            msg,
                            Exhaust::DeadLetter { prior: dl.attempts },
                            true,
                        )));
                    }
                    _ => tracing::error!(seq = dl.seq, "dead letter record does not parse"),
                },
                None => {
                    if ctx.store.remove_dead_letter(&id, dl.seq)? {
                        s.dead_count.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            }
        }
        let head = head_rx.borrow_and_update().seq;
        // At most one read per turn: a read examines at most `read_batch` records, and the
        // turn ends by yielding, so a filter that refuses a long run of records never holds
        // the thread for longer than one step.
        let mut read_this_turn = false;
        while in_flight.len() < k {
            if buffer.is_empty() && next <= head && !read_this_turn {
                let (msgs, after) = read(&ctx, &s, next)?;
                read_this_turn = true;
                next = after;
                buffer.extend(msgs);
            }
            let Some(msg) = buffer.pop_front() else {
                break;
            };
            in_flight.insert(msg.seq);
            pending.push(Box::pin(settle(
                ctx.clone(),
                s.clone(),
                msg,
                Exhaust::ByMode,
                false,
            )));
        }
        // Everything before the oldest unsettled message is settled, and so is every record
        // examined and refused by the filter: the cursor moves past them, step by step.
        let settled = in_flight
            .first()
            .or(buffer.front().map(|m| &m.seq))
            .map(|seq| seq - 1)
            .unwrap_or(next - 1);
        if settled > cursor {
            ctx.store.set_cursor(&id, settled)?;
            ctx.mark_dirty();
            cursor = settled;
        }
        s.lag.set(head.saturating_sub(cursor) as i64);
        let can_send = in_flight.len() < k && buffer.is_empty();
        // More of the log to examine: go on after letting everything else run.
        let more = can_send && next <= head;
        // Nothing left to examine: wait for the head to move.
        let room = can_send && next > head;
        if pending.is_empty() && !more {
            if head_rx.changed().await.is_err() {
                return Ok(());
            }
            continue;
        }
        tokio::select! {
            done = pending.next(), if !pending.is_empty() => {
                let Some((redelivery, seq, outcome)) = done else { continue };
                if redelivery {
                    redo_in_flight = redo_in_flight.saturating_sub(1);
                } else {
                    in_flight.remove(&seq);
                }
                match outcome {
                    Outcome::Delivered => {
                        if redelivery && ctx.store.remove_dead_letter(&id, seq)? {
                            s.dead_count.fetch_sub(1, Ordering::AcqRel);
                            ctx.mark_dirty();
                        }
                    }
                    Outcome::DeadLettered => {}
                    Outcome::Stop(status, reason) => {
                        tracing::warn!(subscription = %id, ?status, %reason, "webhook subscription stopped");
                        let label = if status == Status::Paused { "paused" } else { "disabled" };
                        ctx.metrics.deliveries.with_label_values(&[label]).inc();
                        s.save(&ctx, |sub| {
                            sub.status = status;
                            sub.status_reason = Some(reason);
                            sub.updated_at = ms_to_rfc3339(now_ms());
                        })?;
                        return Ok(());
                    }
                }
            }
            // In-flight deliveries are polled above while the scan goes on.
            _ = tokio::task::yield_now(), if more => {}
            changed = head_rx.changed(), if room => {
                if changed.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// Examines the next `read_batch` records after `from` (bounded by the durable head), matching
/// or not, and answers the messages among them and the seq after the last one examined. The
/// bound is on records examined, not on matches, so a rare filter costs one bounded step per
/// call however far the next match is.
fn read(ctx: &Ctx, s: &SubCtx, from: u64) -> Result<(Vec<Msg>, u64), RunError> {
    let filter = s
        .sub
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .filter
        .clone();
    // Every record is kept so that at most `read_batch` are examined; the filter runs below.
    let (records, after) = ctx.log.read_range(from, ctx.config.read_batch, |_| true)?;
    let mut msgs = Vec::new();
    for recorded in &records {
        let rec = match recorded.record() {
            Ok(rec) => rec,
            Err(e) => {
                tracing::error!(seq = recorded.seq, error = %e, "stored record does not parse; not delivered");
                continue;
            }
        };
        if !filter.matches(&rec) {
            continue;
        }
        match Msg::new(&rec, recorded) {
            Ok(m) => msgs.push(m),
            Err(e) => {
                tracing::error!(seq = recorded.seq, error = %e, "cannot build a webhook body")
            }
        }
    }
    Ok((msgs, after))
}

/// Sends one message until it settles: delivered, exhausted (paused or dead-lettered) or a
/// reason to stop the subscription.
async fn settle(
    ctx: Arc<Ctx>,
    s: Arc<SubCtx>,
    msg: Msg,
    exhaust: Exhaust,
    redelivery: bool,
) -> (bool, u64, Outcome) {
    let id = s.id();
    let mut retry = Retry::load(&ctx, &s, &id, msg.seq, exhaust);
    let outcome = settle_inner(&ctx, &s, &msg, exhaust, &mut retry).await;
    retry.finish(&ctx, &id, msg.seq, &outcome);
    if let Outcome::Delivered = outcome {
        ctx.metrics
            .deliveries
            .with_label_values(&["delivered"])
            .inc();
    }
    (redelivery, msg.seq, outcome)
}

async fn settle_inner(
    ctx: &Ctx,
    s: &SubCtx,
    msg: &Msg,
    exhaust: Exhaust,
    retry: &mut Retry,
) -> Outcome {
    let id = s.id();
    let schedule = &ctx.config.retry_schedule_ms;
    if msg.body.len() > ctx.config.max_request_bytes {
        // No retry can make it smaller: straight to the dead letters, in either mode.
        let reason = format!(
            "the message is {} bytes, over webhooks.max_request_bytes ({})",
            msg.body.len(),
            ctx.config.max_request_bytes
        );
        return dead_letter(ctx, s, msg, retry.state.attempts, reason);
    }
    let mut last_error = String::new();
    loop {
        // The place in the schedule comes from the stored count, so a restarted task goes on
        // where the last one stopped rather than at the first entry.
        let index = retry.state.attempts.saturating_sub(retry.state.round_start) as usize;
        if index >= schedule.len() {
            break;
        }
        let wait = if retry.state.next_at_ms > 0 {
            Duration::from_millis(retry.state.next_at_ms.saturating_sub(now_ms()))
        } else {
            retry::delay(schedule, index, ctx.config.jitter_percent).unwrap_or_default()
        };
        let unsynced = retry.unsynced.take();
        tokio::join!(
            async {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            },
            async {
                if let Some(ticket) = unsynced {
                    ctx.durable(ticket).await;
                }
            }
        );
        s.pacer.wait().await;
        retry.state.attempts += 1;
        retry.state.next_at_ms = 0;
        match attempt(ctx, s, msg, retry.state.attempts).await {
            Verdict::Success => {
                s.mark_healthy(ctx);
                return Outcome::Delivered;
            }
            Verdict::Gone => {
                return Outcome::Stop(
                    Status::Disabled,
                    format!(
                        "the target answered 410 Gone (seq {}, webhook-id {})",
                        msg.seq, msg.event_id
                    ),
                );
            }
            Verdict::Failed { error, retry_after } => {
                last_error = error;
                if let Some(reason) = s.mark_failing(ctx) {
                    return Outcome::Stop(Status::Disabled, reason);
                }
                let Some(mut wait) = retry::delay(schedule, index + 1, ctx.config.jitter_percent)
                else {
                    break;
                };
                if let Some(hint) = retry_after {
                    wait = wait.max(hint);
                }
                retry.state.next_at_ms = now_ms() + wait.as_millis() as u64;
                retry.save(ctx, &id, msg.seq);
            }
        }
    }
    if last_error.is_empty() {
        // Only a restart with a shorter schedule gets here without trying.
        last_error = "the retry schedule ran out before this run tried again".into();
    }
    let made = retry.state.attempts;
    match (exhaust, s.mode) {
        (Exhaust::ByMode, Mode::Ordered) => Outcome::Stop(
            Status::Paused,
            format!(
                "seq {} (webhook-id {}) failed {made} attempts; ordered delivery waits for it (last error: {last_error}); resume to retry",
                msg.seq, msg.event_id
            ),
        ),
        (Exhaust::ByMode, Mode::Parallel) | (Exhaust::DeadLetter { .. }, _) => {
            dead_letter(ctx, s, msg, made, last_error)
        }
    }
}

fn dead_letter(ctx: &Ctx, s: &SubCtx, msg: &Msg, attempts: u32, reason: String) -> Outcome {
    let id = s.id();
    let dl = DeadLetter {
        seq: msg.seq,
        event_id: msg.event_id.clone(),
        event_type: msg.event_type.clone(),
        attempts,
        reason,
        at: ms_to_rfc3339(now_ms()),
        redeliver: false,
    };
    match ctx.store.put_dead_letter(&id, &dl) {
        Ok(new) => {
            if new {
                s.dead_count.fetch_add(1, Ordering::AcqRel);
                // Over the cap the oldest go; failing that, the store is over the cap until
                // the next dead letter tries again, which loses nothing.
                if let Err(e) = s.trim_dead_letters(ctx) {
                    tracing::error!(subscription = %id, error = %e, "cannot evict old dead letters");
                }
            }
        }
        Err(e) => {
            // Without the dead letter the cursor must not pass this message.
            return Outcome::Stop(
                Status::Paused,
                format!("cannot store the dead letter for seq {}: {e}", msg.seq),
            );
        }
    }
    ctx.mark_dirty();
    ctx.metrics
        .deliveries
        .with_label_values(&["dead_lettered"])
        .inc();
    tracing::warn!(subscription = %id, seq = msg.seq, attempts, "webhook message dead-lettered");
    Outcome::DeadLettered
}

/// One HTTP attempt, recorded in the attempts ring and the metrics.
async fn attempt(ctx: &Ctx, s: &SubCtx, msg: &Msg, number: u32) -> Verdict {
    let id = s.id();
    let at = ms_to_rfc3339(now_ms());
    let start = Instant::now();
    let result = send(ctx, s, msg).await;
    let latency = start.elapsed();
    ctx.metrics.attempt_seconds.observe(latency.as_secs_f64());
    let (verdict, status, error, response, label) = match result {
        Ok((status, retry_after, preview)) => {
            let preview = Some(String::from_utf8_lossy(&preview).into_owned());
            if (200..300).contains(&status) {
                (Verdict::Success, Some(status), None, preview, "success")
            } else if status == 410 {
                (
                    Verdict::Gone,
                    Some(status),
                    Some("HTTP 410 Gone".to_string()),
                    preview,
                    "gone",
                )
            } else {
                let error = if (300..400).contains(&status) {
                    format!("HTTP {status} (redirects are not followed)")
                } else {
                    format!("HTTP {status}")
                };
                (
                    Verdict::Failed {
                        error: error.clone(),
                        retry_after,
                    },
                    Some(status),
                    Some(error),
                    preview,
                    "http_error",
                )
            }
        }
        Err((label, error)) => (
            Verdict::Failed {
                error: error.clone(),
                retry_after: None,
            },
            None,
            Some(error),
            None,
            label,
        ),
    };
    ctx.metrics.attempts.with_label_values(&[label]).inc();
    tracing::info!(
        target: "annals::webhook",
        subscription = %id,
        seq = msg.seq,
        webhook_id = %msg.event_id,
        attempt = number,
        status = status.unwrap_or(0),
        outcome = label,
        error = error.as_deref().unwrap_or(""),
        micros = latency.as_micros() as u64,
        "webhook attempt"
    );
    let record = Attempt {
        at,
        seq: msg.seq,
        event_id: msg.event_id.clone(),
        attempt: number,
        outcome: if label == "success" {
            "success".into()
        } else {
            "failure".into()
        },
        status,
        latency_ms: latency.as_secs_f64() * 1000.0,
        error,
        response,
    };
    let n = s.attempt_no.fetch_add(1, Ordering::AcqRel) + 1;
    if let Err(e) = ctx
        .store
        .push_attempt(&id, n, &record, ctx.config.attempts_kept as u64)
    {
        tracing::error!(error = %e, "cannot record a webhook attempt");
    }
    verdict
}

/// Sends the request; answers (status, Retry-After, first bytes) or (metric label, error).
async fn send(
    ctx: &Ctx,
    s: &SubCtx,
    msg: &Msg,
) -> Result<(u16, Option<Duration>, Vec<u8>), (&'static str, String)> {
    let client = s.client(ctx).await.map_err(|e| ("refused", e))?;
    let timestamp = (now_ms() / 1000) as i64;
    let keys = s.keys();
    if keys.is_empty() {
        // Only a subscription whose unreadable secrets were dropped has none, and it is
        // disabled until rotated; still, nothing is ever sent unsigned.
        return Err((
            "unsigned",
            "no secret to sign with; rotate the subscription's secret".into(),
        ));
    }
    let signature = signing::signature_header(&keys, &msg.event_id, timestamp, &msg.body);
    let mut resp = client
        .post(s.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &msg.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(msg.body.clone())
        .send()
        .await
        .map_err(describe)?;
    let status = resp.status().as_u16();
    let retry_after = if status == 429 || status == 503 {
        resp.headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                retry::retry_after(v, Duration::from_secs(ctx.config.retry_after_max_secs))
            })
    } else {
        None
    };
    // Read no more than the cap: a target cannot make us buffer an endless answer.
    let mut preview = Vec::new();
    let mut read = 0usize;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                read += chunk.len();
                let room = ctx
                    .config
                    .response_preview_bytes
                    .saturating_sub(preview.len());
                preview.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if read >= ctx.config.max_response_bytes {
                    break;
                }
            }
            Ok(None) => break,
            // The status already arrived; a broken body does not change the verdict.
            Err(_) => break,
        }
    }
    Ok((status, retry_after, preview))
}

fn describe(e: reqwest::Error) -> (&'static str, String) {
    if e.is_timeout() {
        ("timeout", "timed out".to_string())
    } else if e.is_connect() {
        (
            "connect_error",
            format!("connection failed: {}", root_cause(&e)),
        )
    } else {
        (
            "connect_error",
            format!("request failed: {}", root_cause(&e)),
        )
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
