//! `annals keys new` and `annals keys new-signing`: mint an API key or a checkpoint signing
//! key. The plaintext API key is printed once, here, and must never be written anywhere else:
//! the config block printed with it holds only its hash.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use annals::keys::{self, KeyEntry, Scope};

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
