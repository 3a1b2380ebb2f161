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

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// A span of [`Fact::text`]: (start, end) byte offsets.
type Span = (u32, u32);

/// One recorded event as the projections keep it: the stored record JSON in ONE allocation,
/// with the byte spans of the fields the views use (`occurred`, `data` and `evidence` are
/// JSON text, parsed only when a view needs them). A string field written with escapes is
/// unescaped once and appended after the record, so every accessor is a plain slice.
#[derive(Debug, Clone)]
pub struct Fact {
    /// Global position.
    pub seq: u64,
    /// The stored record JSON, then any unescaped string fields.
    text: Box<str>,
    /// Length of the record JSON at the start of `text`.
    record_len: u32,
    /// Spans of id, type, recorded_at, recorded_by, occurred, process, data, evidence.
    spans: [Span; 8],
    /// Whether the record has a process.
    has_process: bool,
}

impl PartialEq for Fact {
    fn eq(&self, other: &Fact) -> bool {
        self.seq == other.seq && self.record() == other.record()
    }
}

impl Fact {
    fn span(&self, i: usize) -> &str {
        let (a, b) = self.spans[i];
        self.text.get(a as usize..b as usize).unwrap_or("")
    }

    /// The stored record JSON (what a checkpoint keeps).
    pub fn record(&self) -> &str {
        self.text.get(..self.record_len as usize).unwrap_or("")
    }

    /// Event id.
    pub fn id(&self) -> &str {
        self.span(0)
    }

    /// Event type.
    pub fn kind(&self) -> &str {
        self.span(1)
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

    /// Builds a fact from a stored record, or `None` if it does not parse as an envelope.
    pub fn parse(seq: u64, bytes: &[u8]) -> Option<Fact> {
        let text = std::str::from_utf8(bytes).ok()?;
        let view: EnvelopeView = serde_json::from_str(text).ok()?;
        if view.seq != seq {
            return None;
        }
        let base = text.as_ptr() as usize;
        let mut extra = String::new();
        let mut span_of = |raw: &RawValue, string: bool| -> Option<Span> {
            let r = raw.get();
            let start = r.as_ptr() as usize - base;
            if !string {
                return Some((start as u32, (start + r.len()) as u32));
            }
            if !r.contains('\\') {
                // A JSON string without escapes: its text is between the quotes.
                return Some(((start + 1) as u32, (start + r.len() - 1) as u32));
            }
            let s: String = serde_json::from_str(r).ok()?;
            let at = text.len() + extra.len();
            extra.push_str(&s);
            Some((at as u32, (at + s.len()) as u32))
        };
        let spans = [
            span_of(view.id, true)?,
            span_of(view.kind, true)?,
            span_of(view.recorded_at, true)?,
            span_of(view.recorded_by, true)?,
            span_of(view.occurred, false)?,
            match view.process {
                Some(p) => span_of(p, true)?,
                None => (0, 0),
            },
            span_of(view.data, false)?,
            span_of(view.evidence, false)?,
        ];
        let has_process = view.process.is_some();
        let owned: Box<str> = if extra.is_empty() {
            text.into()
        } else {
            let mut all = String::with_capacity(text.len() + extra.len());
            all.push_str(text);
            all.push_str(&extra);
            all.into_boxed_str()
        };
        Some(Fact {
            seq,
            text: owned,
            record_len: text.len() as u32,
            spans,
            has_process,
        })
    }
}

/// The stored envelope, borrowed: only what a [`Fact`] keeps (serde skips the rest unparsed).
/// Strings are taken raw (with their quotes) so that they are always borrowed.
#[derive(Deserialize)]
struct EnvelopeView<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    seq: u64,
    #[serde(rename = "type", borrow)]
    kind: &'a RawValue,
    #[serde(borrow)]
    recorded_at: &'a RawValue,
    #[serde(borrow)]
    recorded_by: &'a RawValue,
    #[serde(borrow)]
    occurred: &'a RawValue,
    #[serde(default, borrow)]
    process: Option<&'a RawValue>,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(borrow)]
    evidence: &'a RawValue,
}

/// The actor and source references of a payload, borrowed. Only the fields of the types that
/// carry references are read; everything else is skipped by serde without being built.
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

/// Types whose payload names actors (and `position.stated`'s `target`, an actor there).
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
    /// Event id (as u128) to fact index: corrections and retractions name their target by id.
    by_id: HashMap<u128, Ix>,
    /// Fact index to the `event.corrected` facts that target it, in seq order.
    corrections: HashMap<Ix, Vec<Ix>>,
    /// Fact index to the `event.retracted` facts that target it, in seq order.
    retractions: HashMap<Ix, Vec<Ix>>,
    /// Facts by event type.
    by_kind: HashMap<String, Vec<Ix>>,
    /// Facts by process.
    by_process: HashMap<String, Vec<Ix>>,
    /// Facts naming an actor (a correction may add an entry; views re-check the effective data).
    by_actor: HashMap<String, Vec<Ix>>,
    /// Facts citing a source, and the events about the source itself.
    by_source: HashMap<String, Vec<Ix>>,
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

fn uuid_key(id: &str) -> Option<u128> {
    uuid::Uuid::parse_str(id).ok().map(|u| u.as_u128())
}

fn push(map: &mut HashMap<String, Vec<Ix>>, key: &str, ix: Ix) {
    match map.get_mut(key) {
        Some(v) => {
            if v.last() != Some(&ix) {
                v.push(ix);
            }
        }
        None => {
            map.insert(key.to_string(), vec![ix]);
        }
    }
}

impl Knowledge {
    /// Empty knowledge (before seq 1).
    pub fn new() -> Knowledge {
        Knowledge::default()
    }

    /// Folds in one stored record (the JSON bytes, without the 32-byte hash prefix). A record
    /// that does not parse is counted in `skipped` and otherwise ignored, so one corrupt record
    /// cannot stop every projection; `annals verify` is the tool that names it.
    pub fn apply(&mut self, seq: u64, bytes: &[u8]) -> Result<(), FoldError> {
        if seq != self.seq + 1 {
            return Err(FoldError::OutOfOrder {
                have: self.seq,
                got: seq,
            });
        }
        self.seq = seq;
        let Some(fact) = Fact::parse(seq, bytes) else {
            tracing::warn!(seq, "projections: unparsable record skipped");
            self.skipped += 1;
            return Ok(());
        };
        self.insert(fact);
        Ok(())
    }

    /// Adds a fact loaded from a checkpoint (or just folded): indexes it and links it to the
    /// fact it corrects or retracts. Facts must come in seq order.
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
        let kind = fact.kind();
        if (ACTOR_TYPES.contains(&kind) || SOURCE_TYPES.contains(&kind))
            && let Ok(refs) = serde_json::from_str::<Refs>(fact.data_json())
        {
            self.index_refs(kind, &refs, ix);
        }
        if let Ok(items) = serde_json::from_str::<Vec<EvidenceRef>>(fact.evidence_json()) {
            for item in items {
                push(&mut self.by_source, &item.source, ix);
            }
        }
        let link = match fact.kind() {
            "event.corrected" => Some(true),
            "event.retracted" => Some(false),
            _ => None,
        };
        let target = link.and_then(|_| {
            serde_json::from_str::<TargetRef>(fact.data_json())
                .ok()
                .and_then(|t| uuid_key(&t.target))
                .and_then(|k| self.by_id.get(&k).copied())
        });
        self.facts.push(fact);
        if let (Some(is_correction), Some(target)) = (link, target) {
            if is_correction {
                self.corrections.entry(target).or_default().push(ix);
                // A correction may name actors the original did not: index the patched data.
                let kind = self.facts[target as usize].kind().to_string();
                if ACTOR_TYPES.contains(&kind.as_str()) {
                    let data = self.data_at(target, u64::MAX).to_string();
                    if let Ok(refs) = serde_json::from_str::<Refs>(&data) {
                        self.index_refs(&kind, &refs, target);
                    }
                }
            } else {
                self.retractions.entry(target).or_default().push(ix);
            }
        }
    }

    fn index_refs(&mut self, kind: &str, refs: &Refs, ix: Ix) {
        let mut actors: Vec<&str> = Vec::new();
        for one in [
            &refs.speaker,
            &refs.holder,
            &refs.assessed_by,
            &refs.proposer,
            &refs.announced_by,
            &refs.actor_id,
        ]
        .into_iter()
        .flatten()
        {
            actors.push(one);
        }
        for many in [
            &refs.parties,
            &refs.founders,
            &refs.joint_with,
            &refs.co_proposers,
        ] {
            actors.extend(many.iter().map(|s| s.as_ref()));
        }
        actors.extend(refs.participants.iter().map(|p| p.actor.as_ref()));
        for a in actors {
            if a.starts_with("actor:") || a.starts_with("org:") {
                push(&mut self.by_actor, a, ix);
            }
        }
        if SOURCE_TYPES.contains(&kind)
            && let Some(s) = &refs.source_id
        {
            push(&mut self.by_source, s, ix);
        }
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
        let mut v: Vec<&str> = self.by_process.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The facts that name an actor (may hold duplicates after corrections; see `dedup`).
    pub fn of_actor(&self, actor: &str) -> &[Ix] {
        self.by_actor.get(actor).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every actor named so far.
    pub fn actors(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_actor.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The facts that cite a source or are about it.
    pub fn of_source(&self, source: &str) -> &[Ix] {
        self.by_source.get(source).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every source named so far.
    pub fn sources(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_source.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The fact with this event id.
    pub fn by_id(&self, id: &str) -> Option<Ix> {
        uuid_key(id).and_then(|k| self.by_id.get(&k).copied())
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
}
