//! `annals export` and `annals import`: the log as NDJSON, out of a stopped data folder or a
//! running server, and back into a data folder. The work is in `annals::audit::{export,
//! import, remote}`; this file only picks the source and the destination and prints the
//! summary. It must never write anything but records on stdout: an export is piped into
//! files and other tools.

use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;

use clap::Args;

use annals::audit::{export, import, remote};
use annals::config::Config;
use annals::event::{Schemas, Validator};
use annals::metrics::Metrics;

use super::{CliError, Common, load_config, open_offline};

/// `annals export` arguments.
#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    common: Common,
    /// Write here instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Export from this running server instead of a stopped data folder (e.g.
    /// http://127.0.0.1:8080); the server keeps running.
    #[arg(long)]
    server: Option<String>,
    /// API key for --server (read scope). A key the server refuses exits 2.
    #[arg(long, env = "ANNALS_KEY", hide_env_values = true)]
    key: Option<String>,
    /// With --server: export seq 1 to this seq (default: to the head when the server answers).
    #[arg(long, requires = "server")]
    to: Option<u64>,
}

/// Writes every record (or, from a server, up to `--to`) to stdout or `--output`.
pub async fn export(args: ExportArgs) -> Result<(), CliError> {
    match &args.server {
        Some(base) => {
            let key = args.key.as_deref();
            let result = match &args.output {
                Some(path) => {
                    let file = std::fs::File::create(path).map_err(|e| {
                        CliError::failed(format!("cannot create {}: {e}", path.display()))
                    })?;
                    remote::export(base, key, args.to, &mut std::io::BufWriter::new(file)).await
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    remote::export(base, key, args.to, &mut out).await
                }
            };
            match result {
                Ok(_) => Ok(()),
                Err(e @ remote::RemoteError::Unauthorized { .. }) => Err(CliError::usage(format!(
                    "{e} (give --key KEY or set ANNALS_KEY)"
                ))),
                Err(e) if e.is_denied() => Err(CliError::usage(e)),
                Err(e) => Err(CliError::failed(e)),
            }
        }
        None => {
            let config = load_config(&args.common, None)?;
            let result = match args.output {
                Some(path) => std::fs::File::create(&path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))
                    .and_then(|f| {
                        export::export(
                            &config.server.data_dir,
                            &config.log,
                            &mut std::io::BufWriter::new(f),
                        )
                        .map_err(|e| e.to_string())
                    }),
                None => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    export::export(&config.server.data_dir, &config.log, &mut out)
                        .map_err(|e| e.to_string())
                }
            };
            result.map(|_| ()).map_err(CliError::Failed)
        }
    }
}

/// `annals import` arguments.
#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    common: Common,
    /// File to read; stdin when absent or `-`.
    file: Option<PathBuf>,
    /// Principal recorded for submitted (non-exported) events.
    #[arg(long, default_value = "import")]
    principal: String,
}

/// Imports NDJSON into the data folder and prints what it did on stderr.
pub async fn import(args: ImportArgs) -> Result<(), CliError> {
    let config = load_config(&args.common, None)?;
    import_into(config, args.file, &args.principal).await
}

async fn import_into(
    config: Config,
    file: Option<PathBuf>,
    principal: &str,
) -> Result<(), CliError> {
    let dir = config.server.data_dir.clone();
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    let metrics = Metrics::new().map_err(CliError::failed)?;
    let schemas = Schemas::load_with(&config.vocabulary).map_err(CliError::failed)?;
    let validator = Validator::new(schemas, config.limits.clone());
    let log = open_offline(&dir, &config, metrics, "import")?;
    let result = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => match std::fs::File::open(&path) {
            Ok(f) => {
                let len = f.metadata().ok().map(|m| m.len());
                import::import(&log, &validator, BufReader::new(f), principal, len).await
            }
            Err(e) => {
                log.close().await;
                return Err(CliError::failed(format!(
                    "cannot open {}: {e}",
                    path.display()
                )));
            }
        },
        None => {
            if std::io::stdin().is_terminal() {
                eprintln!("annals: reading NDJSON from stdin (Ctrl-D to end)");
            }
            let stdin = std::io::stdin();
            import::import(&log, &validator, stdin.lock(), principal, None).await
        }
    };
    let head = log.head();
    log.close().await;
    match result {
        Ok(s) => {
            eprintln!(
                "imported: {} restored, {} appended, {} already present; head seq {} hash {}",
                s.restored,
                s.appended,
                s.duplicates,
                head.seq,
                hex::encode(head.hash)
            );
            Ok(())
        }
        Err(e) => Err(CliError::failed(format!(
            "import stopped: {e} (earlier lines are durable)"
        ))),
    }
}
