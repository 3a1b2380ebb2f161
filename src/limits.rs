//! Input limits (`[limits]`), enforced at the HTTP edge, in validation and on import. Each is
//! documented in `config/default.toml`. This module must never import another of the crate's:
//! everything that takes input depends on it.

use serde::{Deserialize, Serialize};

/// Input limits; each is documented in `config/default.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Most events in one append request.
    pub max_events_per_request: usize,
    /// Largest serialised event in bytes.
    pub max_event_bytes: usize,
    /// Longest string value in bytes.
    pub max_string_bytes: usize,
    /// Longest stream name in bytes.
    pub max_stream_name_bytes: usize,
    /// Most records one read returns.
    pub max_read_limit: usize,
    /// Most records one filtered read examines before it answers with what it found.
    pub max_scan_per_read: usize,
}
