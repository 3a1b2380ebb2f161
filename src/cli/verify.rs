//! `annals verify` and `annals audit ...`: checking a log, from its data folder (the hash
//! chain) or from the outside (an export or a server against signed checkpoints). Verdicts go
//! on stdout (`ok: ...`, `FAILED ...`), where tools read them; a failed check exits 1, a
//! command that cannot run as given exits 2. It must never repair or change what it checks.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use annals::audit::checkpoint::{self, Checkpoint};
use annals::audit::{offline, remote, verify};

use super::{CliError, Common, load_config, open_input};

/// `annals verify` arguments.
#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    common: Common,
}

/// Walks the chain of the data folder and prints the verdict.
pub fn verify(args: VerifyArgs) -> Result<(), CliError> {
    let config = load_config(&args.common, None)?;
    let report =
        verify::verify_dir(&config.server.data_dir, &config.log).map_err(CliError::failed)?;
    match report.first_bad {
        None => {
            println!(
                "ok: {} records verified; head seq {} hash {}",
                report.verified,
                report.head.seq,
                hex::encode(report.head.hash)
            );
            Ok(())
        }
        Some((seq, why)) => Err(CliError::Verdict(format!("FAILED at seq {seq}: {why}"))),
    }
}

/// The `annals audit` checks.
#[derive(Subcommand)]
pub enum AuditAction {
    /// Recompute the chain and Merkle tree of an NDJSON export and check signed checkpoints
    /// against it (needs nothing but the export and the public key).
    VerifyExport(VerifyExportArgs),
    /// Check that a newer checkpoint extends an older one (the log was only appended to).
    VerifyConsistency(VerifyConsistencyArgs),
    /// Print the public key that verifies this data folder's checkpoints.
    PublicKey(PublicKeyArgs),
}

/// `annals audit verify-export` arguments.
#[derive(Args)]
pub struct VerifyExportArgs {
    /// The export (`annals export`); `-` for stdin.
    file: PathBuf,
    /// A checkpoint JSON file (from GET /audit/checkpoint); repeatable.
    #[arg(long, required = true)]
    checkpoint: Vec<PathBuf>,
    /// The server's public key: 64 hex digits, or a file holding them.
    #[arg(long)]
    public_key: String,
}

/// `annals audit verify-consistency` arguments.
#[derive(Args)]
pub struct VerifyConsistencyArgs {
    /// The older checkpoint JSON file.
    old: PathBuf,
    /// The newer checkpoint JSON file.
    new: PathBuf,
    /// The server's public key: 64 hex digits, or a file holding them.
    #[arg(long)]
    public_key: String,
    /// Ask this server for the consistency proof (e.g. http://127.0.0.1:8080).
    #[arg(long, conflicts_with = "export")]
    server: Option<String>,
    /// API key for --server (read scope); `--api-key` is accepted as before.
    #[arg(
        long = "key",
        alias = "api-key",
        env = "ANNALS_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// Or recompute both roots from this export instead of asking a server.
    #[arg(long)]
    export: Option<PathBuf>,
}

/// `annals audit public-key` arguments.
#[derive(Args)]
pub struct PublicKeyArgs {
    #[command(flatten)]
    common: Common,
}

/// Prints the public key of the data folder's checkpoint signing key.
pub fn public_key(args: PublicKeyArgs) -> Result<(), CliError> {
    let config = load_config(&args.common, None)?;
    let path = config.audit.key_path(&config.server.data_dir);
    let key = checkpoint::load_key_file(&path).map_err(CliError::failed)?;
    println!("{}", hex::encode(key.verifying_key().as_bytes()));
    Ok(())
}

/// Checks signed checkpoints against an export.
pub fn verify_export(args: VerifyExportArgs) -> Result<(), CliError> {
    let key = read_public_key(&args.public_key).map_err(CliError::Usage)?;
    let cps = args
        .checkpoint
        .iter()
        .map(|path| read_checkpoint(path))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::Usage)?;
    let input = open_input(&args.file).map_err(CliError::Usage)?;
    let refs: Vec<&Checkpoint> = cps.iter().collect();
    match offline::verify_export(input, &refs, &key) {
        Ok(report) => {
            for cp in &cps {
                println!(
                    "ok: checkpoint of size {} ({}) holds for this export",
                    cp.size, cp.root
                );
            }
            match report.first_bad {
                Some((seq, why)) => Err(CliError::Verdict(format!(
                    "note: the export fails at seq {seq} (after every checkpoint): {why}"
                ))),
                None => Ok(()),
            }
        }
        Err(offline::AuditError::BadRecord(seq, why)) => {
            Err(CliError::Verdict(format!("FAILED at seq {seq}: {why}")))
        }
        Err(e) => Err(CliError::Verdict(format!("FAILED: {e}"))),
    }
}

/// Checks that the newer checkpoint extends the older one, with a server's proof or an export.
pub async fn verify_consistency(args: VerifyConsistencyArgs) -> Result<(), CliError> {
    let key = read_public_key(&args.public_key).map_err(CliError::Usage)?;
    let (old, new) = match (read_checkpoint(&args.old), read_checkpoint(&args.new)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Err(CliError::Usage(e)),
    };
    let result = if let Some(path) = args.export {
        let input = open_input(&path).map_err(CliError::Usage)?;
        offline::verify_export(input, &[&old, &new], &key).map(|_| ())
    } else if let Some(base) = args.server {
        let path = remote::consistency_proof(&base, args.api_key.as_deref(), old.size, new.size)
            .await
            .map_err(CliError::failed)?;
        offline::verify_consistency(&old, &new, &path, &key)
    } else {
        return Err(CliError::usage("give --server URL or --export FILE"));
    };
    match result {
        Ok(()) => {
            println!(
                "ok: checkpoint {} extends checkpoint {} (append-only)",
                new.size, old.size
            );
            Ok(())
        }
        Err(e) => Err(CliError::Verdict(format!("FAILED: {e}"))),
    }
}

fn read_public_key(arg: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).map_err(|e| format!("cannot read {arg}: {e}"))?
    } else {
        arg.to_string()
    };
    checkpoint::parse_public_key(&text).map_err(|e| e.to_string())
}

fn read_checkpoint(path: &Path) -> Result<Checkpoint, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a checkpoint: {e}", path.display()))
}
