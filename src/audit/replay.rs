//! `annals replay --known-at T`: folds a data folder or an NDJSON export into the projections'
//! knowledge and prints a read model exactly as it was known at T (corrections recorded after T
//! are not applied). It must never write to the folder it reads.

use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use crate::log::{LogConfig, Recorded, raw};
use crate::projection::ProjectionConfig;
use crate::projection::asof::{self, Cut};
use crate::projection::knowledge::{ActorIndexBound, Knowledge};
use crate::projection::records::Records;

/// Why a replay could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Bad `known_at`, `valid_at` or projection name.
    #[error("{0}")]
    Usage(String),
    /// The input could not be read or folded.
    #[error("{0}")]
    Input(String),
}

/// Every read model `replay` can print.
pub const PROJECTIONS: &[&str] = &["negotiation", "calendar", "actors", "sources", "audit"];

/// Folds every record of a stopped data folder. The fold keeps its facts, not the records:
/// the view reads those it shows from the folder, through the configured record cache
/// (`[projections]`), as the server's views do.
pub fn from_dir(
    dir: &Path,
    options: &LogConfig,
    projections: &ProjectionConfig,
) -> Result<Knowledge, ReplayError> {
    let (_db, tree) =
        raw::open_tree(dir, options).map_err(|e| ReplayError::Input(e.to_string()))?;
    let head = raw::head(&tree).map_err(|e| ReplayError::Input(e.to_string()))?;
    let bar = super::progress(Some(head.seq), "replaying");
    let records = Records::store(tree.clone(), projections.record_cache()).with_actor_index(
        ActorIndexBound {
            bytes: projections.actor_index_bytes,
            gauge: None,
        },
    );
    let mut k = Knowledge::over(records);
    // The count is known: the tables are sized once instead of doubling (a doubling holds the
    // old table and one twice its size at once).
    k.reserve(usize::try_from(head.seq).unwrap_or(0));
    for item in raw::records(&tree) {
        let (seq, value) = item.map_err(|e| ReplayError::Input(e.to_string()))?;
        let rec = Recorded::from_stored(seq, &value)
            .ok_or_else(|| ReplayError::Input(format!("record {seq} is corrupt")))?;
        // The knowledge keeps the stored value itself (no copy per record).
        k.apply_record(seq, rec.bytes)
            .map_err(|e| ReplayError::Input(format!("record {seq}: {e}")))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(k)
}

/// Folds an NDJSON export (each line an envelope with its `hash`).
pub fn from_export(input: impl BufRead) -> Result<Knowledge, ReplayError> {
    let bar = super::progress(None, "replaying");
    let mut k = Knowledge::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| ReplayError::Input(e.to_string()))?;
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        // The stored bytes are the envelope without its final `hash` member.
        let cut = line
            .rfind(",\"hash\":")
            .ok_or_else(|| ReplayError::Input(format!("line {}: not an exported record", i + 1)))?;
        let bytes = format!("{}}}", &line[..cut]);
        let seq = serde_json::from_str::<Value>(&bytes)
            .ok()
            .and_then(|v| v["seq"].as_u64())
            .ok_or_else(|| ReplayError::Input(format!("line {}: no seq", i + 1)))?;
        k.apply(seq, bytes.as_bytes())
            .map_err(|e| ReplayError::Input(format!("line {}: {e}", i + 1)))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(k)
}

/// The read model `name` as known at `known_at` (seq or RFC 3339), optionally as of the world
/// date `valid_at`.
pub fn view(
    k: &Knowledge,
    name: &str,
    known_at: &str,
    valid_at: Option<&str>,
) -> Result<Value, ReplayError> {
    let known = asof::parse_known_at(known_at).map_err(|e| ReplayError::Usage(e.to_string()))?;
    let valid_at = match valid_at {
        Some(v) => Some(asof::parse_valid_at(v).map_err(|e| ReplayError::Usage(e.to_string()))?),
        None => None,
    };
    let seq = asof::resolve(k, Some(&known));
    let today = valid_at.clone().unwrap_or_else(asof::today);
    let cut = Cut {
        seq,
        valid_at,
        today,
    };
    let build = || match name {
        "negotiation" => Some(crate::projection::negotiation::view(k, &cut, None)),
        "calendar" => Some(crate::projection::calendar::view(k, &cut, None)),
        "actors" => Some(crate::projection::actors::view(k, &cut)),
        "sources" => Some(crate::projection::sources::view(k, &cut)),
        "audit" => Some(crate::projection::history::view(k, &cut)),
        _ => None,
    };
    // A record the view could not read would leave its fields out: refused, as the server
    // refuses such a view, rather than printed short.
    let (body, failed) = crate::projection::records::failed_reads_in(build);
    let Some(body) = body else {
        return Err(ReplayError::Usage(format!(
            "unknown projection `{name}` (one of {})",
            PROJECTIONS.join(", ")
        )));
    };
    if failed > 0 {
        return Err(ReplayError::Input(format!(
            "{failed} record(s) could not be read from the data folder; run `annals verify`"
        )));
    }
    Ok(
        serde_json::json!({"projection": name, "known_at": known_at, "as_of_seq": seq, "view": body}),
    )
}
