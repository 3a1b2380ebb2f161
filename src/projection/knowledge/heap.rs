//! What the knowledge layer holds on the heap, part by part ([`Knowledge::heap_parts`]), for
//! `/metrics` (`annals_projection_bytes{part}`) and the start-up log line: the figures that say
//! which part grows with the log. An estimate from lengths and capacities (a hash map's table
//! as its capacity times its entry and control byte), cheap enough to take after a save; it
//! must never walk the facts themselves, only the tables that hold them.

use std::collections::HashMap;
use std::mem::size_of;

use rustc_hash::FxHashMap;

use super::{Ix, Knowledge};

/// Bytes of one part of the knowledge layer (see [`Knowledge::heap_parts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapPart {
    /// The part's name, as `/metrics` labels it.
    pub part: &'static str,
    /// Bytes it holds, its unused capacity included.
    pub bytes: u64,
}

/// Bytes a vector holds, and how many of them are unused capacity.
pub(super) fn vec_bytes<T>(v: &Vec<T>) -> (u64, u64) {
    let size = size_of::<T>() as u64;
    (
        v.capacity() as u64 * size,
        (v.capacity() - v.len()) as u64 * size,
    )
}

/// Bytes of a hash map's table: each slot holds an entry and a control byte.
pub(super) fn table_bytes<K, V, S>(m: &HashMap<K, V, S>) -> u64 {
    m.capacity() as u64 * (size_of::<(K, V)>() as u64 + 1)
}

/// An index of lists by name: its table, the keys' texts and the lists; and the lists' unused
/// capacity.
fn index_bytes(m: &FxHashMap<Box<str>, Vec<Ix>>) -> (u64, u64) {
    m.iter()
        .fold((table_bytes(m), 0), |(all, slack), (key, list)| {
            let (bytes, unused) = vec_bytes(list);
            (all + key.len() as u64 + bytes, slack + unused)
        })
}

/// An index of sets by name: its table, the keys' texts and the sets' containers: 2 bytes a
/// value in an array container, 8 KiB a bitmap container, a run container's own size, and
/// about 32 bytes of each container's own. (The crate's byte counts are not bytes: it counts a
/// bitmap's bits and an array's values as 4 bytes.)
fn sets_bytes(m: &FxHashMap<Box<str>, roaring::RoaringBitmap>) -> u64 {
    m.iter().fold(table_bytes(m), |all, (key, set)| {
        let st = set.statistics();
        all + key.len() as u64
            + u64::from(st.n_values_array_containers) * 2
            + u64::from(st.n_bitset_containers) * 8192
            + st.n_bytes_run_containers
            + u64::from(st.n_containers) * 32
    })
}

/// A map of fact to the facts that correct or retract it.
fn links_bytes(m: &HashMap<Ix, Vec<Ix>>) -> (u64, u64) {
    m.values().fold((table_bytes(m), 0), |(all, slack), list| {
        let (bytes, unused) = vec_bytes(list);
        (all + bytes, slack + unused)
    })
}

impl Knowledge {
    /// The heap the knowledge layer holds, part by part: the store's own parts (`rows`,
    /// `pool`, `names`, `runs`, `odd`), the id index, each index family, the correction and
    /// retraction links, the actor orders, and `slack`: the unused capacity inside all of
    /// them (each part's figure includes its share of it).
    pub fn heap_parts(&self) -> Vec<HeapPart> {
        let mut slack = 0;
        let mut parts = self.store.heap_parts(&mut slack);
        let (ids, ids_slack) = self.by_id.heap_bytes();
        slack += ids_slack;
        parts.push(HeapPart {
            part: "by_id",
            bytes: ids,
        });
        for (part, map) in [("by_kind", &self.by_kind), ("by_talks", &self.by_talks)] {
            let (bytes, unused) = index_bytes(map);
            slack += unused;
            parts.push(HeapPart { part, bytes });
        }
        for (part, map) in [
            ("by_process", &self.by_process),
            ("by_actor", &self.by_actor),
            ("by_source", &self.by_source),
        ] {
            parts.push(HeapPart {
                part,
                bytes: sets_bytes(map),
            });
        }
        let (c, cs) = links_bytes(&self.corrections);
        let (r, rs) = links_bytes(&self.retractions);
        slack += cs + rs;
        parts.push(HeapPart {
            part: "links",
            bytes: c + r,
        });
        parts.push(HeapPart {
            part: "by_time",
            bytes: self.by_time.bytes() as u64,
        });
        parts.push(HeapPart {
            part: "slack",
            bytes: slack,
        });
        parts
    }
}
