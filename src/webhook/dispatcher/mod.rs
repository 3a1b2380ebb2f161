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
//!
//! The parts: `context` (what every task shares, and the syncer), `task` (one subscription's
//! shared state), `message` (a message and how it settled), `follow` (the thread that reads
//! new records into the shared cache, so delivery threads never wait on a log read),
//! `settle` (one message on its retry schedule), `retry_state` (its place in the schedule),
//! `send` (one HTTP attempt), `http1` (the plain-HTTP client: hyper's connections, pooled per
//! subscription), `thread` (the dedicated threads delivery tasks run on).

mod context;
mod follow;
mod http1;
mod message;
mod retry_state;
mod send;
mod settle;
mod stages;
mod task;
mod thread;

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub(crate) use context::{Ctx, sync_loop};
pub(crate) use message::MessageCache;
use message::{Delivery, Msg, Outcome, Prepared};
use retry_state::Exhaust;
use settle::settle;
use task::{Pacer, SubCtx, signers};

use super::guard;
use super::store::{RetryKind, StoreError};
use super::subscription::{DeadLetter, Mode, Status, Subscription, ms_to_rfc3339, now_ms};
use crate::log::LogError;

/// Why a delivery task stopped on its own.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The blocking thread that read the log for this task failed.
    #[error("reading the log: {0}")]
    Read(#[from] tokio::task::JoinError),
}

/// A running delivery task and the switch that stops it.
pub(crate) struct Worker {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Worker {
    /// Whether the task has ended on its own (it stopped its subscription, or failed): the
    /// lease keeper then gives the lease back.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Stops the task and waits until it is gone ([`Worker::signal`], then [`Worker::join`]).
    pub async fn stop(self) {
        self.signal();
        self.join().await;
    }

    /// Tells the task to stop: it starts nothing new and lets the requests in flight finish
    /// for at most [`DRAIN`] (an answer already sent by the receiver then moves the cursor,
    /// so a graceful restart sends it no second time). Requests still unanswered then, and
    /// retries waiting for their backoff, are dropped; their messages stay after the cursor and
    /// are sent again by the next run (same webhook-id).
    pub fn signal(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits until the task, told to stop, is gone.
    pub async fn join(self) {
        if let Err(e) = self.handle.await
            && e.is_panic()
        {
            tracing::error!("a webhook delivery task panicked");
        }
    }
}

/// The longest a stopping task waits for its requests in flight (capped by the attempt
/// timeout): long enough for an answer already on its way, short enough that an operator's
/// change or a shutdown never waits on a slow receiver.
pub(crate) const DRAIN: Duration = Duration::from_secs(1);

/// Starts the delivery task of an active subscription, on a delivery thread.
pub(crate) fn spawn(ctx: Arc<Ctx>, sub: Subscription) -> Worker {
    let (stop, stop_rx) = watch::channel(false);
    let id = sub.id;
    let threads = ctx.config.delivery_threads;
    follow::start(&ctx);
    let handle = thread::spawn(
        async move {
            if let Err(e) = run(ctx, sub, stop_rx).await {
                tracing::error!(subscription = %id, error = %e, "webhook delivery task stopped");
            }
        },
        threads,
    );
    Worker { stop, handle }
}

/// Stops the subscription for `reason`: counted, logged, and stored with its status, the
/// reason and the time of the change (the store counts the write, so the syncer makes it
/// durable).
fn stop(
    ctx: &Ctx,
    sub: &mut Subscription,
    status: Status,
    reason: String,
) -> Result<(), StoreError> {
    tracing::warn!(subscription = %sub.id, ?status, %reason, "webhook subscription stopped");
    Delivery::stopped(status).count(&ctx.metrics);
    sub.status = status;
    sub.status_reason = Some(reason);
    sub.updated_at = ms_to_rfc3339(now_ms());
    ctx.store.put_subscription(sub)
}

type Pending = Pin<Box<dyn Future<Output = (bool, u64, Outcome)> + Send>>;

/// The delivery loop of one subscription.
async fn run(
    ctx: Arc<Ctx>,
    sub: Subscription,
    mut stop_rx: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let id = sub.id;
    let drain = DRAIN.min(Duration::from_millis(ctx.config.timeout_ms));
    // Once told to stop: until when the requests in flight may still finish.
    let mut draining: Option<tokio::time::Instant> = None;
    let url = match guard::parse(&sub.url) {
        Ok(u) => u,
        Err(e) => {
            // Stored URLs were checked at creation; one that no longer parses (a store written
            // by an earlier version, or by hand) cannot deliver.
            let mut sub = sub;
            return Ok(stop(&ctx, &mut sub, Status::Disabled, e.to_string())?);
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
        target: http1::Target::new(&url),
        pool: std::sync::Mutex::new(http1::Pool::default()),
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
        delivered: ctx
            .metrics
            .deliveries
            .with_label_values(&[Delivery::Delivered.label()]),
        succeeded: ctx
            .metrics
            .attempts
            .with_label_values(&[send::AttemptOutcome::Success.label()]),
        signers: signers(&sub),
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
    let mut prepared_rx = ctx.messages.prepared.subscribe();
    // With stage times on: each head this task saw and when, oldest first, so a message's
    // first attempt can tell when its record was first seen here.
    let trace = stages::on();
    let mut seen: VecDeque<(u64, u64)> = VecDeque::new();
    // How long the last read of the log (or the message cache) held this thread.
    let mut last_read_ns = 0u64;
    loop {
        if draining.is_none() && *stop_rx.borrow() {
            draining = Some(tokio::time::Instant::now() + drain);
        }
        while redo_in_flight < k && draining.is_none() {
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
                            stages::Seen::default(),
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
        // What this task may read: while the follower runs, what it has prepared.
        let ready = if ctx.messages.following() {
            head.min(*prepared_rx.borrow_and_update())
        } else {
            head
        };
        if trace && seen.back().is_none_or(|(h, _)| *h < ready) {
            seen.push_back((ready, stages::now_ns()));
        }
        // At most one read per turn: a read examines at most `read_batch` records, and the
        // turn ends by yielding, so a filter that refuses a long run of records never holds
        // the thread for longer than one step.
        let mut read_this_turn = false;
        while in_flight.len() < k && draining.is_none() {
            if buffer.is_empty() && next <= ready && !read_this_turn {
                let started = if trace { stages::now_ns() } else { 0 };
                let (msgs, after) = read(&ctx, &s, next, ready).await?;
                if trace {
                    last_read_ns = stages::now_ns().saturating_sub(started);
                }
                read_this_turn = true;
                next = after;
                buffer.extend(msgs);
            }
            let Some(msg) = buffer.pop_front() else {
                break;
            };
            in_flight.insert(msg.seq);
            // The queue time always (for `webhook_stage_seconds`); the rest for the stage log.
            let mut at = stages::Seen {
                queued_ns: stages::now_ns(),
                ..stages::Seen::default()
            };
            if trace {
                while seen.len() > 1 && seen.front().is_some_and(|(h, _)| *h < msg.seq) {
                    seen.pop_front();
                }
                at.trace = true;
                at.seen_ns = seen.front().map_or(0, |(_, t)| *t);
                at.read_ns = last_read_ns;
            }
            pending.push(Box::pin(settle(
                ctx.clone(),
                s.clone(),
                msg,
                Exhaust::ByMode,
                false,
                at,
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
            cursor = settled;
        }
        while seen.front().is_some_and(|(h, _)| *h <= cursor) {
            seen.pop_front();
        }
        s.lag.set(head.saturating_sub(cursor) as i64);
        if let Some(until) = draining
            && (pending.is_empty() || tokio::time::Instant::now() >= until)
        {
            return Ok(());
        }
        let can_send = in_flight.len() < k && buffer.is_empty() && draining.is_none();
        // More of the log to examine: go on after letting everything else run.
        let more = can_send && next <= ready;
        // Nothing left to examine: wait for the head to move (and the follower to prepare).
        let room = can_send && next > ready;
        if pending.is_empty() && !more {
            tokio::select! {
                alive = wait_ready(&ctx, &mut head_rx, &mut prepared_rx) => if !alive {
                    return Ok(());
                },
                // Told to stop, or its worker is gone (the same).
                _ = stop_rx.wait_for(|s| *s) => {
                    draining = Some(tokio::time::Instant::now() + drain);
                }
            }
            continue;
        }
        let until = draining.unwrap_or_else(tokio::time::Instant::now);
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
                        }
                    }
                    Outcome::DeadLettered => {}
                    Outcome::Stop(status, reason) => {
                        let mut sub = s.sub.lock().unwrap_or_else(|e| e.into_inner());
                        return Ok(stop(&ctx, &mut sub, status, reason)?);
                    }
                }
            }
            // In-flight deliveries are polled above while the scan goes on.
            _ = tokio::task::yield_now(), if more => {}
            alive = wait_ready(&ctx, &mut head_rx, &mut prepared_rx), if room => {
                if !alive {
                    return Ok(());
                }
            }
            _ = stop_rx.wait_for(|s| *s), if draining.is_none() => {
                draining = Some(tokio::time::Instant::now() + drain);
            }
            _ = tokio::time::sleep_until(until), if draining.is_some() => {}
        }
    }
}

/// Waits until there may be more to read: the follower has prepared more (while it runs), or
/// the head moved (once it has stopped). Answers false once the log is gone. Cancel safe: a
/// change it consumed is read again from the receivers by the loop.
async fn wait_ready(
    ctx: &Ctx,
    head_rx: &mut watch::Receiver<crate::log::Head>,
    prepared_rx: &mut watch::Receiver<u64>,
) -> bool {
    loop {
        if !ctx.messages.following() {
            return head_rx.changed().await.is_ok();
        }
        tokio::select! {
            // The sender lives in the context this task holds.
            _ = prepared_rx.changed() => return true,
            changed = head_rx.changed() => if changed.is_err() {
                return false;
            },
        }
    }
}

/// Examines the next `read_batch` records after `from` (bounded by `ready`), matching or not,
/// and answers the messages among them and the seq after the last one examined. The bound is
/// on records examined, not on matches, so a rare filter costs one bounded step per call
/// however far the next match is. Records not in the cache (a task behind it) are read from
/// the log on a blocking thread, never on the delivery thread (see `follow`).
async fn read(
    ctx: &Arc<Ctx>,
    s: &SubCtx,
    from: u64,
    ready: u64,
) -> Result<(Vec<Msg>, u64), RunError> {
    let filter = s
        .sub
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .filter
        .clone();
    let end = from
        .saturating_add(ctx.config.read_batch as u64)
        .min(ready.saturating_add(1));
    let mut msgs = Vec::new();
    let mut take = |p: &Prepared| {
        if let Some(msg) = &p.msg
            && filter.matches_fields(&msg.event_type, &p.stream, p.process.as_deref())
        {
            msgs.push(msg.clone());
        }
    };
    let mut seq = from;
    let (mut hits, mut misses) = (0u64, 0u64);
    while seq < end {
        if let Some(p) = ctx.messages.get(seq) {
            take(&p);
            hits += 1;
            seq += 1;
            continue;
        }
        // Not prepared yet (this task is the first to get here, or too far behind): the rest
        // of the step from the log, prepared for every task. Every record is kept so that at
        // most `read_batch` are examined; the filter runs in `take`.
        let reader = ctx.clone();
        let (from, limit) = (seq, (end - seq) as usize);
        let seen_ns = stages::now_ns();
        let (prepared, after) = tokio::task::spawn_blocking(move || {
            let (records, after) = reader.log.read_range(from, limit, |_| true)?;
            let prepared: Vec<Arc<Prepared>> = records
                .iter()
                .map(|recorded| {
                    let p = Arc::new(Prepared::new(recorded, seen_ns));
                    reader.messages.put(p.clone());
                    p
                })
                .collect();
            Ok::<_, LogError>((prepared, after))
        })
        .await??;
        if prepared.is_empty() {
            break;
        }
        for p in &prepared {
            take(p);
        }
        misses += after - seq;
        seq = after;
    }
    // Once per step, not per record: the counters are shared by every delivery thread.
    ctx.metrics.message_cache_hits.inc_by(hits);
    ctx.metrics.message_cache_misses.inc_by(misses);
    Ok((msgs, seq))
}
