//! `annals keys new` and `annals keys new-signing`: mint an API key or a checkpoint signing
//! key; `annals keys add` and `annals keys revoke`: a key added to, or revoked in, the keys of
//! a cluster (nats backend), for every node at once. The plaintext API key is printed once,
//! here, and must never be written anywhere else: the config block printed with it, and the
//! cluster's entry, hold only its hash.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use annals::config::Config;
use annals::keys::{self, KeyEntry, Scope};
use annals::log::{Backend, NatsConfig};

use super::CliError;

/// The keys `annals keys` makes.
#[derive(Subcommand)]
pub enum KeysAction {
    /// Print a new key and the [[auth.keys]] block to paste into the config.
    New {
        /// Comma-separated scopes: read, append, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<Scope>,
        /// Who will use the key (recorded as `recorded_by`).
        #[arg(long, default_value = "analyst")]
        principal: String,
    },
    /// Mint a key and store its hash in the cluster's keys (nats backend): every node accepts
    /// it at once. The key is printed once.
    Add {
        /// The config file of a node of the cluster (its [log.nats] section is used).
        #[arg(long)]
        config: PathBuf,
        /// Comma-separated scopes: read, append, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<Scope>,
        /// Who will use the key (recorded as `recorded_by`).
        #[arg(long, default_value = "analyst")]
        principal: String,
    },
    /// Revoke keys for every node of the cluster (nats backend), configured ones included.
    Revoke {
        /// The config file of a node of the cluster (its [log.nats] section is used).
        #[arg(long)]
        config: PathBuf,
        /// A key's hash (`sha256:<hex>`), a prefix of exactly one key's hash, or a principal
        /// (all of its keys).
        which: String,
    },
    /// Create an Ed25519 checkpoint signing key file and print its public key.
    NewSigning {
        /// Where to write the key (mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Prints a new API key and its `[[auth.keys]]` block.
pub fn new_key(scopes: Vec<Scope>, principal: String) -> Result<(), CliError> {
    let key = keys::generate();
    let entry = KeyEntry {
        principal,
        hash: key.hash,
        scopes,
    };
    let text = format!(
        "key: {}\n\n# Paste into your config (the key itself is not stored anywhere):\n{}",
        key.key,
        entry.to_toml()
    );
    // A closed pipe (`| head -1`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(())
}

/// The cluster settings of the config at `path`; on the sled backend, a usage error saying
/// where keys live there.
fn cluster_of(path: &Path, command: &str) -> Result<NatsConfig, CliError> {
    let config = Config::load(Some(path))?;
    match config.log.nats {
        Some(nats) if config.log.backend == Backend::Nats => Ok(nats),
        _ => Err(CliError::usage(format!(
            "`annals keys {command}` works on a cluster ([log] backend = \"nats\"), and {} \
             uses the sled backend, where API keys live in the config file: make one with \
             `annals keys new` and paste its [[auth.keys]] block; revoke one by removing its \
             block, then restart the server",
            path.display()
        ))),
    }
}

/// Mints a key, stores its entry in the cluster's keys, then prints the key (once).
pub async fn add(config: PathBuf, scopes: Vec<Scope>, principal: String) -> Result<(), CliError> {
    let nats = cluster_of(&config, "add")?;
    let key = keys::generate();
    let entry = KeyEntry {
        principal,
        hash: key.hash,
        scopes,
    };
    keys::add_to_cluster(&nats, &entry)
        .await
        .map_err(CliError::failed)?;
    let text = format!(
        "key: {}\n\n# Stored in the cluster's keys ({}_keys) as its hash only; every node accepts it now.\n# Revoke it with: annals keys revoke --config {} {}\n",
        key.key,
        nats.stream,
        config.display(),
        entry.hash
    );
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(())
}

/// Revokes keys for every node of the cluster; prints each one revoked.
pub async fn revoke(config: PathBuf, which: String) -> Result<(), CliError> {
    let nats = cluster_of(&config, "revoke")?;
    let revoked = keys::revoke_in_cluster(&nats, &which)
        .await
        .map_err(CliError::failed)?;
    let mut text = String::new();
    for (hash, principal) in revoked {
        text.push_str(&format!("revoked: {hash} ({principal})\n"));
    }
    text.push_str(
        "# Every node refuses it now (401), and none publishes it again from its config; remove its [[auth.keys]] block when convenient.\n",
    );
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(())
}

/// Creates a checkpoint signing key file and prints its public key.
pub fn new_signing(out: PathBuf) -> Result<(), CliError> {
    let public = annals::audit::checkpoint::generate_key_file(&out).map_err(CliError::failed)?;
    println!("public key: {}", hex::encode(public.as_bytes()));
    println!(
        "# In your config: [audit] signing_key = \"{}\"",
        out.display()
    );
    Ok(())
}
