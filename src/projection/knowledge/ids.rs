//! The event-id index of the knowledge layer: ids to fact indexes, cheap for the mostly
//! ascending ids the server mints. It must never hold anything but ids and indexes.

use rustc_hash::FxHashMap;

use super::Ix;

/// Event ids to fact indexes. Ids minted by the server are UUIDv7, so they mostly arrive in
/// ascending order: those are appended to a sorted vector (sequential memory, no hashing,
/// binary-searched on the rare lookup); an id below the last one (a client's own id) goes to
/// a hash map. A hash map alone costs two cache misses per insert once it outgrows the cache,
/// which was the largest single cost of a rebuild at 1M events.
#[derive(Debug, Default, Clone)]
pub(super) struct IdIndex {
    /// Ascending ids and, at the same position, their fact index.
    pub(super) sorted: Vec<u128>,
    pub(super) sorted_ix: Vec<Ix>,
    /// Ids that arrived out of order.
    pub(super) other: FxHashMap<u128, Ix>,
}

impl IdIndex {
    pub(super) fn reserve(&mut self, n: usize) {
        self.sorted.reserve(n);
        self.sorted_ix.reserve(n);
    }

    pub(super) fn insert(&mut self, id: u128, ix: Ix) {
        if self.sorted.last().is_none_or(|&last| id > last) {
            self.sorted.push(id);
            self.sorted_ix.push(ix);
        } else {
            // A repeated id cannot come from the log (the writer refuses it); if one did, the
            // first fact keeps it, as a lookup in `sorted` would find the first.
            if self.sorted.binary_search(&id).is_err() {
                self.other.entry(id).or_insert(ix);
            }
        }
    }

    pub(super) fn get(&self, id: u128) -> Option<Ix> {
        match self.sorted.binary_search(&id) {
            Ok(at) => self.sorted_ix.get(at).copied(),
            Err(_) => self.other.get(&id).copied(),
        }
    }
}
