//! The event-id index: the seq that holds an event id. Ids are kept in buckets of ids minted
//! close together (a span, `layout::id_span`), so a group of events writes a few sled keys
//! instead of one per event: each sled key is a page update on the writer's path, and a page
//! to keep track of in memory. A bucket is a sorted run of fixed 24-byte entries; a span whose
//! bucket is full goes on in its next generation, and one whose 256 generations are full sends
//! its further ids to single `i` keys, as every id of a folder written before buckets is. This
//! module only reads and encodes; it must never write to the store (the writer stages bucket
//! values in its group's batch).

use uuid::Uuid;

use super::layout;

/// The most ids one bucket holds: its value stays at most 6 KiB, rewritten whole when a group
/// adds to it. A UUIDv7 span is one millisecond, so only a burst of more than this many events
/// in one millisecond (or a client minting ids with one timestamp) starts a second generation;
/// an import's span is 256 lines, so each further file imported adds one.
pub(crate) const BUCKET_CAP: usize = 256;

/// One entry: the event id (16 bytes) ‖ its seq (u64 BE).
const ENTRY: usize = 24;

/// Generations a span may have; past them, ids get single keys.
const GENERATIONS: u16 = 256;

/// A bucket value that is not a whole number of entries, or a single key's value that is not a
/// seq.
#[derive(Debug, thiserror::Error)]
#[error("corrupt id index entry {key:?}")]
pub(crate) struct CorruptEntry {
    /// The entry's key.
    pub(crate) key: Vec<u8>,
}

/// Whether the bucket value `bucket` holds as many ids as a bucket may.
pub(crate) fn is_full(bucket: &[u8]) -> bool {
    bucket.len() >= BUCKET_CAP * ENTRY
}

/// The seq of `id` in the bucket value `bucket`, if it holds it.
fn find(bucket: &[u8], id: &Uuid, key: &[u8]) -> Result<Option<u64>, CorruptEntry> {
    let corrupt = || CorruptEntry { key: key.to_vec() };
    if !bucket.len().is_multiple_of(ENTRY) {
        return Err(corrupt());
    }
    let n = bucket.len() / ENTRY;
    let entry_id = |i: usize| &bucket[i * ENTRY..i * ENTRY + 16];
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match entry_id(mid).cmp(id.as_bytes().as_slice()) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => {
                let seq = layout::read_u64(&bucket[mid * ENTRY + 16..(mid + 1) * ENTRY]);
                return seq.map(Some).ok_or_else(corrupt);
            }
        }
    }
    Ok(None)
}

/// Adds `id` at `seq` to the bucket value `bucket`, in order. `false` when the bucket is full
/// (the id then needs a key of its own) or already holds the id (the writer never asks that:
/// it looks an id up before it stages it).
pub(crate) fn add(bucket: &mut Vec<u8>, id: &Uuid, seq: u64) -> bool {
    let n = bucket.len() / ENTRY;
    if n >= BUCKET_CAP {
        return false;
    }
    // Ids mostly arrive ascending: look from the end.
    let mut at = n;
    while at > 0 {
        match bucket[(at - 1) * ENTRY..(at - 1) * ENTRY + 16].cmp(id.as_bytes().as_slice()) {
            std::cmp::Ordering::Greater => at -= 1,
            std::cmp::Ordering::Equal => return false,
            std::cmp::Ordering::Less => break,
        }
    }
    let mut entry = [0u8; ENTRY];
    entry[..16].copy_from_slice(id.as_bytes());
    entry[16..].copy_from_slice(&seq.to_be_bytes());
    let pos = at * ENTRY;
    bucket.splice(pos..pos, entry);
    true
}

/// The seq of `id` in the stored index: its span's buckets, generation by generation up to
/// the first that is not full, then, when `singles` says the folder may hold single keys (a
/// span past its last generation, or a folder from before buckets), its own key.
pub(crate) fn lookup(
    tree: &sled::Tree,
    id: &Uuid,
    singles: bool,
) -> Result<Option<u64>, LookupError> {
    let span = layout::id_span(id);
    for generation in 0..GENERATIONS {
        let key = layout::id_bucket_key(&span, generation as u8);
        let Some(bucket) = tree.get(key)? else {
            break;
        };
        if let Some(seq) = find(&bucket, id, &key)? {
            return Ok(Some(seq));
        }
        if !is_full(&bucket) {
            break;
        }
    }
    if !singles {
        return Ok(None);
    }
    match tree.get(layout::id_key(id))? {
        Some(v) => layout::read_u64(&v).map(Some).ok_or_else(|| {
            LookupError::Corrupt(CorruptEntry {
                key: layout::id_key(id).to_vec(),
            })
        }),
        None => Ok(None),
    }
}

/// The generation of `span` that takes its next ids, and its stored value (empty when new);
/// `None` when all its generations are full.
pub(crate) fn tail(
    tree: &sled::Tree,
    span: &[u8; 7],
) -> Result<Option<(u8, Vec<u8>)>, sled::Error> {
    for generation in 0..GENERATIONS {
        let generation = generation as u8;
        match tree.get(layout::id_bucket_key(span, generation))? {
            None => return Ok(Some((generation, Vec::new()))),
            Some(v) if !is_full(&v) => return Ok(Some((generation, v.to_vec()))),
            Some(_) => {}
        }
    }
    Ok(None)
}

/// Whether the folder holds any single id key (checked once on open).
pub(crate) fn has_singles(tree: &sled::Tree) -> Result<bool, sled::Error> {
    Ok(tree.scan_prefix([layout::ID]).next().transpose()?.is_some())
}

/// Why an id could not be looked up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LookupError {
    /// sled failed.
    #[error(transparent)]
    Store(#[from] sled::Error),
    /// An index value is damaged.
    #[error(transparent)]
    Corrupt(#[from] CorruptEntry),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(prefix: u8, n: u16) -> Uuid {
        let mut b = [prefix; 16];
        b[6] = 0x70;
        b[14..].copy_from_slice(&n.to_be_bytes());
        Uuid::from_bytes(b)
    }

    #[test]
    fn ids_added_in_any_order_are_found_at_their_seqs_and_others_are_not() {
        let mut bucket = Vec::new();
        for (i, n) in [5u16, 1, 9, 3, 7].into_iter().enumerate() {
            assert!(add(&mut bucket, &id(1, n), 100 + i as u64));
        }
        for (i, n) in [5u16, 1, 9, 3, 7].into_iter().enumerate() {
            assert_eq!(
                find(&bucket, &id(1, n), b"k").unwrap(),
                Some(100 + i as u64)
            );
        }
        for n in [0u16, 2, 4, 6, 8, 10] {
            assert_eq!(find(&bucket, &id(1, n), b"k").unwrap(), None);
        }
        assert!(!add(&mut bucket, &id(1, 9), 7), "an id is held once");
        assert_eq!(find(&bucket, &id(1, 9), b"k").unwrap(), Some(102));
    }

    #[test]
    fn a_full_bucket_refuses_one_more_id() {
        let mut bucket = Vec::new();
        for n in 0..BUCKET_CAP as u16 {
            assert!(add(&mut bucket, &id(2, n), u64::from(n)));
        }
        assert!(is_full(&bucket));
        assert!(!add(&mut bucket, &id(2, 9999), 1));
        assert_eq!(find(&bucket, &id(2, 9999), b"k").unwrap(), None);
        assert_eq!(find(&bucket, &id(2, 255), b"k").unwrap(), Some(255));
    }

    #[test]
    fn a_bucket_of_a_broken_length_is_corrupt_not_a_panic() {
        let mut bucket = Vec::new();
        add(&mut bucket, &id(3, 1), 1);
        bucket.pop();
        assert!(find(&bucket, &id(3, 1), b"k").is_err());
    }

    #[test]
    fn a_uuid_v7_bucket_is_its_millisecond_and_a_derived_id_bucket_is_256_lines() {
        let a = Uuid::now_v7();
        let mut b = *a.as_bytes();
        b[15] ^= 1;
        assert_eq!(layout::id_span(&a), layout::id_span(&Uuid::from_bytes(b)));
        let mut later = *a.as_bytes();
        later[5] = later[5].wrapping_add(1);
        assert_ne!(
            layout::id_span(&a),
            layout::id_span(&Uuid::from_bytes(later))
        );
        let line = |n: u64| {
            let mut b = [0u8; 16];
            b[..6].copy_from_slice(&n.to_be_bytes()[2..]);
            uuid::Builder::from_custom_bytes(b).into_uuid()
        };
        assert_eq!(layout::id_span(&line(256)), layout::id_span(&line(511)));
        assert_ne!(layout::id_span(&line(255)), layout::id_span(&line(256)));
    }

    #[test]
    fn a_span_goes_on_in_its_next_generation_and_every_id_is_found_across_them() {
        let tree = sled::Config::new()
            .temporary(true)
            .open()
            .unwrap()
            .open_tree("log")
            .unwrap();
        let span = layout::id_span(&id(4, 0));
        let mut seq = 0;
        for n in 0..(2 * BUCKET_CAP as u16 + 10) {
            let (generation, mut bucket) = tail(&tree, &span).unwrap().unwrap();
            assert_eq!(usize::from(generation), usize::from(n) / BUCKET_CAP);
            seq += 1;
            assert!(add(&mut bucket, &id(4, n), seq));
            tree.insert(layout::id_bucket_key(&span, generation), bucket)
                .unwrap();
        }
        for n in 0..(2 * BUCKET_CAP as u16 + 10) {
            assert_eq!(
                lookup(&tree, &id(4, n), false).unwrap(),
                Some(u64::from(n) + 1)
            );
        }
        assert_eq!(lookup(&tree, &id(4, 9999), false).unwrap(), None);
        // A single key is read only when the folder may hold them.
        tree.insert(layout::id_key(&id(5, 1)), &7u64.to_be_bytes()[..])
            .unwrap();
        assert_eq!(lookup(&tree, &id(5, 1), false).unwrap(), None);
        assert_eq!(lookup(&tree, &id(5, 1), true).unwrap(), Some(7));
        assert!(has_singles(&tree).unwrap());
    }
}
