//! `annals export`: every record as NDJSON (one envelope per line, hash included), straight
//! from a data folder. It must never write to the folder.

use std::io::Write;
use std::path::Path;

use crate::log::{LogConfig, LogError, Recorded, raw};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store could not be read.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The output could not be written.
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes one record as its export line; `GET /export` writes the same lines through this.
pub fn write_record(out: &mut impl Write, rec: &Recorded) -> std::io::Result<()> {
    out.write_all(rec.envelope_json().as_bytes())?;
    out.write_all(b"\n")
}

/// Writes every record of the store in `dir` (opened with the `[log]` store settings) to
/// `out`; returns how many.
pub fn export(dir: &Path, options: &LogConfig, out: &mut impl Write) -> Result<u64, ExportError> {
    let (_db, tree) = raw::open_tree(dir, options)?;
    let head = raw::head(&tree)?;
    let bar = super::progress(Some(head.seq), "exporting");
    let mut n = 0;
    for item in raw::recorded(&tree) {
        write_record(out, &item?)?;
        n += 1;
        bar.inc(1);
    }
    out.flush()?;
    bar.finish_and_clear();
    Ok(n)
}
