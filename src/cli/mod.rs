//! The `annals` command line, one file per command group: `serve`, `export` (export and
//! import), `verify` (verify and the offline audits), `replay` (replay and rebuild) and `keys`.
//! Here: the argument tree, the options every command shares, and the helpers two groups
//! need. It is a module of the binary, not of the library: the library is what commands call,
//! this is only how a shell reaches it. It must never hold logic of its own: a command parses,
//! calls into the library, prints, and ends with a [`CliError`] or success.

mod error;
pub mod export;
pub mod keys;
pub mod replay;
pub mod serve;
pub mod verify;

use std::io::BufReader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use annals::config::Config;
use annals::log::Log;
use annals::metrics::Metrics;

pub use error::CliError;

/// The whole command line.
#[derive(Parser)]
#[command(
    name = "annals",
    version,
    about = "An append-only, verifiable log of sourced diplomatic facts"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command that reads the configuration takes.
#[derive(Args, Clone)]
pub struct Common {
    /// Configuration file (TOML); defaults are built in, ANNALS_* variables override.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Data folder (overrides server.data_dir).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP API.
    Serve(serve::ServeArgs),
    /// Write every record as NDJSON to stdout (or --output), read from the data folder, or from
    /// a running server with --server.
    Export(export::ExportArgs),
    /// Read NDJSON (exported records or submitted events with a `stream`) into the data folder.
    Import(export::ImportArgs),
    /// Walk the hash chain and name the first bad record.
    Verify(verify::VerifyArgs),
    /// Rebuild the projections of an idle data folder from seq 1 (offline; the server must be
    /// stopped). The read models share one fold, so any name rebuilds them all.
    Rebuild(replay::RebuildArgs),
    /// API keys.
    Keys {
        /// Which key to make.
        #[command(subcommand)]
        action: keys::KeysAction,
    },
    /// Print a projection exactly as it was known at a moment, from a stopped data folder or
    /// an export.
    Replay(replay::ReplayArgs),
    /// Verify a log from the outside: exports against signed checkpoints, checkpoints against
    /// each other.
    Audit {
        /// Which check.
        #[command(subcommand)]
        action: verify::AuditAction,
    },
}

/// Loads the configuration (defaults, `--config`, `ANNALS_*`), then the `--data-dir` and
/// `--listen` flags over it.
pub fn load_config(common: &Common, listen: Option<SocketAddr>) -> Result<Config, CliError> {
    let config = Config::load(common.config.as_deref())?;
    #[derive(serde::Serialize)]
    struct Server {
        #[serde(skip_serializing_if = "Option::is_none")]
        listen: Option<SocketAddr>,
        #[serde(skip_serializing_if = "Option::is_none")]
        data_dir: Option<PathBuf>,
    }
    #[derive(serde::Serialize)]
    struct Overrides {
        server: Server,
    }
    Ok(config.with(Overrides {
        server: Server {
            listen,
            data_dir: common.data_dir.clone(),
        },
    })?)
}

/// Opens the log of a data folder for an offline command, which needs the folder to itself.
pub fn open_offline(
    dir: &Path,
    config: &Config,
    metrics: Metrics,
    command: &str,
) -> Result<Log, CliError> {
    Log::open(
        dir,
        config.log.clone(),
        metrics,
        annals::event::rules::declarations,
    )
    .map_err(|e| {
        CliError::failed(format!(
            "{e}\n(is a server running on this folder? `annals {command}` needs it stopped)"
        ))
    })
}

/// A file to read, or stdin for `-`.
pub fn open_input(path: &Path) -> Result<Box<dyn std::io::BufRead>, String> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    std::fs::File::open(path)
        .map(|f| Box::new(BufReader::new(f)) as Box<dyn std::io::BufRead>)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}
