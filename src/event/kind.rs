//! The one list of event types: each type's wire name and the facts about it that the rules
//! (`event/rules.rs`) and the projections (`projection/`) act on: whether it is a fact (needs a
//! world time) or a knowledge event, which id it introduces and of what kind, which payload
//! fields refer to ids of which kind, whether it needs evidence, targets another event, names
//! actors, or is about a source. A unit test holds the list equal to the schemas under `schemas/events/`.
//! This module must never read a payload or storage: it knows types, not events.

/// An event type this build knows (one per file under `schemas/events/`).
///
/// The variants are in the order of their names, and `#[repr(u8)]` keeps a kind one byte
/// wide, so a projected fact can carry its kind without a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EventKind {
    /// `actor.registered`: a person, state or organisation enters the entity registry.
    ActorRegistered,
    /// `actor.updated`: a registered actor's entry changes (names, aliases, roles, members).
    ActorUpdated,
    /// `agreement.reached`
    AgreementReached,
    /// `event.corrected`: a JSON Patch of an earlier event's data.
    EventCorrected,
    /// `event.retracted`: an earlier event is withdrawn from knowledge.
    EventRetracted,
    /// `issue.defined`: an issue enters the entity registry.
    IssueDefined,
    /// `issue.status_changed`
    IssueStatusChanged,
    /// `issue.updated`: a defined issue's entry changes (label, aliases, parent).
    IssueUpdated,
    /// `meeting.held`
    MeetingHeld,
    /// `organisation.founded`
    OrganisationFounded,
    /// `plan.proposed`
    PlanProposed,
    /// `plan.revised`
    PlanRevised,
    /// `position.stated`
    PositionStated,
    /// `source.assessed`: a source's reliability is (re-)graded.
    SourceAssessed,
    /// `source.corrected`: a source corrected itself.
    SourceCorrected,
    /// `source.registered`: a source enters the source registry.
    SourceRegistered,
    /// `source.updated`: a registered source's entry changes (publisher, title, authors...).
    SourceUpdated,
    /// `source.withdrawn`: a source withdrew its own report.
    SourceWithdrawn,
    /// `statement.made`
    StatementMade,
    /// `talks.scheduled`
    TalksScheduled,
    /// `talks.status_changed`
    TalksStatusChanged,
}

/// What kind of thing an id names. An id is an opaque `prefix:slug`: its kind is the kind of
/// the event that introduced it, never its prefix, and it keeps that kind forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// Introduced once by `actor.registered`.
    Actor,
    /// Introduced once by `issue.defined`.
    Issue,
    /// Introduced once by `source.registered`.
    Source,
    /// Introduced by `meeting.held` (several claims may name the same meeting).
    Meeting,
    /// Introduced by `statement.made`.
    Statement,
    /// Introduced by `position.stated`.
    Position,
    /// Introduced by `plan.proposed` or `plan.revised`.
    Plan,
    /// Introduced by `talks.scheduled`.
    Talks,
    /// Introduced by `agreement.reached`.
    Agreement,
}

impl IdKind {
    /// The kind with its article, as messages say it and the registry stores it ("an actor",
    /// "talks"). Stored in data folders: never change one.
    pub const fn phrase(self) -> &'static str {
        match self {
            IdKind::Actor => "an actor",
            IdKind::Issue => "an issue",
            IdKind::Source => "a source",
            IdKind::Meeting => "a meeting",
            IdKind::Statement => "a statement",
            IdKind::Position => "a position",
            IdKind::Plan => "a plan",
            IdKind::Talks => "talks",
            IdKind::Agreement => "an agreement",
        }
    }

    /// The event types that introduce ids of this kind, for messages.
    pub const fn introduced_by(self) -> &'static str {
        match self {
            IdKind::Actor => "actor.registered",
            IdKind::Issue => "issue.defined",
            IdKind::Source => "source.registered",
            IdKind::Meeting => "meeting.held",
            IdKind::Statement => "statement.made",
            IdKind::Position => "position.stated",
            IdKind::Plan => "plan.proposed or plan.revised",
            IdKind::Talks => "talks.scheduled",
            IdKind::Agreement => "agreement.reached",
        }
    }

    /// Whether a reference to an id of this kind must name a known id: every kind, actors and
    /// issues included (issue 11, item 2). A `speaker` or an `issue` the log has never seen is
    /// a dangling reference, refused with a 422 naming it, as a `fulfils` naming unknown talks
    /// is; a reference to a known id must also have its field's kind.
    pub const fn must_be_known(self) -> bool {
        true
    }

    /// Whether an id of this kind is a registry entry, introduced exactly once (a second
    /// registration is refused). Other ids may be introduced again by claims about the same
    /// thing (two sources' accounts of one meeting), always with the same kind.
    pub const fn is_registry(self) -> bool {
        matches!(self, IdKind::Actor | IdKind::Issue | IdKind::Source)
    }
}

/// The payload field that holds the id a type introduces, and the id's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Introduces {
    /// The payload field that holds the introduced id.
    pub field: &'static str,
    /// The kind the id gets.
    pub kind: IdKind,
}

/// A payload path that refers to an id of a kind: field names separated by `/`, `*` for every
/// item of an array (`participants/*/actor`).
pub type IdRef = (&'static str, IdKind);

impl EventKind {
    /// Every event type, in the order of their names.
    pub const ALL: [EventKind; 21] = [
        EventKind::ActorRegistered,
        EventKind::ActorUpdated,
        EventKind::AgreementReached,
        EventKind::EventCorrected,
        EventKind::EventRetracted,
        EventKind::IssueDefined,
        EventKind::IssueStatusChanged,
        EventKind::IssueUpdated,
        EventKind::MeetingHeld,
        EventKind::OrganisationFounded,
        EventKind::PlanProposed,
        EventKind::PlanRevised,
        EventKind::PositionStated,
        EventKind::SourceAssessed,
        EventKind::SourceCorrected,
        EventKind::SourceRegistered,
        EventKind::SourceUpdated,
        EventKind::SourceWithdrawn,
        EventKind::StatementMade,
        EventKind::TalksScheduled,
        EventKind::TalksStatusChanged,
    ];

    /// The type's name on the wire and in the log (`"meeting.held"`).
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::ActorRegistered => "actor.registered",
            EventKind::ActorUpdated => "actor.updated",
            EventKind::AgreementReached => "agreement.reached",
            EventKind::EventCorrected => "event.corrected",
            EventKind::EventRetracted => "event.retracted",
            EventKind::IssueDefined => "issue.defined",
            EventKind::IssueStatusChanged => "issue.status_changed",
            EventKind::IssueUpdated => "issue.updated",
            EventKind::MeetingHeld => "meeting.held",
            EventKind::OrganisationFounded => "organisation.founded",
            EventKind::PlanProposed => "plan.proposed",
            EventKind::PlanRevised => "plan.revised",
            EventKind::PositionStated => "position.stated",
            EventKind::SourceAssessed => "source.assessed",
            EventKind::SourceCorrected => "source.corrected",
            EventKind::SourceRegistered => "source.registered",
            EventKind::SourceUpdated => "source.updated",
            EventKind::SourceWithdrawn => "source.withdrawn",
            EventKind::StatementMade => "statement.made",
            EventKind::TalksScheduled => "talks.scheduled",
            EventKind::TalksStatusChanged => "talks.status_changed",
        }
    }

    /// The type with this name, or `None` for a type this build does not know.
    pub fn from_name(name: &str) -> Option<EventKind> {
        // `ALL` is sorted by name, so a binary search finds it.
        EventKind::ALL
            .binary_search_by(|k| k.name().cmp(name))
            .ok()
            .map(|i| EventKind::ALL[i])
    }

    /// Whether an event of this type must carry at least one evidence item. A source
    /// registration is its own evidence; source assessments and knowledge corrections are the
    /// coder's acts, backed by their `reason`.
    pub const fn needs_evidence(self) -> bool {
        !matches!(
            self,
            EventKind::SourceRegistered
                | EventKind::SourceUpdated
                | EventKind::SourceAssessed
                | EventKind::SourceCorrected
                | EventKind::SourceWithdrawn
                | EventKind::EventCorrected
                | EventKind::EventRetracted
        )
    }

    /// Whether events of this type are facts about the world, which need a world time
    /// (`occurred`). The others are knowledge events (registrations, assessments,
    /// corrections, retractions, source corrections and withdrawals): they describe what we
    /// know, and their time is `recorded_at`.
    pub const fn is_fact(self) -> bool {
        !matches!(
            self,
            EventKind::ActorRegistered
                | EventKind::ActorUpdated
                | EventKind::IssueDefined
                | EventKind::IssueUpdated
                | EventKind::SourceRegistered
                | EventKind::SourceUpdated
                | EventKind::SourceAssessed
                | EventKind::SourceCorrected
                | EventKind::SourceWithdrawn
                | EventKind::EventCorrected
                | EventKind::EventRetracted
        )
    }

    /// The id this type introduces, if any (its registry entry, or the thing a fact is about).
    pub const fn introduces(self) -> Option<Introduces> {
        let (field, kind) = match self {
            EventKind::ActorRegistered => ("actor_id", IdKind::Actor),
            EventKind::IssueDefined => ("issue_id", IdKind::Issue),
            EventKind::SourceRegistered => ("source_id", IdKind::Source),
            EventKind::MeetingHeld => ("meeting_id", IdKind::Meeting),
            EventKind::StatementMade => ("statement_id", IdKind::Statement),
            EventKind::PositionStated => ("position_id", IdKind::Position),
            EventKind::PlanProposed | EventKind::PlanRevised => ("plan_id", IdKind::Plan),
            EventKind::TalksScheduled => ("talks_id", IdKind::Talks),
            EventKind::AgreementReached => ("agreement_id", IdKind::Agreement),
            _ => return None,
        };
        Some(Introduces { field, kind })
    }

    /// The registry entry this type changes (an update: `actor.updated`...), its field and
    /// kind. The entry must be registered; the update's payload says what changes.
    pub const fn updates(self) -> Option<Introduces> {
        let (field, kind) = match self {
            EventKind::ActorUpdated => ("actor_id", IdKind::Actor),
            EventKind::IssueUpdated => ("issue_id", IdKind::Issue),
            EventKind::SourceUpdated => ("source_id", IdKind::Source),
            _ => return None,
        };
        Some(Introduces { field, kind })
    }

    /// The event type that changes an entry this type registers (`actor.registered` →
    /// `actor.updated`), or `None` when the type registers nothing.
    pub const fn update_type(self) -> Option<EventKind> {
        match self {
            EventKind::ActorRegistered | EventKind::ActorUpdated => Some(EventKind::ActorUpdated),
            EventKind::IssueDefined | EventKind::IssueUpdated => Some(EventKind::IssueUpdated),
            EventKind::SourceRegistered | EventKind::SourceUpdated => {
                Some(EventKind::SourceUpdated)
            }
            _ => None,
        }
    }

    /// Every payload path of this type that refers to an id, with the kind it must have. A
    /// unit test holds this list equal to the id fields of the type's schema.
    pub const fn id_refs(self) -> &'static [IdRef] {
        use IdKind::*;
        const ABOUT: [IdRef; 5] = [
            ("about/meeting", Meeting),
            ("about/plan", Plan),
            ("about/talks", Talks),
            ("about/agreement", Agreement),
            ("about/issues/*", Issue),
        ];
        match self {
            EventKind::ActorUpdated => &[
                ("actor_id", Actor),
                ("represents", Actor),
                ("leader", Actor),
                ("members/*", Actor),
                ("roles/*/of", Actor),
            ],
            EventKind::IssueUpdated => &[("issue_id", Issue), ("parent", Issue)],
            EventKind::SourceUpdated => &[("source_id", Source), ("syndicated_from", Source)],
            EventKind::ActorRegistered => &[
                ("represents", Actor),
                ("leader", Actor),
                ("members/*", Actor),
                ("roles/*/of", Actor),
            ],
            EventKind::AgreementReached => &[
                ("parties/*", Actor),
                ("origin_meeting", Meeting),
                ("plan", Plan),
                ("supersedes", Agreement),
                ("provisions/*/issue", Issue),
            ],
            EventKind::IssueDefined => &[("parent", Issue)],
            EventKind::IssueStatusChanged => &[
                ("issue_id", Issue),
                ("assessed_by", Actor),
                ("derived_from", Statement),
                ABOUT[0],
                ABOUT[1],
                ABOUT[2],
                ABOUT[3],
                ABOUT[4],
            ],
            EventKind::MeetingHeld => &[
                ("participants/*/actor", Actor),
                ("participants/*/side", Actor),
                ("participants/*/led_by", Actor),
                ("issues/*", Issue),
                ("fulfils", Talks),
                ("follows/*", Meeting),
            ],
            EventKind::OrganisationFounded => &[
                ("org_id", Actor),
                ("founders/*", Actor),
                ("members/*", Actor),
            ],
            EventKind::PlanProposed | EventKind::PlanRevised => &[
                ("proposer", Actor),
                ("co_proposers/*", Actor),
                ("origin_meeting", Meeting),
                ("issues/*", Issue),
                ("open_issues/*", Issue),
            ],
            EventKind::PositionStated => &[
                ("holder", Actor),
                ("issue", Issue),
                ("target", Actor),
                ("responds_to", Position),
                ("derived_from", Statement),
            ],
            EventKind::SourceAssessed | EventKind::SourceCorrected | EventKind::SourceWithdrawn => {
                &[("source_id", Source)]
            }
            EventKind::SourceRegistered => &[("syndicated_from", Source)],
            EventKind::StatementMade => &[
                ("speaker", Actor),
                ("joint_with/*", Actor),
                ABOUT[0],
                ABOUT[1],
                ABOUT[2],
                ABOUT[3],
                ABOUT[4],
            ],
            EventKind::TalksScheduled => &[
                ("parties/*", Actor),
                ("mediators/*", Actor),
                ("tracks/*/issues/*", Issue),
                ("issues/*", Issue),
                ("announced_by", Actor),
                ("follows", Meeting),
            ],
            EventKind::TalksStatusChanged => &[("talks_id", Talks), ("announced_by", Actor)],
            EventKind::EventCorrected | EventKind::EventRetracted => &[],
        }
    }

    /// Payload paths of this type that name other events by id (beyond a correction's or
    /// retraction's `target`): each must be in the log.
    pub const fn event_refs(self) -> &'static [&'static str] {
        match self {
            EventKind::EventRetracted => &["replacement"],
            EventKind::SourceCorrected | EventKind::SourceWithdrawn => &["affected_events/*"],
            _ => &[],
        }
    }

    /// Whether a view reads facts of this type by their type (`Knowledge::of_kind`): the
    /// registries, the issues, meetings and talks the calendar lists, and the changes of
    /// knowledge. Only these types are kept in the projections' type index; the others
    /// (statements, positions, plans...) are found by process, actor or source, and at 10M
    /// statements a type index of them would be 38 MiB nobody reads. A view that lists
    /// another type by type adds it here (`of_kind` asserts it in debug builds).
    pub const fn listed_by_type(self) -> bool {
        matches!(
            self,
            EventKind::ActorRegistered
                | EventKind::ActorUpdated
                | EventKind::IssueDefined
                | EventKind::IssueUpdated
                | EventKind::MeetingHeld
                | EventKind::TalksScheduled
                | EventKind::EventCorrected
                | EventKind::EventRetracted
        ) || self.is_about_source()
    }

    /// Whether the payload's `source_id` names the source the event is about (its
    /// registration, grades, corrections and withdrawal). The projections index such an event
    /// under that source.
    pub const fn is_about_source(self) -> bool {
        matches!(
            self,
            EventKind::SourceRegistered
                | EventKind::SourceUpdated
                | EventKind::SourceAssessed
                | EventKind::SourceCorrected
                | EventKind::SourceWithdrawn
        )
    }

    /// Whether the payload's `target` is the id of an earlier event this one changes (a
    /// correction or a retraction).
    pub const fn targets_event(self) -> bool {
        matches!(self, EventKind::EventCorrected | EventKind::EventRetracted)
    }

    /// Whether the payload names actors in the role fields the projections index (`speaker`,
    /// `holder`, `parties`, `participants`...).
    pub const fn names_actors(self) -> bool {
        matches!(
            self,
            EventKind::ActorRegistered
                | EventKind::ActorUpdated
                | EventKind::StatementMade
                | EventKind::PositionStated
                | EventKind::MeetingHeld
                | EventKind::TalksScheduled
                | EventKind::TalksStatusChanged
                | EventKind::PlanProposed
                | EventKind::PlanRevised
                | EventKind::OrganisationFounded
                | EventKind::AgreementReached
                | EventKind::IssueStatusChanged
        )
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_kinds_are_exactly_the_event_types_the_schemas_define() {
        let schemas = crate::event::schema::Schemas::load().unwrap();
        let mut defined: Vec<&str> = schemas.event_types().collect();
        defined.sort_unstable();
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names, defined);
    }

    #[test]
    fn every_kind_is_found_by_its_name_and_an_unknown_name_by_none() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.name()), Some(kind));
            assert_eq!(
                kind as u8 as usize,
                EventKind::ALL.binary_search(&kind).unwrap()
            );
        }
        assert_eq!(EventKind::from_name("meeting.planned"), None);
        assert_eq!(EventKind::from_name(""), None);
    }

    #[test]
    fn each_introduced_id_field_is_a_required_field_of_its_schema() {
        let schemas = crate::event::schema::Schemas::load().unwrap();
        for kind in EventKind::ALL {
            let required = |field: &str| {
                schemas.document(kind.name()).is_some_and(|d| {
                    d["required"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|f| f == field))
                })
            };
            if let Some(i) = kind.introduces() {
                assert!(required(i.field), "{kind}: {}", i.field);
            }
            if kind.is_about_source() {
                assert!(required("source_id"), "{kind}: source_id");
            }
            if kind.targets_event() {
                assert!(required("target"), "{kind}: target");
            }
        }
    }

    /// The kind an id definition of `common.json` refers to, by the definition's name.
    fn kind_of_def(def: &str) -> Option<IdKind> {
        Some(match def {
            "actor_ref" | "org_id" => IdKind::Actor,
            "issue_id" => IdKind::Issue,
            "source_id" => IdKind::Source,
            "meeting_id" => IdKind::Meeting,
            "statement_id" => IdKind::Statement,
            "position_id" => IdKind::Position,
            "plan_id" => IdKind::Plan,
            "talks_id" => IdKind::Talks,
            "agreement_id" => IdKind::Agreement,
            _ => return None,
        })
    }

    /// Every path of a schema node whose value is an id, with its kind, following references
    /// into `common.json` definitions.
    fn id_paths(node: &Value, common: &Value, path: &str, out: &mut Vec<(String, IdKind)>) {
        let join = |seg: &str| {
            if path.is_empty() {
                seg.to_string()
            } else {
                format!("{path}/{seg}")
            }
        };
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            let def = r.rsplit('/').next().unwrap_or_default();
            // Only `common.json` defines ids; a vocabulary is a closed list of words.
            let in_common = r.starts_with('#') || r.contains("/common.json#");
            match kind_of_def(def) {
                Some(kind) => out.push((path.to_string(), kind)),
                None if in_common => id_paths(&common["$defs"][def], common, path, out),
                None => {}
            }
        }
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                id_paths(sub, common, &join(name), out);
            }
        }
        if let Some(items) = node.get("items") {
            id_paths(items, common, &join("*"), out);
        }
        for any in node
            .get("anyOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            id_paths(any, common, path, out);
        }
        // A short form or a structured one (`if` a string `then`... `else`...).
        for branch in ["then", "else"] {
            if let Some(b) = node.get(branch) {
                id_paths(b, common, path, out);
            }
        }
    }

    #[test]
    fn every_id_field_of_every_schema_is_an_introduction_or_a_checked_reference() {
        let schemas = crate::event::schema::Schemas::load().unwrap();
        let common = schemas.document("common").unwrap();
        for kind in EventKind::ALL {
            let mut found = Vec::new();
            id_paths(
                schemas.document(kind.name()).unwrap(),
                common,
                "",
                &mut found,
            );
            let mut listed: Vec<(String, IdKind)> = kind
                .id_refs()
                .iter()
                .map(|(p, k)| (p.to_string(), *k))
                .collect();
            if let Some(i) = kind.introduces() {
                listed.push((i.field.to_string(), i.kind));
            }
            found.sort_by(|a, b| a.0.cmp(&b.0));
            listed.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(found, listed, "{kind}");
        }
    }

    #[test]
    fn facts_are_the_types_that_happen_in_the_world() {
        let knowledge: Vec<&str> = EventKind::ALL
            .iter()
            .filter(|k| !k.is_fact())
            .map(|k| k.name())
            .collect();
        assert_eq!(
            knowledge,
            [
                "actor.registered",
                "actor.updated",
                "event.corrected",
                "event.retracted",
                "issue.defined",
                "issue.updated",
                "source.assessed",
                "source.corrected",
                "source.registered",
                "source.updated",
                "source.withdrawn"
            ]
        );
    }
}
