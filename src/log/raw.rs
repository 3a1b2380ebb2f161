//! Raw access for offline tools (verify): every stored record in key order, and the head
//! key, without the durable-head bound (offline, nothing is in flight). It must never write
//! anything but what the journal's recovery applies.

use super::*;

/// Opens the store read-write (sled has no read-only mode) without starting a writer,
/// with the configured cache bound and compression.
pub fn open_tree(dir: &Path, options: &LogConfig) -> Result<(sled::Db, sled::Tree), LogError> {
    let (db, _) = open_db(dir, sled::Mode::LowSpace, options, 500)?;
    let tree = db.open_tree("log")?;
    // A folder left by a crash: what only the journal holds goes into sled first.
    recover_journal(dir, &db, &tree)?;
    Ok((db, tree))
}

/// Every stored record in seq order, chunks and older record keys alike.
pub fn recorded(tree: &sled::Tree) -> impl Iterator<Item = Result<Recorded, LogError>> + use<> {
    chunk::scan(tree, 1, u64::MAX)
}

/// Every record in seq order as `(seq, hash ‖ JSON)`, the value of an older folder's
/// record key (a record read from a chunk is copied into that form).
pub fn records(
    tree: &sled::Tree,
) -> impl Iterator<Item = Result<(u64, sled::IVec), LogError>> + use<> {
    recorded(tree).map(|item| {
        let rec = item?;
        let mut value = Vec::with_capacity(32 + rec.bytes.len());
        value.extend_from_slice(&rec.hash);
        value.extend_from_slice(&rec.bytes);
        Ok((rec.seq, value.into()))
    })
}

/// Rewrites every chunk as one record key per record, the layout of folders from before
/// chunks: for tests that tamper with one record as an attacker would, and that an older
/// folder keeps reading. Never used on data.
#[doc(hidden)]
pub fn unchunk(tree: &sled::Tree) -> Result<(), LogError> {
    let mut batch = sled::Batch::default();
    for item in tree.scan_prefix([layout::CHUNK]) {
        let (k, v) = item?;
        let chunk = chunk::Chunk::parse(&k, v).ok_or_else(|| corrupt(&k))?;
        for seq in chunk.first()..chunk.end() {
            let rec = chunk.get(seq).ok_or_else(|| corrupt(&k))?;
            let mut value = rec.hash.to_vec();
            value.extend_from_slice(&rec.bytes);
            batch.insert(&layout::event_key(seq)[..], value);
        }
        batch.remove(k);
    }
    Ok(tree.apply_batch(batch)?)
}

/// The stored record at `seq`, if there is one (no head bound: offline, nothing is in flight).
pub fn record(tree: &sled::Tree, seq: u64) -> Result<Option<Recorded>, LogError> {
    chunk::get(tree, seq)
}

/// The stored head.
pub fn head(tree: &sled::Tree) -> Result<Head, LogError> {
    read_head(tree)
}

/// The key under which `seq` is stored (for tests that tamper with the store).
pub fn event_key(seq: u64) -> Vec<u8> {
    layout::event_key(seq).to_vec()
}

/// Whether a stored id index entry points at `seq`.
pub fn id_points_to(tree: &sled::Tree, id: &Uuid, seq: u64) -> Result<bool, LogError> {
    Ok(id_index::lookup(tree, id, true)? == Some(seq))
}
