//! The Merkle side of the `Log` handle: roots, inclusion and consistency proofs over the
//! durable records (RFC 9162), read from the stored subtrees and the records. It must never
//! answer for a size beyond the durable head, and never write: only the writer stores nodes.

use super::record::Hash;
use super::{Log, LogError, chunk, layout, merkle};

impl Log {
    /// The Merkle subtree hash at (level, index). Only subtrees of 2^`STORED_FROM_LEVEL` leaves
    /// and up are stored; lower ones are recomputed from the records (a leaf is the hash of
    /// record `index + 1`), which costs one scan of at most 2^`STORED_FROM_LEVEL` records.
    pub(crate) fn merkle_node(tree: &sled::Tree, level: u8, index: u64) -> Option<Hash> {
        if level < merkle::STORED_FROM_LEVEL {
            // The subtree's leaves are consecutive records: one scan, mostly of one chunk.
            let width = 1u64 << level;
            let first = index.checked_mul(width)?.checked_add(1)?;
            let last = first.checked_add(width - 1)?;
            let mut hashes = Vec::with_capacity(width as usize);
            for item in chunk::scan(tree, first, last) {
                let rec = item.ok()?;
                if rec.seq != first + hashes.len() as u64 {
                    return None;
                }
                hashes.push(merkle::leaf_hash(&rec.bytes));
            }
            if hashes.len() as u64 != width {
                return None;
            }
            while hashes.len() > 1 {
                hashes = hashes
                    .chunks(2)
                    .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
                    .collect();
            }
            return hashes.pop();
        }
        let v = tree.get(layout::merkle_key(level, index)).ok()??;
        v.as_ref().try_into().ok()
    }

    fn check_size(&self, size: u64) -> Result<(), LogError> {
        let head = self.head().seq;
        if size > head {
            return Err(LogError::BeyondHead { size, head });
        }
        Ok(())
    }

    /// The Merkle root of the first `size` records (RFC 9162 MTH).
    pub fn merkle_root(&self, size: u64) -> Result<Hash, LogError> {
        self.check_size(size)?;
        let tree = self.tree()?;
        merkle::Nodes::new(|l, i| Self::merkle_node(&tree, l, i))
            .root(size)
            .map_err(|e| LogError::Corrupt(e.to_string()))
    }

    /// The inclusion path of record `seq` in the tree of the first `size` records.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(size)?;
        if seq == 0 || seq > size {
            return Err(LogError::BeyondHead {
                size: seq,
                head: size,
            });
        }
        let tree = self.tree()?;
        merkle::Nodes::new(|l, i| Self::merkle_node(&tree, l, i))
            .inclusion_path(seq - 1, size)
            .map_err(|e| LogError::Corrupt(e.to_string()))
    }

    /// The consistency path from the tree of `from` records to the tree of `to` records.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(to)?;
        if from == 0 || from > to {
            return Err(LogError::BeyondHead {
                size: from,
                head: to,
            });
        }
        let tree = self.tree()?;
        merkle::Nodes::new(|l, i| Self::merkle_node(&tree, l, i))
            .consistency_path(from, to)
            .map_err(|e| LogError::Corrupt(e.to_string()))
    }
}
