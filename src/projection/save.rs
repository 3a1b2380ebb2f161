//! The saved fold: the knowledge layer persisted in the `projections` aux tree, beside the
//! log, so a restart folds only the tail. (A "checkpoint" is something else: the signed
//! Merkle checkpoint of `src/audit/`.) A save stores the facts as the knowledge holds them in
//! memory (layout 6): each chunk is a segment of the compact store (`knowledge/compact/
//! segment.rs`: the fixed-size rows byte for byte, their slice of the reference pool, the
//! names they were the first to use, their seq runs and side entries), zstd-compressed with a
//! checksum. Loading a save is read, decompress, bulk-append, then index by name numbers
//! (`knowledge/bulk.rs`): no record is read, no JSON parsed, no id or time formatted or
//! parsed per fact, no text hashed per fact (the chain hash in `meta` ties the save to the
//! log's history). The indexes are derived from the rows at load, not stored: they cost less
//! to build by number than to read, and a save stays one copy of the facts. Facts are
//! immutable once folded (a correction is its own fact), so saves are append-only: each
//! writes one chunk (the rows folded since the previous save) and the new `meta` in ONE
//! atomic sled batch, which keeps a save cheap while appends run. A rebuild writes a whole new
//! generation under its own key prefix and flips `meta` last, so a crash mid-rebuild leaves
//! the old save intact. This module must never write to the log, and never load a save that
//! does not match the log.

use std::io::Write;

use serde::{Deserialize, Serialize};

use super::knowledge::{Bulk, FactStore, Knowledge, Segment};
use super::records::Records;
use crate::log::{Log, LogError};

const META: &[u8] = b"meta";
const CHUNK: u8 = b'c';
/// The layout written by this version. Format 1 stored a copy of every record, format 2 the
/// spans of a record's fields to be joined with the record on load, format 3 each chunk as
/// plain postcard (which sled compressed on disk, so its cache, bounded by on-disk sizes, held
/// up to five times its bound of decompressed chunks in memory after a load); a folder holding
/// any of them is folded again from the log into a fresh generation. Format 4 is format 3's
/// postcard chunk, zstd-compressed by us. Format 5 adds the talks references (`Role::Talks`)
/// the calendar's index of talks is built from, which a format 4 fact lacks. Format 6 stores
/// the in-memory rows themselves (see the module header); a format 5 save is folded again
/// like the others, once.
const FORMAT: u32 = 6;
/// zstd level of a chunk: cheap to write, and a chunk is read once per start.
const ZSTD_LEVEL: i32 = 3;
/// Facts per chunk when a whole generation is written at once.
const CHUNK_FACTS: usize = 8192;

fn format_1() -> u32 {
    1
}

/// Which generation is current and up to which seq it is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Generation of the chunk keys (a rebuild writes the next one).
    pub generation: u32,
    /// Every record up to this seq is folded into the stored facts.
    pub seq: u64,
    /// Records up to `seq` that did not parse (skipped by the fold).
    #[serde(default)]
    pub skipped: u64,
    /// Storage layout version.
    #[serde(default = "format_1")]
    pub format: u32,
    /// The log's chain hash at `seq` (hex), which commits to every record up to it: a
    /// save is loaded only over the very history it was folded from.
    #[serde(default)]
    pub head_hash: Option<String>,
}

impl Default for Meta {
    fn default() -> Meta {
        Meta {
            generation: 0,
            seq: 0,
            skipped: 0,
            format: FORMAT,
            head_hash: None,
        }
    }
}

/// A save could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// sled failed.
    #[error("projection save storage: {0}")]
    Storage(#[from] sled::Error),
    /// Reading the log failed.
    #[error("projection save: {0}")]
    Log(#[from] LogError),
    /// The stored meta does not parse.
    #[error("projection save meta does not parse: {0}")]
    Meta(serde_json::Error),
    /// A stored chunk does not parse (written by an incompatible version, or corrupt).
    #[error("projection save chunk {0} does not parse: {1}")]
    Corrupt(String, String),
    /// The chunks do not cover every seq up to the meta's (some are missing).
    #[error("projection save chunks cover {have} of the {want} records up to its seq")]
    Incomplete {
        /// Facts and skipped records found.
        have: u64,
        /// The meta's seq.
        want: u64,
    },
    /// A stored chunk does not decompress (corrupt).
    #[error("projection save chunk {0} does not decompress: {1}")]
    Compressed(String, std::io::Error),
    /// A stored chunk parses but does not fit the chunks before it.
    #[error("projection save chunk {0} is damaged: {1}")]
    Damaged(String, String),
    /// A stored key is not what the layout says.
    #[error("projection save key {0} is malformed")]
    BadKey(String),
    /// The save describes records the log does not hold (a restored or replaced folder).
    #[error("projection save does not match the log at seq {0}")]
    Mismatch(u64),
    /// Serialising failed (a build defect).
    #[error("projection save serialisation: {0}")]
    Encode(String),
}

fn chunk_key(generation: u32, first_seq: u64) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = CHUNK;
    k[1..5].copy_from_slice(&generation.to_be_bytes());
    k[5..].copy_from_slice(&first_seq.to_be_bytes());
    k
}

fn gen_prefix(generation: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = CHUNK;
    k[1..].copy_from_slice(&generation.to_be_bytes());
    k
}

/// The stored meta, or the empty save.
pub fn meta(tree: &sled::Tree) -> Result<Meta, SaveError> {
    match tree.get(META)? {
        Some(v) => serde_json::from_slice(&v).map_err(SaveError::Meta),
        None => Ok(Meta::default()),
    }
}

/// The log's chain hash at `seq`, hex (`None` before seq 1).
fn hash_at(log: &Log, seq: u64) -> Result<Option<String>, SaveError> {
    if seq == 0 {
        return Ok(None);
    }
    let record = log.get(seq)?.ok_or(SaveError::Mismatch(seq))?;
    Ok(Some(hex::encode(record.hash)))
}

/// Loads the current save into fresh knowledge whose views read records from `records`,
/// and removes what a rebuild that never finished left behind (other
/// generations, older layouts). A save in an older layout loads as empty knowledge in a
/// new generation, so the follower folds the log from seq 1 once. A save folded from
/// another history than the log's (`Mismatch`), or with chunks missing or unreadable, is an
/// error: the caller discards it with [`discard`].
pub fn load(
    tree: &sled::Tree,
    log: &Log,
    records: &Records,
) -> Result<(Meta, Knowledge), SaveError> {
    let mut m = meta(tree)?;
    let mut k = Knowledge::over(records.clone());
    if m.format != FORMAT {
        tracing::warn!(
            format = m.format,
            "projection save has an older layout; folding the log again"
        );
        m = Meta {
            generation: m.generation + 1,
            ..Meta::default()
        };
    } else {
        if m.seq > log.head().seq || hash_at(log, m.seq)? != m.head_hash {
            return Err(SaveError::Mismatch(m.seq));
        }
        k.reserve(m.seq as usize);
        load_chunks(tree, m.generation, &mut k)?;
        k.shrink_to_fit();
        let have = k.facts().len() as u64 + m.skipped;
        if have != m.seq || k.facts().last_seq().is_some_and(|last| last > m.seq) {
            return Err(SaveError::Incomplete { have, want: m.seq });
        }
        k.seq = m.seq;
        k.skipped = m.skipped;
    }
    // Only the keys around the current generation are walked: walking its chunks too would
    // read the whole save a second time.
    let mut stale = sled::Batch::default();
    let after: Vec<u8> = match m.generation.checked_add(1) {
        Some(next) => gen_prefix(next).to_vec(),
        None => vec![CHUNK + 1],
    };
    for item in tree
        .range(..gen_prefix(m.generation))
        .chain(tree.range(after..))
    {
        let (key, _) = item?;
        if key != META {
            stale.remove(key);
        }
    }
    tree.apply_batch(stale)?;
    Ok((m, k))
}

/// Decodes one stored chunk into the segment of rows it holds.
fn decode_chunk(key: &[u8], value: &[u8]) -> Result<Segment, SaveError> {
    let plain =
        zstd::stream::decode_all(value).map_err(|e| SaveError::Compressed(hex::encode(key), e))?;
    Segment::decode(&plain).map_err(|e| SaveError::Corrupt(hex::encode(key), e.to_string()))
}

/// Reads a generation's chunks into `k`, in order, as three overlapping stages: one thread
/// reads the chunks from sled, one decompresses and decodes them into segments, and the
/// calling thread appends and indexes them. The channels are short: a few chunks in flight
/// at most.
fn load_chunks(tree: &sled::Tree, generation: u32, k: &mut Knowledge) -> Result<(), SaveError> {
    std::thread::scope(|scope| {
        let (read_tx, read_rx) = std::sync::mpsc::sync_channel(2);
        let (decoded_tx, decoded_rx) = std::sync::mpsc::sync_channel(2);
        scope.spawn(move || {
            for item in tree.scan_prefix(gen_prefix(generation)) {
                let failed = item.is_err();
                if read_tx.send(item).is_err() || failed {
                    break;
                }
            }
        });
        scope.spawn(move || {
            for item in read_rx {
                let decoded = item
                    .map_err(SaveError::from)
                    .and_then(|(key, value)| decode_chunk(&key, &value).map(|seg| (key, seg)));
                let failed = decoded.is_err();
                if decoded_tx.send(decoded).is_err() || failed {
                    break;
                }
            }
        });
        // An error returns at once: the receivers drop, and the stages stop at their next
        // send.
        let mut bulk = Bulk::default();
        for decoded in decoded_rx {
            let (key, seg) = decoded?;
            k.load_segment(seg, &mut bulk)
                .map_err(|e| SaveError::Damaged(hex::encode(key), e.to_string()))?;
        }
        k.finish_load(bulk);
        Ok(())
    })
}

/// Encodes facts `from..to` of `facts` as one chunk.
fn encode(facts: &FactStore, from: usize, to: usize) -> Result<Vec<u8>, SaveError> {
    let mut plain = Vec::new();
    facts.encode_segment(from, to, &mut plain);
    // Compressed here, not only by sled: sled's cache counts a page by its size on disk, so a
    // chunk sled compressed would take several times its count in memory once read. The
    // checksum makes a damaged chunk fail to decompress rather than load other rows.
    let encoded = (|| {
        let mut z = zstd::stream::Encoder::new(Vec::with_capacity(plain.len() / 2), ZSTD_LEVEL)?;
        z.include_checksum(true)?;
        z.write_all(&plain)?;
        z.finish()
    })();
    encoded.map_err(|e| SaveError::Encode(e.to_string()))
}

/// Replaces an unusable save by an empty one in the next generation, in ONE batch (so a
/// crash right after leaves nothing that claims records it does not hold), and makes it
/// durable. Returns the new meta: the caller folds the log from seq 1.
pub fn discard(tree: &sled::Tree, log: &Log) -> Result<Meta, SaveError> {
    let old = meta(tree).unwrap_or_default();
    let fresh = Meta {
        generation: old.generation + 1,
        ..Meta::default()
    };
    let mut batch = sled::Batch::default();
    for item in tree.iter() {
        let (key, _) = item?;
        batch.remove(key);
    }
    batch.insert(
        META,
        serde_json::to_vec(&fresh).map_err(|e| SaveError::Encode(e.to_string()))?,
    );
    tree.apply_batch(batch)?;
    log.sync_aux()?;
    Ok(fresh)
}

/// Writes the facts after `from_seq` as one chunk, and the new meta, atomically. The caller
/// makes it durable (`Log::sync_aux`). `log` gives the chain hash at `k.seq` that the meta
/// records.
pub fn append(
    tree: &sled::Tree,
    log: &Log,
    generation: u32,
    k: &Knowledge,
    from_seq: u64,
) -> Result<Meta, SaveError> {
    let mut batch = sled::Batch::default();
    let facts = k.facts();
    let start = facts.count_upto(from_seq);
    if start < facts.len() {
        let first = facts.get(start as u32).seq;
        batch.insert(
            &chunk_key(generation, first),
            encode(facts, start, facts.len())?,
        );
    }
    let m = Meta {
        generation,
        seq: k.seq,
        skipped: k.skipped,
        format: FORMAT,
        head_hash: hash_at(log, k.seq)?,
    };
    batch.insert(
        META,
        serde_json::to_vec(&m).map_err(|e| SaveError::Encode(e.to_string()))?,
    );
    tree.apply_batch(batch)?;
    Ok(m)
}

/// Writes the facts of a new generation after `from_seq` up to `k.seq` without making it
/// current (a rebuild does this in the background before it pauses the follower).
pub fn write_generation(
    tree: &sled::Tree,
    generation: u32,
    k: &Knowledge,
    from_seq: u64,
) -> Result<(), SaveError> {
    let facts = k.facts();
    let mut start = facts.count_upto(from_seq);
    while start < facts.len() {
        let end = (start + CHUNK_FACTS).min(facts.len());
        let first = facts.get(start as u32).seq;
        tree.insert(chunk_key(generation, first), encode(facts, start, end)?)?;
        start = end;
    }
    Ok(())
}

/// Removes every chunk of a generation (after a rebuild replaced it).
pub fn drop_generation(tree: &sled::Tree, generation: u32) -> Result<(), SaveError> {
    let mut batch = sled::Batch::default();
    for item in tree.scan_prefix(gen_prefix(generation)) {
        let (key, _) = item?;
        batch.remove(key);
    }
    tree.apply_batch(batch)?;
    Ok(())
}
