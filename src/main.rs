//! The `annals` command line: parse arguments, load the configuration, call into the library.
//! It must never hold logic of its own. Exit codes: 0 success, 1 verification or runtime
//! failure, 2 usage or configuration error.

use std::io::{BufReader, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use annals::audit::{export, import, verify};
use annals::config::Config;
use annals::event::{Schemas, Validator};
use annals::keys::{self, Scope};
use annals::log::{Log, LogOptions};
use annals::metrics::Metrics;
use annals::{Server, StartOptions};

#[derive(Parser)]
#[command(
    name = "annals",
    version,
    about = "An append-only, verifiable log of sourced diplomatic facts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// Configuration file (TOML); defaults are built in, ANNALS_* variables override.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data folder (overrides server.data_dir).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Listen address (overrides server.listen); port 0 picks a free port.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Load the demo data into an empty data folder and print a key valid for this process.
        #[arg(long)]
        demo: bool,
    },
    /// Write every record as NDJSON to stdout (or --output), read from the data folder.
    Export {
        #[command(flatten)]
        common: Common,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Read NDJSON (exported records or submitted events with a `stream`) into the data folder.
    Import {
        #[command(flatten)]
        common: Common,
        /// File to read; stdin when absent or `-`.
        file: Option<PathBuf>,
        /// Principal recorded for submitted (non-exported) events.
        #[arg(long, default_value = "import")]
        principal: String,
    },
    /// Walk the hash chain and name the first bad record.
    Verify {
        #[command(flatten)]
        common: Common,
    },
    /// API keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Print a new key and the [[auth.keys]] block to paste into the config.
    New {
        /// Comma-separated scopes: read, append, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<Scope>,
        /// Who will use the key (recorded as `recorded_by`).
        #[arg(long, default_value = "analyst")]
        principal: String,
    },
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ANNALS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn load_config(common: &Common, listen: Option<SocketAddr>) -> Result<Config, ExitCode> {
    let config = Config::load(common.config.as_deref()).map_err(|e| {
        eprintln!("annals: {e}");
        ExitCode::from(2)
    })?;
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
    config
        .with(Overrides {
            server: Server {
                listen,
                data_dir: common.data_dir.clone(),
            },
        })
        .map_err(|e| {
            eprintln!("annals: {e}");
            ExitCode::from(2)
        })
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("annals: {message}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve {
            common,
            listen,
            demo,
        } => {
            init_tracing(&common.log_format);
            let config = match load_config(&common, listen) {
                Ok(c) => c,
                Err(code) => return code,
            };
            serve(config, demo).await
        }
        Command::Export { common, output } => {
            let config = match load_config(&common, None) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let result = match output {
                Some(path) => std::fs::File::create(&path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))
                    .and_then(|f| {
                        export::export(&config.server.data_dir, &mut std::io::BufWriter::new(f))
                            .map_err(|e| e.to_string())
                    }),
                None => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    export::export(&config.server.data_dir, &mut out).map_err(|e| e.to_string())
                }
            };
            match result {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Command::Import {
            common,
            file,
            principal,
        } => {
            let config = match load_config(&common, None) {
                Ok(c) => c,
                Err(code) => return code,
            };
            import_cmd(config, file, &principal).await
        }
        Command::Verify { common } => {
            let config = match load_config(&common, None) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match verify::verify_dir(&config.server.data_dir) {
                Ok(report) => match report.first_bad {
                    None => {
                        println!(
                            "ok: {} records verified; head seq {} hash {}",
                            report.verified,
                            report.head.seq,
                            hex::encode(report.head.hash)
                        );
                        ExitCode::SUCCESS
                    }
                    Some((seq, why)) => {
                        println!("FAILED at seq {seq}: {why}");
                        ExitCode::from(1)
                    }
                },
                Err(e) => fail(e),
            }
        }
        Command::Keys {
            action: KeysAction::New { scopes, principal },
        } => {
            let key = keys::generate();
            let scopes: Vec<String> = scopes
                .iter()
                .map(|s| format!("\"{}\"", s.as_str()))
                .collect();
            let text = format!(
                "key: {}\n\n# Paste into your config (the key itself is not stored anywhere):\n[[auth.keys]]\nprincipal = \"{principal}\"\nhash = \"{}\"\nscopes = [{}]\n",
                key.key,
                key.hash,
                scopes.join(", ")
            );
            // A closed pipe (`| head -1`) is not an error worth a panic.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
    }
}

async fn serve(config: Config, demo: bool) -> ExitCode {
    let server = match Server::start(
        config,
        StartOptions {
            demo,
            ..StartOptions::default()
        },
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return fail(e),
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
    ExitCode::SUCCESS
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

async fn import_cmd(config: Config, file: Option<PathBuf>, principal: &str) -> ExitCode {
    let dir = config.server.data_dir.clone();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(format!("cannot create {}: {e}", dir.display()));
    }
    let metrics = match Metrics::new() {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let schemas = match Schemas::load() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let validator = Validator::new(schemas, config.limits.clone());
    let (log, writer) = match Log::open(
        &dir,
        LogOptions {
            durability: config.log.durability,
            max_group_events: config.log.max_group_events,
            queue_capacity: config.log.queue_capacity,
        },
        metrics,
    ) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let result = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => match std::fs::File::open(&path) {
            Ok(f) => {
                let len = f.metadata().ok().map(|m| m.len());
                import::import(&log, &validator, BufReader::new(f), principal, len).await
            }
            Err(e) => {
                drop(log);
                writer.join();
                return fail(format!("cannot open {}: {e}", path.display()));
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
    drop(log);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
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
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("import stopped: {e} (earlier lines are durable)")),
    }
}
