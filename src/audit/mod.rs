//! Tools that read the whole log: export, import and chain verification. They work on a data
//! folder directly (offline), through a running [`Log`](crate::log::Log), or over HTTP against
//! a running server (`remote`). This module must never change a stored record: import only
//! appends through the writer.

pub mod checkpoint;
pub mod export;
pub mod import;
pub mod offline;
pub mod remote;
pub mod replay;
pub mod signer;
pub mod verify;

pub use signer::AuditConfig;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar on stderr that draws only when stderr is a terminal (pipes stay clean):
/// the one every long command shows (export, import, rebuild). With no `len`, it counts.
pub fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = if len.is_some() {
        "{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})"
    } else {
        "{msg} {pos} ({per_sec})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}
