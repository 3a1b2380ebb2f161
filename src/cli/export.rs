//! `annals export` and `annals import`: the log as NDJSON, out of a stopped data folder or a
//! running server, and back into a data folder; `annals import --check`, the dry run of an
//! import file. The work is in `annals::audit::{export, import, remote}` and
//! `annals::event::check`; this file only picks the source and the destination and prints the
//! summary. It must never write anything but records on an export's stdout (it is piped into
//! files and other tools), and `--check` must never write to the data folder.

use std::io::{BufReader, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use annals::audit::{export, import, remote};
use annals::config::Config;
use annals::event::check::{self, Known};
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
    /// Only check the file: every line validated as if the lines before it were imported,
    /// against the data folder (which is left untouched); every problem is listed with its
    /// line, JSON pointer and message, then a count per kind. Exits 1 if there is any.
    #[arg(long)]
    check: bool,
}

/// Imports NDJSON into the data folder and prints what it did on stderr (or, with `--check`,
/// lists the file's problems on stdout).
pub async fn import(args: ImportArgs) -> Result<(), CliError> {
    let config = load_config(&args.common, None)?;
    if args.check {
        return check(config, args.file).await;
    }
    import_into(config, args.file, &args.principal).await
}

/// An empty log: what a data folder that does not exist yet knows. `--check` must not create
/// the folder just to learn that.
struct Nothing;

impl Known for Nothing {
    fn id_kind(&self, _: &str) -> Result<Option<(String, u64)>, String> {
        Ok(None)
    }
    fn record(&self, _: &uuid::Uuid) -> Result<Option<annals::log::Record>, String> {
        Ok(None)
    }
    fn stream_version(&self, _: &str) -> Result<Option<u64>, String> {
        Ok(None)
    }
    fn entry(
        &self,
        _: &str,
        _: annals::log::EntryRule,
    ) -> Result<Option<(u64, serde_json::Value)>, String> {
        Ok(None)
    }
}

/// `annals import --check`: lists every problem of the file as it is found, then a count per
/// kind. Problems are written out as found, not kept, and the ids and event ids the lines add
/// are packed as they grow (`[import] check_memory_entries`), so memory grows by tens of bytes
/// a line, not hundreds.
async fn check(config: Config, file: Option<PathBuf>) -> Result<(), CliError> {
    let schemas = Schemas::load_with(&config.vocabulary).map_err(CliError::failed)?;
    let validator = Validator::new(schemas, config.limits.clone());
    let (input, bar): (Box<dyn std::io::BufRead>, _) = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            let f = std::fs::File::open(&path)
                .map_err(|e| CliError::usage(format!("cannot open {}: {e}", path.display())))?;
            let bar = annals::audit::progress(f.metadata().ok().map(|m| m.len()), "checking");
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            (Box::new(BufReader::new(bar.wrap_read(f))), Some(bar))
        }
        None => (Box::new(BufReader::new(std::io::stdin())), None),
    };
    let packing = check::Packing {
        after: config.import.check_memory_entries,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let report = |p: check::LineProblem| {
        let at = if p.pointer.is_empty() {
            "/"
        } else {
            &p.pointer
        };
        writeln!(
            out,
            "line {}: {at}: {} [{}]",
            p.line,
            p.message,
            p.kind.name()
        )
        .map_err(check::CheckError::Report)
    };
    let dir = config.server.data_dir.clone();
    let result = if dir.join("db").exists() {
        let metrics = Metrics::new().map_err(CliError::failed)?;
        let log = open_offline(&dir, &config, metrics, "import --check")?;
        let result = check::check_lines(&validator, &log, input, Some(packing), report);
        log.close().await;
        result
    } else {
        check::check_lines(&validator, &Nothing, input, Some(packing), report)
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let counts = result.map_err(CliError::failed)?;
    let write = |out: &mut dyn Write, text: String| {
        out.write_all(text.as_bytes())
            .map_err(|e| CliError::failed(format!("cannot write the report: {e}")))
    };
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let verdict = if total == 0 {
        "ok: no problem found; nothing was written\n".to_string()
    } else {
        let counts: Vec<String> = counts
            .iter()
            .map(|(kind, n)| format!("{n} {}", kind.name()))
            .collect();
        format!(
            "{total} problem(s): {}; nothing was written\n",
            counts.join(", ")
        )
    };
    write(&mut out, verdict)?;
    out.flush()
        .map_err(|e| CliError::failed(format!("cannot write the report: {e}")))?;
    if total == 0 {
        Ok(())
    } else {
        Err(CliError::failed(format!(
            "the file has {total} problem(s); see the list on stdout"
        )))
    }
}

/// The configuration an import opens the log with: the configured one, with the writer's
/// queue large enough for `[import] in_flight` pipelined appends, groups of `[import]
/// group_events`, and a small cache (`[import] cache_capacity_bytes`: 16 MiB held about 20 MB
/// more than 4 MiB at 200k lines, for the same CPU time; sled holds several times more than its
/// bound says). Groups of 4096 events imported 200k lines 1.38x as fast as the API's 512
/// (stop 32, alternated): a group writes each stream's index page once, however many of its
/// lines went to that stream.
fn for_import(config: &Config) -> Config {
    let mut config = config.clone();
    config.log.queue_capacity = config.log.queue_capacity.max(config.import.in_flight);
    config.log.max_group_events = config.import.group_events;
    config.log.cache_capacity_bytes = config
        .log
        .cache_capacity_bytes
        .min(config.import.cache_capacity_bytes);
    config
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
    let bounds = config.import.clone();
    let log = open_offline(&dir, &for_import(&config), metrics, "import")?;
    let result = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => match std::fs::File::open(&path) {
            Ok(f) => {
                let len = f.metadata().ok().map(|m| m.len());
                import::import(&log, &validator, BufReader::new(f), principal, len, &bounds).await
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
            import::import(&log, &validator, stdin.lock(), principal, None, &bounds).await
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
