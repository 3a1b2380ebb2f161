//! The event-id index of the knowledge layer: ids to fact indexes, cheap for the mostly
//! ascending ids the server mints. It must never hold anything but ids and indexes.

use rustc_hash::FxHashMap;

use super::Ix;
use super::compact::FactStore;

/// Event ids to fact indexes. Ids minted by the server are UUIDv7, so they mostly arrive in
/// ascending order: those are listed in the order they came (sequential memory, no hashing,
/// binary-searched on the rare lookup); an id below the last one (a client's own id) goes to
/// a hash map. A hash map alone costs two cache misses per insert once it outgrows the cache,
/// which was the largest single cost of a rebuild at 1M events. The ids themselves are read
/// from the facts' rows, and the ascending list is held as runs of consecutive fact indexes
/// (the facts of a log whose ids the server minted are one run), so it costs a few bytes
/// whatever the log's length: at 10M facts a plain list of indexes was 38 MiB.
#[derive(Debug, Default, Clone)]
pub(super) struct IdIndex {
    /// The ascending list as runs: (its place in the list, the fact index there), each run
    /// going on with consecutive fact indexes up to the next one (or to `len`).
    runs: Vec<(u32, Ix)>,
    /// How many facts the ascending list holds.
    len: u32,
    /// The id of the list's last fact (meaningful when `len > 0`): each insert compares with
    /// it, and reading it from the fact's row each time cost a row copy per fact.
    last_id: u128,
    /// Ids that arrived out of order.
    pub(super) other: FxHashMap<u128, Ix>,
}

impl IdIndex {
    pub(super) fn reserve(&mut self, _n: usize) {}

    pub(super) fn shrink_to_fit(&mut self) {
        self.runs.shrink_to_fit();
        self.other.shrink_to_fit();
    }

    /// Bytes held, and how many of them are unused capacity.
    pub(super) fn heap_bytes(&self) -> (u64, u64) {
        let (runs, slack) = super::heap::vec_bytes(&self.runs);
        (runs + super::heap::table_bytes(&self.other), slack)
    }

    /// The fact index at place `at` of the ascending list.
    fn ix_at(&self, at: u32) -> Option<Ix> {
        let run = self.runs.partition_point(|&(from, _)| from <= at);
        let &(from, ix) = self.runs.get(run.checked_sub(1)?)?;
        (at < self.len).then(|| ix + (at - from))
    }

    /// The last fact index of the ascending list.
    fn last(&self) -> Option<Ix> {
        let &(from, ix) = self.runs.last()?;
        Some(ix + (self.len - 1 - from))
    }

    /// Every fact index of the ascending list, in order (for the tests' comparisons).
    #[cfg(test)]
    pub(super) fn ascending(&self) -> Vec<Ix> {
        (0..self.len).filter_map(|at| self.ix_at(at)).collect()
    }

    fn find(&self, id: u128, store: &FactStore) -> Result<u32, u32> {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let key = self.ix_at(mid).map_or(0, |ix| store.id_key(ix));
            match key.cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// Enters fact `ix` (already in `store`) under `id`, its event id as a UUID.
    pub(super) fn insert(&mut self, id: u128, ix: Ix, store: &FactStore) {
        if self.len == 0 || id > self.last_id {
            if self.last().is_none_or(|last| last + 1 != ix) {
                self.runs.push((self.len, ix));
            }
            self.len += 1;
            self.last_id = id;
        } else {
            // A repeated id cannot come from the log (the writer refuses it); if one did, the
            // first fact keeps it, as a lookup in the ascending list would find the first.
            if self.find(id, store).is_err() {
                self.other.entry(id).or_insert(ix);
            }
        }
    }

    pub(super) fn get(&self, id: u128, store: &FactStore) -> Option<Ix> {
        match self.find(id, store) {
            Ok(at) => self.ix_at(at),
            Err(_) => self.other.get(&id).copied(),
        }
    }
}
