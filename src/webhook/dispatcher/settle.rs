//! Settling one message: attempts on the retry schedule (paced, waiting for the previous
//! failure to be durable) until it is delivered, dead-lettered, or its subscription must stop
//! (410, ordered exhaustion, failing too long). This module must never move the cursor (the
//! delivery loop does, once the message is settled) and never send attempt N + 1 while a crash
//! could still forget attempt N.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::context::Ctx;
use super::message::{Delivery, Msg, Outcome};
use super::retry_state::{Exhaust, Retry};
use super::send::{Verdict, attempt};
use super::stages::Seen;
use super::task::SubCtx;
use crate::webhook::retry;
use crate::webhook::subscription::{DeadLetter, Mode, Status, ms_to_rfc3339, now_ms};

/// Sends one message until it settles: delivered, exhausted (paused or dead-lettered) or a
/// reason to stop the subscription.
pub(super) async fn settle(
    ctx: Arc<Ctx>,
    s: Arc<SubCtx>,
    msg: Msg,
    exhaust: Exhaust,
    redelivery: bool,
    seen: Seen,
) -> (bool, u64, Outcome) {
    let id = s.id();
    let mut retry = Retry::load(&ctx, &s, &id, msg.seq, exhaust);
    let outcome = settle_inner(&ctx, &s, &msg, exhaust, &mut retry, seen).await;
    retry.finish(&ctx, &id, msg.seq, &outcome);
    if let Outcome::Delivered = outcome {
        s.delivered.inc();
    }
    (redelivery, msg.seq, outcome)
}

async fn settle_inner(
    ctx: &Ctx,
    s: &SubCtx,
    msg: &Msg,
    exhaust: Exhaust,
    retry: &mut Retry,
    seen: Seen,
) -> Outcome {
    // Stage times are logged for the first attempt this run makes.
    let mut seen = (seen.queued_ns > 0).then_some(seen);
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
                    ctx.store.durable(ticket).await;
                }
            }
        );
        s.pacer.wait().await;
        // In memory only: the store learns of this attempt with its outcome (a failure below),
        // so an attempt cut short by a crash of ours is sent again under the same number and
        // never uses up one of the receiver's.
        retry.state.attempts += 1;
        retry.state.next_at_ms = 0;
        match attempt(ctx, s, msg, retry.state.attempts, seen.take()).await {
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

/// Stores the message as a dead letter (evicting the oldest beyond the cap); a dead letter that
/// cannot be stored pauses the subscription instead, so the cursor never passes it.
fn dead_letter(ctx: &Ctx, s: &SubCtx, msg: &Msg, attempts: u32, reason: String) -> Outcome {
    let id = s.id();
    let dl = DeadLetter {
        seq: msg.seq,
        event_id: msg.event_id.to_string(),
        event_type: msg.event_type.to_string(),
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
    Delivery::DeadLettered.count(&ctx.metrics);
    tracing::warn!(subscription = %id, seq = msg.seq, attempts, "webhook message dead-lettered");
    Outcome::DeadLettered
}
