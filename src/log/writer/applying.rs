//! A staged group on its way into sled: its index keys and records, handed to the sync thread,
//! which chunks them and applies them in one batch (`pipeline`), while the writer stages the
//! next group. Until the writer knows the group is in the tree, it reads what the group wrote
//! from here first: the next group must see it exactly as if it were applied. This must never
//! be changed once handed over, and a read here must never answer differently from the tree
//! once the group is applied.

use std::sync::atomic::{AtomicBool, Ordering};

use rustc_hash::FxHashMap;
use std::sync::Arc;

use sled::IVec;

use super::super::record::{Hash, Recorded};
use super::super::{Head, LogError, chunk, layout};
use super::Writer;

/// A group's writes, as one sled batch will hold them.
pub(super) struct Applying {
    /// Seq of its first record.
    pub(super) first_seq: u64,
    /// The head once it is applied.
    pub(super) head: Head,
    /// Its records (hash, JSON), from `first_seq` on, to be chunked.
    pub(super) records: Vec<(Hash, Vec<u8>)>,
    /// Its index keys and values (ids, stream runs, registry, Merkle): the last write of a
    /// key wins, as in a sled batch.
    pub(super) writes: FxHashMap<Vec<u8>, Vec<u8>>,
    /// Set once the batch is in the tree: from then on the tree answers for it.
    pub(super) applied: AtomicBool,
}

impl Applying {
    /// The group as one sled batch: its records chunked (compressed with `packer`), its index
    /// keys, and the head.
    pub(super) fn batch(
        &self,
        packer: Option<&mut chunk::Packer>,
    ) -> Result<sled::Batch, std::io::Error> {
        let mut batch = sled::Batch::default();
        for (k, v) in chunk::chunks(self.first_seq, &self.records, packer)? {
            batch.insert(k, v);
        }
        for (k, v) in &self.writes {
            batch.insert(k.as_slice(), v.as_slice());
        }
        batch.insert(
            layout::HEAD,
            &layout::head_value(self.head.seq, &self.head.hash)[..],
        );
        Ok(batch)
    }

    /// Whether the batch is in the tree.
    pub(super) fn is_applied(&self) -> bool {
        self.applied.load(Ordering::Acquire)
    }

    /// Marks the batch as in the tree.
    pub(super) fn mark_applied(&self) {
        self.applied.store(true, Ordering::Release);
    }

    /// The record at `seq`, if the group holds it.
    fn record(&self, seq: u64) -> Option<Recorded> {
        let i = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        let (hash, bytes) = self.records.get(i)?;
        Some(Recorded {
            seq,
            hash: *hash,
            bytes: IVec::from(bytes.as_slice()),
        })
    }
}

impl Writer {
    /// The value of `key` in the groups on their way into sled (the newest write wins), else
    /// in the tree.
    pub(super) fn stored(&self, key: &[u8]) -> Result<Option<IVec>, String> {
        if let Some(v) = self.applying.iter().rev().find_map(|a| a.writes.get(key)) {
            return Ok(Some(IVec::from(v.as_slice())));
        }
        self.tree.get(key).map_err(|e| e.to_string())
    }

    /// Whether `key` is written by a group not yet in the tree.
    pub(super) fn in_applying(&self, key: &[u8]) -> bool {
        self.applying
            .iter()
            .any(|a| !a.is_applied() && a.writes.contains_key(key))
    }

    /// The record at `seq`, in the groups on their way into sled, else in the tree.
    pub(super) fn record_at(&self, seq: u64) -> Result<Option<Recorded>, LogError> {
        if let Some(r) = self.applying.iter().find_map(|a| a.record(seq)) {
            return Ok(Some(r));
        }
        chunk::get(&self.tree, seq)
    }

    /// Keeps the groups not yet in the tree, then `handed`: the groups a read must look at
    /// before the tree. Only the writer thread changes the list, so a group leaves it only
    /// once the tree holds it. Returns the groups that left, to be freed.
    pub(super) fn track_applying(&mut self, handed: Arc<Applying>) -> Vec<Arc<Applying>> {
        let (applied, waiting) = std::mem::take(&mut self.applying)
            .into_iter()
            .partition(|a| a.is_applied());
        self.applying = waiting;
        self.applying.push(handed);
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> Applying {
        let records: Vec<(Hash, Vec<u8>)> = (0..40u8)
            .map(|i| {
                (
                    [i; 32],
                    format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(400)).into_bytes(),
                )
            })
            .collect();
        let mut writes = FxHashMap::default();
        writes.insert(
            layout::registry_key("entity:actor:a"),
            7u64.to_be_bytes().to_vec(),
        );
        writes.insert(layout::merkle_key(6, 0).to_vec(), vec![9; 32]);
        Applying {
            first_seq: 11,
            head: Head {
                seq: 50,
                hash: [39; 32],
            },
            records,
            writes,
            applied: AtomicBool::new(false),
        }
    }

    #[test]
    fn a_group_on_its_way_answers_every_read_as_the_tree_does_once_it_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("log").unwrap();
        let group = group();
        let mut packer = chunk::Packer::new(1);
        tree.apply_batch(group.batch(Some(&mut packer)).unwrap())
            .unwrap();
        for seq in 11..=50 {
            let here = group.record(seq).unwrap();
            let there = chunk::get(&tree, seq).unwrap().unwrap();
            assert_eq!(
                (here.seq, here.hash, &here.bytes[..]),
                (there.seq, there.hash, &there.bytes[..])
            );
        }
        assert!(group.record(10).is_none() && group.record(51).is_none());
        for (k, v) in &group.writes {
            assert_eq!(tree.get(k).unwrap().unwrap(), v.as_slice());
        }
        assert_eq!(
            tree.get(layout::HEAD).unwrap().unwrap(),
            &layout::head_value(50, &[39; 32])[..]
        );
    }

    #[test]
    fn a_group_is_applied_only_once_marked() {
        let group = group();
        assert!(!group.is_applied());
        group.mark_applied();
        assert!(group.is_applied());
    }
}
