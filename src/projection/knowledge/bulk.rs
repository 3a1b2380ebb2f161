//! Indexing the facts a save load appends ([`Knowledge::load_segment`]): the very indexes
//! [`Knowledge::insert`] builds fact by fact, built by the numbers of names instead of their
//! texts and keyed by text once per name at the end ([`Knowledge::finish_load`]), so a load
//! hashes no text per fact. It must never index differently from `insert`: the unit tests
//! fold the same facts both ways and compare every index.

use rustc_hash::FxHashMap;

use super::compact::{FactStore, Loaded, Segment, SegmentError, Sym};
use super::ids::IdIndex;
use super::{Ix, Knowledge, uuid_key};
use crate::event::EventKind;
use crate::projection::fact::{Role, is_actor};

/// The indexes of a load in progress, by name number.
#[derive(Debug, Default)]
pub struct Bulk {
    /// Per kind listed by type (by its number), its facts.
    by_kind: Vec<Vec<Ix>>,
    by_process: ByNumber,
    by_actor: ByNumber,
    by_source: ByNumber,
    by_talks: ByNumber,
    /// Per name number, whether it reads as an actor: 0 not asked yet, 1 no, 2 yes.
    actor_like: Vec<u8>,
}

/// One index under construction, keyed by name number through a dense table (4 bytes per
/// name), so adding a fact costs two array reads and no hashing.
#[derive(Debug, Default)]
struct ByNumber {
    /// Per name number, its list's place in `lists` plus one (0: none yet).
    slot: Vec<u32>,
    lists: Vec<(Sym, Vec<Ix>)>,
}

impl ByNumber {
    /// As `knowledge::push`: a fact is listed once under a key even when it names it twice.
    fn push(&mut self, sym: Sym, ix: Ix) {
        let at = sym as usize;
        if at >= self.slot.len() {
            self.slot.resize(at + 1, 0);
        }
        let list = match self.slot[at] {
            0 => {
                self.lists.push((sym, Vec::new()));
                self.slot[at] = self.lists.len() as u32;
                self.lists.len() - 1
            }
            n => n as usize - 1,
        };
        let list = &mut self.lists[list].1;
        if list.last() != Some(&ix) {
            list.push(ix);
        }
    }
}

/// Adds a load's list under its text to an index that may already hold the key.
fn merge(map: &mut FxHashMap<Box<str>, Vec<Ix>>, key: &str, list: Vec<Ix>) {
    match map.get_mut(key) {
        Some(v) => {
            for ix in list {
                if v.last() != Some(&ix) {
                    v.push(ix);
                }
            }
        }
        None => {
            map.insert(key.into(), list);
        }
    }
}

impl Knowledge {
    /// Appends a segment of a save and indexes its facts, in seq order after those held. For
    /// knowledge being loaded: no actor's order has been built yet (they are built on a
    /// view's first ask, after the load). Call [`Knowledge::finish_load`] after the last.
    pub fn load_segment(&mut self, seg: Segment, bulk: &mut Bulk) -> Result<(), SegmentError> {
        let range = self.store.append(seg)?;
        let store = &self.store;
        for fact in store.loaded(range) {
            index_loaded(&fact, store, &mut self.by_id, bulk);
            let is_correction = match fact.kind {
                Ok(EventKind::EventCorrected) => true,
                Ok(EventKind::EventRetracted) => false,
                _ => continue,
            };
            let ix = fact.ix;
            let Some(target) =
                uuid_key(store.get(ix).target()).and_then(|k| self.by_id.get(k, store))
            else {
                continue;
            };
            if !is_correction {
                self.retractions.entry(target).or_default().push(ix);
                continue;
            }
            self.corrections.entry(target).or_default().push(ix);
            let target_kind = store.get(target).event_kind();
            if matches!(
                target_kind,
                Some(EventKind::MeetingHeld | EventKind::TalksStatusChanged)
            ) {
                for (role, s) in fact.ref_syms() {
                    if role == Role::PatchActor {
                        bulk.by_talks.push(s, target);
                    }
                }
            }
            if target_kind.is_some_and(EventKind::names_actors) {
                for (role, s) in fact.ref_syms() {
                    if role == Role::PatchActor {
                        bulk.by_actor.push(s, target);
                    }
                }
            }
        }
        if let Some(seq) = self.store.last_seq() {
            self.seq = self.seq.max(seq);
        }
        Ok(())
    }

    /// Keys the load's indexes by text.
    pub fn finish_load(&mut self, bulk: Bulk) {
        for (kind, list) in EventKind::ALL.iter().zip(bulk.by_kind) {
            if !list.is_empty() {
                merge(&mut self.by_kind, kind.name(), list);
            }
        }
        for (sym, list) in bulk.by_talks.lists {
            merge(&mut self.by_talks, self.store.name(sym), list);
        }
        for (bulk_map, map) in [
            (bulk.by_process, &mut self.by_process),
            (bulk.by_source, &mut self.by_source),
            (bulk.by_actor, &mut self.by_actor),
        ] {
            for (sym, list) in bulk_map.lists {
                let name = self.store.name(sym);
                match map.get_mut(name) {
                    Some(set) => set.extend(list),
                    None => {
                        let set: roaring::RoaringBitmap = list.into_iter().collect();
                        map.insert(name.into(), set);
                    }
                }
            }
        }
    }
}

/// What [`Knowledge::insert`] does for a fact after pushing its row, by name numbers, but
/// for the links of corrections and retractions ([`Knowledge::load_segment`]).
fn index_loaded(fact: &Loaded<'_>, store: &FactStore, by_id: &mut IdIndex, bulk: &mut Bulk) {
    let ix = fact.ix;
    if let Some(key) = fact.uuid {
        by_id.insert(key, ix, store);
    }
    match fact.kind {
        // Only the types views list by type are indexed by type (`EventKind::listed_by_type`).
        Ok(known) if !known.listed_by_type() => {}
        Ok(known) => {
            let at = known as usize;
            if bulk.by_kind.len() <= at {
                bulk.by_kind
                    .resize_with(EventKind::ALL.len().max(at + 1), Vec::new);
            }
            let list = &mut bulk.by_kind[at];
            if list.last() != Some(&ix) {
                list.push(ix);
            }
        }
        // A type this build does not know is never asked for by type.
        Err(_) => {}
    }
    if let Some(p) = fact.process {
        bulk.by_process.push(p, ix);
    }
    for (role, s) in fact.ref_syms() {
        match role {
            Role::Actor => {
                let at = s as usize;
                if bulk.actor_like.len() <= at {
                    bulk.actor_like.resize(store.names_len().max(at + 1), 0);
                }
                if bulk.actor_like[at] == 0 {
                    bulk.actor_like[at] = if is_actor(store.name(s)) { 2 } else { 1 };
                }
                if bulk.actor_like[at] == 2 {
                    bulk.by_actor.push(s, ix);
                }
            }
            Role::Source => bulk.by_source.push(s, ix),
            Role::Talks => bulk.by_talks.push(s, ix),
            _ => {}
        }
    }
}
