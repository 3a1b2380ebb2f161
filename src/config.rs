//! The service configuration: built-in defaults, then a TOML file, then `ANNALS_*` environment
//! variables, then command-line flags. It must never read any other file and never hold a
//! plaintext API key (only hashes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::keys::Scope;

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
    /// Read models (issue 3).
    #[serde(default)]
    pub projections: crate::projection::ProjectionConfig,
    /// Webhook delivery (issue 4).
    #[serde(default)]
    pub webhooks: crate::webhook::WebhookConfig,
    /// Signed checkpoints (issue 5).
    #[serde(default)]
    pub audit: crate::audit::checkpointer::AuditConfig,
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

/// Live feed settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    /// Events a live reader may fall behind before it is cut off.
    pub max_lag: u64,
    /// Seconds between keep-alive comments.
    pub keep_alive_secs: u64,
}

/// The configured API keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Hashed keys with their principal and scopes.
    pub keys: Vec<KeyEntry>,
}

/// One API key as configured: never the key itself, only its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Who uses the key; recorded as `recorded_by` on every append made with it.
    pub principal: String,
    /// `sha256:<hex>` of the key, as printed by `annals keys new`.
    pub hash: String,
    /// What the key may do.
    pub scopes: Vec<Scope>,
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
        // The webhook rules live with the webhook settings; checked here so that a bad value
        // is a configuration error (exit 2) like any other, before anything starts.
        self.webhooks
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
        assert_eq!(config.log.durability, Durability::Fsync);
        assert!(config.auth.keys.is_empty());
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
    fn unknown_key_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[log]\ndurabilty = \"os\"\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("durabilty"), "{err}");
    }
}
