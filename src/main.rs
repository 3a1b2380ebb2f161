//! The `annals` binary: parse the command line and hand each subcommand to its file in
//! `cli/`. It must never hold logic of its own. Exit codes: 0 success, 1 verification or
//! runtime failure, 2 usage or configuration error (see `cli::CliError`).

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::keys::KeysAction;
use cli::verify::AuditAction;
use cli::{Cli, CliError, Command, export, keys, replay, serve, verify};

/// The writer thread's path is dominated by small allocations freed in bulk, often on another
/// thread (the discard thread frees each committed group): glibc's malloc spent about 40% of
/// the writer's CPU there in an import (`_int_malloc`, `malloc_consolidate`). Measured on
/// `annals import` of 200k lines, same run: user CPU 1.45x lower with jemalloc (mimalloc the
/// same, but with more peak RSS). Only the binary: the library leaves the choice to its user.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read when it starts. glibc's `malloc_trim` (the projections call it
/// after freeing much, `projection/trim.rs`) does nothing for jemalloc's heap, so jemalloc
/// gives freed pages back by itself: a background thread purges them within about a second
/// of their freeing (`dirty_decay_ms`), at once unmapped from RSS (`muzzy_decay_ms:0`).
#[unsafe(export_name = "_rjem_malloc_conf")]
#[used]
static MALLOC_CONF: Option<&'static u8> =
    Some(&b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0]);

/// Purges every jemalloc arena's free pages now. The projections call it after a save load
/// and between views: without it, the pages a 10M load freed stayed resident until jemalloc's
/// decay reached them.
fn release_jemalloc() {
    // `MALLCTL_ARENAS_ALL` (4096) names every arena.
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: the name is NUL-terminated, and a purge reads and writes no value, so every
    // pointer may be null; jemalloc serialises the purge with its own locks.
    let failed = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if failed != 0 {
        tracing::debug!(failed, "jemalloc purge refused");
    }
}

fn main() -> ExitCode {
    annals::projection::set_allocator_release(release_jemalloc);
    let cli = Cli::parse();
    // `serve` takes its worker threads from its configuration (`server.worker_threads`); the
    // other commands, an import's appends among them, take the same default: one fewer than
    // the cores, leaving one to the log's writer thread.
    let serve_config = match &cli.command {
        Command::Serve(args) => Some(serve::config(args)),
        _ => None,
    };
    let workers = match &serve_config {
        Some(Ok(config)) => config.server.workers(),
        _ => annals::config::default_workers(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return CliError::failed(format!("cannot start the runtime: {e}")).report(),
    };
    match runtime.block_on(run(cli.command, serve_config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// Runs `command`; `serve_config` is `serve`'s configuration, loaded before the runtime.
async fn run(
    command: Command,
    serve_config: Option<Result<annals::config::Config, CliError>>,
) -> Result<(), CliError> {
    match command {
        Command::Serve(args) => {
            let config = serve_config.unwrap_or_else(|| serve::config(&args));
            serve::serve(args, config).await
        }
        Command::Export(args) => export::export(args).await,
        Command::Import(args) => export::import(args).await,
        Command::Verify(args) => verify::verify(args),
        Command::Rebuild(args) => replay::rebuild(args).await,
        Command::Replay(args) => replay::replay(args),
        Command::Keys { action } => match action {
            KeysAction::New { scopes, principal } => keys::new_key(scopes, principal),
            KeysAction::NewSigning { out } => keys::new_signing(out),
            KeysAction::Add {
                config,
                scopes,
                principal,
            } => keys::add(config, scopes, principal).await,
            KeysAction::Revoke { config, which } => keys::revoke(config, which).await,
        },
        Command::Audit { action } => match action {
            AuditAction::VerifyExport(args) => verify::verify_export(args),
            AuditAction::VerifyConsistency(args) => verify::verify_consistency(args).await,
            AuditAction::PublicKey(args) => verify::public_key(args),
        },
    }
}
