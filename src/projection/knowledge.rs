//! The knowledge layer every read model shares: one entry per recorded event, kept exactly as
//! recorded, plus the links that change what we know about it (corrections, retractions) and
//! the indexes the read models query (by process, actor, source, type, talks id). It is a pure fold of
//! the log: the same records in the same order always give the same knowledge. Because every
//! entry keeps the seq it was recorded at and every correction and retraction is its own
//! entry, any earlier state of knowledge (`known_at`) is a filter over this one: nothing is
//! overwritten. What one entry keeps of its record, and how it is found, is `fact.rs`: compact
//! derived facts, never the record, held as fixed-size rows with interned names
//! (`knowledge/compact.rs`); a view that shows a payload or evidence reads the record
//! through [`Records`] (`records.rs`), so what a view costs grows with what it shows. This
//! module must never read or write storage itself, never keep a record, and never parse JSON
//! while indexing: every reference was found when the fact was parsed.

use std::collections::HashMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::Value;

use super::fact::{Fact, Role, is_actor};
use super::records::Records;
use crate::event::EventKind;
use crate::event::upcast::upcast_data;

mod bulk;
mod by_time;
mod compact;
mod heap;
mod ids;

pub use bulk::Bulk;
pub use by_time::{ActorIndexBound, ActorOrder};
use by_time::{ByTime, time_key};
pub use compact::{
    FactRef, FactStore, PAGE, PageMetrics, PageSetup, PageStats, RowPages, Segment, SegmentError,
    Text, page_prefix,
};
pub use heap::HeapPart;
use ids::IdIndex;

/// Index of a fact in [`Knowledge::facts`].
pub type Ix = u32;

/// The shared knowledge: every recorded event and its indexes, up to [`Knowledge::seq`].
#[derive(Debug, Default, Clone)]
pub struct Knowledge {
    /// The last seq folded in (every record up to it has been seen).
    pub seq: u64,
    /// Every recorded event, in seq order, as compact rows.
    store: FactStore,
    /// Event id to fact index: corrections and retractions name their target by id.
    by_id: IdIndex,
    /// Fact index to the `event.corrected` facts that target it, in seq order.
    corrections: HashMap<Ix, Vec<Ix>>,
    /// Fact index to the `event.retracted` facts that target it, in seq order.
    retractions: HashMap<Ix, Vec<Ix>>,
    /// Facts by event type.
    by_kind: FxHashMap<Box<str>, Vec<Ix>>,
    /// Facts by process, as a compressed set per process: a process's facts come in
    /// ascending order, once each, and a long negotiation holds a large share of the log (at
    /// 10M facts over 1,000 processes, lists of u32s were 38 MiB of the heap).
    by_process: FxHashMap<Box<str>, roaring::RoaringBitmap>,
    /// Facts naming an actor (a correction may add an entry; views re-check the effective
    /// data), as a compressed set per actor: a speaker is named by a large share of the log.
    by_actor: FxHashMap<Box<str>, roaring::RoaringBitmap>,
    /// Facts citing a source, and the events about the source itself: a compressed set of
    /// fact numbers per source. A source is cited by a large share of the log (at 10M
    /// statements of one wire, a list of u32s was 38 MiB; the set is about 1 MiB), and its
    /// facts only ever come in ascending order, once each.
    by_source: FxHashMap<Box<str>, roaring::RoaringBitmap>,
    /// Per talks id, the meetings that fulfil them and the status changes about them, as
    /// recorded or as any correction may make them (views re-check the effective data).
    by_talks: FxHashMap<Box<str>, Vec<Ix>>,
    /// Per actor, their facts by when they occurred (built on a view's first ask).
    by_time: ByTime,
    /// Records that could not be parsed (corruption), skipped by every view.
    pub skipped: u64,
    /// Where the views read the records behind the facts.
    records: Records,
}

/// Why a record could not be folded in.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    /// The record is not the next one.
    #[error("record {got} folded after {have}: records must come in seq order without gaps")]
    OutOfOrder {
        /// What the knowledge is at.
        have: u64,
        /// What came.
        got: u64,
    },
}

fn uuid_key(id: &str) -> Option<u128> {
    uuid::Uuid::parse_str(id).ok().map(|u| u.as_u128())
}

fn push(map: &mut FxHashMap<Box<str>, Vec<Ix>>, key: &str, ix: Ix) {
    match map.get_mut(key) {
        Some(v) => {
            if v.last() != Some(&ix) {
                v.push(ix);
            }
        }
        None => {
            map.insert(key.into(), vec![ix]);
        }
    }
}

/// Gives back the spare room in `set`'s containers. A container grown by appends doubles its
/// array, so a sparse set (a process's facts among a thousand others') held up to twice its
/// values: at 10M facts over 1,000 processes, 39 MB where 24 MB were used. A set read back
/// from its serialized form is allocated to size; one that cannot be stays as it is.
fn compact_set(set: &mut roaring::RoaringBitmap) {
    let mut bytes = Vec::with_capacity(set.serialized_size());
    if set.serialize_into(&mut bytes).is_ok()
        && let Ok(compacted) = roaring::RoaringBitmap::deserialize_unchecked_from(&bytes[..])
    {
        *set = compacted;
    }
}

/// [`push`] into a set: a fact already there (it names the key twice, or a correction names it
/// again) is not added again, and one added out of order (a correction's target) takes its
/// place. Returns whether the fact was new to the set.
fn push_set(map: &mut FxHashMap<Box<str>, roaring::RoaringBitmap>, key: &str, ix: Ix) -> bool {
    match map.get_mut(key) {
        // Facts come in ascending order but for a correction's target: appending the next
        // one skips the search `insert` makes for its place.
        Some(set) => set.append(std::iter::once(ix)).is_ok() || set.insert(ix),
        None => {
            let mut set = roaring::RoaringBitmap::new();
            set.insert(ix);
            map.insert(key.into(), set);
            true
        }
    }
}

impl Knowledge {
    /// Empty knowledge (before seq 1) that keeps the records it folds, for a fold with no
    /// log behind it (`annals replay`, tests): see [`Knowledge::over`].
    pub fn new() -> Knowledge {
        Knowledge::default()
    }

    /// Empty knowledge whose views read records from `records` (the engine's: the log,
    /// through a bounded cache).
    pub fn over(records: Records) -> Knowledge {
        Knowledge {
            by_time: ByTime::bounded(records.actor_index().clone()),
            records,
            ..Knowledge::default()
        }
    }

    /// Where the views read the records behind the facts.
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// Makes room for `n` more facts (a rebuild knows how many are coming; growing the tables
    /// one doubling at a time would copy them over and over).
    pub fn reserve(&mut self, n: usize) {
        self.store.reserve(n);
        self.by_id.reserve(n);
    }

    /// Gives back the room growing left unused (a load or a rebuild grows its tables by
    /// doubling, which can leave half of each unused).
    pub fn shrink_to_fit(&mut self) {
        self.store.shrink_to_fit();
        self.by_id.shrink_to_fit();
        for map in [&mut self.by_kind, &mut self.by_talks] {
            map.values_mut().for_each(Vec::shrink_to_fit);
            map.shrink_to_fit();
        }
        for map in [
            &mut self.by_process,
            &mut self.by_source,
            &mut self.by_actor,
        ] {
            map.values_mut().for_each(compact_set);
            map.shrink_to_fit();
        }
    }

    /// Folds in one stored record (the JSON bytes, without the 32-byte hash prefix). A record
    /// that does not parse is counted in `skipped` and otherwise ignored, so one corrupt record
    /// cannot stop every projection; `annals verify` is the tool that names it.
    pub fn apply(&mut self, seq: u64, bytes: &[u8]) -> Result<(), FoldError> {
        let fact = Fact::parse(seq, bytes);
        if self.records.keeps_records() && fact.is_some() {
            self.records.keep(seq, sled::IVec::from(bytes));
        }
        self.apply_parsed(seq, fact)
    }

    /// Folds in one record as the log handed it out, kept only when this knowledge keeps
    /// its records (see [`Knowledge::new`]).
    pub fn apply_record(&mut self, seq: u64, record: sled::IVec) -> Result<(), FoldError> {
        let fact = Fact::parse(seq, &record);
        self.apply_read(seq, fact, record)
    }

    /// Folds in one record already parsed by [`Fact::parse`] (`None`: it did not parse),
    /// with the record it was parsed from (kept only when this knowledge keeps its records).
    pub fn apply_read(
        &mut self,
        seq: u64,
        fact: Option<Fact>,
        record: sled::IVec,
    ) -> Result<(), FoldError> {
        if self.records.keeps_records() && fact.is_some() && seq == self.seq + 1 {
            self.records.keep(seq, record);
        }
        self.apply_parsed(seq, fact)
    }

    /// Folds in one record already parsed by [`Fact::parse`] (`None`: it did not parse).
    /// Parsing is the costly, pure half of a fold; callers may do it in parallel and then
    /// apply the results here in seq order. The record itself is not kept: use
    /// [`Knowledge::apply_read`] for knowledge that keeps its records.
    pub fn apply_parsed(&mut self, seq: u64, fact: Option<Fact>) -> Result<(), FoldError> {
        if seq != self.seq + 1 {
            return Err(FoldError::OutOfOrder {
                have: self.seq,
                got: seq,
            });
        }
        self.seq = seq;
        match fact {
            Some(fact) => self.insert(fact),
            None => {
                tracing::warn!(seq, "projections: unparsable record skipped");
                self.skipped += 1;
            }
        }
        Ok(())
    }

    /// Adds a fact (just parsed, or loaded from a save): indexes it and links it to the
    /// fact it corrects or retracts. Facts must come in seq order. Never parses JSON: every
    /// reference was found when the fact was parsed.
    pub fn insert(&mut self, fact: Fact) {
        let ix = self.store.push(&fact);
        if fact.seq > self.seq {
            self.seq = fact.seq;
        }
        if let Some(key) = uuid_key(fact.id()) {
            self.by_id.insert(key, ix, &self.store);
        }
        if fact.event_kind().is_some_and(EventKind::listed_by_type) {
            push(&mut self.by_kind, fact.kind(), ix);
        }
        if let Some(p) = fact.process() {
            push_set(&mut self.by_process, p, ix);
        }
        let by_time_built = self.by_time.any();
        // A registry entry (registration or update) is not an event of the actor's.
        let registration = matches!(
            fact.event_kind(),
            Some(EventKind::ActorRegistered | EventKind::ActorUpdated)
        );
        // The actors' kept orders hold what their sets hold: a fact joins an order when it
        // joins the actor's set.
        let mut by_time_places: Vec<(Box<str>, Ix, bool, bool)> = Vec::new();
        for (role, s) in fact.refs() {
            match role {
                Role::Actor if is_actor(s) => {
                    let new = push_set(&mut self.by_actor, s, ix);
                    if by_time_built {
                        by_time_places.push((s.into(), ix, registration, new));
                    }
                }
                Role::Source => {
                    push_set(&mut self.by_source, s, ix);
                }
                Role::Talks => push(&mut self.by_talks, s, ix),
                _ => {}
            }
        }
        let link = match fact.event_kind() {
            Some(EventKind::EventCorrected) => Some(true),
            Some(EventKind::EventRetracted) => Some(false),
            _ => None,
        };
        let target =
            link.and_then(|_| uuid_key(fact.target()).and_then(|k| self.by_id.get(k, &self.store)));
        if let (Some(is_correction), Some(target)) = (link, target) {
            if by_time_built {
                self.by_time.mark_special(target, &self.by_actor);
            }
            if is_correction {
                self.corrections.entry(target).or_default().push(ix);
                let target_kind = self.store.get(target).event_kind();
                let names_actors = target_kind.is_some_and(EventKind::names_actors);
                if matches!(
                    target_kind,
                    Some(EventKind::MeetingHeld | EventKind::TalksStatusChanged)
                ) {
                    // A correction may move a meeting or a status change to other talks: every
                    // id-like string its patch writes may be the talks it is now about.
                    for (role, s) in fact.refs() {
                        if role == Role::PatchActor {
                            push(&mut self.by_talks, s, target);
                        }
                    }
                }
                if names_actors {
                    for (role, s) in fact.refs() {
                        if role == Role::PatchActor {
                            let new = push_set(&mut self.by_actor, s, target);
                            if by_time_built {
                                by_time_places.push((s.into(), target, true, new));
                            }
                        }
                    }
                }
            } else {
                self.retractions.entry(target).or_default().push(ix);
            }
        }
        for (actor, at, special, new) in by_time_places {
            self.by_time.place(&self.store, &actor, at, special, new);
        }
    }

    /// Reads the rows a save holds from its `pages` from now on (see [`FactStore::page_out`]):
    /// the rows before `saved` (a count of facts) leave the heap, up to the last full page.
    /// With no row saved yet, only sets where the next saves' rows will be read.
    pub fn page_out(&mut self, pages: &Arc<RowPages>, saved: usize) -> Result<(), SegmentError> {
        self.store.page_out(pages, saved)
    }

    /// [`Knowledge::page_out`] during a load, which keeps the tail's room for the rows still
    /// to come.
    pub fn page_out_loading(
        &mut self,
        pages: &Arc<RowPages>,
        saved: usize,
    ) -> Result<(), SegmentError> {
        self.store.page_out_loading(pages, saved)
    }

    /// [`Knowledge::page_out`] to the pages already set (none set: nothing to do).
    pub fn page_out_current(&mut self, saved: usize) -> Result<(), SegmentError> {
        match self.store.pages().cloned() {
            Some(pages) => self.store.page_out(&pages, saved),
            None => Ok(()),
        }
    }

    /// Where the rows are paged, if they are.
    pub fn row_pages(&self) -> Option<&Arc<RowPages>> {
        self.store.pages()
    }

    /// Every fact, in seq order.
    pub fn facts(&self) -> &FactStore {
        &self.store
    }

    /// One fact.
    pub fn fact(&self, ix: Ix) -> FactRef<'_> {
        self.store.get(ix)
    }

    /// The seq of a fact, without reading its row (a saved row may be on a page).
    pub fn seq_of(&self, ix: Ix) -> u64 {
        self.store.seq(ix)
    }

    /// The facts of a type, in seq order: of a type views list by type
    /// ([`EventKind::listed_by_type`]); no other type is indexed.
    pub fn of_kind(&self, kind: EventKind) -> &[Ix] {
        debug_assert!(
            kind.listed_by_type(),
            "{} is not in the type index: add it to EventKind::listed_by_type",
            kind.name()
        );
        self.by_kind
            .get(kind.name())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The facts of a process recorded by seq `cut`, in seq order. Facts are numbered in
    /// seq order, so those after the cut are cut off by one search of the runs, whatever the
    /// process holds.
    pub fn of_process(&self, process: &str, cut: u64) -> impl Iterator<Item = Ix> + '_ {
        let known = self.known_by(cut);
        self.by_process
            .get(process)
            .into_iter()
            .flat_map(move |set| set.range(..known))
    }

    /// A process's facts recorded by seq `cut`: how many, its first fact ever and its last
    /// one by the cut; `None` when it has none by then.
    pub fn process_span(&self, process: &str, cut: u64) -> Option<(u64, Ix, Ix)> {
        let set = self.by_process.get(process)?;
        let count = set.range_cardinality(..self.known_by(cut));
        let last = set.select(u32::try_from(count.checked_sub(1)?).ok()?)?;
        Some((count, set.min()?, last))
    }

    /// How many facts were recorded by seq `cut`: the number of the first fact after it.
    fn known_by(&self, cut: u64) -> Ix {
        Ix::try_from(self.store.count_upto(cut)).unwrap_or(Ix::MAX)
    }

    /// Every process named so far.
    pub fn processes(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_process.keys().map(AsRef::as_ref).collect();
        v.sort_unstable();
        v
    }

    /// The meetings that may fulfil talks `talks_id` and the status changes that may be about
    /// them, each once, in seq order: those whose recorded data names them, and those a
    /// correction may have made name them. A view keeps those whose data at its cut does.
    pub fn about_talks(&self, talks_id: &str) -> Vec<Ix> {
        let mut v = self.by_talks.get(talks_id).cloned().unwrap_or_default();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The facts that name an actor, each once, in seq order (a correction may have added its
    /// target: views re-check the effective data).
    pub fn of_actor(&self, actor: &str) -> Vec<Ix> {
        self.by_actor
            .get(actor)
            .map(|set| set.iter().collect())
            .unwrap_or_default()
    }

    /// The facts that name an actor, each once, in the actor view's order (by when they
    /// occurred, [`asof::sort_key`], then seq) and counted cheaply ([`ActorOrder`]). Built
    /// the first time it is asked for (one parse of each fact's `occurred`), then kept as
    /// facts are folded.
    pub fn of_actor_by_time(&self, actor: &str) -> Arc<ActorOrder> {
        if let Some(order) = self.by_time.get(actor) {
            return order;
        }
        let by_ix = self.of_actor(actor);
        if by_ix.is_empty() {
            // An actor no fact names keeps no entry: a request cannot make the map grow.
            return Arc::default();
        }
        let mut keyed: Vec<((String, u64), Ix)> = by_ix
            .iter()
            .map(|&ix| (time_key(&self.store, ix), ix))
            .collect();
        keyed.sort_unstable();
        let special = by_ix
            .iter()
            .copied()
            .filter(|&ix| {
                self.ever_corrected(ix)
                    || self.retractions.contains_key(&ix)
                    || matches!(
                        self.fact(ix).event_kind(),
                        Some(EventKind::ActorRegistered | EventKind::ActorUpdated)
                    )
            })
            .collect();
        let order = Arc::new(ActorOrder {
            by_time: keyed.into_iter().map(|(_, ix)| ix).collect(),
            special,
        });
        self.by_time.keep(actor, order)
    }

    /// Where a fact sits in the actor view's order: its occurred sort key, then its seq.
    pub fn time_key(&self, ix: Ix) -> (String, u64) {
        time_key(&self.store, ix)
    }

    /// The fact recorded at `seq`, if that record was folded as a fact.
    pub fn ix_of_seq(&self, seq: u64) -> Option<Ix> {
        let at = self.store.count_upto(seq.checked_sub(1)?);
        (at < self.store.len() && self.store.get(at as Ix).seq == seq).then_some(at as Ix)
    }

    /// Every actor named so far.
    pub fn actors(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_actor.keys().map(AsRef::as_ref).collect();
        v.sort_unstable();
        v
    }

    /// The facts that cite a source or are about it, in seq order, each once.
    pub fn of_source(&self, source: &str) -> Vec<Ix> {
        self.by_source
            .get(source)
            .map(|set| set.iter().collect())
            .unwrap_or_default()
    }

    /// Every source named so far.
    pub fn sources(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_source.keys().map(AsRef::as_ref).collect();
        v.sort_unstable();
        v
    }

    /// The fact with this event id.
    pub fn by_id(&self, id: &str) -> Option<Ix> {
        uuid_key(id).and_then(|k| self.by_id.get(k, &self.store))
    }

    /// Whether a fact was known at `cut` (recorded by then).
    pub fn known(&self, ix: Ix, cut: u64) -> bool {
        self.seq_of(ix) <= cut
    }

    /// The retraction in force for a fact at `cut`, if any. A retraction that was itself
    /// retracted by then does not count (that reinstates the fact).
    pub fn retraction_at(&self, ix: Ix, cut: u64) -> Option<Ix> {
        self.retractions.get(&ix)?.iter().copied().find(|&r| {
            self.seq_of(r) <= cut
                && self
                    .retractions
                    .get(&r)
                    .is_none_or(|rr| rr.iter().all(|&x| self.seq_of(x) > cut))
        })
    }

    /// Whether a fact is in the default view at `cut`: recorded by then and not retracted.
    pub fn visible(&self, ix: Ix, cut: u64) -> bool {
        self.known(ix, cut) && self.retraction_at(ix, cut).is_none()
    }

    /// Whether any correction was ever recorded for a fact (in force or not).
    pub fn ever_corrected(&self, ix: Ix) -> bool {
        self.corrections.get(&ix).is_some_and(|c| !c.is_empty())
    }

    /// The corrections of a fact in force at `cut` (recorded by then, not retracted), in order.
    pub fn corrections_at(&self, ix: Ix, cut: u64) -> Vec<Ix> {
        self.corrections
            .get(&ix)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|&c| self.visible(c, cut))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The recorded payload of a fact, parsed (read from its record).
    pub fn raw_data(&self, ix: Ix) -> Value {
        let f = self.fact(ix);
        self.records
            .get(f.seq)
            .and_then(|r| from_record(f.data_in(&r)))
            .unwrap_or(Value::Null)
    }

    /// The payload as known at `cut`: the recorded data upcast to the current schema version,
    /// with the JSON Patches of the corrections recorded by then applied in order. A patch
    /// that does not apply (its test fails, its path is gone) is skipped, as the writer could
    /// not check it against the data.
    pub fn data_at(&self, ix: Ix, cut: u64) -> Value {
        let kind = self.fact(ix).event_kind();
        let mut data = self.raw_data(ix);
        upcast_data(kind, &mut data);
        for c in self.corrections_at(ix, cut) {
            apply_patch(&mut data, &self.raw_data(c));
            // A correction may write a version-1 form back (a string tone, a plain provision).
            upcast_data(kind, &mut data);
        }
        data
    }

    /// The occurred object of a fact, parsed.
    pub fn occurred(&self, ix: Ix) -> Value {
        serde_json::from_str(&self.fact(ix).occurred_json()).unwrap_or(Value::Null)
    }

    /// The evidence of a fact, parsed (read from its record).
    pub fn evidence(&self, ix: Ix) -> Value {
        let f = self.fact(ix);
        self.records
            .get(f.seq)
            .and_then(|r| from_record(f.evidence_in(&r)))
            .unwrap_or(Value::Null)
    }

    /// The seq of the last fact recorded at or before `timestamp` (an RFC 3339 UTC timestamp
    /// in the log's own format), by binary search: `recorded_at` never decreases with seq.
    pub fn seq_at_time(&self, timestamp: &str) -> u64 {
        let (mut lo, mut hi) = (0, self.store.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if *self.store.get(mid as Ix).recorded_at() <= *timestamp {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            0
        } else {
            self.store.get(lo as Ix - 1).seq
        }
    }

    /// The fact as a view shows it at `cut`: envelope fields, effective data, and which
    /// corrections made it so.
    pub fn fact_json(&self, ix: Ix, cut: u64) -> Value {
        let f = self.fact(ix);
        let corrections: Vec<Value> = self
            .corrections_at(ix, cut)
            .iter()
            .map(|&c| Value::String(self.fact(c).id().to_string()))
            .collect();
        let mut out = serde_json::json!({
            "event_id": f.id(),
            "seq": f.seq,
            "type": f.kind(),
            "recorded_at": f.recorded_at(),
            "recorded_by": f.recorded_by(),
            "occurred": self.occurred(ix),
            "data": self.data_at(ix, cut),
            "evidence": self.evidence(ix),
        });
        if let Some(obj) = out.as_object_mut() {
            if let Some(p) = f.process() {
                obj.insert("process".into(), Value::String(p.to_string()));
            }
            if !corrections.is_empty() {
                obj.insert("corrected_by".into(), Value::Array(corrections));
            }
        }
        out
    }
}

/// Parses a field read from a record; a field that is not there (the record read back is
/// not the fact's) or does not parse counts as a failed read, so the view is refused rather
/// than shown with a null.
fn from_record(field: Option<&str>) -> Option<Value> {
    let parsed = field.and_then(|text| serde_json::from_str(text).ok());
    if parsed.is_none() {
        super::records::read_failed();
    }
    parsed
}

/// Applies the `patch` of an `event.corrected` payload to `data`, or leaves it unchanged.
pub fn apply_patch(data: &mut Value, correction: &Value) {
    let Some(patch) = correction.get("patch") else {
        return;
    };
    let Ok(patch) = serde_json::from_value::<json_patch::Patch>(patch.clone()) else {
        return;
    };
    let mut patched = data.clone();
    if json_patch::patch(&mut patched, &patch).is_ok() {
        *data = patched;
    }
}

#[cfg(test)]
mod tests;
