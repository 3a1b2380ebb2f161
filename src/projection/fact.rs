//! One recorded event as the projections keep it ([`Fact`]): compact facts derived from the
//! record, never the record itself. A fact keeps the small envelope fields the indexes and
//! view filters read on every fact (id, type, `recorded_at`, `recorded_by`, `occurred`,
//! process, the target of a correction) and the references (actors, sources), copied into one
//! text, plus where `data` and `evidence` sit in the record, which a view reads from the log
//! on demand (`records.rs`). All of it is found by one borrowed scan of the record. Parsing is
//! pure, so facts of different records are parsed in parallel. Saves up to layout 5 stored a
//! fact as it is ([`StoredFact`]); layout 7 stores the compact rows the knowledge holds
//! (`knowledge/compact/segment.rs`), and [`StoredFact`] stays the form facts are compared and
//! shown in. This module must never index facts (that is `knowledge.rs`), never keep a record
//! or any part of its payload, and never change a [`Role`]'s number (saves hold it).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;
use smallvec::SmallVec;

use crate::event::EventKind;
use views::{EnvelopeView, EvidenceRef, PatchRefs, Refs, TargetRef};

mod views;

/// A span: (start, end) byte offsets of a fact's text, or (`data`, `evidence`) of its record.
pub type Span = (u32, u32);

/// What a [`Ref`] names. Saves store it as its one-byte discriminant (the bare `u8` the
/// format has always held), so the values must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// An actor or organisation the payload names.
    Actor = 0,
    /// A source the evidence cites, or the source a source event is about.
    Source = 1,
    /// An actor-like string inside a correction's patch: indexed under the corrected fact.
    PatchActor = 2,
    /// The target of a correction or retraction (kept in the spans, never in the refs).
    Target = 3,
    /// The talks a meeting fulfils or a talks status change is about: what lets the calendar
    /// find a talks entry's fate without walking every meeting and status change of the log.
    Talks = 4,
}

impl Role {
    /// The role with this discriminant, if any.
    pub(in crate::projection) fn from_u8(b: u8) -> Option<Role> {
        [
            Role::Actor,
            Role::Source,
            Role::PatchActor,
            Role::Target,
            Role::Talks,
        ]
        .into_iter()
        .find(|r| *r as u8 == b)
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(*self as u8)
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        let b = u8::deserialize(d)?;
        Role::from_u8(b)
            .ok_or_else(|| serde::de::Error::custom(format_args!("no reference role {b}")))
    }
}

/// A reference a fact makes (an actor, a source), as a role and a span of the fact's text.
/// Kept with the fact so that indexing it (and loading it from a save) never parses the
/// payload again.
pub type Ref = (Role, u32, u32);

/// A fact's references: most facts name one actor and one source, so two fit without a heap
/// allocation per fact.
pub type RefList = SmallVec<[Ref; 2]>;

/// An envelope field whose span a fact keeps; the discriminant is its position in
/// `Fact::spans`. Saves store the spans in this order, so it must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum Field {
    Id = 0,
    Kind = 1,
    RecordedAt = 2,
    RecordedBy = 3,
    /// JSON text.
    Occurred = 4,
    /// Empty when the record has no process.
    Process = 5,
    /// JSON text, a span of the record (read on demand), not of the fact's text.
    Data = 6,
    /// JSON text, a span of the record (read on demand), not of the fact's text.
    Evidence = 7,
    /// The event id a correction or retraction targets (empty for other types).
    Target = 8,
}

impl Field {
    /// Whether the field's span is one of the record (the payload a fact never keeps).
    fn in_record(i: usize) -> bool {
        i == Field::Data as usize || i == Field::Evidence as usize
    }
}

/// Number of spans a fact keeps.
const SPANS: usize = Field::Target as usize + 1;

/// One recorded event as the projections keep it: compact facts derived from the record,
/// never the record. The small fields every index and view filter reads (`occurred` as its
/// JSON text) and the references are copied, unescaped, into one text; `data` and
/// `evidence` are spans of the record, which a view reads from the log when it shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// Global position.
    pub seq: u64,
    /// The record's length: a record read back that is not this long is not this fact's.
    record_len: u32,
    /// The small fields and the references, one after the other.
    text: Box<str>,
    /// The spans of the fields a [`Field`] names, at its position.
    spans: [Span; SPANS],
    /// Whether the record has a process.
    has_process: bool,
    /// The type, when this build knows it (`None`: the span is read).
    kind: Option<EventKind>,
    /// The actors and sources the fact names, in indexing order (spans of the text).
    refs: RefList,
}

/// A fact as a save stores it: all of it but the type, which is read back from its name.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredFact {
    seq: u64,
    record_len: u32,
    text: String,
    spans: [Span; SPANS],
    has_process: bool,
    refs: RefList,
}

impl StoredFact {
    /// The stored form of a fact given by its fields, as [`Fact::parse`] lays out its text:
    /// the small fields in [`Field`] order (`fields`: id, type, `recorded_at`,
    /// `recorded_by`, occurred, process, target), then the references.
    pub(in crate::projection) fn assemble<'a>(
        seq: u64,
        record_len: u32,
        fields: [&str; SPANS - 2],
        (data, evidence): (Span, Span),
        has_process: bool,
        refs: impl Iterator<Item = (Role, &'a str)>,
    ) -> StoredFact {
        let mut text = String::new();
        let mut copy = |s: &str| -> Span {
            let at = text.len();
            text.push_str(s);
            (at as u32, text.len() as u32)
        };
        let mut spans = [(0, 0); SPANS];
        let mut fields = fields.into_iter();
        for (i, span) in spans.iter_mut().enumerate() {
            *span = match i {
                _ if i == Field::Data as usize => data,
                _ if i == Field::Evidence as usize => evidence,
                _ => copy(fields.next().unwrap_or("")),
            };
        }
        let refs = refs
            .map(|(role, s)| {
                let (a, b) = copy(s);
                (role, a, b)
            })
            .collect();
        StoredFact {
            seq,
            record_len,
            text,
            spans,
            has_process,
            refs,
        }
    }

    /// The seq of the record it describes.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The fact it stores, or `None` when its spans do not fit its text or record (a
    /// damaged save).
    pub fn into_fact(self) -> Option<Fact> {
        let text = self.text.into_boxed_str();
        let in_text = |(a, b): Span| {
            a <= b && text.is_char_boundary(a as usize) && text.is_char_boundary(b as usize)
        };
        let spans_fit = self.spans.iter().enumerate().all(|(i, &(a, b))| {
            if Field::in_record(i) {
                a <= b && b <= self.record_len
            } else {
                in_text((a, b))
            }
        });
        if !spans_fit || !self.refs.iter().all(|&(_, a, b)| in_text((a, b))) {
            return None;
        }
        let mut fact = Fact {
            seq: self.seq,
            record_len: self.record_len,
            text,
            spans: self.spans,
            has_process: self.has_process,
            kind: None,
            refs: self.refs,
        };
        fact.kind = EventKind::from_name(fact.span(Field::Kind));
        Some(fact)
    }
}

impl Fact {
    fn span(&self, field: Field) -> &str {
        self.slice(self.spans[field as usize])
    }

    /// The text of a span of the fact's text. Spans are char boundaries (checked when a save
    /// is loaded), so this never fails in practice; if it did, the field reads as empty
    /// rather than panicking.
    fn slice(&self, (a, b): Span) -> &str {
        self.text.get(a as usize..b as usize).unwrap_or("")
    }

    /// The text of a record span of `record`, or `None` when `record` is not the record this
    /// fact was derived from (not its length) or the span is not text.
    fn record_field<'r>(&self, record: &'r [u8], field: Field) -> Option<&'r str> {
        if record.len() != self.record_len as usize {
            return None;
        }
        let (a, b) = self.spans[field as usize];
        std::str::from_utf8(record.get(a as usize..b as usize)?).ok()
    }

    /// The record's length and where `data` and `evidence` sit in it.
    pub(in crate::projection) fn record_spans(&self) -> (u32, Span, Span) {
        (
            self.record_len,
            self.spans[Field::Data as usize],
            self.spans[Field::Evidence as usize],
        )
    }

    /// What a save keeps of this fact.
    pub fn stored(&self) -> StoredFact {
        StoredFact {
            seq: self.seq,
            record_len: self.record_len,
            text: self.text.to_string(),
            spans: self.spans,
            has_process: self.has_process,
            refs: self.refs.clone(),
        }
    }

    /// Event id.
    pub fn id(&self) -> &str {
        self.span(Field::Id)
    }

    /// Event type, as recorded.
    pub fn kind(&self) -> &str {
        match self.kind {
            Some(kind) => kind.name(),
            None => self.span(Field::Kind),
        }
    }

    /// Event type, or `None` for a type this build does not know.
    pub fn event_kind(&self) -> Option<EventKind> {
        self.kind
    }

    /// Transaction time.
    pub fn recorded_at(&self) -> &str {
        self.span(Field::RecordedAt)
    }

    /// Who recorded it.
    pub fn recorded_by(&self) -> &str {
        self.span(Field::RecordedBy)
    }

    /// When it happened, as recorded (JSON text).
    pub fn occurred_json(&self) -> &str {
        self.span(Field::Occurred)
    }

    /// The negotiation it belongs to.
    pub fn process(&self) -> Option<&str> {
        self.has_process.then(|| self.span(Field::Process))
    }

    /// The payload as recorded, before any correction (JSON text), read from `record`: the
    /// record this fact was derived from (`None` for another one).
    pub fn data_in<'r>(&self, record: &'r [u8]) -> Option<&'r str> {
        self.record_field(record, Field::Data)
    }

    /// The evidence as recorded (JSON text), read from `record`, as [`Fact::data_in`].
    pub fn evidence_in<'r>(&self, record: &'r [u8]) -> Option<&'r str> {
        self.record_field(record, Field::Evidence)
    }

    /// The event id a correction or retraction targets (empty for other types).
    pub(super) fn target(&self) -> &str {
        self.span(Field::Target)
    }

    /// Builds a fact from a stored record, or `None` if it does not parse as an envelope.
    /// Pure: facts of different records can be parsed in parallel. Keeps nothing of the
    /// record but what it derives.
    pub fn parse(seq: u64, bytes: &[u8]) -> Option<Fact> {
        // No separate UTF-8 pass over the record: the parser checks every string it borrows
        // and every raw value it keeps, which is all a fact ever reads.
        let (spans, has_process, kind, refs, extra) = Fact::scan(seq, bytes)?;
        // The scan's spans run over the record, then `extra`; the small fields and the
        // references are copied from there into the fact's own text.
        let whole = |(a, b): Span| -> &str {
            let (a, b, n) = (a as usize, b as usize, bytes.len());
            if b <= n {
                bytes
                    .get(a..b)
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .unwrap_or("")
            } else {
                extra.get(a.saturating_sub(n)..b - n).unwrap_or("")
            }
        };
        let mut text = String::new();
        let mut copy = |span: Span| -> Span {
            let s = whole(span);
            let at = text.len();
            text.push_str(s);
            (at as u32, text.len() as u32)
        };
        let mut own = [(0, 0); SPANS];
        for (i, &span) in spans.iter().enumerate() {
            own[i] = if Field::in_record(i) {
                span
            } else {
                copy(span)
            };
        }
        let refs = refs
            .iter()
            .map(|&(role, a, b)| {
                let (a, b) = copy((a, b));
                (role, a, b)
            })
            .collect();
        Some(Fact {
            seq,
            record_len: u32::try_from(bytes.len()).ok()?,
            text: text.into_boxed_str(),
            spans: own,
            has_process,
            kind,
            refs,
        })
    }

    /// The references the fact makes, in indexing order, with their text.
    pub(super) fn refs(&self) -> impl Iterator<Item = (Role, &str)> {
        self.refs
            .iter()
            .map(|&(role, a, b)| (role, self.slice((a, b))))
    }

    /// Finds the spans and references of a record; strings that are not verbatim slices of
    /// `text` (escaped ones) go to the returned `extra`, which follows the record.
    #[allow(clippy::type_complexity)]
    fn scan(
        seq: u64,
        text: &[u8],
    ) -> Option<([Span; SPANS], bool, Option<EventKind>, RefList, String)> {
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
        spans[Field::Id as usize] = place(&view.id, &mut extra);
        spans[Field::Kind as usize] = place(&view.kind, &mut extra);
        spans[Field::RecordedAt as usize] = place(&view.recorded_at, &mut extra);
        spans[Field::RecordedBy as usize] = place(&view.recorded_by, &mut extra);
        spans[Field::Occurred as usize] = match view.occurred {
            Some(r) => raw(r),
            None => place("null", &mut extra),
        };
        if let Some(p) = &view.process {
            spans[Field::Process as usize] = place(p, &mut extra);
        }
        spans[Field::Data as usize] = raw(view.data);
        spans[Field::Evidence as usize] = raw(view.evidence);
        let kind = EventKind::from_name(&view.kind);
        let data = view.data.get();
        let mut refs = RefList::new();
        let mut add = |role: Role, s: &str, refs: &mut RefList| {
            let (a, b) = place(s, &mut extra);
            refs.push((role, a, b));
        };
        let about_source = kind.is_some_and(EventKind::is_about_source);
        if (about_source || kind.is_some_and(EventKind::names_actors))
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
                add(Role::Actor, one, &mut refs);
            }
            for many in [&r.parties, &r.founders, &r.joint_with, &r.co_proposers] {
                for one in many {
                    add(Role::Actor, one, &mut refs);
                }
            }
            for p in &r.participants {
                add(Role::Actor, &p.actor, &mut refs);
            }
            if about_source && let Some(s) = &r.source_id {
                add(Role::Source, s, &mut refs);
            }
            let talks = match kind {
                Some(EventKind::MeetingHeld) => &r.fulfils,
                Some(EventKind::TalksStatusChanged) => &r.talks_id,
                _ => &None,
            };
            if let Some(t) = talks {
                add(Role::Talks, t, &mut refs);
            }
        }
        if let Ok(items) = serde_json::from_str::<SmallVec<[EvidenceRef; 2]>>(view.evidence.get()) {
            for item in &items {
                add(Role::Source, &item.source, &mut refs);
            }
        }
        if kind.is_some_and(EventKind::targets_event) {
            if let Ok(t) = serde_json::from_str::<TargetRef>(data) {
                let mut target = RefList::new();
                add(Role::Target, &t.target, &mut target);
                if let Some(&(_, a, b)) = target.first() {
                    spans[Field::Target as usize] = (a, b);
                }
            }
            if kind == Some(EventKind::EventCorrected)
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
                    add(Role::PatchActor, s, &mut refs);
                }
            }
        }
        Some((spans, view.process.is_some(), kind, refs, extra))
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

/// Whether a string in an actor's place can name one: an id of the `prefix:slug` form, whatever
/// the prefix (ids are opaque: `st:ru` is as good an actor id as `actor:putin`; the writer has
/// checked role fields by kind). Free text in a correction's patch (a quote, a label) has spaces
/// or no prefix and is not indexed.
pub(super) fn is_actor(s: &str) -> bool {
    match s.split_once(':') {
        Some((prefix, slug)) => {
            !prefix.is_empty()
                && !slug.is_empty()
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
                && !slug.bytes().any(|b| b.is_ascii_whitespace())
        }
        None => false,
    }
}

#[cfg(test)]
pub(super) mod tests;
