//! Webhooks: subscriptions, durable cursors over the log (the log is the outbox), signed
//! delivery per Standard Webhooks. (Being built under issue 4.) Must never block the writer.

use serde::{Deserialize, Serialize};

use crate::log::Log;
use crate::metrics::Metrics;

/// Webhook settings (`[webhooks]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {}

/// Why the webhook service could not start.
#[derive(Debug, thiserror::Error)]
#[error("webhooks: {0}")]
pub struct WebhookError(pub String);

/// The webhook service: subscriptions and their delivery tasks.
#[derive(Clone)]
pub struct Service {}

impl Service {
    /// Loads subscriptions and starts their delivery tasks.
    pub fn start(
        _log: Log,
        _config: WebhookConfig,
        _metrics: &Metrics,
    ) -> Result<Service, WebhookError> {
        Ok(Service {})
    }

    /// Stops every delivery task (cursors are already durable).
    pub async fn shutdown(&self) {}
}
