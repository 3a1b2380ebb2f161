//! Chunks: the records of one group commit stored as one sled value, so that the writer's
//! sled work is per group, not per record (each key is a page update on the writer's path; the
//! event ids go into a few buckets per group, `id_index.rs`). A chunk is the records' canonical JSON concatenated, after a table of their
//! hashes and end offsets; it is keyed by its first seq, so the record at seq N is one range
//! seek (`range(..=N).next_back()`). Folders written before chunks hold one `e` key per record;
//! every read here tries the chunk form and falls back to that key, and new writes are chunks.
//! This module must never re-encode a record (its bytes are what was hashed) and never hand
//! out a record past the bound its caller gives.
//!
//! A chunk value: format byte (1), record count n (u32 BE), then n entries of hash (32 bytes)
//! ‖ end offset (u32 BE) of the record's JSON in the data area, then the data area. A folder
//! that sled does not compress stores each chunk compressed once by the writer: format byte
//! (2), the plain chunk's length (u32 BE), then the plain chunk as one zstd frame. sled would
//! otherwise recompress a leaf's chunks at every page consolidation, on the writer's path.

use sled::IVec;

use super::layout;
use super::record::{Hash, Recorded};
use super::{LogError, corrupt};

/// A plain chunk.
const FORMAT: u8 = 1;
/// A plain chunk compressed as one zstd frame.
const FORMAT_ZSTD: u8 = 2;
/// Largest plain chunk a compressed one may claim (a chunk holds records of at most a group).
const MAX_PLAIN: usize = 64 << 20;
/// Bytes before the table.
const HEADER: usize = 5;
/// Bytes of one table entry: hash ‖ end offset.
const ENTRY: usize = 36;

/// A chunk is closed once its JSON reaches this size. sled writes a leaf (at most about 16
/// keys) as one page, and a page over a quarter segment (128 KiB) goes to a `blobs/` file of
/// its own, which costs a file and its fsync: 16 chunks of this size stay under that even
/// uncompressed, while the per-chunk key is already a small fraction of a group's keys.
pub(super) const CHUNK_BYTES: usize = 7 * 1024;
/// The same bound for a chunk the writer compresses (about 4x smaller once stored): larger
/// chunks compress better, and sled's leaf of them still stays far under its blob size.
pub(super) const COMPRESSED_CHUNK_BYTES: usize = 24 * 1024;

/// Encodes `records` (hash, JSON) as one chunk value.
pub(super) fn encode(records: &[(Hash, Vec<u8>)]) -> Vec<u8> {
    let data: usize = records.iter().map(|(_, b)| b.len()).sum();
    let mut v = Vec::with_capacity(HEADER + records.len() * ENTRY + data);
    v.push(FORMAT);
    v.extend_from_slice(&(records.len() as u32).to_be_bytes());
    let mut end = 0u32;
    for (hash, bytes) in records {
        end += bytes.len() as u32;
        v.extend_from_slice(hash);
        v.extend_from_slice(&end.to_be_bytes());
    }
    for (_, bytes) in records {
        v.extend_from_slice(bytes);
    }
    v
}

/// A key and its value, to write.
pub(super) type KeyValue = (Vec<u8>, Vec<u8>);

/// The writer's chunk compression: one zstd context for every chunk it writes (creating one
/// per call costs more than compressing a chunk), and the level.
pub(super) struct Packer {
    context: zstd::block::Compressor,
    level: i32,
}

impl Packer {
    /// A packer compressing at zstd `level`.
    pub(super) fn new(level: i32) -> Packer {
        Packer {
            context: zstd::block::Compressor::new(),
            level,
        }
    }

    /// `plain` as one zstd frame (a stream message's payload, with the nats backend).
    pub(super) fn frame(&mut self, plain: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        self.context.compress(plain, self.level)
    }

    fn pack(&mut self, plain: Vec<u8>) -> Result<Vec<u8>, std::io::Error> {
        let frame = self.frame(&plain)?;
        let mut v = Vec::with_capacity(5 + frame.len());
        v.push(FORMAT_ZSTD);
        v.extend_from_slice(&(plain.len() as u32).to_be_bytes());
        v.extend_from_slice(&frame);
        Ok(v)
    }
}

/// Splits a group's records (from seq `first` on) into chunks of about [`CHUNK_BYTES`]
/// (plain) or [`COMPRESSED_CHUNK_BYTES`] (compressed with `packer`): `(key, value)` pairs to
/// write.
pub(super) fn chunks(
    first: u64,
    records: &[(Hash, Vec<u8>)],
    mut packer: Option<&mut Packer>,
) -> Result<Vec<KeyValue>, std::io::Error> {
    let limit = if packer.is_some() {
        COMPRESSED_CHUNK_BYTES
    } else {
        CHUNK_BYTES
    };
    let mut cuts = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, (_, bytes)) in records.iter().enumerate() {
        if i > start && size + bytes.len() > limit {
            cuts.push((start, i));
            start = i;
            size = 0;
        }
        size += bytes.len();
    }
    if start < records.len() {
        cuts.push((start, records.len()));
    }
    let mut out = Vec::with_capacity(cuts.len());
    for (from, to) in cuts {
        let plain = encode(&records[from..to]);
        let value = match packer.as_deref_mut() {
            Some(p) => p.pack(plain)?,
            None => plain,
        };
        out.push((layout::chunk_key(first + from as u64).to_vec(), value));
    }
    Ok(out)
}

thread_local! {
    /// Each reading thread's zstd context, reused from chunk to chunk.
    static UNPACKER: std::cell::RefCell<zstd::block::Decompressor> =
        std::cell::RefCell::new(zstd::block::Decompressor::new());
}

/// A compressed chunk's plain form; `None` when it does not decompress to the length it claims.
fn unpack(value: &[u8]) -> Option<IVec> {
    let len = u32::from_be_bytes(value.get(1..5)?.try_into().ok()?) as usize;
    unframe(value.get(5..)?, len).map(IVec::from)
}

/// A zstd `frame` decompressed with this thread's context; `None` unless it is exactly `len`
/// bytes, at most [`MAX_PLAIN`].
pub(super) fn unframe(frame: &[u8], len: usize) -> Option<Vec<u8>> {
    if len > MAX_PLAIN {
        return None;
    }
    let plain = UNPACKER.with(|d| d.borrow_mut().decompress(frame, len).ok())?;
    (plain.len() == len).then_some(plain)
}

/// A stored chunk, read in place: its records are views of the value, never copies.
pub(super) struct Chunk {
    first: u64,
    value: IVec,
    count: usize,
}

impl Chunk {
    /// The chunk stored under `key` with `value`, if both are well formed.
    pub(super) fn parse(key: &[u8], value: IVec) -> Option<Chunk> {
        let first = layout::read_u64(key.get(1..)?)?;
        let value = match *value.first()? {
            FORMAT => value,
            FORMAT_ZSTD => unpack(&value)?,
            _ => return None,
        };
        if *value.first()? != FORMAT {
            return None;
        }
        let count = u32::from_be_bytes(value.get(1..HEADER)?.try_into().ok()?) as usize;
        let table = HEADER.checked_add(count.checked_mul(ENTRY)?)?;
        if count == 0 || value.len() < table {
            return None;
        }
        let chunk = Chunk {
            first,
            value,
            count,
        };
        // The last end offset bounds every other: the data area must hold it.
        let (_, end) = chunk.entry(count - 1)?;
        (table + end <= chunk.value.len()).then_some(chunk)
    }

    /// The seq of its first record.
    pub(super) fn first(&self) -> u64 {
        self.first
    }

    /// The seq after the chunk's last record.
    pub(super) fn end(&self) -> u64 {
        self.first + self.count as u64
    }

    /// Whether `seq` is one of its records.
    pub(super) fn holds(&self, seq: u64) -> bool {
        seq >= self.first && seq < self.end()
    }

    fn entry(&self, i: usize) -> Option<(Hash, usize)> {
        let at = HEADER + i * ENTRY;
        let hash: Hash = self.value.get(at..at + 32)?.try_into().ok()?;
        let end = u32::from_be_bytes(self.value.get(at + 32..at + ENTRY)?.try_into().ok()?);
        Some((hash, end as usize))
    }

    /// The record at `seq`, if the chunk holds it and it is well formed.
    pub(super) fn get(&self, seq: u64) -> Option<Recorded> {
        if !self.holds(seq) {
            return None;
        }
        let i = (seq - self.first) as usize;
        let (hash, end) = self.entry(i)?;
        let start = if i == 0 { 0 } else { self.entry(i - 1)?.1 };
        let base = HEADER + self.count * ENTRY;
        if start >= end || base + end > self.value.len() {
            return None;
        }
        Some(Recorded {
            seq,
            hash,
            bytes: self.value.subslice(base + start, end - start),
        })
    }
}

/// The chunk that holds `seq`, if any.
fn chunk_holding(tree: &sled::Tree, seq: u64) -> Result<Option<Chunk>, LogError> {
    let Some(item) = tree
        .range(layout::chunk_key(0)..=layout::chunk_key(seq))
        .next_back()
    else {
        return Ok(None);
    };
    let (k, v) = item?;
    let chunk = Chunk::parse(&k, v).ok_or_else(|| corrupt(&k))?;
    Ok(chunk.holds(seq).then_some(chunk))
}

/// The stored record at `seq` (no head bound: callers bound it): from its chunk, or from a
/// record key of an older folder.
pub(super) fn get(tree: &sled::Tree, seq: u64) -> Result<Option<Recorded>, LogError> {
    if let Some(chunk) = chunk_holding(tree, seq)? {
        let key = layout::chunk_key(chunk.first);
        return chunk.get(seq).map(Some).ok_or_else(|| corrupt(&key));
    }
    let key = layout::event_key(seq);
    match tree.get(key)? {
        Some(v) => Ok(Some(
            Recorded::from_stored(seq, &v).ok_or_else(|| corrupt(&key))?,
        )),
        None => Ok(None),
    }
}

/// Every stored record from `from` to `to` (inclusive) in seq order: first those of an older
/// folder's record keys, then those in chunks (a folder's chunks all follow its record keys).
pub(super) fn scan(
    tree: &sled::Tree,
    from: u64,
    to: u64,
) -> impl Iterator<Item = Result<Recorded, LogError>> + use<> {
    let legacy = tree
        .range(layout::event_key(from)..=layout::event_key(to))
        .map(|item| {
            let (k, v) = item?;
            let seq = layout::read_u64(&k[1..]).ok_or_else(|| corrupt(&k))?;
            Recorded::from_stored(seq, &v).ok_or_else(|| corrupt(&k))
        });
    // Begin at the chunk holding `from` when it starts before it.
    let begin = match tree
        .range(layout::chunk_key(0)..=layout::chunk_key(from))
        .next_back()
    {
        Some(Ok((k, _))) => k.to_vec(),
        _ => layout::chunk_key(from).to_vec(),
    };
    let chunked = tree
        .range(begin..=layout::chunk_key(to).to_vec())
        .flat_map(move |item| {
            let records: Vec<Result<Recorded, LogError>> = match item {
                Err(e) => vec![Err(e.into())],
                Ok((k, v)) => match Chunk::parse(&k, v) {
                    None => vec![Err(corrupt(&k))],
                    Some(chunk) => (chunk.first.max(from)..chunk.end().min(to.saturating_add(1)))
                        .map(|seq| chunk.get(seq).ok_or_else(|| corrupt(&k)))
                        .collect(),
                },
            };
            records
        });
    legacy.chain(chunked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize, size: usize) -> Vec<(Hash, Vec<u8>)> {
        (0..n)
            .map(|i| {
                (
                    [i as u8; 32],
                    format!("{{\"i\":{i},\"p\":\"{}\"}}", "x".repeat(size)).into_bytes(),
                )
            })
            .collect()
    }

    #[test]
    fn every_record_of_a_chunk_reads_back_with_its_hash_and_bytes() {
        let recs = records(5, 10);
        let chunk = Chunk::parse(&layout::chunk_key(7), encode(&recs).into()).unwrap();
        assert_eq!(chunk.end(), 12);
        assert!(chunk.get(6).is_none() && chunk.get(12).is_none());
        for (i, (hash, bytes)) in recs.iter().enumerate() {
            let rec = chunk.get(7 + i as u64).unwrap();
            assert_eq!(
                (rec.seq, &rec.hash, &rec.bytes[..]),
                (7 + i as u64, hash, &bytes[..])
            );
        }
    }

    #[test]
    fn a_group_is_cut_into_chunks_of_about_chunk_bytes_that_cover_it_in_order() {
        let recs = records(100, 500);
        let cut = chunks(1, &recs, None).unwrap();
        assert!(cut.len() > 1);
        let mut next = 1;
        for (k, v) in cut {
            let chunk = Chunk::parse(&k, v.into()).unwrap();
            assert_eq!(chunk.first, next);
            assert!(chunk.value.len() <= CHUNK_BYTES + 1024);
            next = chunk.end();
        }
        assert_eq!(next, 101);
        // A record larger than a chunk is a chunk of its own.
        assert_eq!(
            chunks(1, &records(3, CHUNK_BYTES * 2), None).unwrap().len(),
            3
        );
    }

    #[test]
    fn a_compressed_chunk_reads_back_as_the_plain_one_and_is_smaller() {
        let recs = records(60, 300);
        let plain = chunks(1, &recs, None).unwrap();
        let packed = chunks(1, &recs, Some(&mut Packer::new(1))).unwrap();
        assert!(packed.len() < plain.len());
        let size = |c: &[(Vec<u8>, Vec<u8>)]| c.iter().map(|(_, v)| v.len()).sum::<usize>();
        assert!(
            size(&packed) * 3 < size(&plain),
            "{} vs {}",
            size(&packed),
            size(&plain)
        );
        let mut seq = 1;
        for (k, v) in packed {
            let chunk = Chunk::parse(&k, v.into()).unwrap();
            for s in chunk.first()..chunk.end() {
                let rec = chunk.get(s).unwrap();
                assert_eq!(
                    (&rec.hash, &rec.bytes[..]),
                    (&recs[seq - 1].0, &recs[seq - 1].1[..])
                );
                seq += 1;
            }
        }
        assert_eq!(seq, 61);
        // A frame that does not decompress to the length it claims is refused.
        let (k, mut v) = chunks(1, &recs[..3], Some(&mut Packer::new(1)))
            .unwrap()
            .remove(0);
        v[4] ^= 1;
        assert!(Chunk::parse(&k, v.into()).is_none());
    }

    #[test]
    fn a_truncated_or_unknown_chunk_is_refused() {
        let v = encode(&records(3, 10));
        assert!(Chunk::parse(&layout::chunk_key(1), v[..v.len() - 1].to_vec().into()).is_none());
        let mut other = v.clone();
        other[0] = 3;
        assert!(Chunk::parse(&layout::chunk_key(1), other.into()).is_none());
        assert!(Chunk::parse(&layout::chunk_key(1), v[..3].to_vec().into()).is_none());
    }
}
