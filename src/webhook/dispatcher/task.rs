//! The state one subscription's delivery task shares among its messages in flight: the parsed
//! target and its pinned client (or its pool of plain-HTTP connections), the rate limit, the stored subscription (failing since, status),
//! the dead-letter count and cap, and the retry states found at start. This module must never
//! hold a lock across an await.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use reqwest::Url;

use super::context::{Ctx, client_builder};
use crate::webhook::guard::{self, Checked};
use crate::webhook::signing;
use crate::webhook::store::StoreError;
use crate::webhook::subscription::{Mode, Subscription, ms_to_rfc3339, now_ms};

/// Paces attempts to the subscription's rate limit (a virtual clock: no burst).
pub(super) struct Pacer {
    pub(super) interval: Option<Duration>,
    /// The earliest start of the next attempt. A std mutex: held for two instructions, never
    /// across an await.
    pub(super) next: std::sync::Mutex<tokio::time::Instant>,
}

impl Pacer {
    pub(super) async fn wait(&self) {
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
pub(super) struct SubCtx {
    pub(super) url: Url,
    /// An `http` target's request parts (`None`: https, sent through reqwest).
    pub(super) target: Option<super::http1::Target>,
    /// An `http` target's idle connections, to the addresses last checked. A std mutex:
    /// never held across an await.
    pub(super) pool: std::sync::Mutex<super::http1::Pool>,
    pub(super) mode: Mode,
    /// The stored record; deliveries update `failing_since_ms` and the status through it. A
    /// std mutex: never held across an await.
    pub(super) sub: std::sync::Mutex<Subscription>,
    pub(super) pacer: Pacer,
    pub(super) attempt_no: AtomicU64,
    /// Dead letters stored for this subscription. Counted once when the task starts; every
    /// later change to them is made by this task (an operator's change stops it first).
    pub(super) dead_count: AtomicU64,
    /// This subscription's `webhook_dead_letters_evicted_total`.
    pub(super) evicted: IntCounter,
    /// Seqs after the cursor whose retry state was stored when the task started (taken as
    /// their messages are read again). A std mutex: never held across an await.
    pub(super) restored: std::sync::Mutex<BTreeSet<u64>>,
    /// The subscription's own client, pinned to the last checked addresses of a named host
    /// (reused while the host resolves to the same set, so connections stay alive). Its own,
    /// also for an IP literal: a pooled connection is served by a task of the thread that
    /// opened it, so a client shared across delivery threads would hand answers between them.
    pub(super) client: std::sync::Mutex<Option<(Checked, reqwest::Client)>>,
    pub(super) lag: IntGauge,
    /// `webhook_deliveries_total{outcome="delivered"}` and
    /// `webhook_attempts_total{outcome="success"}`, looked up once: the common case of every
    /// delivery would otherwise hash its label and take the family's lock twice.
    pub(super) delivered: IntCounter,
    pub(super) succeeded: IntCounter,
    /// The subscription's secrets, keyed once when the task starts (secrets change only
    /// through an operator's change, which starts a new task), with when each stops signing.
    pub(super) signers: Vec<(Option<u64>, signing::SigningKey)>,
}

/// The signing keys of a subscription's secrets (a secret that does not decode signs nothing).
pub(super) fn signers(sub: &Subscription) -> Vec<(Option<u64>, signing::SigningKey)> {
    sub.secrets
        .iter()
        .filter_map(|s| {
            let key = signing::decode_secret(&s.key).ok()?;
            Some((s.expires_at_ms, signing::SigningKey::new(&key)?))
        })
        .collect()
}

impl SubCtx {
    pub(super) fn id(&self) -> uuid::Uuid {
        self.sub.lock().unwrap_or_else(|e| e.into_inner()).id
    }

    /// The keys that sign at `now_ms` (as [`Subscription::signing_secrets`]).
    pub(super) fn keys(&self, now_ms: u64) -> Vec<&signing::SigningKey> {
        self.signers
            .iter()
            .filter(|(expires, _)| expires.is_none_or(|t| t > now_ms))
            .map(|(_, key)| key)
            .collect()
    }

    /// A client that connects only to addresses the guard has just checked.
    pub(super) async fn client(&self, ctx: &Ctx) -> Result<reqwest::Client, String> {
        let checked = guard::check(&self.url, ctx.config.allow_private_targets)
            .await
            .map_err(|e| format!("target refused: {e}"))?;
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, client)) = slot.as_ref()
            && c.addrs == checked.addrs
        {
            return Ok(client.clone());
        }
        let builder = match &checked.host {
            Some(host) => client_builder(&ctx.config).resolve_to_addrs(host, &checked.addrs),
            // An IP literal: nothing to resolve, nothing to pin.
            None => client_builder(&ctx.config),
        };
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        *slot = Some((checked, client.clone()));
        Ok(client)
    }

    pub(super) fn save(
        &self,
        ctx: &Ctx,
        change: impl FnOnce(&mut Subscription),
    ) -> Result<(), StoreError> {
        let mut sub = self.sub.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut sub);
        ctx.store.put_subscription(&sub)
    }

    /// Evicts the oldest dead letters (lowest seqs) beyond
    /// `webhooks.max_dead_letters_per_subscription`, so the store stays bounded.
    pub(super) fn trim_dead_letters(&self, ctx: &Ctx) -> Result<(), StoreError> {
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

    pub(super) fn mark_healthy(&self, ctx: &Ctx) {
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
    pub(super) fn mark_failing(&self, ctx: &Ctx) -> Option<String> {
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
