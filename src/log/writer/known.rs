//! The writer's memory of registry lookups: ids it has found in the store, with the kind and
//! introducing seq read there. Nearly every event names ids registered long before it (its
//! speaker, its sources), and each such lookup was one or two sled reads on the writer's path
//! (one per registry namespace). An id keeps its first kind and its registry key is written
//! once and never rewritten while the writer runs, so what was read stays true. This must
//! never hold an id the store does not hold (nothing staged, nothing looked up and missing: a
//! group may still be refused), and never grow past its bound.

use foldhash::{HashMap, HashMapExt};
use std::cell::RefCell;

/// Registry lookups that found their id in the store: id → (kind, introducing seq). Only the
/// writer thread holds it; lookups take `&self`, hence the cell. At most `bound` ids
/// (`[log] known_ids`; an entry is an id and a kind, tens of bytes). When full the memory is
/// emptied and refills from the store: simpler than an LRU, and an id named again is one
/// lookup away.
pub(super) struct KnownIds {
    ids: RefCell<HashMap<String, (String, u64)>>,
    bound: usize,
    /// Ids held now, on `/metrics`.
    gauge: prometheus::IntGauge,
}

impl KnownIds {
    /// An empty memory of at most `bound` ids (0: remember nothing), reporting its size to
    /// `gauge`.
    pub(super) fn new(bound: usize, gauge: prometheus::IntGauge) -> KnownIds {
        gauge.set(0);
        KnownIds {
            ids: RefCell::new(HashMap::new()),
            bound,
            gauge,
        }
    }

    /// The kind and introducing seq of `id`, if it was found in the store before.
    pub(super) fn get(&self, id: &str) -> Option<(String, u64)> {
        self.ids.borrow().get(id).cloned()
    }

    /// Remembers what the store answered for `id`.
    pub(super) fn remember(&self, id: &str, kind: &str, seq: u64) {
        if self.bound == 0 {
            return;
        }
        let mut ids = self.ids.borrow_mut();
        if ids.len() >= self.bound {
            ids.clear();
        }
        ids.insert(id.to_string(), (kind.to_string(), seq));
        self.gauge.set(ids.len() as i64);
    }

    /// How many ids are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.ids.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN_IDS: usize = 4096;

    fn known() -> KnownIds {
        KnownIds::new(
            KNOWN_IDS,
            prometheus::IntGauge::new("known", "test").unwrap(),
        )
    }

    #[test]
    fn a_remembered_id_answers_with_its_kind_and_seq() {
        let known = known();
        assert_eq!(known.get("actor:putin"), None);
        known.remember("actor:putin", "an actor", 7);
        assert_eq!(known.get("actor:putin"), Some(("an actor".into(), 7)));
    }

    #[test]
    fn the_memory_never_grows_past_its_bound() {
        let known = known();
        for i in 0..KNOWN_IDS * 2 + 3 {
            known.remember(&format!("actor:a{i}"), "an actor", i as u64);
            assert!(known.len() <= KNOWN_IDS);
        }
        // The last one is always there: a refill starts with it.
        let last = KNOWN_IDS * 2 + 2;
        assert_eq!(
            known.get(&format!("actor:a{last}")),
            Some(("an actor".into(), last as u64))
        );
    }
}
