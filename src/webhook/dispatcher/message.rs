//! A message (one record, as the body every attempt of it sends) and how it settled, with the
//! delivery outcomes counted in `webhook_deliveries_total` (their labels come from
//! [`Delivery`], nowhere else). This module must never read the store or the network.

use bytes::Bytes;

use crate::log::{Record, Recorded};
use crate::webhook::metrics::WebhookMetrics;
use crate::webhook::subscription::Status;

/// A message ready to send.
#[derive(Clone)]
pub(super) struct Msg {
    pub(super) seq: u64,
    pub(super) event_id: String,
    pub(super) event_type: String,
    /// `{"type","timestamp","data"}`: built once, signed and sent as is on every attempt.
    pub(super) body: Bytes,
}

impl Msg {
    pub(super) fn new(rec: &Record, recorded: &Recorded) -> Result<Msg, serde_json::Error> {
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
pub(super) enum Outcome {
    /// A 2xx came back.
    Delivered,
    /// Stored in the dead letters; delivery goes on.
    DeadLettered,
    /// The subscription must stop (410, ordered exhaustion, failing too long).
    Stop(Status, String),
}

/// A `webhook_deliveries_total` outcome: how a message settled, or why its subscription
/// stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// A 2xx came back.
    Delivered,
    /// Stored in the dead letters.
    DeadLettered,
    /// The subscription paused (ordered exhaustion, a dead letter that could not be stored).
    Paused,
    /// The subscription was disabled (410, failing too long, a URL that no longer parses).
    Disabled,
}

impl Delivery {
    /// The outcome of a subscription stopped with `status`.
    pub(super) fn stopped(status: Status) -> Delivery {
        if status == Status::Paused {
            Delivery::Paused
        } else {
            Delivery::Disabled
        }
    }

    /// The metric label.
    pub(super) fn label(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::DeadLettered => "dead_lettered",
            Delivery::Paused => "paused",
            Delivery::Disabled => "disabled",
        }
    }

    /// Counts it in `webhook_deliveries_total`.
    pub(super) fn count(self, metrics: &WebhookMetrics) {
        metrics.deliveries.with_label_values(&[self.label()]).inc();
    }
}
