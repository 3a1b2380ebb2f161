//! The typed forms of every `schemas/events/<type>.json`: one struct per event type's `data`
//! (and the objects only they hold), a member per property, unknown members refused, each
//! member's leaf type holding its definition's rule. Read only to validate; never a second
//! definition of the contract: the schemas are, and a test holds the two equal.

#![allow(dead_code)] // members are read by serde and compared, never otherwise used

use serde::Deserialize;

use super::events::*;
use super::fields::*;

/// One of `actor.registered`'s / `actor.updated`'s `roles`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Role {
    role: ShortText,
    #[serde(default)]
    of: Maybe<EntityId>,
    #[serde(default)]
    from: Maybe<PartialDateTime>,
    #[serde(default)]
    to: Maybe<PartialDateTime>,
}
impl ObjectRule for Role {}

/// `actor.registered`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActorRegistered {
    actor_id: EntityId,
    name: Name,
    #[serde(default)]
    description: Maybe<Text>,
    kind: Word<ActorKindV>,
    #[serde(default)]
    aliases: Maybe<List<Name>>,
    #[serde(default)]
    wikidata: Maybe<Pat<WikidataPattern>>,
    #[serde(default)]
    anonymous: Maybe<Bool>,
    #[serde(default)]
    represents: Maybe<EntityId>,
    #[serde(default)]
    leader: Maybe<EntityId>,
    #[serde(default)]
    members: Maybe<List<EntityId>>,
    #[serde(default)]
    roles: Maybe<Arr<Obj<Role>, 0, 200, false>>,
}
impl ObjectRule for ActorRegistered {}

/// `actor.updated`: the id and at least one change.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActorUpdated {
    actor_id: EntityId,
    #[serde(default)]
    name: Maybe<Name>,
    #[serde(default)]
    description: Maybe<Text>,
    #[serde(default)]
    kind: Maybe<Word<ActorKindV>>,
    #[serde(default)]
    aliases: Maybe<List<Name>>,
    #[serde(default)]
    wikidata: Maybe<Pat<WikidataPattern>>,
    #[serde(default)]
    anonymous: Maybe<Bool>,
    #[serde(default)]
    represents: Maybe<EntityId>,
    #[serde(default)]
    leader: Maybe<EntityId>,
    #[serde(default)]
    members: Maybe<List<EntityId>>,
    #[serde(default)]
    roles: Maybe<Arr<Obj<Role>, 0, 200, false>>,
}
impl ObjectRule for ActorUpdated {
    fn check(&self) -> Result<(), String> {
        at_least(
            2,
            [
                true,
                self.name.is_present(),
                self.description.is_present(),
                self.kind.is_present(),
                self.aliases.is_present(),
                self.wikidata.is_present(),
                self.anonymous.is_present(),
                self.represents.is_present(),
                self.leader.is_present(),
                self.members.is_present(),
                self.roles.is_present(),
            ],
        )
    }
}

/// `agreement.reached`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgreementReached {
    agreement_id: EntityId,
    #[serde(default)]
    title: Maybe<Name>,
    parties: Arr<EntityId, 2, 200, true>,
    stage: Word<AgreementStageV>,
    #[serde(default)]
    provisions: Maybe<List<StrOr<Text, Obj<Provision>>>>,
    #[serde(default)]
    summary: Maybe<Text>,
    #[serde(default)]
    signed: Maybe<Bool>,
    #[serde(default)]
    r#final: Maybe<Bool>,
    #[serde(default)]
    origin_meeting: Maybe<EntityId>,
    #[serde(default)]
    plan: Maybe<EntityId>,
    #[serde(default)]
    supersedes: Maybe<EntityId>,
}
impl ObjectRule for AgreementReached {}

/// `event.corrected`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventCorrected {
    target: Uuid,
    patch: Arr<Obj<PatchOp>, 1, 200, false>,
    reason: Text,
    #[serde(default)]
    previous: Maybe<AnyObject>,
}
impl ObjectRule for EventCorrected {}

/// `event.retracted`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventRetracted {
    target: Uuid,
    reason: Text,
    #[serde(default)]
    replacement: Maybe<Uuid>,
}
impl ObjectRule for EventRetracted {}

/// `issue.defined`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueDefined {
    issue_id: EntityId,
    label: Name,
    #[serde(default)]
    description: Maybe<Text>,
    #[serde(default)]
    parent: Maybe<EntityId>,
    #[serde(default)]
    aliases: Maybe<List<Name>>,
}
impl ObjectRule for IssueDefined {}

/// `issue.status_changed`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueStatusChanged {
    issue_id: EntityId,
    status: Word<IssueStatusV>,
    assessed_by: EntityId,
    #[serde(default)]
    derived_from: Maybe<EntityId>,
    #[serde(default)]
    rationale: Maybe<Text>,
    #[serde(default)]
    about: Maybe<Obj<About>>,
}
impl ObjectRule for IssueStatusChanged {}

/// `issue.updated`: the id and at least one change.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueUpdated {
    issue_id: EntityId,
    #[serde(default)]
    label: Maybe<Name>,
    #[serde(default)]
    description: Maybe<Text>,
    #[serde(default)]
    parent: Maybe<EntityId>,
    #[serde(default)]
    aliases: Maybe<List<Name>>,
}
impl ObjectRule for IssueUpdated {
    fn check(&self) -> Result<(), String> {
        at_least(
            2,
            [
                true,
                self.label.is_present(),
                self.description.is_present(),
                self.parent.is_present(),
                self.aliases.is_present(),
            ],
        )
    }
}

/// One of `meeting.held`'s `participants`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Participant {
    actor: EntityId,
    side: EntityId,
    #[serde(default)]
    role: Maybe<Word<ParticipantRoleV>>,
    #[serde(default)]
    led_by: Maybe<EntityId>,
}
impl ObjectRule for Participant {}

/// `meeting.held`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct MeetingHeld {
    meeting_id: EntityId,
    #[serde(default)]
    title: Maybe<Name>,
    participants: List<Obj<Participant>>,
    location: AnyOf<Nullable<Obj<Location>>>,
    #[serde(default)]
    format: Maybe<Word<MeetingFormatV>>,
    #[serde(default)]
    purpose: Maybe<Text>,
    #[serde(default)]
    duration: Maybe<Pat<DurationPattern>>,
    #[serde(default)]
    duration_approx: Maybe<Bool>,
    #[serde(default)]
    time_of_day_note: Maybe<ShortText>,
    #[serde(default)]
    issues: Maybe<List<EntityId>>,
    #[serde(default)]
    outcomes: Maybe<List<Text>>,
    #[serde(default)]
    summary: Maybe<Text>,
    #[serde(default)]
    fulfils: Maybe<EntityId>,
    #[serde(default)]
    follows: Maybe<List<EntityId>>,
}
impl ObjectRule for MeetingHeld {}

/// `organisation.founded`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrganisationFounded {
    org_id: EntityId,
    name: Name,
    #[serde(default)]
    description: Maybe<Text>,
    #[serde(default)]
    aliases: Maybe<List<Name>>,
    founders: Arr<EntityId, 1, 200, true>,
    #[serde(default)]
    members: Maybe<List<EntityId>>,
    #[serde(default)]
    mandate: Maybe<Text>,
    #[serde(default)]
    seat: Maybe<Obj<Location>>,
}
impl ObjectRule for OrganisationFounded {}

/// `plan.proposed`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanProposed {
    plan_id: EntityId,
    title: Name,
    version: Int<1, { i64::MAX }>,
    #[serde(default)]
    points: Maybe<Int<1, 1000>>,
    #[serde(default)]
    proposer: Maybe<EntityId>,
    #[serde(default)]
    co_proposers: Maybe<List<EntityId>>,
    #[serde(default)]
    origin_meeting: Maybe<EntityId>,
    #[serde(default)]
    summary: Maybe<Text>,
    #[serde(default)]
    issues: Maybe<List<EntityId>>,
    #[serde(default)]
    open_issues: Maybe<List<EntityId>>,
    #[serde(default)]
    url: Maybe<Url>,
}
impl ObjectRule for PlanProposed {}

/// One of `plan.revised`'s `changes` in its structured form.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Change {
    #[serde(default)]
    point: Maybe<Int<1, { i64::MAX }>>,
    summary: Text,
}
impl ObjectRule for Change {}

/// `plan.revised`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanRevised {
    plan_id: EntityId,
    title: Name,
    version: Int<1, { i64::MAX }>,
    #[serde(default)]
    points: Maybe<Int<1, 1000>>,
    #[serde(default)]
    proposer: Maybe<EntityId>,
    #[serde(default)]
    co_proposers: Maybe<List<EntityId>>,
    #[serde(default)]
    origin_meeting: Maybe<EntityId>,
    #[serde(default)]
    summary: Maybe<Text>,
    #[serde(default)]
    issues: Maybe<List<EntityId>>,
    #[serde(default)]
    open_issues: Maybe<List<EntityId>>,
    #[serde(default)]
    url: Maybe<Url>,
    parent_version: Int<1, { i64::MAX }>,
    #[serde(default)]
    changes: Maybe<Arr<StrOr<Text, Obj<Change>>, 0, 200, false>>,
}
impl ObjectRule for PlanRevised {}

/// `position.stated`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct PositionStated {
    position_id: EntityId,
    holder: EntityId,
    issue: EntityId,
    stance: Word<StanceV>,
    object: Text,
    #[serde(default)]
    target: Maybe<EntityId>,
    #[serde(default)]
    conditions: Maybe<List<Text>>,
    #[serde(default)]
    responds_to: Maybe<EntityId>,
    #[serde(default)]
    derived_from: Maybe<EntityId>,
    #[serde(default)]
    rationale: Maybe<Text>,
}
impl ObjectRule for PositionStated {}

/// `source.assessed`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceAssessed {
    source_id: EntityId,
    grade: Word<GradeV>,
    basis: Text,
    #[serde(default)]
    scope: Maybe<Text>,
}
impl ObjectRule for SourceAssessed {}

/// `source.corrected` and `source.withdrawn` (one shape).
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceNotice {
    source_id: EntityId,
    #[serde(default)]
    text: Maybe<Text>,
    #[serde(default)]
    url: Maybe<Url>,
    #[serde(default)]
    affected_events: Maybe<List<Uuid>>,
}
impl ObjectRule for SourceNotice {}

/// `source.registered`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceRegistered {
    source_id: EntityId,
    kind: Word<SourceKindV>,
    publisher: Name,
    #[serde(default)]
    title: Maybe<Name>,
    #[serde(default)]
    authors: Maybe<List<Name>>,
    #[serde(default)]
    url: Maybe<Url>,
    #[serde(default)]
    language: Maybe<Pat<LanguagePattern>>,
    #[serde(default)]
    published_at: Maybe<PartialDateTime>,
    #[serde(default)]
    retrieved_at: Maybe<DateOrDateTime>,
    #[serde(default)]
    content_hash: Maybe<Pat<ContentHashPattern>>,
    #[serde(default)]
    reliability: Maybe<Obj<Reliability>>,
    #[serde(default)]
    syndicated_from: Maybe<EntityId>,
}
impl ObjectRule for SourceRegistered {}

/// `source.updated`: the id and at least one change.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceUpdated {
    source_id: EntityId,
    #[serde(default)]
    kind: Maybe<Word<SourceKindV>>,
    #[serde(default)]
    publisher: Maybe<Name>,
    #[serde(default)]
    title: Maybe<Name>,
    #[serde(default)]
    authors: Maybe<List<Name>>,
    #[serde(default)]
    url: Maybe<Url>,
    #[serde(default)]
    language: Maybe<Pat<LanguagePattern>>,
    #[serde(default)]
    published_at: Maybe<PartialDateTime>,
    #[serde(default)]
    retrieved_at: Maybe<DateOrDateTime>,
    #[serde(default)]
    content_hash: Maybe<Pat<ContentHashPattern>>,
    #[serde(default)]
    syndicated_from: Maybe<EntityId>,
}
impl ObjectRule for SourceUpdated {
    fn check(&self) -> Result<(), String> {
        at_least(
            2,
            [
                true,
                self.kind.is_present(),
                self.publisher.is_present(),
                self.title.is_present(),
                self.authors.is_present(),
                self.url.is_present(),
                self.language.is_present(),
                self.published_at.is_present(),
                self.retrieved_at.is_present(),
                self.content_hash.is_present(),
                self.syndicated_from.is_present(),
            ],
        )
    }
}

/// `statement.made`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatementMade {
    statement_id: EntityId,
    speaker: EntityId,
    #[serde(default)]
    joint_with: Maybe<List<EntityId>>,
    content: Text,
    #[serde(default)]
    verbatim: Maybe<Text>,
    #[serde(default)]
    language: Maybe<Pat<LanguagePattern>>,
    #[serde(default)]
    about: Maybe<Obj<About>>,
    #[serde(default)]
    tone: Maybe<StrOr<Word<ToneV>, Arr<Word<ToneV>, 1, 10, true>>>,
    #[serde(default)]
    claims: Maybe<List<Text>>,
    #[serde(default)]
    audience: Maybe<ShortText>,
    #[serde(default)]
    channel: Maybe<ShortText>,
}
impl ObjectRule for StatementMade {}

/// One of `talks.scheduled`'s `tracks`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Track {
    name: ShortText,
    #[serde(default)]
    description: Maybe<Text>,
    #[serde(default)]
    issues: Maybe<List<EntityId>>,
}
impl ObjectRule for Track {}

/// `talks.scheduled`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct TalksScheduled {
    talks_id: EntityId,
    #[serde(default)]
    title: Maybe<Name>,
    parties: Arr<EntityId, 2, 200, true>,
    #[serde(default)]
    mediators: Maybe<List<EntityId>>,
    planned: Obj<Planned>,
    #[serde(default)]
    location: Maybe<Obj<Location>>,
    #[serde(default)]
    format: Maybe<Word<MeetingFormatV>>,
    #[serde(default)]
    purpose: Maybe<Text>,
    #[serde(default)]
    tracks: Maybe<List<Obj<Track>>>,
    #[serde(default)]
    issues: Maybe<List<EntityId>>,
    #[serde(default)]
    announced_by: Maybe<EntityId>,
    #[serde(default)]
    follows: Maybe<EntityId>,
}
impl ObjectRule for TalksScheduled {}

/// `talks.status_changed`.
#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct TalksStatusChanged {
    talks_id: EntityId,
    status: Word<TalksStatusV>,
    #[serde(default)]
    planned: Maybe<Obj<Planned>>,
    #[serde(default)]
    location: Maybe<Obj<Location>>,
    #[serde(default)]
    reason: Maybe<Text>,
    #[serde(default)]
    announced_by: Maybe<EntityId>,
}
impl ObjectRule for TalksStatusChanged {}
