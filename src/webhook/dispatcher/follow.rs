//! The follower: one thread per delivery context that reads every record the log makes
//! durable as soon as the head moves, and prepares it in the shared message cache, so that a
//! delivery thread never reads the log for a new record. A sled read takes sled's global
//! lock, and waits while a batch waits for it behind a flush (the writer's, or the webhook
//! store's sync): on a delivery thread that wait held every subscription of the thread, their
//! answers already in included, for as long as the flush took (hundreds of ms on a busy disk).
//! Here it holds only the new records, and the follower reads right after the head moves, when
//! no batch is usually waiting. Tasks behind the cache read the log themselves, on a blocking
//! thread (`dispatcher::read`). This module must never write to the log or the store, never
//! hold more than the cache holds, and never run on a delivery thread.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::context::Ctx;
use super::message::Prepared;
use crate::log::{Head, LogError};

/// The follower thread's name.
const THREAD_NAME: &str = "annals-webhook-follow";

/// How often an idle follower checks that its context still lives (it ends with it).
const IDLE_CHECK: Duration = Duration::from_millis(250);

/// Starts the follower of `ctx`'s message cache, once: it prepares the records after the
/// current head. If its thread cannot start, tasks read the log themselves.
pub(super) fn start(ctx: &Arc<Ctx>) {
    let cache = &ctx.messages;
    if cache.started.swap(true, Ordering::AcqRel) {
        return;
    }
    let head_rx = ctx.log.subscribe();
    cache.prepared.send_replace(head_rx.borrow().seq);
    cache.following.store(true, Ordering::Release);
    let weak = Arc::downgrade(ctx);
    let started = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || run(weak, head_rx));
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start the webhook follower; delivery threads read the log");
        stopped(ctx);
    }
}

/// Tells every task that the follower no longer runs (they read up to the head themselves).
fn stopped(ctx: &Ctx) {
    ctx.messages.following.store(false, Ordering::Release);
    ctx.messages.prepared.send_modify(|_| {});
}

/// Tells the tasks when the follower ends, however it ends (a panic included), so none of
/// them waits for it.
struct Ended(Weak<Ctx>);

impl Drop for Ended {
    fn drop(&mut self) {
        if let Some(ctx) = self.0.upgrade() {
            stopped(&ctx);
        }
    }
}

fn run(weak: Weak<Ctx>, mut head_rx: watch::Receiver<Head>) {
    let _ended = Ended(weak.clone());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the webhook follower; delivery threads read the log");
            return;
        }
    };
    loop {
        // Held only while reading: the context (and the log it holds) ends with the service.
        let Some(ctx) = weak.upgrade() else { return };
        let head = head_rx.borrow_and_update().seq;
        if let Err(e) = prepare(&ctx, head) {
            if !matches!(e, LogError::Closed) {
                tracing::error!(error = %e, "the webhook follower cannot read the log; delivery threads read it");
            }
            return;
        }
        drop(ctx);
        let changed =
            runtime.block_on(async { tokio::time::timeout(IDLE_CHECK, head_rx.changed()).await });
        if let Ok(Err(_)) = changed {
            // The log is gone.
            return;
        }
    }
}

/// Prepares the records after the last one prepared, up to `head`, a step of `read_batch`
/// at a time, telling the tasks after each step.
fn prepare(ctx: &Ctx, head: u64) -> Result<(), LogError> {
    let step = ctx.config.read_batch.max(1);
    let mut from = *ctx.messages.prepared.borrow() + 1;
    let seen_ns = super::stages::now_ns();
    while from <= head {
        let (records, after) = ctx.log.read_range(from, step, |_| true)?;
        if records.is_empty() {
            break;
        }
        for recorded in &records {
            ctx.messages.put(Arc::new(Prepared::new(recorded, seen_ns)));
        }
        ctx.messages.prepared.send_replace(after - 1);
        from = after;
    }
    Ok(())
}
