//! The typed forms of `schemas/event.json` and the `common.json` objects (each event type's
//! `data` is in `data.rs`): one struct per object, a member per property, unknown
//! members refused (`additionalProperties: false`), each member's leaf type holding its
//! definition's rule. These structs are only ever read to validate; they must never be a
//! second definition of the contract: the schemas are, and a test holds the two equal.

#![allow(dead_code)] // members are read by serde and compared, never otherwise used

use serde::Deserialize;

use super::fields::*;

/// An array of up to 200 distinct items, the schemas' usual list.
pub(super) type List<T> = Arr<T, 0, 200, true>;
/// `uuid`.
pub(super) type Uuid = Pat<UuidPattern>;
/// `url`.
pub(super) type Url = Pat<UrlPattern>;
/// `partial_datetime`.
pub(super) type PartialDateTime = Pat<PartialDateTimePattern>;
/// `date_or_datetime`.
pub(super) type DateOrDateTime = Pat<DateOrDateTimePattern>;

/// `event.json`: a submitted event. `type` is checked against the one list of event types;
/// `data` only for being an object (its type's struct reads it).
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Event {
    #[serde(default)]
    id: Maybe<Pat<UuidV7Pattern>>,
    #[serde(rename = "type")]
    event_type: EventTypeName,
    #[serde(default)]
    schema_version: Maybe<SchemaVersion>,
    #[serde(default)]
    occurred: Maybe<Obj<Occurred>>,
    #[serde(default)]
    process: Maybe<Pat<ProcessIdPattern>>,
    data: AnyObject,
    evidence: Arr<Obj<EvidenceItem>, 0, 200, false>,
    #[serde(default)]
    meta: Maybe<Obj<Meta>>,
}
impl ObjectRule for Event {}

/// `event_type`: a name of `EventKind`, the one list (a test holds it equal to the schema's
/// `enum`).
#[derive(PartialEq)]
struct EventTypeName;

impl<'de> Deserialize<'de> for EventTypeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if crate::event::EventKind::from_name(&s).is_some() {
            Ok(EventTypeName)
        } else {
            Err(serde::de::Error::custom(format!(
                "`{s}` is not an event type"
            )))
        }
    }
}

/// `schema_version`: 1 or 2.
type SchemaVersion = Int<1, 2>;

/// `occurred`, its members' own rules; what each `precision` requires of `start` and `end`
/// is checked on the value (`super::occurred_rules`), with each member's pointer.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Occurred {
    #[serde(default)]
    start: Maybe<Str<0, 64>>,
    #[serde(default)]
    end: Maybe<Str<0, 64>>,
    precision: Word<PrecisionV>,
    #[serde(default)]
    not_before: Maybe<DateOrDateTime>,
    #[serde(default)]
    not_after: Maybe<DateOrDateTime>,
}
impl ObjectRule for Occurred {}

/// `evidence_item`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvidenceItem {
    source: EntityId,
    relation: Word<EvidenceRelationV>,
    #[serde(default)]
    attribution: Maybe<Arr<EntityId, 0, 20, false>>,
    #[serde(default)]
    quote: Maybe<Str<1, 4000>>,
    #[serde(default)]
    credibility: Maybe<Int<1, 6>>,
    #[serde(default)]
    locator: Maybe<ShortText>,
}

impl ObjectRule for EvidenceItem {
    fn check(&self) -> Result<(), String> {
        if self.relation.is("quotes") && !self.quote.is_present() {
            return Err("a `quotes` relation needs its `quote`".into());
        }
        Ok(())
    }
}

/// `meta`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Meta {
    #[serde(default)]
    correlation_id: Maybe<Pat<CorrelationPattern>>,
    #[serde(default)]
    causation_id: Maybe<Uuid>,
    #[serde(default)]
    inferred: Maybe<Arr<Pat<InferredPointerPattern>, 1, 100, true>>,
    #[serde(default)]
    notes: Maybe<Text>,
    #[serde(default)]
    codes: Maybe<Obj<Codes>>,
}
impl ObjectRule for Meta {}

/// `meta.codes`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Codes {
    #[serde(default)]
    cameo: Maybe<Pat<CameoPattern>>,
    #[serde(default)]
    plover: Maybe<StrOr<Pat<PloverEventPattern>, Obj<Plover>>>,
}
impl ObjectRule for Codes {
    fn check(&self) -> Result<(), String> {
        at_least(1, [self.cameo.is_present(), self.plover.is_present()])
    }
}

/// A PLOVER code in its structured form.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Plover {
    event: Pat<PloverEventPattern>,
    #[serde(default)]
    mode: Maybe<Pat<SnakeWordPattern>>,
    #[serde(default)]
    context: Maybe<Arr<Pat<SnakeWordPattern>, 1, 20, true>>,
}
impl ObjectRule for Plover {}

/// `minProperties`: of an object whose members are all optional (or all but the id), how
/// many must be given.
pub(super) fn at_least<const N: usize>(min: usize, present: [bool; N]) -> Result<(), String> {
    if present.iter().filter(|p| **p).count() < min {
        return Err(format!("has fewer than {min} member(s)"));
    }
    Ok(())
}

/// `location`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Location {
    name: Name,
    #[serde(default)]
    venue: Maybe<Name>,
    #[serde(default)]
    city: Maybe<Name>,
    #[serde(default)]
    region: Maybe<Name>,
    #[serde(default)]
    country: Maybe<Pat<CountryPattern>>,
    #[serde(default)]
    wikidata: Maybe<Pat<WikidataPattern>>,
}
impl ObjectRule for Location {}

/// `about`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct About {
    #[serde(default)]
    meeting: Maybe<EntityId>,
    #[serde(default)]
    plan: Maybe<EntityId>,
    #[serde(default)]
    talks: Maybe<EntityId>,
    #[serde(default)]
    agreement: Maybe<EntityId>,
    #[serde(default)]
    issues: Maybe<Arr<EntityId, 1, 200, true>>,
}
impl ObjectRule for About {
    fn check(&self) -> Result<(), String> {
        at_least(
            1,
            [
                self.meeting.is_present(),
                self.plan.is_present(),
                self.talks.is_present(),
                self.agreement.is_present(),
                self.issues.is_present(),
            ],
        )
    }
}

/// `planned`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Planned {
    start: PartialDateTime,
    #[serde(default)]
    end: Maybe<PartialDateTime>,
    #[serde(default)]
    duration_days: Maybe<Int<1, 366>>,
}
impl ObjectRule for Planned {}

/// `reliability`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reliability {
    grade: Word<GradeV>,
    basis: Text,
}
impl ObjectRule for Reliability {}

/// One operation of `json_patch`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchOp {
    op: PatchOpName,
    path: Pat<JsonPointerPattern>,
    #[serde(default)]
    from: Maybe<Pat<JsonPointerPattern>>,
    #[serde(default)]
    value: Maybe<AnyValue>,
}

impl ObjectRule for PatchOp {
    fn check(&self) -> Result<(), String> {
        let (value, from) = (self.value.is_present(), self.from.is_present());
        let ok = match self.op {
            PatchOpName::Add | PatchOpName::Replace | PatchOpName::Test => value && !from,
            PatchOpName::Move | PatchOpName::Copy => from && !value,
            PatchOpName::Remove => !value && !from,
        };
        if ok {
            Ok(())
        } else {
            Err("`value` and `from` do not fit the operation".into())
        }
    }
}

/// `json_patch` `op`: a string. Not a derived enum: serde would also read a unit variant from
/// an object naming it (`{"remove": null}`), which the schema refuses.
#[derive(PartialEq)]
enum PatchOpName {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

impl<'de> Deserialize<'de> for PatchOpName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const NAMES: &[&str] = &["add", "remove", "replace", "move", "copy", "test"];
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(match name.as_ref() {
            "add" => PatchOpName::Add,
            "remove" => PatchOpName::Remove,
            "replace" => PatchOpName::Replace,
            "move" => PatchOpName::Move,
            "copy" => PatchOpName::Copy,
            "test" => PatchOpName::Test,
            other => return Err(serde::de::Error::unknown_variant(other, NAMES)),
        })
    }
}

/// `provision` in its structured form.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Provision {
    issue: EntityId,
    summary: Text,
    #[serde(default)]
    terms: Maybe<Terms>,
}
impl ObjectRule for Provision {}
