//! The log's settings (`[log]`): where the log is durable (`backend`: the local sled folder,
//! or a NATS JetStream stream with `[log.nats]`), when an append counts as durable, how the
//! single writer groups its commits, and how the store uses memory and disk (sled's cache,
//! compression). It must never hold anything but plain settings and the rules on their values.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the log is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The local sled folder alone (one machine, nothing else to run).
    Sled,
    /// A NATS JetStream stream (`[log.nats]`), replicated by the cluster; the local sled folder
    /// is this node's cache of the stream, rebuilt from it when lost.
    Nats,
}

/// `[log.nats]`: the JetStream stream that holds the log when `backend = "nats"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:4222`); several, so a node reaches the cluster while one
    /// server is down.
    pub urls: Vec<String>,
    /// Stream name (letters, digits, `-` and `_`); its one subject is `<stream>.log`.
    pub stream: String,
    /// Replicas of the stream (1 to 5; 3 survives the loss of one server).
    pub replicas: usize,
    /// A NATS credentials file (`.creds`), if the servers require one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<PathBuf>,
    /// Whether each stream message's records are one zstd frame (at `log.compression_level`).
    /// Every node reading the stream must be of a version that reads them (stop 18 on).
    pub compression: bool,
}

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

/// The longest `writer_spin_us`: 10 ms, beyond which polling costs far more than a wake.
pub const MAX_WRITER_SPIN_US: u64 = 10_000;

/// Group-commit and store settings of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Where the log is durable: `sled` (default) or `nats`.
    pub backend: Backend,
    /// The stream, when `backend = "nats"` (`config/default.toml` always gives one; `None`
    /// only where a `LogConfig` is built in code for sled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsConfig>,
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
    /// Most registry ids the writer remembers having found in the store (0: none), so an id
    /// named again costs no sled read; emptied when full.
    pub known_ids: usize,
    /// Most stream heads (a stream's last version) the writer remembers (0: none), so an
    /// append to a stream it knows costs no sled read; emptied when full.
    pub stream_heads: usize,
    /// While at most one append is in flight, how long the writer thread polls its empty
    /// queue and that append's task polls for its answer, in microseconds, before either
    /// sleeps (0: never poll; `spin.rs`). At most [`MAX_WRITER_SPIN_US`].
    pub writer_spin_us: u64,
    /// Size of a journal segment, in bytes (`journal.rs`): zero-filled ahead of the writes and
    /// reused once a checkpoint covered its groups.
    pub journal_segment_bytes: u64,
    /// A checkpoint (sled flush and `fdatasync`, then the journal's covered segments reused)
    /// runs once this many journal bytes were written since the last one...
    pub checkpoint_bytes: u64,
    /// ...or this many milliseconds after it, whichever comes first.
    pub checkpoint_ms: u64,
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
    /// `backend = "nats"` without a server to reach.
    #[error("log.backend is \"nats\" but log.nats.urls is empty: name at least one server")]
    NoNatsUrls,
    /// A stream name JetStream refuses or that would not make a plain subject.
    #[error(
        "log.nats.stream ({0:?}) must be 1 to 64 letters, digits, `-` or `_` (it names the stream and its subject)"
    )]
    StreamName(String),
    /// Not a JetStream replica count.
    #[error("log.nats.replicas ({0}) must be between 1 and 5")]
    Replicas(usize),
    /// A journal segment too small to hold a group, or absurd.
    #[error("log.journal_segment_bytes ({0}) must be between 1 MiB and 1 GiB")]
    JournalSegment(u64),
    /// A checkpoint trigger of zero.
    #[error("log.checkpoint_bytes ({0}) and log.checkpoint_ms ({1}) must both be above 0")]
    Checkpoint(u64, u64),
    /// A poll longer than a wake could ever cost.
    #[error("log.writer_spin_us ({0}) must be between 0 and {MAX_WRITER_SPIN_US}")]
    WriterSpin(u64),
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
        if self.writer_spin_us > MAX_WRITER_SPIN_US {
            return Err(LogConfigError::WriterSpin(self.writer_spin_us));
        }
        if !((1 << 20)..=(1 << 30)).contains(&self.journal_segment_bytes) {
            return Err(LogConfigError::JournalSegment(self.journal_segment_bytes));
        }
        if self.checkpoint_bytes == 0 || self.checkpoint_ms == 0 {
            return Err(LogConfigError::Checkpoint(
                self.checkpoint_bytes,
                self.checkpoint_ms,
            ));
        }
        if self.backend == Backend::Nats {
            let Some(nats) = self.nats.as_ref().filter(|n| !n.urls.is_empty()) else {
                return Err(LogConfigError::NoNatsUrls);
            };
            let name_ok = (1..=64).contains(&nats.stream.len())
                && nats
                    .stream
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !name_ok {
                return Err(LogConfigError::StreamName(nats.stream.clone()));
            }
            if !(1..=5).contains(&nats.replicas) {
                return Err(LogConfigError::Replicas(nats.replicas));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cache: u64, level: i32) -> LogConfig {
        LogConfig {
            cache_capacity_bytes: cache,
            compression_level: level,
            ..crate::config::Config::defaults().unwrap().log // ok: test code
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
        config(MIN_CACHE_CAPACITY_BYTES, 3).check().unwrap(); // ok: test code
        config(MAX_CACHE_CAPACITY_BYTES, 3).check().unwrap(); // ok: test code
    }

    #[test]
    fn a_writer_poll_beyond_ten_milliseconds_is_refused() {
        let spin = |us| LogConfig {
            writer_spin_us: us,
            ..config(64 << 20, 3)
        };
        assert!(matches!(
            spin(MAX_WRITER_SPIN_US + 1).check(),
            Err(LogConfigError::WriterSpin(v)) if v == MAX_WRITER_SPIN_US + 1
        ));
        spin(0).check().unwrap(); // ok: test code
        spin(MAX_WRITER_SPIN_US).check().unwrap(); // ok: test code
    }

    #[test]
    fn a_compression_level_outside_zstd_levels_is_refused() {
        for bad in [0, -1, 23] {
            assert!(matches!(
                config(64 << 20, bad).check(),
                Err(LogConfigError::CompressionLevel(v)) if v == bad
            ));
        }
        config(64 << 20, 1).check().unwrap(); // ok: test code
        config(64 << 20, 22).check().unwrap(); // ok: test code
    }

    fn nats(urls: Vec<&str>, stream: &str, replicas: usize) -> NatsConfig {
        NatsConfig {
            urls: urls.into_iter().map(String::from).collect(),
            stream: stream.into(),
            replicas,
            credentials: None,
            compression: true,
        }
    }

    fn with_nats(nats: NatsConfig) -> LogConfig {
        LogConfig {
            backend: Backend::Nats,
            nats: Some(nats),
            ..config(64 << 20, 3)
        }
    }

    #[test]
    fn the_nats_backend_needs_a_url_a_plain_stream_name_and_one_to_five_replicas() {
        let url = "nats://127.0.0.1:4222";
        assert!(matches!(
            with_nats(nats(vec![], "annals", 3)).check(),
            Err(LogConfigError::NoNatsUrls)
        ));
        for bad in ["", "an.nals", "an nals", "a*", &"x".repeat(65)] {
            assert!(
                matches!(
                    with_nats(nats(vec![url], bad, 3)).check(),
                    Err(LogConfigError::StreamName(s)) if s == bad
                ),
                "{bad:?}"
            );
        }
        for bad in [0, 6] {
            assert!(matches!(
                with_nats(nats(vec![url], "annals", bad)).check(),
                Err(LogConfigError::Replicas(r)) if r == bad
            ));
        }
        with_nats(nats(vec![url], "annals-log_2", 1))
            .check()
            .unwrap(); // ok: test code
        with_nats(nats(vec![url], "annals", 5)).check().unwrap(); // ok: test code
    }

    #[test]
    fn a_journal_segment_outside_one_mib_to_one_gib_or_a_zero_checkpoint_trigger_is_refused() {
        let base = config(64 << 20, 3);
        for bad in [0, (1 << 20) - 1, (1 << 30) + 1] {
            let c = LogConfig {
                journal_segment_bytes: bad,
                ..base.clone()
            };
            assert!(matches!(c.check(), Err(LogConfigError::JournalSegment(v)) if v == bad));
        }
        for (bytes, ms) in [(0, 1000), (1 << 20, 0)] {
            let c = LogConfig {
                checkpoint_bytes: bytes,
                checkpoint_ms: ms,
                ..base.clone()
            };
            assert!(matches!(c.check(), Err(LogConfigError::Checkpoint(..))));
        }
        base.check().unwrap(); // ok: test code
    }

    #[test]
    fn the_sled_backend_ignores_the_nats_settings() {
        config(64 << 20, 3).check().unwrap(); // ok: test code
    }
}
