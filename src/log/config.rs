//! The log's settings (`[log]`): when an append counts as durable and how the single writer
//! groups its commits. It must never hold anything but plain settings.

use serde::{Deserialize, Serialize};

/// When an append counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// sled flush plus `fdatasync` of sled's data file: survives power loss.
    Fsync,
    /// sled flush only: survives a process crash, not necessarily a power cut.
    Os,
}

/// Group-commit settings of the single writer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// When an append is acknowledged.
    pub durability: Durability,
    /// Most events written in one group commit.
    pub max_group_events: usize,
    /// Append requests that may wait for the writer before new ones get 503.
    pub queue_capacity: usize,
}
