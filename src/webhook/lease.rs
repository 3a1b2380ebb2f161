//! Who delivers a subscription. With the sled backend, this node, always ([`Runner::Local`]).
//! With the nats backend every node runs a lease keeper per active subscription, and only the
//! node holding the subscription's lease (a value in the cluster's `<stream>_webhook_leases`
//! bucket, which expires it `lease_ttl_ms` after it was last written) delivers it: it takes
//! the lease with a create (refused while another node holds it), takes the cluster's cursor
//! and dead letters as its own, delivers, and renews every `lease_renew_ms` with a
//! revision-checked update ([`Timings`], from `[webhooks]`). A renewal refused (another node
//! took the lease) stops delivery at once; renewals that fail for `lease_give_up_ms` (counted
//! from when the last good renewal was sent, so before the server can let the lease expire)
//! stop it too. A lease taken whose subscription state cannot then be read from the cluster
//! (an election of the webhook bucket) is given back and taken again on the next round: a
//! transient cluster error never ends a keeper. A node with `webhooks.deliver = false` runs no keeper: it never takes a lease. A node that stops
//! cleanly pushes its cursor and gives the lease back; a node that dies leaves it to expire,
//! and another node takes over from the last cursor pushed (at most `cursor_sync_ms` behind):
//! in order, at least once.
//!
//! This must never deliver without holding the lease, never keep delivering once a renewal
//! was refused or the lease may have expired, and never delete a lease another node holds.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use super::dispatcher::{self, Ctx, Worker};
use super::store::Shared;
use super::subscription::{Status, Subscription};

/// The lease's timings (`[webhooks] lease_*`, checked at start by `WebhookConfig::check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timings {
    /// How long a lease lives after its last write (the bucket's `max_age`). Long enough that
    /// a renewal every `renew_every` survives a couple of slow round trips and a short leader
    /// election of the bucket; short enough that a dead node's subscriptions move soon.
    pub(crate) ttl: Duration,
    /// How often the holder renews; also how often a node without the lease tries to take it.
    pub(crate) renew_every: Duration,
    /// The longest a renewal may take before it counts as failed.
    pub(crate) renew_within: Duration,
    /// The holder stops delivering when no renewal has succeeded for this long, so it has
    /// stopped well before the lease can expire and another node take it.
    pub(crate) give_up_after: Duration,
}

/// What the lease keeper is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Run,
    /// Stop delivering and give the lease back, the cursor pushed.
    Stop,
    /// Another node changed the subscription: stop, take the cluster's state of it (its
    /// cursor among it: a replay), give the lease back.
    Adopt,
}

/// The delivery of one active subscription on this node.
pub(crate) enum Runner {
    /// The sled backend: this node delivers.
    Local(Worker),
    /// This node keeps out of delivery (`webhooks.deliver = false`): other nodes deliver.
    Elsewhere,
    /// The nats backend: a lease keeper, delivering while it holds the lease.
    Leased {
        order: watch::Sender<Order>,
        handle: JoinHandle<()>,
    },
}

impl Runner {
    /// Starts delivering `sub` (directly, or under its lease with a cluster).
    pub(crate) fn start(ctx: Arc<Ctx>, sub: Subscription) -> Runner {
        if !ctx.config.deliver {
            return Runner::Elsewhere;
        }
        if ctx.store.cluster().is_none() {
            return Runner::Local(dispatcher::spawn(ctx, sub));
        }
        let (order, rx) = watch::channel(Order::Run);
        let handle = tokio::spawn(keep(ctx, sub.id, rx));
        Runner::Leased { order, handle }
    }

    /// Stops delivering and waits until it has stopped (the lease given back).
    pub(crate) async fn stop(self) {
        self.stop_with(Order::Stop).await;
    }

    /// Stops after another node changed the subscription, taking the cluster's state of it.
    pub(crate) async fn stop_adopting(self) {
        self.stop_with(Order::Adopt).await;
    }

    async fn stop_with(self, how: Order) {
        match self {
            Runner::Elsewhere => {}
            Runner::Local(w) => w.stop().await,
            Runner::Leased { order, handle } => {
                let _ = order.send(how);
                if let Err(e) = handle.await
                    && e.is_panic()
                {
                    tracing::error!("a webhook lease keeper panicked");
                }
            }
        }
    }
}

/// How a spell of delivery under the lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Told to stop; the lease is given back.
    Told,
    /// The subscription is no longer active (or its task failed); the lease is given back.
    Finished,
    /// The lease is lost or may have expired: try to take it again.
    Lost,
    /// The cluster could not be read under the lease (an election of the webhook bucket):
    /// the lease is given back and taken again on the next round. Never the end of the
    /// keeper: it may be the only node left to deliver the subscription.
    Retry,
}

/// The lease keeper of one subscription: tries to take the lease, delivers while holding it.
async fn keep(ctx: Arc<Ctx>, id: Uuid, mut order: watch::Receiver<Order>) {
    let Some(shared) = ctx.store.cluster() else {
        return;
    };
    let key = format!("lease.{id}");
    let timings = ctx.config.lease();
    loop {
        let asked = Instant::now();
        let taken = tokio::select! {
            t = shared.leases.create(&key, Bytes::from(shared.node.clone())) => t,
            _ = order.wait_for(|o| *o != Order::Run) => return,
        };
        let taken = match taken {
            // The lease exists: a create of this node's whose answer was lost (a timeout
            // under load) may have written it. Then it is this node's to take back at its
            // revision, not to wait out for a TTL.
            Ok(None) => match shared.leases.get(&key).await {
                Ok(Some((holder, revision))) if holder == shared.node.as_bytes() => {
                    Ok(Some(revision))
                }
                Ok(_) => Ok(None),
                Err(e) => Err(e),
            },
            other => other,
        };
        match taken {
            Ok(Some(revision)) => {
                match deliver(&ctx, shared, id, &key, revision, asked, &mut order).await {
                    Ended::Told | Ended::Finished => return,
                    Ended::Lost | Ended::Retry => {}
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(subscription = %id, error = %e, "cannot reach the webhook leases")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(timings.renew_every) => {}
            _ = order.wait_for(|o| *o != Order::Run) => return,
        }
    }
}

/// Delivers while the lease taken at `revision` (asked for at `asked`) holds.
async fn deliver(
    ctx: &Arc<Ctx>,
    shared: &Shared,
    id: Uuid,
    key: &str,
    mut revision: u64,
    asked: Instant,
    order: &mut watch::Receiver<Order>,
) -> Ended {
    shared.hold(id, true);
    let ended = under_lease(ctx, shared, id, key, &mut revision, asked, order).await;
    shared.hold(id, false);
    if ended != Ended::Lost {
        // Only the revision this node wrote: never a lease another node took since.
        if let Err(e) = shared.leases.delete_at(key, revision).await {
            tracing::debug!(subscription = %id, error = %e, "cannot give the webhook lease back; it expires");
        }
    }
    ended
}

async fn under_lease(
    ctx: &Arc<Ctx>,
    shared: &Shared,
    id: Uuid,
    key: &str,
    revision: &mut u64,
    asked: Instant,
    order: &mut watch::Receiver<Order>,
) -> Ended {
    // The last cursor any node pushed, not this node's copy, which may be behind it.
    if let Err(e) = ctx.store.adopt(&id).await {
        tracing::warn!(subscription = %id, error = %e, "cannot read the subscription's state from the cluster; trying again");
        return Ended::Retry;
    }
    let sub = match ctx.store.subscription(&id) {
        Ok(Some(sub)) if sub.status == Status::Active => sub,
        Ok(_) => return Ended::Finished,
        Err(e) => {
            tracing::error!(subscription = %id, error = %e, "cannot read the subscription");
            return Ended::Finished;
        }
    };
    tracing::info!(subscription = %id, node = %shared.node, "delivering under the webhook lease");
    let worker = dispatcher::spawn(ctx.clone(), sub);
    let timings = ctx.config.lease();
    let mut renewed = asked;
    let ended = loop {
        tokio::select! {
            _ = tokio::time::sleep(timings.renew_every) => {}
            _ = order.wait_for(|o| *o != Order::Run) => break Ended::Told,
        }
        if worker.is_finished() {
            break Ended::Finished;
        }
        let sent = Instant::now();
        let renewal = tokio::time::timeout(
            timings.renew_within,
            shared
                .leases
                .update(key, Bytes::from(shared.node.clone()), *revision),
        )
        .await;
        match renewal {
            Ok(Ok(Some(r))) => {
                *revision = r;
                renewed = sent;
            }
            Ok(Ok(None)) => {
                tracing::warn!(subscription = %id, "the webhook lease was taken by another node; delivery stops here");
                break Ended::Lost;
            }
            Ok(Err(_)) | Err(_) if renewed.elapsed() >= timings.give_up_after => {
                tracing::warn!(subscription = %id, "the webhook lease could not be renewed; delivery stops here");
                break Ended::Lost;
            }
            Ok(Err(_)) | Err(_) => {}
        }
    };
    worker.stop().await;
    let adopting = *order.borrow() == Order::Adopt;
    let saved = if adopting {
        ctx.store.adopt(&id).await.map_err(|e| e.to_string())
    } else {
        ctx.store.sync().await.map_err(|e| e.to_string())
    };
    if let Err(e) = saved {
        tracing::warn!(subscription = %id, error = %e, "cannot push the webhook cursor; the next holder repeats what followed it");
    }
    ended
}
