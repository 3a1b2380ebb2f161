//! The subscription model: target, filter (type globs, stream prefixes, process ids), mode,
//! rate limit, status, and the secrets. Also the shapes the API accepts and returns. This
//! module must never put a secret into a view ([`Subscription::view`] is the only outward
//! shape), nor into a serialisation or a `Debug` form: the store seals secrets itself.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::glob;
use crate::log::Record;

/// How deliveries of one subscription relate to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One message in flight; the next waits. Exhausted retries pause the subscription.
    #[default]
    Ordered,
    /// Up to `max_in_flight` messages at once; order is not promised. Exhausted retries go to
    /// the dead letters and delivery goes on.
    Parallel,
}

/// Whether a subscription delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Delivering.
    Active,
    /// Stopped by an operator or by exhausted retries in ordered mode; `resume` restarts it.
    Paused,
    /// Stopped by the target (410) or by failing for too long; `resume` restarts it.
    Disabled,
}

/// Which records a subscription receives. Empty lists match everything; the three lists must
/// all match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Event type globs ([`crate::glob`]: `*` matches any run of characters, dots included):
    /// `meeting.*`, `*.held`, `statement.made`.
    #[serde(default)]
    pub types: Vec<String>,
    /// Stream name prefixes: `process/`, `registry/sources`.
    #[serde(default)]
    pub streams: Vec<String>,
    /// Process ids (exact).
    #[serde(default)]
    pub processes: Vec<String>,
}

impl Filter {
    /// Whether a record passes the filter.
    pub fn matches(&self, rec: &Record) -> bool {
        self.matches_fields(&rec.event_type, &rec.stream, rec.process.as_deref())
    }

    /// Whether a record with this type, stream and process passes the filter (what
    /// [`Filter::matches`] looks at, without the rest of the record).
    pub fn matches_fields(&self, event_type: &str, stream: &str, process: Option<&str>) -> bool {
        (self.types.is_empty() || self.types.iter().any(|g| glob::matches(g, event_type)))
            && (self.streams.is_empty() || self.streams.iter().any(|p| stream.starts_with(p)))
            && (self.processes.is_empty()
                || process.is_some_and(|p| self.processes.iter().any(|q| q == p)))
    }
}

/// A signing secret, in memory. It keys the HMAC, so it cannot be hashed; the store keeps it
/// sealed (`sealing`). It is neither `Serialize` nor `Deserialize`, so no path but the store's
/// sealing can write it anywhere, and its `Debug` form hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// `whsec_...`.
    pub key: String,
    /// Unix milliseconds after which it no longer signs (`None`: the current secret).
    pub expires_at_ms: Option<u64>,
}

impl std::fmt::Debug for Secret {
    // A subscription may be debug-printed; its secrets must still never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("key", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Id.
    pub id: Uuid,
    /// Target URL (checked by the guard at creation and before each delivery).
    pub url: String,
    /// Free text.
    pub description: String,
    /// Which records it receives.
    pub filter: Filter,
    /// Ordered or parallel.
    pub mode: Mode,
    /// Messages in flight at once in parallel mode (1 in ordered mode).
    pub max_in_flight: u32,
    /// Most delivery attempts per second (`None`: unlimited).
    pub rate_limit_per_sec: Option<u32>,
    /// Active, paused or disabled.
    pub status: Status,
    /// Why it is paused or disabled.
    pub status_reason: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// Unix ms of the first failed attempt since the last success (`None` when healthy).
    pub failing_since_ms: Option<u64>,
    /// Current secret first, then older ones still inside their overlap. Skipped by serde:
    /// the store writes them sealed beside the rest (see `store`).
    #[serde(skip)]
    pub secrets: Vec<Secret>,
}

impl Subscription {
    /// The keys that sign at `now_ms`: the current one and any still inside its overlap.
    pub fn signing_secrets(&self, now_ms: u64) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at_ms.is_none_or(|t| t > now_ms))
            .map(|s| s.key.as_str())
            .collect()
    }

    /// The outward shape: everything but the secrets, plus the cursor and the lag.
    pub fn view(&self, cursor: u64, head: u64, now_ms: u64) -> Value {
        let rotating = self
            .secrets
            .iter()
            .filter_map(|s| s.expires_at_ms)
            .filter(|t| *t > now_ms)
            .max();
        json!({
            "id": self.id,
            "url": self.url,
            "description": self.description,
            "filter": self.filter,
            "mode": self.mode,
            "max_in_flight": self.max_in_flight,
            "rate_limit_per_sec": self.rate_limit_per_sec,
            "status": self.status,
            "status_reason": self.status_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "failing_since": self.failing_since_ms.map(ms_to_rfc3339),
            "previous_secret_expires_at": rotating.map(ms_to_rfc3339),
            "cursor": cursor,
            "lag": head.saturating_sub(cursor),
        })
    }
}

/// `POST /subscriptions` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// Target URL.
    pub url: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Filter (default: everything).
    #[serde(default)]
    pub filter: Filter,
    /// Mode (default: ordered).
    #[serde(default)]
    pub mode: Mode,
    /// Parallel mode: messages in flight (default 1 in ordered mode, 8 in parallel, capped).
    pub max_in_flight: Option<u32>,
    /// Attempts per second (default unlimited).
    pub rate_limit_per_sec: Option<u32>,
    /// First seq to deliver (default: the next record after the current head).
    pub from_seq: Option<u64>,
}

/// `PATCH /subscriptions/{id}` body: absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionPatch {
    /// Target URL.
    pub url: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Filter (replaced whole).
    pub filter: Option<Filter>,
    /// Mode.
    pub mode: Option<Mode>,
    /// Messages in flight (parallel mode).
    pub max_in_flight: Option<u32>,
    /// Attempts per second; `0` removes the limit.
    pub rate_limit_per_sec: Option<u32>,
}

/// One failed message, kept until redelivered or evicted (the oldest go first once a
/// subscription has `webhooks.max_dead_letters_per_subscription`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Log position.
    pub seq: u64,
    /// The event id (the `webhook-id`).
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// Attempts made so far, across restarts and redeliveries.
    pub attempts: u32,
    /// The last error.
    pub reason: String,
    /// When it was dead-lettered (RFC 3339).
    pub at: String,
    /// Queued for redelivery (the delivery task takes it when it runs).
    #[serde(default)]
    pub redeliver: bool,
}

/// One delivery attempt, kept in a bounded ring per subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it started (RFC 3339).
    pub at: String,
    /// Log position of the message.
    pub seq: u64,
    /// The `webhook-id`.
    pub event_id: String,
    /// This message's attempt number: 1 for its first try, counting on across task and process
    /// restarts, resumes and redeliveries.
    pub attempt: u32,
    /// `success` or `failure`.
    pub outcome: String,
    /// HTTP status, if a response came.
    pub status: Option<u16>,
    /// Milliseconds from send to the end of the response (or the failure).
    pub latency_ms: f64,
    /// What went wrong (timeout, connection error, refused target, status).
    pub error: Option<String>,
    /// The first bytes of the response body (lossy UTF-8).
    pub response: Option<String>,
}

/// RFC 3339 (UTC, milliseconds) of Unix milliseconds.
pub fn ms_to_rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
