//! Borrowed serde views of a stored record: only the fields a [`Fact`](super::Fact) keeps or
//! the references it indexes; serde skips everything else unparsed. They must never own a copy
//! of the record's text.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The stored envelope, borrowed: only what a [`Fact`] keeps (serde skips the rest unparsed).
#[derive(Deserialize)]
pub(super) struct EnvelopeView<'a> {
    #[serde(borrow)]
    pub(super) id: Cow<'a, str>,
    pub(super) seq: u64,
    #[serde(rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) recorded_at: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) recorded_by: Cow<'a, str>,
    /// Absent from a knowledge event submitted without a world time.
    #[serde(default, borrow)]
    pub(super) occurred: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub(super) process: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) data: &'a RawValue,
    #[serde(borrow)]
    pub(super) evidence: &'a RawValue,
}

/// The actor and source references of a payload, and the talks a meeting fulfils or a talks
/// status change is about, borrowed. Only the fields of the types that
/// carry references are read; everything else is skipped by serde without being built. The
/// actor fields must be the ones `actors::roles` reads (a test there holds them equal): the
/// actor view trusts this index for facts that were never corrected.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Refs<'a> {
    #[serde(borrow)]
    pub(super) speaker: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) holder: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) assessed_by: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) proposer: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) announced_by: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) actor_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) source_id: Option<Cow<'a, str>>,
    /// The talks a meeting fulfils (read for `meeting.held` only).
    #[serde(borrow)]
    pub(super) fulfils: Option<Cow<'a, str>>,
    /// The talks a status change is about (read for `talks.status_changed` only).
    #[serde(borrow)]
    pub(super) talks_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) parties: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) founders: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) joint_with: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) co_proposers: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) participants: Vec<ParticipantRef<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ParticipantRef<'a> {
    #[serde(borrow)]
    pub(super) actor: Cow<'a, str>,
}

/// An evidence item's source, borrowed.
#[derive(Deserialize)]
pub(super) struct EvidenceRef<'a> {
    #[serde(borrow)]
    pub(super) source: Cow<'a, str>,
}

/// The target of a correction or retraction, borrowed.
#[derive(Deserialize)]
pub(super) struct TargetRef<'a> {
    #[serde(borrow)]
    pub(super) target: Cow<'a, str>,
}

/// The values a correction's patch writes.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct PatchRefs {
    pub(super) patch: Vec<PatchOpRef>,
}

#[derive(Deserialize)]
pub(super) struct PatchOpRef {
    #[serde(default)]
    pub(super) value: Option<Value>,
}
