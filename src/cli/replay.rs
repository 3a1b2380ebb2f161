//! `annals replay` and `annals rebuild`: the projections offline, as known at a moment (from a
//! stopped data folder or an export) or rebuilt from seq 1 in a stopped data folder. It must
//! never run against a folder a server holds: sled's lock refuses it, and the message says so.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use annals::audit::replay;
use annals::config::Config;
use annals::metrics::Metrics;

use super::{CliError, Common, load_config, open_input, open_offline};

/// `annals replay` arguments.
#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    common: Common,
    /// A seq, or an RFC 3339 timestamp (transaction time).
    #[arg(long)]
    known_at: String,
    /// Also restrict to the world as of this date (YYYY, YYYY-MM, YYYY-MM-DD).
    #[arg(long)]
    valid_at: Option<String>,
    /// negotiation, calendar, actors, sources or audit.
    #[arg(long, default_value = "negotiation")]
    projection: String,
    /// Read this NDJSON export instead of the data folder.
    #[arg(long)]
    export: Option<PathBuf>,
}

/// Prints the projection as known at `--known-at`, as pretty JSON.
pub fn replay(args: ReplayArgs) -> Result<(), CliError> {
    let knowledge = match args.export {
        Some(path) => replay::from_export(open_input(&path).map_err(CliError::Failed)?),
        None => {
            let config = load_config(&args.common, None)?;
            replay::from_dir(&config.server.data_dir, &config.log, &config.projections)
        }
    };
    let result = knowledge.and_then(|k| {
        replay::view(
            &k,
            &args.projection,
            &args.known_at,
            args.valid_at.as_deref(),
        )
    });
    match result {
        Ok(v) => {
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            Ok(())
        }
        Err(replay::ReplayError::Usage(m)) => Err(CliError::Usage(m)),
        Err(e) => Err(CliError::failed(e)),
    }
}

/// `annals rebuild` arguments.
#[derive(Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    common: Common,
    /// The projection to rebuild (negotiation, calendar, actors, sources, audit); all when absent.
    name: Option<String>,
}

/// Rebuilds every projection of a stopped data folder from seq 1.
pub async fn rebuild(args: RebuildArgs) -> Result<(), CliError> {
    let config = load_config(&args.common, None)?;
    rebuild_in(config, args.name).await
}

async fn rebuild_in(config: Config, name: Option<String>) -> Result<(), CliError> {
    if let Some(n) = name.as_deref()
        && !annals::projection::NAMES.contains(&n)
    {
        return Err(CliError::usage(format!(
            "no projection is called `{n}` (known: {})",
            annals::projection::NAMES.join(", ")
        )));
    }
    let dir = config.server.data_dir.clone();
    if !dir.exists() {
        return Err(CliError::failed(format!(
            "data folder {} does not exist",
            dir.display()
        )));
    }
    let metrics = Metrics::new().map_err(CliError::failed)?;
    let log = open_offline(&dir, &config, metrics, "rebuild")?;
    let head = log.head().seq;
    let bar = annals::audit::progress(Some(head), "rebuilding projections");
    let progress = bar.clone();
    let result = annals::projection::rebuild_offline(&log, &config.projections, move |seq| {
        progress.set_position(seq)
    })
    .await;
    bar.finish_and_clear();
    log.close().await;
    match result {
        Ok(n) => {
            eprintln!(
                "rebuilt {}: {n} records folded; head seq {head}",
                name.as_deref().unwrap_or("all projections")
            );
            Ok(())
        }
        Err(e) => Err(CliError::failed(format!("rebuild failed: {e}"))),
    }
}
