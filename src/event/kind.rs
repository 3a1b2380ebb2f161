//! The one list of event types: each type's wire name and the facts about it that the rules
//! (`event/rules.rs`) and the projections (`projection/`) act on: which registry key it
//! declares, whether it needs evidence, whether it targets another event, names actors, or is
//! about a source. A unit test holds the list equal to the schemas under `schemas/events/`.
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
    /// `source.withdrawn`: a source withdrew its own report.
    SourceWithdrawn,
    /// `statement.made`
    StatementMade,
    /// `talks.scheduled`
    TalksScheduled,
    /// `talks.status_changed`
    TalksStatusChanged,
}

/// Which registry a type's registration declares a key in, and the payload field holding the
/// id: the key is `{registry}:{id}` (e.g. `source:src:tass`, `entity:actor:putin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declares {
    /// The registry: `source` or `entity`.
    pub registry: &'static str,
    /// The payload field that holds the declared id.
    pub field: &'static str,
}

impl EventKind {
    /// Every event type, in the order of their names.
    pub const ALL: [EventKind; 18] = [
        EventKind::ActorRegistered,
        EventKind::AgreementReached,
        EventKind::EventCorrected,
        EventKind::EventRetracted,
        EventKind::IssueDefined,
        EventKind::IssueStatusChanged,
        EventKind::MeetingHeld,
        EventKind::OrganisationFounded,
        EventKind::PlanProposed,
        EventKind::PlanRevised,
        EventKind::PositionStated,
        EventKind::SourceAssessed,
        EventKind::SourceCorrected,
        EventKind::SourceRegistered,
        EventKind::SourceWithdrawn,
        EventKind::StatementMade,
        EventKind::TalksScheduled,
        EventKind::TalksStatusChanged,
    ];

    /// The type's name on the wire and in the log (`"meeting.held"`).
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::ActorRegistered => "actor.registered",
            EventKind::AgreementReached => "agreement.reached",
            EventKind::EventCorrected => "event.corrected",
            EventKind::EventRetracted => "event.retracted",
            EventKind::IssueDefined => "issue.defined",
            EventKind::IssueStatusChanged => "issue.status_changed",
            EventKind::MeetingHeld => "meeting.held",
            EventKind::OrganisationFounded => "organisation.founded",
            EventKind::PlanProposed => "plan.proposed",
            EventKind::PlanRevised => "plan.revised",
            EventKind::PositionStated => "position.stated",
            EventKind::SourceAssessed => "source.assessed",
            EventKind::SourceCorrected => "source.corrected",
            EventKind::SourceRegistered => "source.registered",
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
                | EventKind::SourceAssessed
                | EventKind::SourceCorrected
                | EventKind::SourceWithdrawn
                | EventKind::EventCorrected
                | EventKind::EventRetracted
        )
    }

    /// The registry key this type declares, if it is a registration.
    pub const fn declares(self) -> Option<Declares> {
        match self {
            EventKind::SourceRegistered => Some(Declares {
                registry: "source",
                field: "source_id",
            }),
            EventKind::ActorRegistered => Some(Declares {
                registry: "entity",
                field: "actor_id",
            }),
            EventKind::IssueDefined => Some(Declares {
                registry: "entity",
                field: "issue_id",
            }),
            _ => None,
        }
    }

    /// Whether the payload's `source_id` names the source the event is about (its
    /// registration, grades, corrections and withdrawal). The projections index such an event
    /// under that source.
    pub const fn is_about_source(self) -> bool {
        matches!(
            self,
            EventKind::SourceRegistered
                | EventKind::SourceAssessed
                | EventKind::SourceCorrected
                | EventKind::SourceWithdrawn
        )
    }

    /// Whether the source the event is about must already be registered (every event about a
    /// source but its registration).
    pub const fn requires_registered_source(self) -> bool {
        self.is_about_source() && !matches!(self, EventKind::SourceRegistered)
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
    fn each_declared_registry_field_is_a_required_field_of_its_schema() {
        let schemas = crate::event::schema::Schemas::load().unwrap();
        for kind in EventKind::ALL {
            let required = |field: &str| {
                schemas.document(kind.name()).is_some_and(|d| {
                    d["required"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|f| f == field))
                })
            };
            if let Some(d) = kind.declares() {
                assert!(required(d.field), "{kind}: {}", d.field);
            }
            if kind.is_about_source() {
                assert!(required("source_id"), "{kind}: source_id");
            }
            if kind.targets_event() {
                assert!(required("target"), "{kind}: target");
            }
        }
    }
}
