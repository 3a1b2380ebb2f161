//! `annals serve`: start the server, print the lines tools read (the address, then the demo
//! key), and stop gracefully on Ctrl-C or SIGTERM. It must never print anything else on
//! stdout: scripts and tests read its first lines.

use std::io::Write;
use std::net::SocketAddr;

use clap::{Args, ValueEnum};

use annals::config::Config;
use annals::server::DemoData;
use annals::{Server, StartOptions};

use super::{CliError, Common, load_config};

/// `annals serve` arguments.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// Listen address (overrides server.listen); port 0 picks a free port.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Load example data into an empty data folder and print a key valid for this process:
    /// the Moscow talks demo (no value, or `moscow-talks`), the Black Sea Grain Initiative
    /// (`black-sea-grain`), or both in one log (`all`).
    #[arg(long, value_name = "DATA_SET", num_args = 0..=1, default_missing_value = "moscow-talks")]
    demo: Option<Demo>,
}

/// The example data sets `--demo` takes by name.
#[derive(Clone, Copy, ValueEnum)]
enum Demo {
    /// examples/moscow-talks.ndjson (the default).
    MoscowTalks,
    /// examples/black-sea-grain.ndjson.
    BlackSeaGrain,
    /// Both, the Moscow talks first.
    All,
}

impl From<Demo> for DemoData {
    fn from(d: Demo) -> DemoData {
        match d {
            Demo::MoscowTalks => DemoData::MoscowTalks,
            Demo::BlackSeaGrain => DemoData::BlackSeaGrain,
            Demo::All => DemoData::All,
        }
    }
}

/// `annals serve`'s configuration. Loaded once, before the runtime is built, since its worker
/// threads come from it (`server.worker_threads`).
pub fn config(args: &ServeArgs) -> Result<Config, CliError> {
    load_config(&args.common, args.listen)
}

/// Runs the server with `config` (from [`config`]) until a shutdown signal; a configuration
/// that did not load is reported once logging is set up.
pub async fn serve(args: ServeArgs, config: Result<Config, CliError>) -> Result<(), CliError> {
    let queue = config
        .as_ref()
        .map(|c| c.server.log_queue_lines)
        .unwrap_or(DEFAULT_LOG_QUEUE_LINES);
    // Flushes the lines still queued when `serve` returns, whatever it returns.
    let _log = init_tracing(&args.common.log_format, queue);
    run(config?, args.demo).await
}

/// The log queue's bound for a configuration that did not load (`config/default.toml`'s).
const DEFAULT_LOG_QUEUE_LINES: usize = 65536;

/// Logs to stderr through a writer thread of its own (`server.log_queue_lines` lines queued at
/// most, never dropped): a request's log line is not a write to stderr on its worker. Colours
/// only on a terminal. The guard flushes what is queued when dropped.
fn init_tracing(format: &str, queue: usize) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(queue.max(1))
        .lossy(false)
        .thread_name("annals-log")
        .finish(std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::try_from_env("ANNALS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    guard
}

async fn run(config: Config, demo: Option<Demo>) -> Result<(), CliError> {
    let server = match Server::start(
        config,
        StartOptions {
            demo: demo.is_some(),
            demo_data: demo.map(DemoData::from).unwrap_or_default(),
            ..StartOptions::default()
        },
    )
    .await
    {
        Ok(s) => s,
        // An unusable key file (the webhook secret key, the checkpoint signing key) is a
        // configuration error, like a bad value.
        Err(annals::server::StartError::Webhook(e)) if e.is_config() => {
            return Err(CliError::usage(e));
        }
        Err(annals::server::StartError::Checkpoints(annals::audit::signer::SignerError::Key(
            e,
        ))) => {
            return Err(CliError::usage(e));
        }
        Err(e) => return Err(CliError::failed(e)),
    };
    // Tools read these lines: the address first, then the demo key.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on http://{}", server.addr());
    if let Some(key) = &server.demo_key {
        let _ = writeln!(out, "demo key: {key}");
    }
    let _ = out.flush();
    drop(out);
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
