//! The service configuration: built-in defaults, then a TOML file, then `ANNALS_*` environment
//! variables, then command-line flags. It must never read any other file and never hold a
//! plaintext API key (only hashes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::api::LiveConfig;
use crate::audit::AuditConfig;
use crate::audit::import::ImportConfig;
use crate::event::VocabularyConfig;
use crate::keys::AuthConfig;
use crate::limits::Limits;
use crate::log::LogConfig;
use crate::projection::ProjectionConfig;
use crate::webhook::WebhookConfig;

/// The default configuration shipped in `config/default.toml`, compiled in so that a binary
/// copied elsewhere still starts with the documented defaults.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Everything the service can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to listen and where the data lives.
    pub server: ServerConfig,
    /// How the log writer commits.
    pub log: LogConfig,
    /// Input limits, enforced at the HTTP edge and on import.
    pub limits: Limits,
    /// The live (SSE) feed.
    pub live: LiveConfig,
    /// API keys.
    pub auth: AuthConfig,
    /// Read models.
    pub projections: ProjectionConfig,
    /// Webhook delivery.
    pub webhooks: WebhookConfig,
    /// Signed checkpoints.
    pub audit: AuditConfig,
    /// How much of a file `annals import` holds.
    pub import: ImportConfig,
    /// Values added to the extensible vocabularies of `schemas/vocabularies.json`.
    pub vocabulary: VocabularyConfig,
}

/// Listening address and data folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP API; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Folder of the sled store.
    pub data_dir: PathBuf,
    /// Seconds to wait for open connections (live feeds whose readers stopped reading) when
    /// shutting down; after that the log is closed regardless.
    pub shutdown_grace_secs: u64,
    /// Worker threads of the async runtime (`annals serve`); 0: one fewer than the cores, at
    /// least one ([`ServerConfig::workers`]).
    pub worker_threads: usize,
    /// Log lines waiting for the thread that writes them to stderr, at most (`annals serve`);
    /// a full queue makes the logging thread wait, so no line is dropped.
    pub log_queue_lines: usize,
}

impl ServerConfig {
    /// The worker threads to start: `worker_threads`, or for 0 one fewer than the cores the
    /// process may use, at least one. The log's writer thread keeps a core busy under load;
    /// a second worker on a 2-core machine only takes turns with it (measured: 100-event batches
    /// 1.08-1.16x and single events 1.15-1.21x faster with one worker there).
    pub fn workers(&self) -> usize {
        if self.worker_threads > 0 {
            return self.worker_threads;
        }
        default_workers()
    }
}

/// One fewer than the cores this process may use, at least one.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

/// A configuration that could not be loaded; the message names the offending key.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, then `file` (if given), then `ANNALS_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        // Only `ANNALS_<SECTION>__<KEY>` is configuration; other `ANNALS_*` variables (such as
        // the `ANNALS_LOG` log filter) are not, and must not clobber a section.
        figment = figment.merge(
            Env::prefixed("ANNALS_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        let config: Config = figment.extract().map_err(describe)?;
        config.check()?;
        Ok(config)
    }

    /// The built-in defaults alone (no file, no environment); used by tests and tools.
    pub fn defaults() -> Result<Config, ConfigError> {
        Figment::from(Toml::string(DEFAULT_TOML))
            .extract()
            .map_err(describe)
    }

    /// Rebuilds a config from this one with some values overridden, re-checking the result.
    pub fn with(self, overrides: impl Serialize) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(self))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(describe)?;
        config.check()?;
        Ok(config)
    }

    /// Rules a type cannot express: zero limits and malformed key hashes.
    fn check(&self) -> Result<(), ConfigError> {
        let positive = [
            ("limits.max_body_bytes", self.limits.max_body_bytes),
            (
                "limits.max_events_per_request",
                self.limits.max_events_per_request,
            ),
            ("limits.max_event_bytes", self.limits.max_event_bytes),
            ("limits.max_string_bytes", self.limits.max_string_bytes),
            (
                "limits.max_stream_name_bytes",
                self.limits.max_stream_name_bytes,
            ),
            ("limits.max_read_limit", self.limits.max_read_limit),
            ("limits.max_scan_per_read", self.limits.max_scan_per_read),
            ("log.max_group_events", self.log.max_group_events),
            ("log.queue_capacity", self.log.queue_capacity),
            ("live.read_batch", self.live.read_batch),
            ("import.chunk_lines", self.import.chunk_lines),
            ("import.chunk_bytes", self.import.chunk_bytes),
            ("import.in_flight", self.import.in_flight),
            ("import.group_events", self.import.group_events),
            (
                "import.check_memory_entries",
                self.import.check_memory_entries,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("{key} must be greater than 0")));
            }
        }
        if self.limits.max_event_bytes > 256 * 1024 {
            // sled 0.34 moves values larger than a fraction of its segment size into blob
            // files, which the fdatasync of the data file would not cover.
            return Err(ConfigError(
                "limits.max_event_bytes must be at most 262144".into(),
            ));
        }
        // One group commit moves the head by up to max_group_events at once; a smaller max_lag
        // would cut off live readers that keep up perfectly.
        let burst = self
            .log
            .max_group_events
            .max(self.limits.max_events_per_request) as u64;
        if self.live.max_lag < burst {
            return Err(ConfigError(format!(
                "live.max_lag ({}) must be at least log.max_group_events and limits.max_events_per_request ({burst})",
                self.live.max_lag
            )));
        }
        self.log.check().map_err(|e| ConfigError(e.to_string()))?;
        let import_cache = self.import.cache_capacity_bytes;
        if !(crate::log::config::MIN_CACHE_CAPACITY_BYTES
            ..=crate::log::config::MAX_CACHE_CAPACITY_BYTES)
            .contains(&import_cache)
        {
            return Err(ConfigError(format!(
                "import.cache_capacity_bytes ({import_cache}) must be between 1 MiB and 1 TiB"
            )));
        }
        // The webhook rules live with the webhook settings; checked here so that a bad value
        // is a configuration error (exit 2) like any other, before anything starts.
        self.webhooks
            .check()
            .map_err(|e| ConfigError(e.to_string()))?;
        // A bad word would only surface as a schema that does not compile, far from its key.
        self.vocabulary
            .check()
            .map_err(|e| ConfigError(e.to_string()))?;
        for (i, key) in self.auth.keys.iter().enumerate() {
            if crate::keys::parse_hash(&key.hash).is_none() {
                return Err(ConfigError(format!(
                    "auth.keys[{i}].hash must be \"sha256:\" followed by 64 hex digits"
                )));
            }
            if key.principal.trim().is_empty() {
                return Err(ConfigError(format!(
                    "auth.keys[{i}].principal must not be empty"
                )));
            }
        }
        Ok(())
    }
}

/// Turns a figment error into one line that names the key and what was wrong.
fn describe(err: figment::Error) -> ConfigError {
    let mut lines = Vec::new();
    for e in err {
        let key = if e.path.is_empty() {
            String::from("(top level)")
        } else {
            e.path.join(".")
        };
        let origin = e
            .metadata
            .as_ref()
            .map(|m| match &m.source {
                Some(source) => format!(" (from {} {source})", m.name),
                None => format!(" (from {})", m.name),
            })
            .unwrap_or_default();
        lines.push(format!("key `{key}`{origin}: {}", e.kind));
    }
    ConfigError(lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_defaults_parse_and_pass_checks() {
        let config = Config::defaults().expect("defaults parse");
        config.check().expect("defaults are valid");
        assert_eq!(config.log.durability, crate::log::Durability::Fsync);
        assert!(config.auth.keys.is_empty());
    }

    #[test]
    fn every_default_has_one_source_the_shipped_file() {
        // No setting has a second default in code: take any one key out of the shipped file
        // and the configuration no longer loads, naming that key.
        let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
        let mut checked = 0;
        for (i, line) in lines.iter().enumerate() {
            let Some((key, _)) = line.split_once(" = ") else {
                continue;
            };
            if line.starts_with('#') {
                continue;
            }
            let without: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, l)| *l)
                .collect();
            let err = Figment::from(Toml::string(&without.join("\n")))
                .extract::<Config>()
                .map_err(describe)
                .expect_err(key);
            assert!(err.to_string().contains(key.trim()), "{key}: {err}");
            checked += 1;
        }
        assert!(
            checked > 40,
            "only {checked} keys found in the shipped file"
        );
    }

    #[test]
    fn bad_value_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[limits]\nmax_body_bytes = \"lots\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("limits.max_body_bytes"), "{err}");
    }

    #[test]
    fn a_vocabulary_entry_that_is_not_a_word_is_refused_naming_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[vocabulary]\ntones = [\"firm\", \"Very Firm\"]\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("vocabulary.tones[1]"), "{err}");
        std::fs::write(&path, "[vocabulary]\ntones = [\"firm\"]\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.vocabulary.tones, ["firm"]);
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[log]\ndurabilty = \"os\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("durabilty"), "{err}");
    }
}
