//! `annals verify`: walks the hash chain of a data folder and names the first record that does
//! not fit (changed, removed, reordered or inserted). It must never repair anything.

use std::path::Path;

use crate::log::record::{self, GENESIS, Hash, Record};
use crate::log::{Head, LogConfig, LogError, raw};

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records that verified before the first problem (or all of them).
    pub verified: u64,
    /// The stored head.
    pub head: Head,
    /// The first bad seq and why, if any.
    pub first_bad: Option<(u64, String)>,
}

/// Verifies the store in `dir`.
pub fn verify_dir(dir: &Path, options: &LogConfig) -> Result<Report, LogError> {
    let (_db, tree) = raw::open_tree(dir, options)?;
    verify_tree(&tree)
}

/// Verifies an open log tree.
pub fn verify_tree(tree: &sled::Tree) -> Result<Report, LogError> {
    let head = raw::head(tree)?;
    let bar = super::progress(Some(head.seq), "verifying");
    let mut prev: Hash = GENESIS;
    let mut expected: u64 = 1;
    let bad = |seq: u64, why: String, verified: u64| Report {
        verified,
        head,
        first_bad: Some((seq, why)),
    };
    for item in raw::records(tree) {
        let (seq, value) = item?;
        bar.inc(1);
        if seq != expected {
            return Ok(bad(
                expected,
                format!("record {expected} is missing (next stored is {seq})"),
                expected - 1,
            ));
        }
        if value.len() < 34 {
            return Ok(bad(seq, "stored value is truncated".into(), seq - 1));
        }
        let (stored_hash, bytes) = value.split_at(32);
        let computed = record::chain(&prev, bytes);
        if computed[..] != stored_hash[..] {
            return Ok(bad(
                seq,
                "content does not match its hash (changed or moved)".into(),
                seq - 1,
            ));
        }
        let parsed: Record = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => return Ok(bad(seq, format!("record does not parse: {e}"), seq - 1)),
        };
        if parsed.seq != seq {
            return Ok(bad(
                seq,
                format!("record says seq {} but is stored at {seq}", parsed.seq),
                seq - 1,
            ));
        }
        if parsed.prev_hash != record::hash_hex(&prev) {
            return Ok(bad(
                seq,
                "prev_hash does not match the chain".into(),
                seq - 1,
            ));
        }
        if !raw::id_points_to(tree, &parsed.id, seq)? {
            return Ok(bad(
                seq,
                "the id index does not point at this record".into(),
                seq - 1,
            ));
        }
        prev = computed;
        expected += 1;
    }
    bar.finish_and_clear();
    let verified = expected - 1;
    if verified != head.seq || prev != head.hash {
        return Ok(Report {
            verified,
            head,
            first_bad: Some((
                (verified + 1).min(head.seq.max(1)),
                format!(
                    "the head says seq {} but the chain ends at {verified} (records removed or added)",
                    head.seq
                ),
            )),
        });
    }
    Ok(Report {
        verified,
        head,
        first_bad: None,
    })
}
