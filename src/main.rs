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
use annals::log::Log;
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
    /// Rebuild the projections of an idle data folder from seq 1 (offline; the server must be
    /// stopped). The read models share one fold, so any name rebuilds them all.
    Rebuild {
        #[command(flatten)]
        common: Common,
        /// The projection to rebuild (negotiation, calendar, actors, sources, audit); all when absent.
        name: Option<String>,
    },
    /// API keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Print a projection exactly as it was known at a moment, from a stopped data folder or
    /// an export.
    Replay {
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
    },
    /// Verify a log from the outside: exports against signed checkpoints, checkpoints against
    /// each other.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Recompute the chain and Merkle tree of an NDJSON export and check signed checkpoints
    /// against it (needs nothing but the export and the public key).
    VerifyExport {
        /// The export (`annals export`); `-` for stdin.
        file: PathBuf,
        /// A checkpoint JSON file (from GET /audit/checkpoint); repeatable.
        #[arg(long, required = true)]
        checkpoint: Vec<PathBuf>,
        /// The server's public key: 64 hex digits, or a file holding them.
        #[arg(long)]
        public_key: String,
    },
    /// Check that a newer checkpoint extends an older one (the log was only appended to).
    VerifyConsistency {
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
        /// API key for --server (read scope).
        #[arg(long, env = "ANNALS_API_KEY")]
        api_key: Option<String>,
        /// Or recompute both roots from this export instead of asking a server.
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// Print the public key that verifies this data folder's checkpoints.
    PublicKey {
        #[command(flatten)]
        common: Common,
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
    /// Create an Ed25519 checkpoint signing key file and print its public key.
    NewSigning {
        /// Where to write the key (mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
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
            match verify::verify_dir(&config.server.data_dir, &config.log) {
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
        Command::Rebuild { common, name } => {
            let config = match load_config(&common, None) {
                Ok(c) => c,
                Err(code) => return code,
            };
            rebuild_cmd(config, name).await
        }
        Command::Keys {
            action: KeysAction::NewSigning { out },
        } => match annals::audit::checkpoint::generate_key_file(&out) {
            Ok(public) => {
                println!("public key: {}", hex::encode(public.as_bytes()));
                println!(
                    "# In your config: [audit] signing_key = \"{}\"",
                    out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Audit { action } => audit_cmd(action).await,
        Command::Replay {
            common,
            known_at,
            valid_at,
            projection,
            export,
        } => {
            use annals::audit::replay;
            let knowledge = match export {
                Some(path) => match open_input(&path) {
                    Ok(input) => replay::from_export(input),
                    Err(e) => return fail(e),
                },
                None => {
                    let config = match load_config(&common, None) {
                        Ok(c) => c,
                        Err(code) => return code,
                    };
                    replay::from_dir(&config.server.data_dir, &config.log)
                }
            };
            let result = knowledge
                .and_then(|k| replay::view(&k, &projection, &known_at, valid_at.as_deref()));
            match result {
                Ok(v) => {
                    let text = serde_json::to_string_pretty(&v).unwrap_or_default();
                    let _ = writeln!(std::io::stdout().lock(), "{text}");
                    ExitCode::SUCCESS
                }
                Err(replay::ReplayError::Usage(m)) => {
                    eprintln!("annals: {m}");
                    ExitCode::from(2)
                }
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
        // An unusable key file (the webhook secret key, the checkpoint signing key) is a
        // configuration error, like a bad value.
        Err(annals::server::StartError::Webhook(e)) if e.is_config() => {
            eprintln!("annals: {e}");
            return ExitCode::from(2);
        }
        Err(annals::server::StartError::Checkpoints(
            annals::audit::checkpointer::CheckpointerError::Key(e),
        )) => {
            eprintln!("annals: {e}");
            return ExitCode::from(2);
        }
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
    let log = match open_offline(&dir, &config, metrics, "import") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let result = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => match std::fs::File::open(&path) {
            Ok(f) => {
                let len = f.metadata().ok().map(|m| m.len());
                import::import(&log, &validator, BufReader::new(f), principal, len).await
            }
            Err(e) => {
                log.close().await;
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
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("import stopped: {e} (earlier lines are durable)")),
    }
}

async fn rebuild_cmd(config: Config, name: Option<String>) -> ExitCode {
    if let Some(n) = name.as_deref()
        && !annals::projection::NAMES.contains(&n)
    {
        eprintln!(
            "annals: no projection is called `{n}` (known: {})",
            annals::projection::NAMES.join(", ")
        );
        return ExitCode::from(2);
    }
    let dir = config.server.data_dir.clone();
    if !dir.exists() {
        return fail(format!("data folder {} does not exist", dir.display()));
    }
    let metrics = match Metrics::new() {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let log = match open_offline(&dir, &config, metrics, "rebuild") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let head = log.head().seq;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(head)
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("rebuilding projections");
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
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("rebuild failed: {e}")),
    }
}

/// Opens the log of a data folder for an offline command, which needs the folder to itself.
fn open_offline(
    dir: &std::path::Path,
    config: &Config,
    metrics: Metrics,
    command: &str,
) -> Result<Log, ExitCode> {
    Log::open(dir, config.log.clone(), metrics).map_err(|e| {
        fail(format!(
            "{e}\n(is a server running on this folder? `annals {command}` needs it stopped)"
        ))
    })
}

fn read_public_key(arg: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    let text = if std::path::Path::new(arg).is_file() {
        std::fs::read_to_string(arg).map_err(|e| format!("cannot read {arg}: {e}"))?
    } else {
        arg.to_string()
    };
    annals::audit::checkpoint::parse_public_key(&text).map_err(|e| e.to_string())
}

fn read_checkpoint(
    path: &std::path::Path,
) -> Result<annals::audit::checkpoint::Checkpoint, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a checkpoint: {e}", path.display()))
}

fn open_input(path: &std::path::Path) -> Result<Box<dyn std::io::BufRead>, String> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    std::fs::File::open(path)
        .map(|f| Box::new(BufReader::new(f)) as Box<dyn std::io::BufRead>)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

async fn audit_cmd(action: AuditAction) -> ExitCode {
    use annals::audit::offline;
    let usage = |m: String| {
        eprintln!("annals: {m}");
        ExitCode::from(2)
    };
    match action {
        AuditAction::PublicKey { common } => {
            let config = match load_config(&common, None) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let path = config.audit.key_path(&config.server.data_dir);
            match annals::audit::checkpoint::load_key_file(&path) {
                Ok(key) => {
                    println!("{}", hex::encode(key.verifying_key().as_bytes()));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        AuditAction::VerifyExport {
            file,
            checkpoint,
            public_key,
        } => {
            let key = match read_public_key(&public_key) {
                Ok(k) => k,
                Err(e) => return usage(e),
            };
            let mut cps = Vec::new();
            for path in &checkpoint {
                match read_checkpoint(path) {
                    Ok(c) => cps.push(c),
                    Err(e) => return usage(e),
                }
            }
            let input = match open_input(&file) {
                Ok(i) => i,
                Err(e) => return usage(e),
            };
            let refs: Vec<&annals::audit::checkpoint::Checkpoint> = cps.iter().collect();
            match offline::verify_export(input, &refs, &key) {
                Ok(report) => {
                    for cp in &cps {
                        println!(
                            "ok: checkpoint of size {} ({}) holds for this export",
                            cp.size, cp.root
                        );
                    }
                    if let Some((seq, why)) = report.first_bad {
                        println!(
                            "note: the export fails at seq {seq} (after every checkpoint): {why}"
                        );
                        return ExitCode::from(1);
                    }
                    ExitCode::SUCCESS
                }
                Err(offline::AuditError::BadRecord(seq, why)) => {
                    println!("FAILED at seq {seq}: {why}");
                    ExitCode::from(1)
                }
                Err(e) => {
                    println!("FAILED: {e}");
                    ExitCode::from(1)
                }
            }
        }
        AuditAction::VerifyConsistency {
            old,
            new,
            public_key,
            server,
            api_key,
            export,
        } => {
            let key = match read_public_key(&public_key) {
                Ok(k) => k,
                Err(e) => return usage(e),
            };
            let (old, new) = match (read_checkpoint(&old), read_checkpoint(&new)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return usage(e),
            };
            let result = if let Some(path) = export {
                let input = match open_input(&path) {
                    Ok(i) => i,
                    Err(e) => return usage(e),
                };
                offline::verify_export(input, &[&old, &new], &key).map(|_| ())
            } else if let Some(base) = server {
                let url = format!(
                    "{}/audit/proof/consistency?from={}&to={}",
                    base.trim_end_matches('/'),
                    old.size,
                    new.size
                );
                let mut req = reqwest::Client::new().get(&url);
                if let Some(k) = &api_key {
                    req = req.bearer_auth(k);
                }
                let body: serde_json::Value = match req.send().await {
                    Ok(r) if r.status().is_success() => match r.json().await {
                        Ok(v) => v,
                        Err(e) => return fail(format!("bad answer from {url}: {e}")),
                    },
                    Ok(r) => return fail(format!("{url} answered {}", r.status())),
                    Err(e) => return fail(format!("cannot reach {url}: {e}")),
                };
                let mut path = Vec::new();
                for h in body["consistency_path"].as_array().into_iter().flatten() {
                    let mut out = [0u8; 32];
                    if hex::decode_to_slice(h.as_str().unwrap_or_default(), &mut out).is_err() {
                        return fail("the server's proof is not hex");
                    }
                    path.push(out);
                }
                offline::verify_consistency(&old, &new, &path, &key)
            } else {
                return usage("give --server URL or --export FILE".into());
            };
            match result {
                Ok(()) => {
                    println!(
                        "ok: checkpoint {} extends checkpoint {} (append-only)",
                        new.size, old.size
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("FAILED: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
