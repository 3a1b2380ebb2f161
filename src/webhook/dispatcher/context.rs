//! What every delivery task shares (the log, the store, the settings, the instruments) and
//! the syncer that makes the store's writes durable every `cursor_sync_ms`. This module must never write to the log, and never sync more often than
//! the store has writes to cover.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::message::MessageCache;
use crate::log::{Log, LogError};
use crate::webhook::WebhookConfig;
use crate::webhook::metrics::WebhookMetrics;
use crate::webhook::store::{Store, SyncError};

/// What every delivery task shares.
pub(crate) struct Ctx {
    /// The log (read only).
    pub log: Log,
    /// The `webhooks` tree.
    pub store: Store,
    /// The records most recently prepared, shared by every task.
    pub messages: MessageCache,
    /// Settings.
    pub config: WebhookConfig,
    /// Instruments.
    pub metrics: WebhookMetrics,
}

/// The `User-Agent` of every attempt.
pub(super) const USER_AGENT: &str = concat!("Annals-Webhooks/", env!("CARGO_PKG_VERSION"));

/// The HTTP client settings every target gets: no redirects, no proxy (a proxy would connect
/// to addresses the guard never saw), timeouts.
pub(crate) fn client_builder(config: &WebhookConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_millis(config.timeout_ms))
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .tcp_nodelay(true)
        .user_agent(USER_AGENT)
}

/// Makes moved cursors and retry states durable every `cursor_sync_ms` (one flush +
/// fdatasync for many writes); delivery tasks waiting for a retry state to be durable are
/// released by it.
pub(crate) async fn sync_loop(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_millis(ctx.config.cursor_sync_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if ctx.store.is_dirty() {
            let started = if super::stages::on() {
                super::stages::now_ns()
            } else {
                0
            };
            let result = ctx.store.sync().await;
            if started > 0 {
                super::stages::log_sync(started, super::stages::now_ns());
            }
            match result {
                Ok(()) => {}
                Err(SyncError::Log(LogError::Closed)) => return,
                Err(e) => tracing::error!(error = %e, "cannot make webhook cursors durable"),
            }
        }
    }
}
