//! Offline verification from an NDJSON export alone: recompute the hash chain and the Merkle
//! tree, compare against signed checkpoints, and check that one checkpoint extends another.
//! It needs nothing but the export and the public key. It must never trust a hash the export
//! states without recomputing it.

use std::io::BufRead;

use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use super::checkpoint::{Checkpoint, CheckpointError};
use crate::log::merkle::{self, Frontier};
use crate::log::record::{self, GENESIS, Hash, Record};

/// What walking an export found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Records that verified.
    pub records: u64,
    /// The first bad seq and why.
    pub first_bad: Option<(u64, String)>,
    /// Merkle roots at the sizes asked for (size, root), in the order reached.
    pub roots: Vec<(u64, Hash)>,
}

/// Walks an export: every record re-encoded, chained and hashed into the Merkle tree. Roots
/// are captured at each size in `sizes`.
pub fn walk_export(input: impl BufRead, sizes: &[u64]) -> Result<ExportReport, std::io::Error> {
    let mut prev: Hash = GENESIS;
    let mut frontier = Frontier::default();
    let mut roots = Vec::new();
    let mut expected = 1u64;
    let bad = |seq: u64, why: String, roots: Vec<(u64, Hash)>| ExportReport {
        records: seq - 1,
        first_bad: Some((seq, why)),
        roots,
    };
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let mut value: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => return Ok(bad(expected, format!("line does not parse: {e}"), roots)),
        };
        let stated = value
            .as_object_mut()
            .and_then(|o| o.remove("hash"))
            .and_then(|h| h.as_str().map(str::to_string))
            .unwrap_or_default();
        let rec: Record = match serde_json::from_value(value) {
            Ok(r) => r,
            Err(e) => return Ok(bad(expected, format!("not a record: {e}"), roots)),
        };
        if rec.seq != expected {
            return Ok(bad(
                expected,
                format!(
                    "expected seq {expected}, found {} (removed or reordered)",
                    rec.seq
                ),
                roots,
            ));
        }
        if rec.prev_hash != hex::encode(prev) {
            return Ok(bad(
                expected,
                "prev_hash does not continue the chain".into(),
                roots,
            ));
        }
        let bytes = match rec.to_bytes() {
            Ok(b) => b,
            Err(e) => return Ok(bad(expected, format!("cannot encode: {e}"), roots)),
        };
        let hash = record::chain(&prev, &bytes);
        if hex::encode(hash) != stated {
            return Ok(bad(
                expected,
                "content does not match its hash (changed)".into(),
                roots,
            ));
        }
        frontier.push(merkle::leaf_hash(&bytes));
        if sizes.contains(&expected) {
            roots.push((expected, frontier.root()));
        }
        prev = hash;
        expected += 1;
    }
    Ok(ExportReport {
        records: expected - 1,
        first_bad: None,
        roots,
    })
}

/// Why a checkpoint does not hold against an export or another checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading failed.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// A signature or format problem.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The export is damaged at a seq.
    #[error("the export fails at seq {0}: {1}")]
    BadRecord(u64, String),
    /// The export is shorter than the checkpoint.
    #[error("the export holds {records} records; the checkpoint covers {size}")]
    TooShort {
        /// Records in the export.
        records: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The recomputed root differs from the signed one.
    #[error(
        "the first {size} records of the export have root {computed}, the checkpoint signs {signed}"
    )]
    RootMismatch {
        /// The size.
        size: u64,
        /// Recomputed root (hex).
        computed: String,
        /// Signed root (hex).
        signed: String,
    },
    /// The newer checkpoint does not extend the older one.
    #[error("checkpoint {new} does not extend checkpoint {old}: {why}")]
    NotConsistent {
        /// Older size.
        old: u64,
        /// Newer size.
        new: u64,
        /// Why.
        why: String,
    },
}

/// Checks a signed checkpoint against an export: signature, chain, and the Merkle root of the
/// export's first `size` records. Returns the export report.
pub fn verify_export(
    input: impl BufRead,
    checkpoints: &[&Checkpoint],
    key: &VerifyingKey,
) -> Result<ExportReport, AuditError> {
    for cp in checkpoints {
        cp.verify(key)?;
    }
    let sizes: Vec<u64> = checkpoints.iter().map(|c| c.size).collect();
    let report = walk_export(input, &sizes)?;
    for cp in checkpoints {
        match report.roots.iter().find(|(s, _)| *s == cp.size) {
            Some((_, root)) => {
                if hex::encode(root) != cp.root {
                    return Err(AuditError::RootMismatch {
                        size: cp.size,
                        computed: hex::encode(root),
                        signed: cp.root.clone(),
                    });
                }
            }
            None => {
                if let Some((seq, why)) = &report.first_bad {
                    return Err(AuditError::BadRecord(*seq, why.clone()));
                }
                if cp.size == 0 {
                    if cp.root != hex::encode(merkle::empty_root()) {
                        return Err(AuditError::RootMismatch {
                            size: 0,
                            computed: hex::encode(merkle::empty_root()),
                            signed: cp.root.clone(),
                        });
                    }
                    continue;
                }
                return Err(AuditError::TooShort {
                    records: report.records,
                    size: cp.size,
                });
            }
        }
    }
    Ok(report)
}

/// Checks that `new` extends `old` with a consistency path (from the server), after checking
/// both signatures.
pub fn verify_consistency(
    old: &Checkpoint,
    new: &Checkpoint,
    path: &[Hash],
    key: &VerifyingKey,
) -> Result<(), AuditError> {
    old.verify(key)?;
    new.verify(key)?;
    let not = |why: &str| AuditError::NotConsistent {
        old: old.size,
        new: new.size,
        why: why.to_string(),
    };
    if old.size > new.size {
        return Err(not("the older checkpoint is larger"));
    }
    if old.size == 0 {
        return Ok(());
    }
    if merkle::verify_consistency(
        old.size,
        new.size,
        &old.root_bytes()?,
        &new.root_bytes()?,
        path,
    ) {
        Ok(())
    } else {
        Err(not("the consistency proof does not verify"))
    }
}
