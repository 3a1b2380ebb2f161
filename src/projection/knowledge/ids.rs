//! The event-id index of the knowledge layer: ids to fact indexes, cheap for ids that arrive in
//! ascending runs. It must never hold anything but ids and indexes.

use rustc_hash::FxHashMap;

use super::Ix;
use super::compact::FactStore;

/// Out-of-order facts, one after the other, whose ids ascend among themselves, that make a new
/// ascending list instead of map entries (`IdIndex::climbing`).
const CLIMB: usize = 1024;

/// Event ids to fact indexes. Ids mostly arrive in ascending order: the server mints UUIDv7s,
/// and `annals import` derives ids that ascend with the line. Those are listed in the order
/// they came (sequential memory, no hashing, binary-searched on the rare lookup), as runs of
/// consecutive fact indexes, so a list costs a few bytes whatever its length: the ids
/// themselves are read from the facts' rows. An id below the last one goes to a hash map
/// (about 60 bytes an id), unless it starts a climb: [`CLIMB`] facts in a row whose ids
/// ascend among themselves become a new ascending list, which the ids after them go on. So an
/// import's derived ids (all below any UUIDv7) after a served log's minted ones cost a list,
/// not a map entry each: 1M of them held 60 MB in the map. A hash map alone also costs two
/// cache misses per insert once it outgrows the cache, which was the largest single cost of a
/// rebuild at 1M events.
#[derive(Debug, Default, Clone)]
pub(super) struct IdIndex {
    /// The ascending lists, oldest first; ids go on the last one while they ascend.
    lists: Vec<Ascending>,
    /// Ids that arrived out of order and are in no list.
    pub(super) other: FxHashMap<u128, Ix>,
    /// The out-of-order facts just before the next one, if their ids ascend: the first's
    /// index, and their ids (kept, not read back from rows that may be paged out by then:
    /// at most [`CLIMB`], 16 KiB).
    climbing: Option<(Ix, Vec<u128>)>,
}

/// Facts whose ids ascend in the order they came.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Ascending {
    /// (place in the list, the fact index there), each run going on with consecutive fact
    /// indexes up to the next one (or to `len`).
    runs: Vec<(u32, Ix)>,
    len: u32,
    /// The list's lowest and highest ids: a lookup skips a list whose range misses its id,
    /// and each insert compares with the highest (reading it from the fact's row each time
    /// cost a row copy per fact).
    first_id: u128,
    last_id: u128,
}

impl Ascending {
    fn starting(ix: Ix, id: u128) -> Ascending {
        Ascending {
            runs: vec![(0, ix)],
            len: 1,
            first_id: id,
            last_id: id,
        }
    }

    /// The fact index at place `at`.
    fn ix_at(&self, at: u32) -> Option<Ix> {
        let run = self.runs.partition_point(|&(from, _)| from <= at);
        let &(from, ix) = self.runs.get(run.checked_sub(1)?)?;
        (at < self.len).then(|| ix + (at - from))
    }

    /// The last fact index.
    fn last(&self) -> Option<Ix> {
        let &(from, ix) = self.runs.last()?;
        Some(ix + (self.len - 1 - from))
    }

    fn push(&mut self, id: u128, ix: Ix) {
        if self.last().is_none_or(|last| last + 1 != ix) {
            self.runs.push((self.len, ix));
        }
        self.len += 1;
        self.last_id = id;
    }

    /// The fact of `id`, by binary search over the rows' ids.
    fn find(&self, id: u128, store: &FactStore) -> Option<Ix> {
        if id < self.first_id || id > self.last_id {
            return None;
        }
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let ix = self.ix_at(mid)?;
            match store.id_key(ix).cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(ix),
            }
        }
        None
    }
}

impl IdIndex {
    pub(super) fn reserve(&mut self, _n: usize) {}

    pub(super) fn shrink_to_fit(&mut self) {
        for list in &mut self.lists {
            list.runs.shrink_to_fit();
        }
        self.lists.shrink_to_fit();
        self.other.shrink_to_fit();
    }

    /// Bytes held, and how many of them are unused capacity.
    pub(super) fn heap_bytes(&self) -> (u64, u64) {
        let (mut bytes, mut slack) = super::heap::vec_bytes(&self.lists);
        for list in &self.lists {
            let (b, s) = super::heap::vec_bytes(&list.runs);
            bytes += b;
            slack += s;
        }
        (bytes + super::heap::table_bytes(&self.other), slack)
    }

    /// Every list's fact indexes, in order (for the tests' comparisons).
    #[cfg(test)]
    pub(super) fn ascending(&self) -> Vec<Vec<Ix>> {
        self.lists
            .iter()
            .map(|l| (0..l.len).filter_map(|at| l.ix_at(at)).collect())
            .collect()
    }

    /// Enters fact `ix` (already in `store`) under `id`, its event id as a UUID.
    pub(super) fn insert(&mut self, id: u128, ix: Ix, store: &FactStore) {
        match self.lists.last_mut() {
            Some(list) if id > list.last_id => {
                list.push(id, ix);
                self.climbing = None;
                return;
            }
            None => {
                self.lists.push(Ascending::starting(ix, id));
                return;
            }
            Some(_) => {}
        }
        // A repeated id cannot come from the log (the writer refuses it); if one did, the
        // first fact keeps it.
        if self.get(id, store).is_some() {
            self.climbing = None;
            return;
        }
        self.other.insert(id, ix);
        let (first, mut ids) = match self.climbing.take() {
            Some((first, ids))
                if first as usize + ids.len() == ix as usize
                    && ids.last().is_some_and(|&last| id > last) =>
            {
                (first, ids)
            }
            _ => (ix, Vec::new()),
        };
        ids.push(id);
        if ids.len() < CLIMB {
            self.climbing = Some((first, ids));
            return;
        }
        // The climb becomes the list the ids after it go on.
        let mut list = Ascending::starting(first, ids[0]);
        self.other.remove(&ids[0]);
        for (ix, &key) in (first + 1..).zip(&ids[1..]) {
            self.other.remove(&key);
            list.push(key, ix);
        }
        self.lists.push(list);
    }

    /// The fact of `id`: the first one entered under it.
    pub(super) fn get(&self, id: u128, store: &FactStore) -> Option<Ix> {
        self.lists
            .iter()
            .filter_map(|list| list.find(id, store))
            .chain(self.other.get(&id).copied())
            .min()
    }
}
