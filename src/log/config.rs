//! The log's settings (`[log]`): when an append counts as durable, how the single writer
//! groups its commits, and how the store uses memory and disk (sled's cache, compression).
//! It must never hold anything but plain settings and the rules on their values.

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

/// Smallest accepted `cache_capacity_bytes`. sled panics below 256 bytes, and a cache smaller
/// than a few of its pages only thrashes.
pub const MIN_CACHE_CAPACITY_BYTES: u64 = 1 << 20;
/// Largest accepted `cache_capacity_bytes`: a bound, not a wish; beyond this a value is a
/// typo (sled would also quietly clamp it to a cgroup memory limit).
pub const MAX_CACHE_CAPACITY_BYTES: u64 = 1 << 40;

/// Group-commit and store settings of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// When an append is acknowledged.
    pub durability: Durability,
    /// Most events written in one group commit.
    pub max_group_events: usize,
    /// Append requests that may wait for the writer before new ones get 503.
    pub queue_capacity: usize,
    /// Bound of sled's page cache, in bytes (sled's own default is 1 GiB). sled counts a page
    /// at its stored size, so with compression the memory it holds is larger by about the
    /// compression ratio.
    pub cache_capacity_bytes: u64,
    /// Whether the writer compresses the records (zstd, once per chunk). A new folder is made
    /// without sled's page compression; a folder created with it keeps it (sled records it in
    /// the folder's `conf` file and refuses to open it otherwise) and gets plain chunks.
    pub compression: bool,
    /// zstd level (1 to 22) of the chunks (or of sled's pages in an older compressed folder);
    /// may change between runs.
    pub compression_level: i32,
}

/// A `[log]` value out of its range.
#[derive(Debug, thiserror::Error)]
pub enum LogConfigError {
    /// The cache bound is zero, tiny or absurd.
    #[error(
        "log.cache_capacity_bytes ({0}) must be between {MIN_CACHE_CAPACITY_BYTES} (1 MiB) and {MAX_CACHE_CAPACITY_BYTES} (1 TiB)"
    )]
    CacheCapacity(u64),
    /// Not a zstd level.
    #[error("log.compression_level ({0}) must be between 1 and 22")]
    CompressionLevel(i32),
}

impl LogConfig {
    /// Rules the types cannot express; checked when the configuration loads, so a bad value
    /// stops start-up (exit 2) instead of reaching sled, which would panic or clamp it.
    pub fn check(&self) -> Result<(), LogConfigError> {
        if !(MIN_CACHE_CAPACITY_BYTES..=MAX_CACHE_CAPACITY_BYTES)
            .contains(&self.cache_capacity_bytes)
        {
            return Err(LogConfigError::CacheCapacity(self.cache_capacity_bytes));
        }
        if !(1..=22).contains(&self.compression_level) {
            return Err(LogConfigError::CompressionLevel(self.compression_level));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cache: u64, level: i32) -> LogConfig {
        LogConfig {
            durability: Durability::Fsync,
            max_group_events: 1,
            queue_capacity: 1,
            cache_capacity_bytes: cache,
            compression: true,
            compression_level: level,
        }
    }

    #[test]
    fn a_zero_tiny_or_absurd_cache_capacity_is_refused() {
        for bad in [
            0,
            256,
            MIN_CACHE_CAPACITY_BYTES - 1,
            MAX_CACHE_CAPACITY_BYTES + 1,
        ] {
            let err = config(bad, 3).check().unwrap_err();
            assert!(
                matches!(err, LogConfigError::CacheCapacity(v) if v == bad),
                "{bad}"
            );
        }
        config(MIN_CACHE_CAPACITY_BYTES, 3).check().unwrap();
        config(MAX_CACHE_CAPACITY_BYTES, 3).check().unwrap();
    }

    #[test]
    fn a_compression_level_outside_zstd_levels_is_refused() {
        for bad in [0, -1, 23] {
            assert!(matches!(
                config(64 << 20, bad).check(),
                Err(LogConfigError::CompressionLevel(v)) if v == bad
            ));
        }
        config(64 << 20, 1).check().unwrap();
        config(64 << 20, 22).check().unwrap();
    }
}
