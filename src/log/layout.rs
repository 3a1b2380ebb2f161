//! The key layout of the log's sled tree. One tree with one-byte prefixes, so that one atomic
//! `apply_batch` covers a group's records and every index entry they need. This module must never
//! change a prefix or an encoding: existing data folders depend on them.
//!
//! | key | value |
//! |---|---|
//! | `c` first seq (u64 BE) | a chunk: the records of (part of) one group commit, from that seq on (`chunk.rs`) |
//! | `e` seq (u64 BE) | record hash (32 bytes) ‖ record JSON: folders written before chunks; no longer written |
//! | `s` stream 0x00 first version (u64 BE) | where the stream's versions from this one on sit (`stream_index.rs`): a page of runs of consecutive seqs, or, in folders from before pages, one run (first seq, then its length when over 1, u64 BE each) |
//! | `v` stream | version (u64 BE) ‖ last seq (u64 BE): written by folders before stream heads were read from the last run; no longer written nor read |
//! | `b` span: the event id's first 6 bytes (a UUIDv7's millisecond), or 5 and a zero byte for any other version (an import's derived ids: 256 lines); then a generation (u8) | the bucket's ids in ascending order, each event id (16 bytes) ‖ seq (u64 BE), at most `id_index::BUCKET_CAP` of them; a span's next generation starts when one is full (`id_index.rs`) |
//! | `i` event id (16 bytes) | seq (u64 BE): an id of a span whose 256 generations are full, and every id of a folder written before buckets |
//! | `r` registry key (UTF-8): `source:` or `entity:`, then the id | seq (u64 BE) of the event that first introduced the id ‖ its kind (UTF-8, e.g. `an actor`) |
//! | `r` 0x00 `ids` | seq (u64 BE): every id introduced up to it is in the registry with its kind |
//! | `h` | head seq (u64 BE) ‖ head hash (32 bytes) |
//! | `m` level (u8) index (u64 BE) | Merkle hash of the perfect subtree (32 bytes), levels ≥ 6 only |
//! | `j` | the journal LSN (u64 BE) of the last group applied, written in the group's own batch (`journal.rs`) |
//!
//! Beside the tree, the data folder holds `journal/` (`journal.rs`) while groups are acknowledged
//! that sled may not hold durably yet. A clean stop makes sled durable and removes it, so an
//! older binary opens such a folder as before; after a crash (the folder still has a
//! `journal/`), open it with this version first: an older one would miss the acknowledged
//! groups that only the journal holds.

use uuid::Uuid;

/// Prefix of records by seq, one key each: folders written before chunks hold them (reads
/// fall back to them); never written now.
pub const EVENT: u8 = b'e';
/// Prefix of chunks (a group's records in one value), by their first seq.
pub const CHUNK: u8 = b'c';
/// Prefix of the stream index.
pub const STREAM: u8 = b's';
/// Prefix of stream heads, which folders from before runs hold: reserved, never to be reused.
/// A stream's head is now its last run, so these are neither written nor read.
#[allow(dead_code)]
pub const STREAM_HEAD: u8 = b'v';
/// Prefix of the event id index's single keys: ids whose bucket is full, and every id of a
/// folder written before buckets.
pub const ID: u8 = b'i';
/// Prefix of the event id index's buckets (`id_index.rs`).
pub const ID_BUCKET: u8 = b'b';
/// Prefix of registry keys.
pub const REGISTRY: u8 = b'r';
/// Prefix of Merkle subtree hashes.
pub const MERKLE: u8 = b'm';

/// Key of the perfect Merkle subtree at (`level`, `index`).
pub fn merkle_key(level: u8, index: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = MERKLE;
    k[1] = level;
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The head key.
pub const HEAD: &[u8] = b"h";

/// The key of the journal LSN of the last group applied: a journal frame at or below it is in
/// the tree already and is never applied again.
pub const JOURNAL_LSN: &[u8] = b"j";

/// Key of the record at `seq`.
pub fn event_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = EVENT;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Key of the chunk whose first record is at `seq`.
pub fn chunk_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = CHUNK;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Key of the stream index entry whose run starts at `version` in `stream`.
pub fn stream_key(stream: &str, version: u64) -> Vec<u8> {
    let mut k = stream_prefix(stream);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// Prefix of every entry of `stream` in the stream index.
pub fn stream_prefix(stream: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.len() + 10);
    k.push(STREAM);
    k.extend_from_slice(stream.as_bytes());
    k.push(0);
    k
}

/// The first key past every stream index entry of `stream` (its prefix ends in 0x00).
pub fn stream_after(stream: &str) -> Vec<u8> {
    let mut k = stream_prefix(stream);
    if let Some(last) = k.last_mut() {
        *last = 1;
    }
    k
}

/// Key of an event id.
pub fn id_key(id: &Uuid) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = ID;
    k[1..].copy_from_slice(id.as_bytes());
    k
}

/// The part of an id bucket's key that ids minted close together share (prefix and span; the
/// generation byte after it is 0): a UUIDv7's first 6 bytes are its millisecond; an import's
/// derived UUIDv8 starts with its line number, so 5 bytes make a span of 256 lines.
pub fn id_span(id: &Uuid) -> [u8; 7] {
    let b = id.as_bytes();
    let mut k = [0u8; 7];
    k[0] = ID_BUCKET;
    let span = if id.get_version_num() == 7 { 6 } else { 5 };
    k[1..=span].copy_from_slice(&b[..span]);
    k
}

/// Key of generation `generation` of the id buckets of `span` ([`id_span`]): a span's ids fill
/// generation 0, then, once it is full, 1, and so on (a second import file's derived ids share
/// their spans with the first's, line for line).
pub fn id_bucket_key(span: &[u8; 7], generation: u8) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..7].copy_from_slice(span);
    k[7] = generation;
    k
}

/// Key of a registry entry such as `source:src:reuters-123`.
pub fn registry_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(REGISTRY);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The registry's two namespaces: sources, and every other id. An id is looked up in both,
/// so it has one kind across them. (Folders from before ids had kinds hold sources, actors
/// and issues here, valued with a seq alone; the writer adds kinds when it opens them.)
pub const REGISTRY_NAMESPACES: [&str; 2] = ["entity:", "source:"];

/// The marker that the registry holds every introduced id with its kind. Its first byte
/// after the prefix is 0x00, which no registry key has.
pub const IDS_MARKER: &[u8] = b"r\x00ids";

/// The value of a registry entry: the introducing seq, then the kind.
pub fn registry_value(seq: u64, kind: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + kind.len());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(kind.as_bytes());
    v
}

/// A registry value's seq and kind (empty in an entry from before kinds were stored).
pub fn read_registry_value(v: &[u8]) -> Option<(u64, String)> {
    let seq = read_u64(v)?;
    Some((seq, String::from_utf8_lossy(&v[8..]).into_owned()))
}

/// Reads a big-endian u64 from the first 8 bytes, if there are 8.
pub fn read_u64(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

/// The value of the head key.
pub fn head_value(seq: u64, hash: &[u8; 32]) -> [u8; 40] {
    let mut v = [0u8; 40];
    v[..8].copy_from_slice(&seq.to_be_bytes());
    v[8..].copy_from_slice(hash);
    v
}
