//! Checkpoints of the knowledge layer in the `projections` aux tree, beside the log. Facts are
//! immutable once folded (a correction is its own fact), so a checkpoint is append-only: each
//! one writes the facts folded since the previous checkpoint and the new `meta` (generation and
//! seq) in ONE atomic sled batch. A rebuild writes a whole new generation under its own key
//! prefix and flips `meta` last, so a crash mid-rebuild leaves the old checkpoint intact. This
//! module must never touch the log's own tree.

use serde::{Deserialize, Serialize};

use super::knowledge::Knowledge;

const META: &[u8] = b"meta";
const FACT: u8 = b'f';

/// Which generation is current and up to which seq it is complete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Generation of the fact keys (a rebuild writes the next one).
    pub generation: u32,
    /// Every record up to this seq is folded into the stored facts.
    pub seq: u64,
}

/// A checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// sled failed.
    #[error("checkpoint storage: {0}")]
    Storage(#[from] sled::Error),
    /// A stored checkpoint does not parse (written by an incompatible version, or corrupt).
    #[error("checkpoint entry {0} does not parse: {1}")]
    Corrupt(String, serde_json::Error),
    /// A stored key is not what the layout says.
    #[error("checkpoint key {0} is malformed")]
    BadKey(String),
    /// Serialising failed (a build defect).
    #[error("checkpoint serialisation: {0}")]
    Encode(serde_json::Error),
}

fn fact_key(generation: u32, seq: u64) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = FACT;
    k[1..5].copy_from_slice(&generation.to_be_bytes());
    k[5..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn gen_prefix(generation: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = FACT;
    k[1..].copy_from_slice(&generation.to_be_bytes());
    k
}

/// The stored meta, or the empty checkpoint.
pub fn meta(tree: &sled::Tree) -> Result<Meta, CheckpointError> {
    match tree.get(META)? {
        Some(v) => {
            serde_json::from_slice(&v).map_err(|e| CheckpointError::Corrupt("meta".into(), e))
        }
        None => Ok(Meta::default()),
    }
}

/// Loads the current checkpoint into fresh knowledge, and removes what a rebuild that never
/// finished left behind (other generations).
pub fn load(tree: &sled::Tree) -> Result<(Meta, Knowledge), CheckpointError> {
    let m = meta(tree)?;
    let mut k = Knowledge::new();
    for item in tree.scan_prefix(gen_prefix(m.generation)) {
        let (key, value) = item?;
        let seq = key
            .get(5..13)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| CheckpointError::BadKey(format!("{key:?}")))?;
        if seq > m.seq {
            break;
        }
        // Facts keep the stored record verbatim, so loading one is folding it (without
        // reading the log): the same code path as the follower, hence the same state.
        k.seq = seq - 1;
        k.apply(seq, &value)
            .map_err(|e| CheckpointError::BadKey(e.to_string()))?;
    }
    k.seq = m.seq;
    let mut stale = sled::Batch::default();
    for item in tree.scan_prefix([FACT]) {
        let (key, _) = item?;
        if key.get(1..5) != Some(&m.generation.to_be_bytes()[..]) {
            stale.remove(key);
        }
    }
    tree.apply_batch(stale)?;
    Ok((m, k))
}

/// Writes the facts after `from_seq` and the new meta, atomically. The caller makes it durable
/// (`Log::sync_aux`).
pub fn append(
    tree: &sled::Tree,
    generation: u32,
    k: &Knowledge,
    from_seq: u64,
) -> Result<Meta, CheckpointError> {
    let mut batch = sled::Batch::default();
    let start = k.facts().partition_point(|f| f.seq <= from_seq);
    for f in &k.facts()[start..] {
        batch.insert(&fact_key(generation, f.seq), f.record().as_bytes());
    }
    let m = Meta {
        generation,
        seq: k.seq,
    };
    batch.insert(
        META,
        serde_json::to_vec(&m).map_err(CheckpointError::Encode)?,
    );
    tree.apply_batch(batch)?;
    Ok(m)
}

/// Writes facts of a new generation up to `k.seq` without making it current (a rebuild does
/// this in the background, in chunks, before it pauses the follower).
pub fn write_generation(
    tree: &sled::Tree,
    generation: u32,
    k: &Knowledge,
    from_seq: u64,
) -> Result<(), CheckpointError> {
    let start = k.facts().partition_point(|f| f.seq <= from_seq);
    for chunk in k.facts()[start..].chunks(8192) {
        let mut batch = sled::Batch::default();
        for f in chunk {
            batch.insert(&fact_key(generation, f.seq), f.record().as_bytes());
        }
        tree.apply_batch(batch)?;
    }
    Ok(())
}

/// Removes every fact key of a generation (after a rebuild replaced it).
pub fn drop_generation(tree: &sled::Tree, generation: u32) -> Result<(), CheckpointError> {
    loop {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for item in tree.scan_prefix(gen_prefix(generation)).take(8192) {
            let (key, _) = item?;
            batch.remove(key);
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        tree.apply_batch(batch)?;
    }
}
