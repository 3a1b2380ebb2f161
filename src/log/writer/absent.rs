//! The writer's proof that a key is absent, during a bulk import: a Bloom filter of every event
//! id key and registry key the tree holds. An import names a new event id and a new registry
//! id in nearly every line, and each of those lookups was a sled read that found nothing (one
//! for the id, one per registry namespace), on the writer's path. Where the filter says "not
//! there", the read is skipped; where it says "maybe", the tree decides, so an answer is never
//! changed by it, only reached sooner. It must never miss a key the tree or a staged group
//! holds: it learns every key of the tree when the writer starts, and every key the writer
//! stages before that key can be looked up. It grows with the keys (about 10 bits each), so
//! only `annals import` uses it: a server would pay a scan of the index at every start.

use rustc_hash::FxHasher;
use std::hash::Hasher;

use super::super::layout;

/// Bits per key of each filter: with [`PROBES`] probes, about 1% of absent keys read "maybe".
const BITS_PER_KEY: usize = 10;
/// Probes per key.
const PROBES: u32 = 7;
/// Keys the first filter is sized for, when the tree holds fewer.
const FIRST_CAPACITY: usize = 1 << 16;

/// One Bloom filter of a fixed size.
struct Filter {
    bits: Vec<u64>,
    /// Bit count - 1 (a power of two).
    mask: u64,
    keys: usize,
    capacity: usize,
}

impl Filter {
    fn new(capacity: usize) -> Filter {
        let bits = (capacity * BITS_PER_KEY).next_power_of_two().max(64);
        Filter {
            bits: vec![0; bits / 64],
            mask: bits as u64 - 1,
            keys: 0,
            capacity,
        }
    }

    fn probes(&self, key: &[u8]) -> impl Iterator<Item = u64> + use<> {
        let (h1, h2) = hashes(key);
        let mask = self.mask;
        (0..PROBES as u64).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) & mask)
    }

    fn insert(&mut self, key: &[u8]) {
        for bit in self.probes(key) {
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        self.keys += 1;
    }

    fn may_hold(&self, key: &[u8]) -> bool {
        self.probes(key)
            .all(|bit| self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }
}

/// Two independent 64-bit hashes of `key` (double hashing: probe i is `h1 + i * h2`).
fn hashes(key: &[u8]) -> (u64, u64) {
    let mut h = FxHasher::default();
    h.write(key);
    let x = h.finish();
    // FxHash mixes little: a finaliser spreads it over every bit the mask keeps.
    (mix(x), mix(x ^ 0x9e37_79b9_7f4a_7c15) | 1)
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The filters over the tree's id and registry keys: when the newest is full, a new one twice
/// its size starts, so the false "maybe" rate stays about the same however many keys come.
pub(super) struct Absent {
    filters: Vec<Filter>,
}

impl Absent {
    /// A filter over every event id and registry key `tree` holds now.
    pub(super) fn load(tree: &sled::Tree) -> Result<Absent, sled::Error> {
        let mut keys = Vec::new();
        for prefix in [layout::ID, layout::REGISTRY] {
            for item in tree.scan_prefix([prefix]) {
                let (k, _) = item?;
                keys.push(k);
            }
        }
        let mut absent = Absent {
            filters: vec![Filter::new((keys.len() * 2).max(FIRST_CAPACITY))],
        };
        for k in &keys {
            absent.insert(k);
        }
        Ok(absent)
    }

    /// Whether `key` is one the filter is for: an event id key or a registry key.
    pub(super) fn covers(key: &[u8]) -> bool {
        matches!(key.first(), Some(&layout::ID) | Some(&layout::REGISTRY))
    }

    /// Learns a key that is staged or written.
    pub(super) fn insert(&mut self, key: &[u8]) {
        let full = self.filters.last().is_none_or(|f| f.keys >= f.capacity);
        if full {
            let next = self
                .filters
                .last()
                .map_or(FIRST_CAPACITY, |f| f.capacity * 2);
            self.filters.push(Filter::new(next));
        }
        if let Some(f) = self.filters.last_mut() {
            f.insert(key);
        }
    }

    /// `false` only when no key equal to `key` was ever learnt: the tree cannot hold it.
    pub(super) fn may_hold(&self, key: &[u8]) -> bool {
        self.filters.iter().any(|f| f.may_hold(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u64) -> [u8; 17] {
        layout::id_key(&uuid::Uuid::from_u128(i as u128 * 0x1_0000_0001))
    }

    #[test]
    fn every_learnt_key_may_be_held_however_many_filters_it_took() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("log").unwrap();
        tree.insert(id(0), &[0u8; 8][..]).unwrap();
        tree.insert(layout::registry_key("entity:actor:a"), &[0u8; 8][..])
            .unwrap();
        let mut absent = Absent::load(&tree).unwrap();
        assert!(absent.may_hold(&id(0)));
        assert!(absent.may_hold(&layout::registry_key("entity:actor:a")));
        let n = FIRST_CAPACITY as u64 * 3;
        for i in 1..=n {
            absent.insert(&id(i));
        }
        assert!(absent.filters.len() >= 2, "the filter grew");
        assert!((0..=n).all(|i| absent.may_hold(&id(i))));
    }

    #[test]
    fn most_keys_never_learnt_are_absent() {
        let mut absent = Absent {
            filters: Vec::new(),
        };
        for i in 0..100_000 {
            absent.insert(&id(i));
        }
        let maybe = (100_000..200_000)
            .filter(|i| absent.may_hold(&id(*i)))
            .count();
        // About 1% expected; a broken hash answers "maybe" far more often.
        assert!(maybe < 3_000, "{maybe} of 100000 absent keys read as maybe");
    }

    #[test]
    fn only_id_and_registry_keys_are_covered() {
        assert!(Absent::covers(&id(1)));
        assert!(Absent::covers(&layout::registry_key("source:src:a")));
        assert!(!Absent::covers(&layout::chunk_key(1)));
        assert!(!Absent::covers(layout::HEAD));
    }
}
