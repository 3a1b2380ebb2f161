//! Following a key-value bucket of the cluster ([`follow_bucket`]): every change its watch
//! delivers, and the whole bucket read again whenever the watch was lost or has stalled.
//!
//! A watch can stall without an error: after its connection moved to another server, or a gap
//! in what it was delivered (a message the server dropped), async-nats sets the watch's
//! consumer up again by itself, retrying for ever and reporting nothing while that fails (an
//! election; a consumer left behind by a create whose answer was lost). So a follower never
//! trusts a silent watch: every [`CHECK_EVERY`] it asks the bucket's last revision, and a
//! watch that has not delivered, by one check, the revision the bucket held at the check
//! before is given up for a new one, and the bucket read whole. This must never leave a
//! change unseen for much longer than two checks and a request timeout, and never read the
//! whole bucket while the watch keeps up (a webhook bucket may hold thousands of dead
//! letters, each read with one request).

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Bucket, Change, NatsError};

/// How often a follower checks that its watch keeps up with the bucket: with a stalled
/// watch, a change made anywhere reaches this node within about two of these.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(5);

/// The first pause before a lost watch is set up again, and the longest (doubling between):
/// short enough that a key revoked during a failover is refused soon after it.
const WATCH_AGAIN_FIRST: Duration = Duration::from_millis(250);
const WATCH_AGAIN_MOST: Duration = Duration::from_secs(4);

/// A watch of a bucket ([`Bucket::watch`]), with how far it has delivered.
pub(crate) struct Watch {
    changes: BoxStream<'static, Result<Change, NatsError>>,
    /// The newest revision delivered; before any, the bucket's last revision just before the
    /// watch was set up (it delivers every change after that one, from its first message).
    seen: u64,
}

impl Watch {
    pub(super) fn new(changes: BoxStream<'static, Result<Change, NatsError>>, from: u64) -> Watch {
        Watch {
            changes,
            seen: from,
        }
    }
}

/// What a node keeps of a bucket, and how it takes in the bucket's changes.
pub(crate) trait Follower: Send {
    /// What reading the whole bucket can fail with.
    type Error: std::fmt::Display + Send;
    /// What is followed, for logs ("API keys").
    const WHAT: &'static str;
    /// Takes in one change, in the bucket's order.
    fn change(&mut self, change: Change) -> impl Future<Output = ()> + Send;
    /// Reads the whole bucket and takes it in as it is now: what a lost or stalled watch
    /// missed, a deletion included.
    fn reread(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Whether the node is stopping (no new watch is then set up).
    fn closed(&self) -> bool {
        false
    }
}

/// Follows `bucket` for ever from `watch`, set up before the caller read the bucket whole
/// (so nothing written in between is missed). A watch that fails or stalls is set up again
/// with backoff, and the bucket read whole after it; while no watch can be set up, the bucket
/// is still read whole every [`CHECK_EVERY`].
pub(crate) async fn follow_bucket<F: Follower>(bucket: Bucket, watch: Watch, mut follower: F) {
    let mut watch = Some(watch);
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate, and the caller has just read the whole bucket.
    check.tick().await;
    // The bucket's last revision at the previous check: a watch that keeps up has delivered
    // it by this one.
    let mut due: Option<u64> = None;
    // The whole bucket is still to be read since a watch was lost (a read failed).
    let mut behind = false;
    // When the bucket was last read whole since the watch was lost.
    let mut read_at: Option<Instant> = None;
    let mut pause = WATCH_AGAIN_FIRST;
    loop {
        let Some(w) = watch.as_mut() else {
            if follower.closed() {
                return;
            }
            tokio::time::sleep(pause).await;
            match bucket.watch().await {
                Ok(new) => {
                    watch = Some(new);
                    due = None;
                    pause = WATCH_AGAIN_FIRST;
                    check.reset();
                }
                Err(e) => {
                    tracing::debug!(what = F::WHAT, error = %e, "cannot watch the cluster's bucket yet");
                    pause = (pause * 2).min(WATCH_AGAIN_MOST);
                }
            }
            // Read even when no watch could be set up: consumers that cannot be created must
            // not leave the node stale either (then once a check, not at every attempt).
            if watch.is_some() || read_at.is_none_or(|at| at.elapsed() >= CHECK_EVERY) {
                behind = !reread(&mut follower).await;
                if !behind {
                    read_at = Some(Instant::now());
                    if watch.is_some() {
                        tracing::info!(what = F::WHAT, "following the cluster's bucket again");
                    }
                }
            }
            continue;
        };
        tokio::select! {
            change = w.changes.next() => match change {
                Some(Ok(c)) => {
                    w.seen = w.seen.max(c.revision);
                    follower.change(c).await;
                }
                Some(Err(e)) => {
                    tracing::warn!(what = F::WHAT, error = %e, "following the cluster's bucket failed; watching it again");
                    (watch, behind, read_at) = (None, true, None);
                }
                None => (watch, behind, read_at) = (None, true, None),
            },
            _ = check.tick() => {
                if behind {
                    behind = !reread(&mut follower).await;
                }
                match bucket.last_revision().await {
                    Ok(_) if due.is_some_and(|due| w.seen < due) => {
                        tracing::warn!(
                            what = F::WHAT,
                            seen = w.seen,
                            due,
                            "the watch of the cluster's bucket delivered nothing new for a whole check: it has stalled; watching it again"
                        );
                        (watch, behind, read_at) = (None, true, None);
                    }
                    Ok(last) => due = Some(last),
                    Err(e) => tracing::debug!(what = F::WHAT, error = %e, "cannot read the bucket's last revision now"),
                }
            },
        }
    }
}

/// Reads the whole bucket into `follower`; answers whether it did.
async fn reread<F: Follower>(follower: &mut F) -> bool {
    match follower.reread().await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(what = F::WHAT, error = %e, "cannot read the cluster's bucket now");
            false
        }
    }
}
