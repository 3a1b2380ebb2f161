//! What an append is made of and what it answers: the request (`Append`, `NewEvent`, the
//! expected version, the ids and references type rules computed), a restore of exported records, the
//! positions and the refusals. Plain data: this module must never touch the store or the
//! writer's state, so the writer is the only place where an append is decided.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::record::{Hash, Record};

/// What the client expects a stream's version to be before its append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must exist.
    Exists,
    /// The stream's version must be exactly this (0 means: no stream yet).
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::Exists => f.write_str("exists"),
            ExpectedVersion::Exact(n) => write!(f, "{n}"),
        }
    }
}

/// A reference an event needs to exist before it, with where in the request it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// An id must have been introduced, with this kind.
    Id {
        /// The referenced id (`actor:putin`).
        id: String,
        /// The kind it must have, as the registry stores it ("an actor").
        kind: &'static str,
        /// The event types that introduce such ids, for the refusal ("actor.registered").
        introduced_by: &'static str,
        /// JSON pointer (absolute in the request body) of the referring field.
        pointer: String,
        /// Whether the id must be known; when not, only a known id of another kind is
        /// refused.
        must_exist: bool,
        /// Whether a restore checks it too. Only references the log has always checked
        /// (sources) are: an export written before kinds were checked must still restore.
        on_restore: bool,
    },
    /// An event with this id must be in the log.
    Event {
        /// The referenced event id.
        id: Uuid,
        /// JSON pointer (within the event) of the referring field.
        pointer: String,
    },
}

impl Requirement {
    /// Why this requirement is not met, as (pointer, message), or `None` when it is. What is
    /// known comes from the caller: the kind an id was introduced with, and whether an event is
    /// there. The writer asks its log and overlay; a dry run asks the log plus earlier lines;
    /// both refuse in the same words.
    pub fn unmet<E>(
        &self,
        kind_of: impl FnOnce(&str) -> Result<Option<String>, E>,
        has_event: impl FnOnce(&Uuid) -> Result<bool, E>,
    ) -> Result<Option<(String, String)>, E> {
        Ok(match self {
            Requirement::Id {
                id,
                kind,
                introduced_by,
                pointer,
                must_exist,
                ..
            } => match kind_of(id)? {
                None if !must_exist => None,
                None => Some((
                    pointer.clone(),
                    format!(
                        "`{id}` is not registered: no {introduced_by} introduces it (expected {kind})"
                    ),
                )),
                Some(k) if !k.is_empty() && k != *kind => {
                    Some((pointer.clone(), format!("`{id}` is {k}, not {kind}")))
                }
                Some(_) => None,
            },
            Requirement::Event { id, pointer } => (!has_event(id)?)
                .then(|| (pointer.clone(), format!("event {id} is not in the log"))),
        })
    }
}

/// An id an event introduces: a registry entry (once in the log's lifetime) or the thing a
/// fact is about (again by every claim about it). Either way an id keeps its first kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    /// The id (`actor:putin`, `mtg:2026-01-22`).
    pub id: String,
    /// Its registry key (`entity:actor:putin`, `source:src:x`); see [`crate::log`]'s layout.
    pub key: String,
    /// Its kind, as the registry stores it ("an actor").
    pub kind: String,
    /// Whether a second introduction is refused (registries) or is one more claim (facts).
    pub once: bool,
    /// JSON pointer (absolute in the request body) of the introducing field.
    pub pointer: String,
    /// For a registry entry (or an update of one): what the event states about it, so the
    /// writer can judge a re-registration against the entry as updated so far.
    pub entry: Option<Entry>,
}

impl Declaration {
    /// Whether this declaration may introduce its id, given the kind and seq of whatever
    /// introduced it before (`prior`; seq 0: earlier in the same request or dry run), as the
    /// writer and the dry run both decide: `Ok(true)` when the id is new, `Ok(false)` when it
    /// is one more claim about a known thing. `index` is the event's place in the request.
    pub fn admit(&self, index: usize, prior: Option<(String, u64)>) -> Result<bool, AppendError> {
        match prior {
            None => Ok(true),
            Some((kind, _)) if !kind.is_empty() && kind != self.kind => {
                Err(AppendError::MissingReference {
                    index,
                    pointer: self.pointer.clone(),
                    what: format!(
                        "`{}` is {kind}; an id keeps the kind it was introduced with, so it cannot also be {}",
                        self.id, self.kind
                    ),
                })
            }
            Some((_, seq)) if self.once => Err(AppendError::AlreadyDeclared {
                index,
                pointer: self.pointer.clone(),
                key: self.key.clone(),
                seq,
            }),
            Some(_) => Ok(false),
        }
    }
}

/// How an event changes a registry entry, given the entry so far (`None`: not known yet), the
/// event's type and its payload. Computed by `event/`; the log only calls it.
pub type EntryRule = fn(Option<&Value>, &str, &Value) -> EntryChange;

/// What an event does to a registry entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryChange {
    /// The entry becomes this (a first registration, or an update).
    Set(Value),
    /// The event states nothing the entry does not already say: a no-op that answers with the
    /// existing registration.
    Same,
    /// The event contradicts the entry at these pointers (relative to its `data`).
    Differs(Vec<String>),
}

/// A registry entry's content as one event states it, and the rule that folds it.
#[derive(Clone)]
pub struct Entry {
    /// The event type.
    pub event_type: String,
    /// The payload.
    pub stated: Value,
    /// JSON pointer (absolute in the request body) of the payload.
    pub at: String,
    /// The event type that changes such an entry, for a refusal.
    pub update_with: String,
    /// The rule.
    pub rule: EntryRule,
}

impl Entry {
    /// The refusal of an event that contradicts the entry of `id` (registered at `seq`; 0:
    /// earlier in the same request) at `fields`, relative to the payload.
    pub fn contradiction(
        &self,
        index: usize,
        id: &str,
        fields: &[String],
        seq: u64,
    ) -> AppendError {
        AppendError::Contradicts {
            index,
            id: id.to_string(),
            fields: fields.iter().map(|f| format!("{}{f}", self.at)).collect(),
            update_with: self.update_with.clone(),
            seq,
        }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("event_type", &self.event_type)
            .field("stated", &self.stated)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

// The rule is a function of the type, so two entries of one type and payload are equal.
impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.event_type == other.event_type && self.stated == other.stated && self.at == other.at
    }
}

impl Eq for Entry {}

/// Ids an event introduces and references it needs; computed by `event::rules`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Ids this event introduces.
    pub declares: Vec<Declaration>,
    /// What must exist before this event.
    pub requires: Vec<Requirement>,
}

/// A JSON value held as the text a record stores: serde_json's compact encoding of the parsed
/// value (members sorted by key, no whitespace). The writer joins it into the record as it is;
/// only a rare reader (a repeated id's comparison, a dry run) parses it back. It must never
/// hold text in any other encoding: every hash of the log depends on these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(String);

impl JsonText {
    /// The text of `value`.
    pub fn of(value: &Value) -> JsonText {
        // `Display` is the compact encoding; writing into a `String` cannot fail.
        JsonText(value.to_string())
    }

    /// Text already in that encoding: serde_json's own serialisation of a value read without
    /// building it (`event::fast`).
    pub(crate) fn encoded(text: String) -> JsonText {
        JsonText(text)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value, parsed again.
    pub fn value(&self) -> Value {
        // The text was written by serde_json, so it parses; `Null` cannot be reached.
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// Whether the value is `null`.
    pub fn is_null(&self) -> bool {
        self.0 == "null"
    }
}

impl From<Value> for JsonText {
    fn from(value: Value) -> JsonText {
        JsonText::of(&value)
    }
}

/// A validated event on its way into the log.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Event id: client-chosen, or a fresh UUIDv7.
    pub id: Uuid,
    /// Event type.
    pub event_type: String,
    /// Schema version.
    pub schema_version: u32,
    /// When it happened (`null`: not given, left out of the record).
    pub occurred: JsonText,
    /// The negotiation it belongs to.
    pub process: Option<String>,
    /// Payload.
    pub data: JsonText,
    /// Evidence items.
    pub evidence: JsonText,
    /// Meta.
    pub meta: Option<JsonText>,
    /// References to check at append time.
    pub refs: References,
    /// Whether the client chose the id (only then can it already be in the log).
    pub client_id: bool,
}

/// One append request: all of its events land together or none does.
#[derive(Debug, Clone)]
pub struct Append {
    /// Target stream.
    pub stream: String,
    /// Optimistic concurrency check.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<NewEvent>,
    /// Who appends (recorded as `recorded_by`).
    pub principal: String,
    /// A flag shared by a pipeline of appends (import): once the writer refuses one of them it
    /// sets the flag and refuses every later one, so nothing after a bad line is written even
    /// though the lines were queued before the refusal was known.
    pub abort_on_refusal: Option<Arc<AtomicBool>>,
}

/// Where an appended event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Event id.
    pub id: Uuid,
    /// Global seq.
    pub seq: u64,
    /// Stream version.
    pub version: u64,
    /// Chain hash.
    pub hash: Hash,
    /// Transaction time.
    pub recorded_at: String,
    /// The event was not written: it registers again what the log, or an earlier event of
    /// the request, holds, and this is that registration's position (a registry no-op).
    pub repeat: bool,
}

/// The answer to a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Positions, one per event, in request order.
    pub positions: Vec<Position>,
    /// The stream's version after the append.
    pub stream_version: u64,
    /// True when every event was already in the log with the same content.
    pub duplicate: bool,
}

/// A record from an export, to be restored verbatim (import keeps ids, seqs and hashes).
#[derive(Debug, Clone)]
pub struct Restore {
    /// The record.
    pub record: Record,
    /// The hash the export claims for it.
    pub hash: Hash,
    /// References to check, as for an append.
    pub refs: References,
}

/// Why an append was refused. Nothing of a refused request was written.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The stream's version did not match the expectation.
    #[error("stream `{stream}` is at version {current}, expected {expected}")]
    WrongExpectedVersion {
        /// Stream name.
        stream: String,
        /// What the client expected.
        expected: ExpectedVersion,
        /// The stream's current version (0 if it does not exist).
        current: u64,
    },
    /// An event id is already in the log with different content.
    #[error("event id {id} is already in the log (seq {seq}) with different content")]
    IdConflict {
        /// Index of the event in the request.
        index: usize,
        /// The id.
        id: Uuid,
        /// Where the original is.
        seq: u64,
    },
    /// Some events of the request are already in the log and some are not.
    #[error(
        "event {index} ({id}) is already in the log but other events of the request are not; resend only the new ones"
    )]
    PartialDuplicate {
        /// Index of the first duplicate.
        index: usize,
        /// Its id.
        id: Uuid,
    },
    /// The same id appears twice in one request.
    #[error("event id {id} appears more than once in the request")]
    DuplicateInRequest {
        /// Index of the second occurrence.
        index: usize,
        /// The id.
        id: Uuid,
    },
    /// A referenced id or event does not exist, or an id is of another kind than the field
    /// needs (or than it was introduced with).
    #[error("{what}")]
    MissingReference {
        /// Index of the event in the request.
        index: usize,
        /// Pointer within the event.
        pointer: String,
        /// What is wrong, in words: "`issue:territory` is an issue, not an actor".
        what: String,
    },
    /// A registry key is declared a second time.
    #[error("`{key}` is already registered (seq {seq})")]
    AlreadyDeclared {
        /// Index of the event in the request.
        index: usize,
        /// Pointer within the event.
        pointer: String,
        /// The key.
        key: String,
        /// Where it was first declared (0: earlier in this request or group).
        seq: u64,
    },
    /// A registration contradicts the registry entry it names, as updated so far.
    #[error(
        "`{id}` is already registered (seq {seq}) and this registration differs from it at {}; to change the entry, append `{update_with}`",
        fields.join(", ")
    )]
    Contradicts {
        /// Index of the event in the request.
        index: usize,
        /// The registered id.
        id: String,
        /// The differing fields, as absolute JSON pointers.
        fields: Vec<String>,
        /// The update event type to use instead.
        update_with: String,
        /// Where the entry was registered (0: earlier in this request or group).
        seq: u64,
    },
    /// A restored record does not continue the log (import of an export).
    #[error("record {seq} cannot be restored: {reason}")]
    RestoreMismatch {
        /// Seq of the record.
        seq: u64,
        /// What did not match.
        reason: String,
    },
    /// An earlier append of the same pipeline was refused, so this one was not attempted.
    #[error("not attempted: an earlier append of the same import was refused")]
    Aborted,
    /// The writer is gone or has failed; the log accepts no more appends until restart.
    #[error("the log writer is unavailable: {0}")]
    Unavailable(String),
}

/// The pending answer to a queued append.
pub struct Ticket(pub(super) oneshot::Receiver<Result<Appended, AppendError>>);

impl Ticket {
    /// Waits until the append is durable (or refused).
    pub async fn wait(self) -> Result<Appended, AppendError> {
        self.0
            .await
            .map_err(|_| AppendError::Unavailable("the writer stopped before answering".into()))?
    }
}
