//! The typed validator: a submitted event, its `data` and what schema version 1 narrows,
//! read into serde structs (`typed/events.rs`) whose leaf types hold each definition's rule
//! (`typed/fields.rs`), instead of walking the compiled JSON Schemas. It gives the schemas'
//! verdict at a fraction of the cost, and on a refusal the pointer of the first rule broken.
//! The schemas stay the contract: this module must never accept what they refuse (a test runs
//! every example and its mutations through both), and it never words the errors a client
//! reads (`schema.rs` asks the schemas for those when this refuses).

mod data;
mod events;
mod fields;
mod patterns;

#[cfg(test)]
pub(crate) mod equivalence;

use std::cell::RefCell;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use self::data::*;
use self::events::*;
use self::fields::Obj;
use super::FieldError;
use super::node::{JsonView, Node};

/// The words of every closed list of `vocabularies.json` as this deployment extends them.
#[derive(Debug, Default)]
struct Vocabularies {
    /// `$defs` name, then its words.
    lists: Vec<(String, Vec<String>)>,
}

thread_local! {
    /// The vocabularies of the check running on this thread: serde's `Deserialize` takes no
    /// context, and two servers in one process may extend the lists differently.
    static CURRENT: RefCell<Option<Arc<Vocabularies>>> = const { RefCell::new(None) };
}

/// Whether `word` is in the vocabulary `def` of the check running on this thread.
fn vocabulary_has(def: &str, word: &str) -> bool {
    CURRENT.with(|c| {
        c.borrow().as_ref().is_some_and(|v| {
            v.lists
                .iter()
                .find(|(d, _)| d == def)
                .is_some_and(|(_, words)| words.iter().any(|w| w == word))
        })
    })
}

/// Sets this thread's vocabularies for one check, and puts back the previous ones after.
struct Scope(Option<Arc<Vocabularies>>);

impl Scope {
    fn enter(vocabularies: &Arc<Vocabularies>) -> Scope {
        Scope(CURRENT.with(|c| c.replace(Some(Arc::clone(vocabularies)))))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// The typed validator of one schema set.
#[derive(Debug)]
pub struct Typed {
    vocabularies: Arc<Vocabularies>,
}

impl Typed {
    /// A validator for the vocabularies of `vocabularies` (the `vocabularies.json` document,
    /// with the deployment's additions merged).
    pub fn new(vocabularies: &Value) -> Typed {
        let lists = vocabularies
            .get("$defs")
            .and_then(Value::as_object)
            .map(|defs| {
                defs.iter()
                    .filter_map(|(name, def)| {
                        let words = def.get("enum")?.as_array()?;
                        Some((
                            name.clone(),
                            words
                                .iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Typed {
            vocabularies: Arc::new(Vocabularies { lists }),
        }
    }

    /// Checks a submitted event against `event.json` (its `data` only for being an object);
    /// `base` is its pointer in the body.
    pub fn check_event(&self, event: &Value, base: &str) -> Result<(), FieldError> {
        let _scope = Scope::enter(&self.vocabularies);
        read::<Obj<Event>>(event, base)?;
        occurred_rules(event.get("occurred"), base)
    }

    /// Checks the `data` of an event of `event_type` (pointers from `base`); `None` for a type
    /// with no schema.
    pub fn check_data(
        &self,
        event_type: &str,
        data: &Value,
        base: &str,
    ) -> Option<Result<(), FieldError>> {
        let _scope = Scope::enter(&self.vocabularies);
        data_in(event_type, data, base)
    }

    /// Whether an event read as a [`Node`] passes [`Typed::check_event`]. A refusal says
    /// nothing of where: the `Value` path finds that.
    pub(crate) fn event_node_passes(&self, event: &Node<'_>) -> bool {
        let _scope = Scope::enter(&self.vocabularies);
        event.accepts::<Obj<Event>>("").is_ok()
            && occurred_rules(event.member("occurred"), "").is_ok()
    }

    /// Whether an event's `data` read as a [`Node`] passes [`Typed::check_data`]; `None` for
    /// a type with no schema.
    pub(crate) fn data_node_passes(&self, event_type: &str, data: &Node<'_>) -> Option<bool> {
        let _scope = Scope::enter(&self.vocabularies);
        data_in(event_type, data, "").map(|r| r.is_ok())
    }

    /// Checks what schema version 1 narrows (`version-1.json`): a tone is one string, a
    /// provision a string, a plan change an object, a PLOVER code a string. Nothing for other
    /// versions.
    pub fn check_version<J: JsonView>(
        &self,
        version: u64,
        event_type: &str,
        data: &J,
        data_base: &str,
        meta: Option<&J>,
        meta_base: &str,
    ) -> Result<(), FieldError> {
        if version != 1 {
            return Ok(());
        }
        let narrower = |pointer: String, what: &str| FieldError {
            pointer,
            message: format!("must be {what} in schema version 1"),
        };
        match event_type {
            "statement.made" if data.member("tone").is_some_and(|t| t.string().is_none()) => {
                return Err(narrower(format!("{data_base}/tone"), "a string"));
            }
            "agreement.reached" | "plan.revised" => {
                let strings = event_type == "agreement.reached";
                let (member, what) = if strings {
                    ("provisions", "a string")
                } else {
                    ("changes", "an object")
                };
                let want = |v: &J| {
                    if strings {
                        v.string().is_some()
                    } else {
                        v.is_object()
                    }
                };
                if let Some(items) = data.member(member).and_then(J::items)
                    && let Some(i) = items.iter().position(|v| !want(v))
                {
                    return Err(narrower(format!("{data_base}/{member}/{i}"), what));
                }
            }
            _ => {}
        }
        if meta
            .and_then(|m| m.member("codes"))
            .and_then(|c| c.member("plover"))
            .is_some_and(|p| p.string().is_none())
        {
            return Err(narrower(format!("{meta_base}/codes/plover"), "a string"));
        }
        Ok(())
    }
}

/// Reads `data` as the struct of `event_type`, from either source; `None` for a type with no
/// schema. The one list of which struct reads which type's `data`.
fn data_in<'de, S: Source<'de>>(
    event_type: &str,
    data: S,
    base: &str,
) -> Option<Result<(), FieldError>> {
    Some(match event_type {
        "actor.registered" => data.accepts::<Obj<ActorRegistered>>(base),
        "actor.updated" => data.accepts::<Obj<ActorUpdated>>(base),
        "agreement.reached" => data.accepts::<Obj<AgreementReached>>(base),
        "event.corrected" => data.accepts::<Obj<EventCorrected>>(base),
        "event.retracted" => data.accepts::<Obj<EventRetracted>>(base),
        "issue.defined" => data.accepts::<Obj<IssueDefined>>(base),
        "issue.status_changed" => data.accepts::<Obj<IssueStatusChanged>>(base),
        "issue.updated" => data.accepts::<Obj<IssueUpdated>>(base),
        "meeting.held" => data.accepts::<Obj<MeetingHeld>>(base),
        "organisation.founded" => data.accepts::<Obj<OrganisationFounded>>(base),
        "plan.proposed" => data.accepts::<Obj<PlanProposed>>(base),
        "plan.revised" => data.accepts::<Obj<PlanRevised>>(base),
        "position.stated" => data.accepts::<Obj<PositionStated>>(base),
        "source.assessed" => data.accepts::<Obj<SourceAssessed>>(base),
        "source.corrected" | "source.withdrawn" => data.accepts::<Obj<SourceNotice>>(base),
        "source.registered" => data.accepts::<Obj<SourceRegistered>>(base),
        "source.updated" => data.accepts::<Obj<SourceUpdated>>(base),
        "statement.made" => data.accepts::<Obj<StatementMade>>(base),
        "talks.scheduled" => data.accepts::<Obj<TalksScheduled>>(base),
        "talks.status_changed" => data.accepts::<Obj<TalksStatusChanged>>(base),
        _ => return None,
    })
}

/// Where a typed read takes its value from: a parsed `Value`, or a [`Node`].
trait Source<'de>: Copy {
    /// Reads the value as `T`; a refusal's pointer is from `base`.
    fn accepts<T: Deserialize<'de>>(self, base: &str) -> Result<(), FieldError>;
}

impl<'de> Source<'de> for &'de Value {
    fn accepts<T: Deserialize<'de>>(self, base: &str) -> Result<(), FieldError> {
        read::<T>(self, base)
    }
}

/// A [`Node`], read for a verdict: a refusal is blamed on `base` as a whole (the `Value` path,
/// which words every refusal, finds where).
impl<'de, 'a: 'de> Source<'de> for &'de Node<'a> {
    fn accepts<T: Deserialize<'de>>(self, base: &str) -> Result<(), FieldError> {
        T::deserialize(self).map(|_| ()).map_err(|e| FieldError {
            pointer: base.to_string(),
            message: e.to_string(),
        })
    }
}

/// Reads `value` as `T`; a refusal is read again, tracking the path, for its pointer (the
/// cheap read is the common one).
fn read<'de, T: Deserialize<'de>>(value: &'de Value, base: &str) -> Result<(), FieldError> {
    if T::deserialize(value).is_ok() {
        return Ok(());
    }
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(_) => Ok(()),
        Err(e) => Err(FieldError {
            pointer: pointer(base, e.path(), &e.inner().to_string()),
            message: e.inner().to_string(),
        }),
    }
}

/// A serde path as a JSON pointer from `base`. An unknown member is blamed on its object, as
/// `additionalProperties` is.
fn pointer(base: &str, path: &serde_path_to_error::Path, message: &str) -> String {
    use serde_path_to_error::Segment;
    let mut segments: Vec<String> = path
        .iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect();
    if message.starts_with("unknown field") {
        segments.pop();
    }
    let mut out = base.to_string();
    for s in segments {
        out.push('/');
        out.push_str(&s);
    }
    out
}

/// `occurred`'s `allOf`: what each precision requires of `start` and `end`. Run once the
/// members' own rules hold.
/// The rules of `occurred` beyond its shape; `event` is the event's pointer (the pointer of a
/// refusal is built only then: this runs on every event).
fn occurred_rules<J: JsonView>(occurred: Option<&J>, event: &str) -> Result<(), FieldError> {
    use self::fields::{
        DateOrDateTimePattern, DatePattern, DateTimePattern, PartialDateTimePattern, Pattern,
        YearMonthPattern, YearPattern,
    };
    let Some(occurred) = occurred else {
        return Ok(());
    };
    let Some(precision) = occurred.member("precision").and_then(J::string) else {
        return Ok(());
    };
    let fail = |member: &str, message: String| {
        Err(FieldError {
            pointer: format!("{event}/occurred{member}"),
            message,
        })
    };
    let (matches, what, needs_end): (fn(&str) -> bool, &str, bool) = match precision {
        "exact" => (DateTimePattern::matches, DateTimePattern::WHAT, false),
        "day" => (DatePattern::matches, DatePattern::WHAT, false),
        "month" => (YearMonthPattern::matches, YearMonthPattern::WHAT, false),
        "year" => (YearPattern::matches, YearPattern::WHAT, false),
        "interval" => (
            DateOrDateTimePattern::matches,
            DateOrDateTimePattern::WHAT,
            true,
        ),
        "unknown" => {
            if occurred.member("end").is_some() {
                return fail("", "a precision of `unknown` has no `end`".into());
            }
            if let Some(start) = occurred.member("start").and_then(J::string)
                && !PartialDateTimePattern::matches(start)
            {
                return fail(
                    "/start",
                    format!("`{start}` is not {}", PartialDateTimePattern::WHAT),
                );
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    if occurred.member("start").is_none() || needs_end && occurred.member("end").is_none() {
        return fail(
            "",
            format!("a precision of `{precision}` needs its `start`"),
        );
    }
    for member in ["start", "end"] {
        if let Some(s) = occurred.member(member).and_then(J::string)
            && !matches(s)
        {
            return fail(
                &format!("/{member}"),
                format!("`{s}` is not {what} (precision `{precision}`)"),
            );
        }
    }
    Ok(())
}
