//! A message (one record, as the body every attempt of it sends) and how it settled, with the
//! delivery outcomes counted in `webhook_deliveries_total` (their labels come from
//! [`Delivery`], nowhere else); and the bounded cache that lets every subscription share one
//! parse and one body per record, filled with new records by the follower (`follow`). This
//! module must never read the store or the network, and never hold more than
//! `webhooks.message_cache_entries` records.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use reqwest::header::HeaderValue;
use tokio::sync::watch;

use crate::log::{Record, Recorded};
use crate::webhook::metrics::WebhookMetrics;
use crate::webhook::subscription::Status;

/// A message ready to send. Cheap to clone: its parts are shared.
#[derive(Clone)]
pub(super) struct Msg {
    pub(super) seq: u64,
    pub(super) event_id: Arc<str>,
    pub(super) event_type: Arc<str>,
    /// `{"type","timestamp","data"}`: built once, signed and sent as is on every attempt.
    pub(super) body: Bytes,
    /// `event_id` as the `webhook-id` header value, checked once for every attempt of every
    /// subscription.
    pub(super) id_header: HeaderValue,
    /// When the record was seen and prepared (monotonic ns, 0: not through the cache), for
    /// `webhook_stage_seconds`.
    pub(super) seen_ns: u64,
    pub(super) prepared_ns: u64,
}

/// Why a record cannot become a message.
#[derive(Debug, thiserror::Error)]
pub(super) enum MsgError {
    /// Its body cannot be encoded.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Its id is no header value (never for a UUID).
    #[error("the event id is not a valid header value: {0}")]
    Header(#[from] reqwest::header::InvalidHeaderValue),
}

impl Msg {
    pub(super) fn new(rec: &Record, recorded: &Recorded) -> Result<Msg, MsgError> {
        let body = format!(
            "{{\"type\":{},\"timestamp\":{},\"data\":{}}}",
            serde_json::to_string(&rec.event_type)?,
            serde_json::to_string(&rec.recorded_at)?,
            recorded.envelope_json()
        );
        let event_id = rec.id.to_string();
        Ok(Msg {
            seq: recorded.seq,
            id_header: HeaderValue::from_str(&event_id)?,
            event_id: event_id.into(),
            event_type: rec.event_type.as_str().into(),
            body: Bytes::from(body),
            seen_ns: 0,
            prepared_ns: 0,
        })
    }
}

/// One record as every subscription needs it: what the filters look at, and the message.
/// `None`: the record does not parse, or its body cannot be built (logged once, never sent).
pub(super) struct Prepared {
    pub(super) seq: u64,
    pub(super) stream: Box<str>,
    pub(super) process: Option<Box<str>>,
    pub(super) msg: Option<Msg>,
}

impl Prepared {
    /// Parses a record once for every subscription; `seen_ns` is when the head was seen past
    /// it (monotonic ns).
    pub(super) fn new(recorded: &Recorded, seen_ns: u64) -> Prepared {
        let rec = match recorded.record() {
            Ok(rec) => rec,
            Err(e) => {
                tracing::error!(seq = recorded.seq, error = %e, "stored record does not parse; not delivered");
                return Prepared {
                    seq: recorded.seq,
                    stream: "".into(),
                    process: None,
                    msg: None,
                };
            }
        };
        let msg = match Msg::new(&rec, recorded) {
            Ok(mut m) => {
                m.seen_ns = seen_ns;
                m.prepared_ns = super::stages::now_ns();
                Some(m)
            }
            Err(e) => {
                tracing::error!(seq = recorded.seq, error = %e, "cannot build a webhook body");
                None
            }
        };
        Prepared {
            seq: recorded.seq,
            stream: rec.stream.into(),
            process: rec.process.map(Into::into),
            msg,
        }
    }
}

/// The records most recently prepared, by seq, shared by every delivery task: at N
/// subscriptions a record is read, parsed and turned into a body once rather than N times.
/// A fixed number of slots (`seq % slots`), so it never grows; a task that falls further
/// behind than it holds reads the log itself, as before.
pub(crate) struct MessageCache {
    slots: Vec<Mutex<Option<Arc<Prepared>>>>,
    /// What the follower (`follow`) has handled: every record up to this seq that it will
    /// ever prepare is in the cache (or was, and has been evicted). Tasks read no further
    /// while it follows.
    pub(super) prepared: watch::Sender<u64>,
    /// Whether the follower was started (once per cache, by the first delivery task).
    pub(super) started: AtomicBool,
    /// Whether the follower runs: once it has stopped (the log closed or failed), tasks read
    /// up to the head themselves, as they did before it existed.
    pub(super) following: AtomicBool,
}

impl MessageCache {
    /// A cache of `entries` records (at least one).
    pub(crate) fn new(entries: usize) -> MessageCache {
        MessageCache {
            slots: (0..entries.max(1)).map(|_| Mutex::new(None)).collect(),
            prepared: watch::channel(0).0,
            started: AtomicBool::new(false),
            following: AtomicBool::new(false),
        }
    }

    /// Whether the follower prepares new records (tasks then wait for it).
    pub(super) fn following(&self) -> bool {
        self.following.load(Ordering::Acquire)
    }

    fn slot(&self, seq: u64) -> &Mutex<Option<Arc<Prepared>>> {
        &self.slots[(seq % self.slots.len() as u64) as usize]
    }

    /// The prepared record at `seq`, if held.
    pub(super) fn get(&self, seq: u64) -> Option<Arc<Prepared>> {
        let slot = self.slot(seq).lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref().filter(|p| p.seq == seq).cloned()
    }

    /// Holds a prepared record, in place of whatever shared its slot.
    pub(super) fn put(&self, p: Arc<Prepared>) {
        let slot = self.slot(p.seq);
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
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
