//! The event-id index of the knowledge layer: ids to fact indexes, cheap for the mostly
//! ascending ids the server mints. It must never hold anything but ids and indexes.

use rustc_hash::FxHashMap;

use super::Ix;
use super::compact::FactStore;

/// Event ids to fact indexes. Ids minted by the server are UUIDv7, so they mostly arrive in
/// ascending order: those are appended to a sorted vector (sequential memory, no hashing,
/// binary-searched on the rare lookup); an id below the last one (a client's own id) goes to
/// a hash map. A hash map alone costs two cache misses per insert once it outgrows the cache,
/// which was the largest single cost of a rebuild at 1M events. The ids themselves are read
/// from the facts' rows, so the ascending ones cost 4 bytes each here.
#[derive(Debug, Default, Clone)]
pub(super) struct IdIndex {
    /// Fact indexes whose ids ascend.
    pub(super) sorted_ix: Vec<Ix>,
    /// Ids that arrived out of order.
    pub(super) other: FxHashMap<u128, Ix>,
}

impl IdIndex {
    pub(super) fn reserve(&mut self, n: usize) {
        self.sorted_ix.reserve_exact(n);
    }

    pub(super) fn shrink_to_fit(&mut self) {
        self.sorted_ix.shrink_to_fit();
        self.other.shrink_to_fit();
    }

    /// Bytes held, and how many of them are unused capacity.
    pub(super) fn heap_bytes(&self) -> (u64, u64) {
        let (sorted, slack) = super::heap::vec_bytes(&self.sorted_ix);
        (sorted + super::heap::table_bytes(&self.other), slack)
    }

    fn find(&self, id: u128, store: &FactStore) -> Result<usize, usize> {
        self.sorted_ix
            .binary_search_by_key(&id, |&ix| store.id_key(ix))
    }

    /// Enters fact `ix` (already in `store`) under `id`, its event id as a UUID.
    pub(super) fn insert(&mut self, id: u128, ix: Ix, store: &FactStore) {
        if self
            .sorted_ix
            .last()
            .is_none_or(|&last| id > store.id_key(last))
        {
            self.sorted_ix.push(ix);
        } else {
            // A repeated id cannot come from the log (the writer refuses it); if one did, the
            // first fact keeps it, as a lookup in `sorted_ix` would find the first.
            if self.find(id, store).is_err() {
                self.other.entry(id).or_insert(ix);
            }
        }
    }

    pub(super) fn get(&self, id: u128, store: &FactStore) -> Option<Ix> {
        match self.find(id, store) {
            Ok(at) => self.sorted_ix.get(at).copied(),
            Err(_) => self.other.get(&id).copied(),
        }
    }
}
