//! A message's place in its retry schedule while it is being tried: loaded from the store when
//! an earlier run left one, stored after each failed attempt (and made durable before the next
//! one is sent), forgotten when the message settles. The count moves only when an attempt's
//! outcome is known, so an attempt cut short by a crash of ours is sent again under the same
//! number instead of using up one of the receiver's. This module must never sleep or send:
//! `settle` does both.

use super::context::Ctx;
use super::message::Outcome;
use super::task::SubCtx;
use crate::webhook::store::{RetryKind, RetryState, Ticket};

/// What to do when the schedule runs out.
#[derive(Clone, Copy)]
pub(super) enum Exhaust {
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
pub(super) struct Retry {
    kind: RetryKind,
    pub(super) state: RetryState,
    /// Whether the store holds a state for this message.
    stored: bool,
    /// A write not yet known to be durable: the ticket to wait for before the next attempt.
    pub(super) unsynced: Option<Ticket>,
}

impl Retry {
    /// The stored state of this message, or a fresh one.
    pub(super) fn load(
        ctx: &Ctx,
        s: &SubCtx,
        id: &uuid::Uuid,
        seq: u64,
        exhaust: Exhaust,
    ) -> Retry {
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
    pub(super) fn save(&mut self, ctx: &Ctx, id: &uuid::Uuid, seq: u64) {
        match ctx.store.put_retry_state(self.kind, id, seq, &self.state) {
            Ok(ticket) => {
                self.stored = true;
                self.unsynced = Some(ticket);
            }
            Err(e) => {
                tracing::error!(subscription = %id, seq, error = %e, "cannot store a retry state")
            }
        }
    }

    /// After the message settled: forgotten once delivered or dead-lettered; kept as the
    /// start of a new round when the subscription stopped on it, so the count goes on after a
    /// resume.
    pub(super) fn finish(&mut self, ctx: &Ctx, id: &uuid::Uuid, seq: u64, outcome: &Outcome) {
        match outcome {
            Outcome::Delivered | Outcome::DeadLettered => {
                if self.stored
                    && let Err(e) = ctx.store.remove_retry_state(self.kind, id, seq)
                {
                    tracing::error!(subscription = %id, seq, error = %e, "cannot forget a retry state")
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
