//! The saved fold: the knowledge layer persisted in the `projections` aux tree, beside the
//! log, so a restart folds only the tail. (A "checkpoint" is something else: the signed
//! Merkle checkpoint of `src/audit/`.) A save stores the facts as the knowledge holds them in
//! memory (layout 7): each chunk is a segment of the compact store (`knowledge/compact/
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
//! the old save intact. Every full page of rows is also written, once, as a compressed page
//! of fixed-size rows (`knowledge/compact/pages.rs`) in the same batch as the chunk that
//! holds its last rows; a load checks the last full page every 1,024 rows against the rows it
//! decoded and then drops those rows from the heap, so the views read them from the pages through a
//! bounded cache. The pages are a copy of what the chunks hold, not a new layout: a save
//! without them (written before them, or with another page size) gets them at its next load.
//! This module must never write to the log, and never load a save that does not match the log.

use std::io::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::knowledge::{
    Bulk, FactStore, Knowledge, PAGE, PageSetup, RowPages, Segment, page_prefix,
};
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
/// like the others, once. Format 7's rows hold an exact `occurred` as its shape and its digits
/// (68 bytes, from 52), so its names no longer grow a text per fact; a format 6 save is folded
/// again once.
const FORMAT: u32 = 7;
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
    setup: &PageSetup,
) -> Result<(Meta, Knowledge), SaveError> {
    let mut m = meta(tree)?;
    let mut k = Knowledge::over(records.clone());
    let older = m.format != FORMAT;
    if older {
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
        attach_pages(log, m.generation, setup, &mut k)?;
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
    if k.row_pages().is_none() {
        attach_pages(log, m.generation, setup, &mut k)?;
    }
    // Only the keys around the current generation's chunks and pages are walked: walking
    // them too would read the whole save a second time. After a layout change every key but
    // meta goes: the new generation's number may be one an unfinished rebuild of the older
    // layout left chunks under. In batches, as `drop_generation`: an older layout's whole
    // save goes here, and at 10M events its values read in one batch took 2.9 GB.
    let chunks = gen_prefix(m.generation);
    let pages = page_prefix(m.generation, setup.page_rows.max(1));
    type Scan = Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>>;
    let around = || {
        let keys: Scan = if older {
            Box::new(tree.iter())
        } else {
            Box::new(
                tree.range(..chunks.to_vec())
                    .chain(tree.range(after(&chunks)..pages.to_vec()))
                    .chain(tree.range(after(&pages)..)),
            )
        };
        keys.filter(|item| item.as_ref().map_or(true, |(key, _)| key != META))
    };
    remove_batched(tree, around, super::trim::freeing(log))?;
    Ok((m, k))
}

/// The first key after every key that starts with `prefix`.
fn after(prefix: &[u8]) -> Vec<u8> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return next;
        }
    }
    // Only a prefix of 0xff bytes gets here; no key of this tree starts with one.
    vec![u8::MAX; prefix.len() + 1]
}

/// Sets where `k`'s saved rows will be read: the pages of `generation` in `setup`'s size.
pub fn attach_pages(
    log: &Log,
    generation: u32,
    setup: &PageSetup,
    k: &mut Knowledge,
) -> Result<(), SaveError> {
    let pages = Arc::new(RowPages::new(
        log.clone(),
        generation,
        setup.page_rows,
        setup,
    ));
    k.page_out(&pages, 0)
        .map_err(|e| SaveError::Damaged("pages".into(), e.to_string()))
}

/// After a load appended rows: writes the full pages the save lacks (a save written before
/// pages, or with another page size: the pages are a copy of the chunks' rows), then drops
/// the rows of every full page from the heap, once the last of them reads back as held.
fn page_loaded(tree: &sled::Tree, k: &mut Knowledge) -> Result<(), SaveError> {
    let Some(pages) = k.row_pages().cloned() else {
        return Ok(());
    };
    let per = pages.page_rows();
    let (first, end) = (
        (k.facts().paged() / per as usize) as u32,
        (k.facts().len() / per as usize) as u32,
    );
    if end > first && !tree.contains_key(pages.key(end - 1))? {
        let mut batch = sled::Batch::default();
        let encoded = k.facts().encode_pages(per, first, end);
        for (page, bytes) in encoded.map_err(|e| SaveError::Encode(e.to_string()))? {
            batch.insert(&pages.key(page), bytes);
        }
        tree.apply_batch(batch)?;
    }
    let len = k.facts().len();
    k.page_out_loading(&pages, len)
        .map_err(|e| SaveError::Damaged(format!("page {}", end.saturating_sub(1)), e.to_string()))
}

/// Adds to `batch` the full pages of `facts` not yet written: a save wrote every full page
/// of the facts before `start`, so the first one to write is the one `start` falls in.
fn add_pages(
    batch: &mut sled::Batch,
    facts: &FactStore,
    generation: u32,
    start: usize,
) -> Result<(), SaveError> {
    let Some(pages) = facts.pages().filter(|p| p.generation() == generation) else {
        return Ok(());
    };
    let per = pages.page_rows();
    let (first, end) = (
        (start / per as usize) as u32,
        (facts.len() / per as usize) as u32,
    );
    let encoded = facts.encode_pages(per, first, end);
    for (page, bytes) in encoded.map_err(|e| SaveError::Encode(e.to_string()))? {
        batch.insert(&pages.key(page), bytes);
    }
    Ok(())
}

/// Decodes stored chunks one after the other with one zstd context and one buffer: a fresh
/// context per chunk (`zstd::stream::decode_all`) cost more than decompressing a chunk of a
/// thousand facts.
struct ChunkDecoder {
    context: zstd::stream::raw::Decoder<'static>,
    plain: Vec<u8>,
}

impl ChunkDecoder {
    fn new() -> std::io::Result<ChunkDecoder> {
        Ok(ChunkDecoder {
            context: zstd::stream::raw::Decoder::new()?,
            plain: Vec::new(),
        })
    }

    /// Decodes one stored chunk into the segment of rows it holds.
    fn decode(&mut self, key: &[u8], value: &[u8]) -> Result<Segment, SaveError> {
        self.decompress(value)
            .map_err(|e| SaveError::Compressed(hex::encode(key), e))?;
        Segment::decode(&self.plain)
            .map_err(|e| SaveError::Corrupt(hex::encode(key), e.to_string()))
    }

    /// One whole zstd frame (its checksum checked) into `plain`; nothing may follow it.
    fn decompress(&mut self, value: &[u8]) -> std::io::Result<()> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        self.context.reinit()?;
        self.plain.clear();
        let mut input = InBuffer::around(value);
        loop {
            if self.plain.capacity() - self.plain.len() < 1 << 16 {
                self.plain.reserve((value.len() * 4).max(1 << 17));
            }
            let at = self.plain.len();
            let mut output = OutBuffer::around_pos(&mut self.plain, at);
            let hint = self.context.run(&mut input, &mut output)?;
            let (wrote, ended) = (output.pos() > at, hint == 0);
            if ended {
                if input.pos() != value.len() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "bytes after the chunk's frame",
                    ));
                }
                return Ok(());
            }
            if input.pos() == value.len() && !wrote {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "incomplete frame",
                ));
            }
        }
    }
}

/// Rows a load appends before it drops the saved ones from the heap, checking the last page
/// against them (a save of small chunks had a page read for every page of rows). Not more:
/// those page reads are what keeps sled's cache within its bound during a load (sled evicts a
/// cache shard only once 64 accesses are queued in it, and the chunks' leaves are read in a
/// few accesses each): checking every 8,192 rows left 745 MiB resident at 10M, every 65,536
/// rows 784 MiB, every 1,024 rows 636-645 MiB (651-655 MiB with a check per chunk).
const LOAD_PAGE_OUT_ROWS: usize = 1024;

/// Reads a generation's chunks into `k`, in order, as three overlapping stages: one thread
/// reads the chunks from sled, one decompresses and decodes them into segments, and the
/// calling thread appends and indexes them. The channels are short: a few chunks in flight
/// at most.
fn load_chunks(tree: &sled::Tree, generation: u32, k: &mut Knowledge) -> Result<(), SaveError> {
    let pages_tree = tree.clone();
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
            let mut decoder = ChunkDecoder::new();
            for item in read_rx {
                let decoded = item.map_err(SaveError::from).and_then(|(key, value)| {
                    let decoder = decoder.as_mut().map_err(|e| {
                        SaveError::Compressed(
                            hex::encode(&key),
                            std::io::Error::new(e.kind(), e.to_string()),
                        )
                    })?;
                    decoder.decode(&key, &value).map(|seg| (key, seg))
                });
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
            if k.facts().len() - k.facts().paged() >= LOAD_PAGE_OUT_ROWS {
                page_loaded(&pages_tree, k)?;
            }
        }
        page_loaded(&pages_tree, k)?;
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

/// Replaces an unusable save by an empty one in the next generation: the new meta first,
/// durable (from then on no key claims records the meta does not name, and a crash before
/// the rest is removed leaves keys the next load sweeps), then every other key in batches.
/// Returns the new meta: the caller folds the log from seq 1.
pub fn discard(tree: &sled::Tree, log: &Log) -> Result<Meta, SaveError> {
    // Every key goes, pages too: a page is a copy of a chunk's rows.
    let old = meta(tree).unwrap_or_default();
    let fresh = Meta {
        generation: old.generation + 1,
        ..Meta::default()
    };
    // In batches after the meta: a whole 10M-event save's values read for one batch took the
    // process to 2.9 GB.
    tree.insert(
        META,
        serde_json::to_vec(&fresh).map_err(|e| SaveError::Encode(e.to_string()))?,
    )?;
    log.sync_aux()?;
    let others = || {
        tree.iter()
            .filter(|item| item.as_ref().map_or(true, |(key, _)| key != META))
    };
    remove_batched(tree, others, super::trim::freeing(log))?;
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
        add_pages(&mut batch, facts, generation, start)?;
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
    let mut pages = sled::Batch::default();
    add_pages(&mut pages, facts, generation, start)?;
    while start < facts.len() {
        let end = (start + CHUNK_FACTS).min(facts.len());
        let first = facts.get(start as u32).seq;
        tree.insert(chunk_key(generation, first), encode(facts, start, end)?)?;
        start = end;
    }
    // Written before `meta` names the generation, as its chunks are.
    tree.apply_batch(pages)?;
    Ok(())
}

/// [`write_generation`], then the rows of the full pages it wrote leave the heap (read from
/// those pages from now on: `k`'s pages must be this generation's, see [`attach_pages`]). A
/// rebuild calls it after each step of its fold, so it holds a step's rows, not the log's.
pub fn write_step(
    tree: &sled::Tree,
    generation: u32,
    k: &mut Knowledge,
    from_seq: u64,
) -> Result<(), SaveError> {
    write_generation(tree, generation, k, from_seq)?;
    let saved = k.facts().count_upto(k.seq);
    k.page_out_current(saved)
        .map_err(|e| SaveError::Damaged("pages".into(), e.to_string()))
}

/// Keys a removal of a generation takes out per batch.
const DROP_BATCH_KEYS: usize = 256;

/// Removes every chunk and page of a generation (after a rebuild replaced it, or one a rebuild
/// stopped midway left), a batch of keys at a time, calling `between` after each: the scan
/// reads every value (sled has no keys-only scan), and a 10M-event save's values held at once
/// took the process from 0.2 to 2.3 GB, so the caller makes sled apply its cache bound and
/// frees what it evicted between batches.
pub fn drop_generation(
    tree: &sled::Tree,
    generation: u32,
    mut between: impl FnMut(),
) -> Result<(), SaveError> {
    let mut pages = vec![PAGE];
    pages.extend_from_slice(&generation.to_be_bytes());
    for prefix in [gen_prefix(generation).to_vec(), pages] {
        remove_batched(tree, || tree.scan_prefix(&prefix), &mut between)?;
    }
    Ok(())
}

/// Removes every key `scan` yields, [`DROP_BATCH_KEYS`] a batch, calling `between` after
/// each. `scan` is called again for each batch, so it must no longer yield a key once it is
/// removed.
fn remove_batched<I>(
    tree: &sled::Tree,
    scan: impl Fn() -> I,
    mut between: impl FnMut(),
) -> Result<(), SaveError>
where
    I: Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
{
    loop {
        let mut batch = sled::Batch::default();
        let mut taken = 0;
        for item in scan().take(DROP_BATCH_KEYS) {
            let (key, _) = item?;
            batch.remove(key);
            taken += 1;
        }
        if taken == 0 {
            return Ok(());
        }
        tree.apply_batch(batch)?;
        between();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk's frame as `encode` writes it: one zstd frame with a checksum.
    fn frame(plain: &[u8]) -> Vec<u8> {
        let mut z = zstd::stream::Encoder::new(Vec::new(), ZSTD_LEVEL).unwrap(); // ok: test code
        z.include_checksum(true).unwrap(); // ok: test code
        z.write_all(plain).unwrap(); // ok: test code
        z.finish().unwrap() // ok: test code
    }

    fn plains() -> Vec<Vec<u8>> {
        vec![
            (0..300_000u32)
                .flat_map(|n| (n % 251).to_le_bytes())
                .collect(),
            b"a short chunk".to_vec(),
            Vec::new(),
            (0..70_000u32).map(|n| (n * 7919 % 256) as u8).collect(),
        ]
    }

    #[test]
    fn chunks_decoded_one_after_another_with_one_context_read_back_as_written() {
        let mut decoder = ChunkDecoder::new().unwrap(); // ok: test code
        for plain in plains() {
            let stored = frame(&plain);
            decoder.decompress(&stored).unwrap(); // ok: test code
            assert_eq!(decoder.plain, plain);
            assert_eq!(zstd::stream::decode_all(&stored[..]).unwrap(), plain); // ok: test code
        }
    }

    #[test]
    fn a_truncated_or_damaged_chunk_or_bytes_after_its_frame_are_refused_and_the_next_chunk_still_reads()
     {
        let mut decoder = ChunkDecoder::new().unwrap(); // ok: test code
        let good = frame(&plains()[0]);
        let truncated = &good[..good.len() - 9];
        let mut flipped = good.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x5a;
        let mut trailing = good.clone();
        trailing.extend_from_slice(&frame(b"another frame"));
        for bad in [truncated, &flipped[..], &trailing[..]] {
            assert!(decoder.decompress(bad).is_err());
            decoder.decompress(&good).unwrap(); // ok: test code
            assert_eq!(decoder.plain, plains()[0]);
        }
    }
}
