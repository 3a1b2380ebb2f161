//! The knowledge layer every read model shares: one entry per recorded event, kept exactly as
//! recorded, plus the links that change what we know about it (corrections, retractions) and
//! the indexes the read models query (by process, actor, source, type). It is a pure fold of
//! the log: the same records in the same order always give the same knowledge. Because every
//! entry keeps the seq it was recorded at and every correction and retraction is its own
//! entry, any earlier state of knowledge (`known_at`) is a filter over this one: nothing is
//! overwritten. This module must never read or write storage, and never parse more of a record
//! on the fold's hot path than the indexes need.

use std::borrow::Cow;
use std::collections::HashMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use smallvec::SmallVec;

/// A span of [`Fact::text`]: (start, end) byte offsets.
pub type Span = (u32, u32);

/// What a [`Ref`] names.
const ROLE_ACTOR: u8 = 0;
const ROLE_SOURCE: u8 = 1;
/// An actor-like string inside a correction's patch: indexed under the corrected fact.
const ROLE_PATCH_ACTOR: u8 = 2;
/// The target of a correction or retraction (kept in the spans, not in the refs).
const ROLE_TARGET: u8 = 3;

/// A reference a fact makes (an actor, a source), as a role and a span of [`Fact::text`].
/// Kept with the fact so that indexing it (and loading it from a checkpoint) never parses the
/// payload again.
pub type Ref = (u8, u32, u32);

/// A fact's references: most facts name one actor and one source, so two fit without a heap
/// allocation per fact.
pub type RefList = SmallVec<[Ref; 2]>;

/// Number of spans a fact keeps.
const SPANS: usize = 9;

/// Every event type the schemas define (a unit test holds the two lists equal). A fact keeps
/// its type as an index into this table, so reading it, which every view filter does, costs
/// no UTF-8 check of the record.
const KINDS: [&str; 18] = [
    "actor.registered",
    "agreement.reached",
    "event.corrected",
    "event.retracted",
    "issue.defined",
    "issue.status_changed",
    "meeting.held",
    "organisation.founded",
    "plan.proposed",
    "plan.revised",
    "position.stated",
    "source.assessed",
    "source.corrected",
    "source.registered",
    "source.withdrawn",
    "statement.made",
    "talks.scheduled",
    "talks.status_changed",
];

/// The index of a type in [`KINDS`], or `u8::MAX` for a type this build does not know (the
/// span is read then).
fn kind_index(kind: &str) -> u8 {
    KINDS
        .iter()
        .position(|k| *k == kind)
        .map_or(u8::MAX, |i| i as u8)
}

/// One recorded event as the projections keep it: the stored record itself (a view of the
/// log's value, never a copy), with the byte spans of the fields the views use (`occurred`,
/// `data` and `evidence` are JSON text, parsed only when a view needs them) and of the
/// references the indexes use. A string written with escapes is unescaped once into `extra`,
/// whose spans start after the record, so every accessor is a plain slice.
#[derive(Debug, Clone)]
pub struct Fact {
    /// Global position.
    pub seq: u64,
    /// The stored record JSON.
    record: sled::IVec,
    /// Unescaped string fields (spans from `record.len()` on point here).
    extra: Box<str>,
    /// Spans of id, type, recorded_at, recorded_by, occurred, process, data, evidence, and
    /// the target of a correction or retraction.
    spans: [Span; SPANS],
    /// Whether the record has a process.
    has_process: bool,
    /// The type as an index into [`KINDS`].
    kind_ix: u8,
    /// The actors and sources the fact names, in indexing order.
    refs: RefList,
}

impl PartialEq for Fact {
    fn eq(&self, other: &Fact) -> bool {
        self.seq == other.seq && self.record == other.record
    }
}

/// A fact as a checkpoint stores it: everything but the record itself, which the log holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredFact {
    seq: u64,
    record_len: u32,
    extra: String,
    spans: [Span; SPANS],
    has_process: bool,
    refs: RefList,
}

impl StoredFact {
    /// The seq of the record it describes.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Joins the stored description with the record (from the log), or `None` when they do
    /// not belong together (the log holds a different record than was checkpointed).
    pub fn into_fact(self, seq: u64, record: sled::IVec) -> Option<Fact> {
        if seq != self.seq || record.len() != self.record_len as usize {
            return None;
        }
        let len = (record.len() + self.extra.len()) as u32;
        let in_bounds = |(a, b): Span| a <= b && b <= len;
        if !self.spans.iter().all(|&s| in_bounds(s))
            || !self.refs.iter().all(|&(_, a, b)| in_bounds((a, b)))
        {
            return None;
        }
        let mut fact = Fact {
            seq,
            record,
            extra: self.extra.into_boxed_str(),
            spans: self.spans,
            has_process: self.has_process,
            kind_ix: u8::MAX,
            refs: self.refs,
        };
        fact.kind_ix = kind_index(fact.span(1));
        Some(fact)
    }
}

impl Fact {
    fn span(&self, i: usize) -> &str {
        self.slice(self.spans[i])
    }

    /// The text of a span: of the record, or of `extra` past its end. Spans are char
    /// boundaries of a validated record, so the per-span check never fails in practice; if
    /// it did, the field reads as empty rather than panicking.
    fn slice(&self, (a, b): Span) -> &str {
        let (a, b) = (a as usize, b as usize);
        let n = self.record.len();
        if b <= n {
            self.record
                .get(a..b)
                .and_then(|s| std::str::from_utf8(s).ok())
                .unwrap_or("")
        } else {
            self.extra.get(a.saturating_sub(n)..b - n).unwrap_or("")
        }
    }

    /// The stored record bytes.
    pub fn record(&self) -> &[u8] {
        &self.record
    }

    /// What a checkpoint keeps of this fact (everything but the record).
    pub fn stored(&self) -> StoredFact {
        StoredFact {
            seq: self.seq,
            record_len: self.record.len() as u32,
            extra: self.extra.to_string(),
            spans: self.spans,
            has_process: self.has_process,
            refs: self.refs.clone(),
        }
    }

    /// Event id.
    pub fn id(&self) -> &str {
        self.span(0)
    }

    /// Event type.
    pub fn kind(&self) -> &str {
        match KINDS.get(self.kind_ix as usize) {
            Some(kind) => kind,
            None => self.span(1),
        }
    }

    /// Transaction time.
    pub fn recorded_at(&self) -> &str {
        self.span(2)
    }

    /// Who recorded it.
    pub fn recorded_by(&self) -> &str {
        self.span(3)
    }

    /// When it happened, as recorded (JSON text).
    pub fn occurred_json(&self) -> &str {
        self.span(4)
    }

    /// The negotiation it belongs to.
    pub fn process(&self) -> Option<&str> {
        self.has_process.then(|| self.span(5))
    }

    /// The payload as recorded, before any correction (JSON text).
    pub fn data_json(&self) -> &str {
        self.span(6)
    }

    /// The evidence as recorded (JSON text).
    pub fn evidence_json(&self) -> &str {
        self.span(7)
    }

    /// The event id a correction or retraction targets (empty for other types).
    fn target(&self) -> &str {
        self.span(8)
    }

    /// Builds a fact from a stored record (copying it), or `None` if it does not parse as an
    /// envelope.
    pub fn parse(seq: u64, bytes: &[u8]) -> Option<Fact> {
        Fact::parse_owned(seq, sled::IVec::from(bytes))
    }

    /// Builds a fact from a stored record it keeps (a shared view, no copy), or `None` if it
    /// does not parse as an envelope. Pure: facts of different records can be parsed in
    /// parallel.
    pub fn parse_owned(seq: u64, record: sled::IVec) -> Option<Fact> {
        // No separate UTF-8 pass over the record: the parser checks every string it borrows
        // and every raw value it keeps, which is all a fact ever reads.
        let (spans, has_process, kind_ix, refs, extra) = Fact::scan(seq, &record)?;
        Some(Fact {
            seq,
            record,
            extra: extra.into_boxed_str(),
            spans,
            has_process,
            kind_ix,
            refs,
        })
    }

    /// Finds the spans and references of a record; strings that are not verbatim slices of
    /// `text` (escaped ones) go to the returned `extra`, which follows the record.
    #[allow(clippy::type_complexity)]
    fn scan(seq: u64, text: &[u8]) -> Option<([Span; SPANS], bool, u8, RefList, String)> {
        let view: EnvelopeView = serde_json::from_slice(text).ok()?;
        if view.seq != seq {
            return None;
        }
        let base = text.as_ptr() as usize;
        let mut extra = String::new();
        // A str borrowed from `text` is a span of it; anything else is appended to `extra`.
        let place = |s: &str, extra: &mut String| -> Span {
            let at = s.as_ptr() as usize;
            if at >= base && at + s.len() <= base + text.len() {
                ((at - base) as u32, (at - base + s.len()) as u32)
            } else {
                let at = text.len() + extra.len();
                extra.push_str(s);
                (at as u32, (at + s.len()) as u32)
            }
        };
        let raw = |r: &RawValue| -> Span {
            let g = r.get();
            let at = g.as_ptr() as usize - base;
            (at as u32, (at + g.len()) as u32)
        };
        let mut spans = [(0, 0); SPANS];
        spans[0] = place(&view.id, &mut extra);
        spans[1] = place(&view.kind, &mut extra);
        spans[2] = place(&view.recorded_at, &mut extra);
        spans[3] = place(&view.recorded_by, &mut extra);
        spans[4] = raw(view.occurred);
        if let Some(p) = &view.process {
            spans[5] = place(p, &mut extra);
        }
        spans[6] = raw(view.data);
        spans[7] = raw(view.evidence);
        let kind: &str = &view.kind;
        let data = view.data.get();
        let mut refs = RefList::new();
        let mut add = |role: u8, s: &str, refs: &mut RefList| {
            let (a, b) = place(s, &mut extra);
            refs.push((role, a, b));
        };
        let is_source_type = SOURCE_TYPES.contains(&kind);
        if (is_source_type || ACTOR_TYPES.contains(&kind))
            && let Ok(r) = serde_json::from_str::<Refs>(data)
        {
            for one in [
                &r.speaker,
                &r.holder,
                &r.assessed_by,
                &r.proposer,
                &r.announced_by,
                &r.actor_id,
            ]
            .into_iter()
            .flatten()
            {
                add(ROLE_ACTOR, one, &mut refs);
            }
            for many in [&r.parties, &r.founders, &r.joint_with, &r.co_proposers] {
                for one in many {
                    add(ROLE_ACTOR, one, &mut refs);
                }
            }
            for p in &r.participants {
                add(ROLE_ACTOR, &p.actor, &mut refs);
            }
            if is_source_type && let Some(s) = &r.source_id {
                add(ROLE_SOURCE, s, &mut refs);
            }
        }
        if let Ok(items) = serde_json::from_str::<SmallVec<[EvidenceRef; 2]>>(view.evidence.get()) {
            for item in &items {
                add(ROLE_SOURCE, &item.source, &mut refs);
            }
        }
        if kind == "event.corrected" || kind == "event.retracted" {
            if let Ok(t) = serde_json::from_str::<TargetRef>(data) {
                let mut target = RefList::new();
                add(ROLE_TARGET, &t.target, &mut target);
                if let Some(&(_, a, b)) = target.first() {
                    spans[8] = (a, b);
                }
            }
            if kind == "event.corrected"
                && let Ok(p) = serde_json::from_str::<PatchRefs>(data)
            {
                // A correction may name actors the original did not. Every actor-like
                // string its patch writes is indexed under the corrected fact; the views
                // re-check the effective data, so a string that is not a role costs nothing.
                let mut found = Vec::new();
                for op in &p.patch {
                    if let Some(v) = &op.value {
                        actor_strings(v, &mut found);
                    }
                }
                for s in &found {
                    add(ROLE_PATCH_ACTOR, s, &mut refs);
                }
            }
        }
        Some((spans, view.process.is_some(), kind_index(kind), refs, extra))
    }
}

/// Collects every string in `v` that names an actor or organisation.
fn actor_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if is_actor(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| actor_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| actor_strings(x, out)),
        _ => {}
    }
}

fn is_actor(s: &str) -> bool {
    s.starts_with("actor:") || s.starts_with("org:")
}

/// The stored envelope, borrowed: only what a [`Fact`] keeps (serde skips the rest unparsed).
#[derive(Deserialize)]
struct EnvelopeView<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    seq: u64,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    recorded_at: Cow<'a, str>,
    #[serde(borrow)]
    recorded_by: Cow<'a, str>,
    #[serde(borrow)]
    occurred: &'a RawValue,
    #[serde(default, borrow)]
    process: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(borrow)]
    evidence: &'a RawValue,
}

/// The actor and source references of a payload, borrowed. Only the fields of the types that
/// carry references are read; everything else is skipped by serde without being built. The
/// actor fields must be the ones `actors::roles` reads (a test there holds them equal): the
/// actor view trusts this index for facts that were never corrected.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Refs<'a> {
    #[serde(borrow)]
    speaker: Option<Cow<'a, str>>,
    #[serde(borrow)]
    holder: Option<Cow<'a, str>>,
    #[serde(borrow)]
    assessed_by: Option<Cow<'a, str>>,
    #[serde(borrow)]
    proposer: Option<Cow<'a, str>>,
    #[serde(borrow)]
    announced_by: Option<Cow<'a, str>>,
    #[serde(borrow)]
    actor_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    parties: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    founders: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    joint_with: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    co_proposers: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    participants: Vec<ParticipantRef<'a>>,
}

#[derive(Deserialize)]
struct ParticipantRef<'a> {
    #[serde(borrow)]
    actor: Cow<'a, str>,
}

/// An evidence item's source, borrowed.
#[derive(Deserialize)]
struct EvidenceRef<'a> {
    #[serde(borrow)]
    source: Cow<'a, str>,
}

/// The target of a correction or retraction, borrowed.
#[derive(Deserialize)]
struct TargetRef<'a> {
    #[serde(borrow)]
    target: Cow<'a, str>,
}

/// The values a correction's patch writes.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PatchRefs {
    patch: Vec<PatchOpRef>,
}

#[derive(Deserialize)]
struct PatchOpRef {
    #[serde(default)]
    value: Option<Value>,
}

/// Types whose payload names actors in the fields [`Refs`] reads.
const ACTOR_TYPES: &[&str] = &[
    "actor.registered",
    "statement.made",
    "position.stated",
    "meeting.held",
    "talks.scheduled",
    "talks.status_changed",
    "plan.proposed",
    "plan.revised",
    "organisation.founded",
    "agreement.reached",
    "issue.status_changed",
];

/// Types about a source itself (indexed under that source).
const SOURCE_TYPES: &[&str] = &[
    "source.registered",
    "source.assessed",
    "source.corrected",
    "source.withdrawn",
];

/// Index of a fact in [`Knowledge::facts`].
pub type Ix = u32;

/// The shared knowledge: every recorded event and its indexes, up to [`Knowledge::seq`].
#[derive(Debug, Default, Clone)]
pub struct Knowledge {
    /// The last seq folded in (every record up to it has been seen).
    pub seq: u64,
    /// Every recorded event, in seq order.
    facts: Vec<Fact>,
    /// Event id to fact index: corrections and retractions name their target by id.
    by_id: IdIndex,
    /// Fact index to the `event.corrected` facts that target it, in seq order.
    corrections: HashMap<Ix, Vec<Ix>>,
    /// Fact index to the `event.retracted` facts that target it, in seq order.
    retractions: HashMap<Ix, Vec<Ix>>,
    /// Facts by event type.
    by_kind: FxHashMap<Box<str>, Vec<Ix>>,
    /// Facts by process.
    by_process: FxHashMap<Box<str>, Vec<Ix>>,
    /// Facts naming an actor (a correction may add an entry; views re-check the effective data).
    by_actor: FxHashMap<Box<str>, Vec<Ix>>,
    /// Facts citing a source, and the events about the source itself.
    by_source: FxHashMap<Box<str>, Vec<Ix>>,
    /// Records that could not be parsed (corruption), skipped by every view.
    pub skipped: u64,
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

/// Event ids to fact indexes. Ids minted by the server are UUIDv7, so they mostly arrive in
/// ascending order: those are appended to a sorted vector (sequential memory, no hashing,
/// binary-searched on the rare lookup); an id below the last one (a client's own id) goes to
/// a hash map. A hash map alone costs two cache misses per insert once it outgrows the cache,
/// which was the largest single cost of a rebuild at 1M events.
#[derive(Debug, Default, Clone)]
struct IdIndex {
    /// Ascending ids and, at the same position, their fact index.
    sorted: Vec<u128>,
    sorted_ix: Vec<Ix>,
    /// Ids that arrived out of order.
    other: FxHashMap<u128, Ix>,
}

impl IdIndex {
    fn reserve(&mut self, n: usize) {
        self.sorted.reserve(n);
        self.sorted_ix.reserve(n);
    }

    fn insert(&mut self, id: u128, ix: Ix) {
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

    fn get(&self, id: u128) -> Option<Ix> {
        match self.sorted.binary_search(&id) {
            Ok(at) => self.sorted_ix.get(at).copied(),
            Err(_) => self.other.get(&id).copied(),
        }
    }
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

impl Knowledge {
    /// Empty knowledge (before seq 1).
    pub fn new() -> Knowledge {
        Knowledge::default()
    }

    /// Makes room for `n` more facts (a rebuild knows how many are coming; growing the tables
    /// one doubling at a time would copy them over and over).
    pub fn reserve(&mut self, n: usize) {
        self.facts.reserve(n);
        self.by_id.reserve(n);
    }

    /// Folds in one stored record (the JSON bytes, without the 32-byte hash prefix). A record
    /// that does not parse is counted in `skipped` and otherwise ignored, so one corrupt record
    /// cannot stop every projection; `annals verify` is the tool that names it.
    pub fn apply(&mut self, seq: u64, bytes: &[u8]) -> Result<(), FoldError> {
        self.apply_parsed(seq, Fact::parse(seq, bytes))
    }

    /// Folds in one record already parsed by [`Fact::parse_owned`] (`None`: it did not parse).
    /// Parsing is the costly, pure half of a fold; callers may do it in parallel and then
    /// apply the results here in seq order.
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

    /// Adds a fact (just parsed, or loaded from a checkpoint): indexes it and links it to the
    /// fact it corrects or retracts. Facts must come in seq order. Never parses JSON: every
    /// reference was found when the fact was parsed.
    pub fn insert(&mut self, fact: Fact) {
        let ix = self.facts.len() as Ix;
        if fact.seq > self.seq {
            self.seq = fact.seq;
        }
        if let Some(key) = uuid_key(fact.id()) {
            self.by_id.insert(key, ix);
        }
        push(&mut self.by_kind, fact.kind(), ix);
        if let Some(p) = fact.process() {
            push(&mut self.by_process, p, ix);
        }
        for &(role, a, b) in fact.refs.iter() {
            let s = fact.slice((a, b));
            match role {
                ROLE_ACTOR if is_actor(s) => push(&mut self.by_actor, s, ix),
                ROLE_SOURCE => push(&mut self.by_source, s, ix),
                _ => {}
            }
        }
        let link = match fact.kind() {
            "event.corrected" => Some(true),
            "event.retracted" => Some(false),
            _ => None,
        };
        let target = link.and_then(|_| uuid_key(fact.target()).and_then(|k| self.by_id.get(k)));
        if let (Some(is_correction), Some(target)) = (link, target) {
            if is_correction {
                self.corrections.entry(target).or_default().push(ix);
                if ACTOR_TYPES.contains(&self.facts[target as usize].kind()) {
                    for &(role, a, b) in fact.refs.iter() {
                        if role == ROLE_PATCH_ACTOR {
                            push(&mut self.by_actor, fact.slice((a, b)), target);
                        }
                    }
                }
            } else {
                self.retractions.entry(target).or_default().push(ix);
            }
        }
        self.facts.push(fact);
    }

    /// Every fact, in seq order.
    pub fn facts(&self) -> &[Fact] {
        &self.facts
    }

    /// One fact.
    pub fn fact(&self, ix: Ix) -> &Fact {
        &self.facts[ix as usize]
    }

    /// The facts of a type, in seq order.
    pub fn of_kind(&self, kind: &str) -> &[Ix] {
        self.by_kind.get(kind).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The facts of a process, in seq order.
    pub fn of_process(&self, process: &str) -> &[Ix] {
        self.by_process
            .get(process)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Every process named so far.
    pub fn processes(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_process.keys().map(AsRef::as_ref).collect();
        v.sort_unstable();
        v
    }

    /// The facts that name an actor (may hold duplicates after corrections; see `dedup`).
    pub fn of_actor(&self, actor: &str) -> &[Ix] {
        self.by_actor.get(actor).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every actor named so far.
    pub fn actors(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_actor.keys().map(AsRef::as_ref).collect();
        v.sort_unstable();
        v
    }

    /// The facts that cite a source or are about it.
    pub fn of_source(&self, source: &str) -> &[Ix] {
        self.by_source.get(source).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every source named so far.
    pub fn sources(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_source.keys().map(AsRef::as_ref).collect();
        v.sort_unstable();
        v
    }

    /// The fact with this event id.
    pub fn by_id(&self, id: &str) -> Option<Ix> {
        uuid_key(id).and_then(|k| self.by_id.get(k))
    }

    /// Whether a fact was known at `cut` (recorded by then).
    pub fn known(&self, ix: Ix, cut: u64) -> bool {
        self.fact(ix).seq <= cut
    }

    /// The retraction in force for a fact at `cut`, if any. A retraction that was itself
    /// retracted by then does not count (that reinstates the fact).
    pub fn retraction_at(&self, ix: Ix, cut: u64) -> Option<Ix> {
        self.retractions.get(&ix)?.iter().copied().find(|&r| {
            self.fact(r).seq <= cut
                && self
                    .retractions
                    .get(&r)
                    .is_none_or(|rr| rr.iter().all(|&x| self.fact(x).seq > cut))
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

    /// The recorded payload of a fact, parsed.
    pub fn raw_data(&self, ix: Ix) -> Value {
        serde_json::from_str(self.fact(ix).data_json()).unwrap_or(Value::Null)
    }

    /// The payload as known at `cut`: the recorded data with the JSON Patches of the
    /// corrections recorded by then applied in order. A patch that does not apply (its test
    /// fails, its path is gone) is skipped, as the writer could not check it against the data.
    pub fn data_at(&self, ix: Ix, cut: u64) -> Value {
        let mut data = self.raw_data(ix);
        for c in self.corrections_at(ix, cut) {
            apply_patch(&mut data, &self.raw_data(c));
        }
        data
    }

    /// The occurred object of a fact, parsed.
    pub fn occurred(&self, ix: Ix) -> Value {
        serde_json::from_str(self.fact(ix).occurred_json()).unwrap_or(Value::Null)
    }

    /// The evidence of a fact, parsed.
    pub fn evidence(&self, ix: Ix) -> Value {
        serde_json::from_str(self.fact(ix).evidence_json()).unwrap_or(Value::Null)
    }

    /// The seq of the last fact recorded at or before `timestamp` (an RFC 3339 UTC timestamp
    /// in the log's own format), by binary search: `recorded_at` never decreases with seq.
    pub fn seq_at_time(&self, timestamp: &str) -> u64 {
        let n = self.facts.partition_point(|f| f.recorded_at() <= timestamp);
        if n == 0 { 0 } else { self.facts[n - 1].seq }
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

/// Removes repeated indexes (a correction can index a fact a second time), keeping order.
pub fn dedup(ixs: &[Ix]) -> Vec<Ix> {
    let mut seen = std::collections::HashSet::new();
    ixs.iter().copied().filter(|ix| seen.insert(*ix)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, id: &str, kind: &str, data: &str) -> Vec<u8> {
        format!(
            r#"{{"id":"{id}","seq":{seq},"stream":"s","version":{seq},"type":"{kind}","schema_version":1,"recorded_at":"2026-01-0{seq}T00:00:00.000000Z","recorded_by":"t","occurred":{{"precision":"unknown"}},"process":"p","data":{data},"evidence":[{{"source":"src:a","relation":"reports"}}],"prev_hash":"00"}}"#
        )
        .into_bytes()
    }

    const A: &str = "019be826-9000-701f-91c2-d6a7f0a1c8e9";
    const B: &str = "019be826-9001-701f-91c2-d6a7f0a1c8e9";
    const C: &str = "019be826-9002-701f-91c2-d6a7f0a1c8e9";

    #[test]
    fn a_correction_applies_from_its_own_seq_and_a_retraction_hides_from_its_own_seq() {
        let mut k = Knowledge::new();
        k.apply(
            1,
            &record(
                1,
                A,
                "statement.made",
                r#"{"statement_id":"statement:x","speaker":"actor:a","content":"old"}"#,
            ),
        )
        .unwrap();
        let patch = format!(
            r#"{{"target":"{A}","patch":[{{"op":"replace","path":"/content","value":"new"}}],"reason":"typo"}}"#
        );
        k.apply(2, &record(2, B, "event.corrected", &patch))
            .unwrap();
        let retract = format!(r#"{{"target":"{A}","reason":"wrong"}}"#);
        k.apply(3, &record(3, C, "event.retracted", &retract))
            .unwrap();
        assert_eq!(k.data_at(0, 1)["content"], "old");
        assert_eq!(k.data_at(0, 2)["content"], "new");
        assert!(k.visible(0, 2));
        assert!(!k.visible(0, 3));
        assert_eq!(k.of_actor("actor:a"), &[0]);
        assert_eq!(k.of_source("src:a").len(), 3);
        assert_eq!(k.seq_at_time("2026-01-02T12:00:00.000000Z"), 2);
    }

    #[test]
    fn records_out_of_order_are_refused() {
        let mut k = Knowledge::new();
        assert!(k.apply(2, b"{}").is_err());
        k.apply(1, b"not json").unwrap();
        assert_eq!(k.skipped, 1);
        assert_eq!(k.seq, 1);
    }

    #[test]
    fn a_correction_that_names_a_new_actor_indexes_the_corrected_fact_under_that_actor() {
        let mut k = Knowledge::new();
        k.apply(
            1,
            &record(
                1,
                A,
                "meeting.held",
                r#"{"meeting_id":"meeting:m","participants":[{"actor":"actor:a"}]}"#,
            ),
        )
        .unwrap();
        let patch = format!(
            r#"{{"target":"{A}","patch":[{{"op":"add","path":"/participants/-","value":{{"actor":"actor:b","side":"org:x"}}}}],"reason":"missed"}}"#
        );
        k.apply(2, &record(2, B, "event.corrected", &patch))
            .unwrap();
        assert_eq!(k.of_actor("actor:b"), &[0]);
        assert_eq!(k.of_actor("org:x"), &[0]);
        assert_eq!(k.of_actor("actor:a"), &[0]);
        assert_eq!(k.data_at(0, 2)["participants"][1]["actor"], "actor:b");
        assert_eq!(k.data_at(0, 1)["participants"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn escaped_strings_are_read_unescaped_and_survive_a_checkpoint_round_trip() {
        // `\u0061` is `a`: the speaker is `actor:a` and the process `p"q`.
        let bytes = record(
            1,
            A,
            "statement.made",
            r#"{"statement_id":"statement:x","speaker":"actor:\u0061","content":"c"}"#,
        );
        let text = String::from_utf8(bytes)
            .unwrap()
            .replace(r#""process":"p""#, r#""process":"p\"q""#);
        let fact = Fact::parse(1, text.as_bytes()).unwrap();
        assert_eq!(fact.process(), Some("p\"q"));
        let back = fact
            .stored()
            .into_fact(1, sled::IVec::from(text.as_bytes()))
            .unwrap();
        assert_eq!(back.process(), Some("p\"q"));
        assert_eq!(back.id(), A);
        let mut k = Knowledge::new();
        k.insert(back);
        assert_eq!(k.of_actor("actor:a"), &[0]);
        assert_eq!(k.of_process("p\"q"), &[0]);
    }

    #[test]
    fn a_checkpointed_fact_is_refused_for_a_record_it_does_not_describe() {
        let one = record(1, A, "statement.made", r#"{"speaker":"actor:a"}"#);
        let other = record(1, A, "statement.made", r#"{"speaker":"actor:bb"}"#);
        let stored = Fact::parse(1, &one).unwrap().stored();
        assert!(stored.into_fact(1, sled::IVec::from(other)).is_none());
        let stored = Fact::parse(1, &one).unwrap().stored();
        assert!(stored.into_fact(2, sled::IVec::from(one)).is_none());
    }

    #[test]
    fn ids_out_of_ascending_order_are_still_found() {
        let mut ids = IdIndex::default();
        ids.insert(10, 0);
        ids.insert(30, 1);
        ids.insert(20, 2);
        ids.insert(40, 3);
        assert_eq!(
            [10, 20, 30, 40, 50].map(|id| ids.get(id)),
            [Some(0), Some(2), Some(1), Some(3), None]
        );
    }

    #[test]
    fn the_kind_table_names_every_event_type_the_schemas_define() {
        let schemas = crate::event::schema::Schemas::load().unwrap();
        let mut defined: Vec<&str> = schemas.event_types().collect();
        defined.sort_unstable();
        assert_eq!(defined, KINDS.to_vec());
    }
}
